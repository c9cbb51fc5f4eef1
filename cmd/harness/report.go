package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/havoclab/havoc/scenarios"
	"github.com/havoclab/havoc/scenarios/report"
)

// reportFlags are --junit and --json: where a command writes its results for
// a CI system.
type reportFlags struct {
	junit, json string
}

func (r *reportFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&r.junit, "junit", "", "write a JUnit XML report (one test case per seed, scenario or drill) to this file")
	cmd.Flags().StringVar(&r.json, "json", "", "write the results as JSON (the format `harness report merge` reads) to this file")
}

// write writes the files the flags ask for.
func (r *reportFlags) write(res report.Results) error {
	if r.junit != "" {
		if err := report.WriteFile(r.junit, func(w io.Writer) error { return report.WriteJUnit(w, res) }); err != nil {
			return fmt.Errorf("--junit: %w", err)
		}
	}
	if r.json != "" {
		if err := report.WriteFile(r.json, func(w io.Writer) error { return report.WriteJSON(w, res) }); err != nil {
			return fmt.Errorf("--json: %w", err)
		}
	}
	return nil
}

// status is how JUnit reports a verdict: an inconclusive check is skipped
// (nothing was judged), every other verdict but ok is a failure.
func status(verdict string) string {
	switch verdict {
	case scenarios.VerdictOK:
		return report.StatusPassed
	case scenarios.VerdictInconclusive:
		return report.StatusSkipped
	default:
		return report.StatusFailed
	}
}

// seedCase is the report case of one seed of a run or sweep.
func seedCase(suite, scenario string, r sweepResult) report.Case {
	reason := r.Reason
	if r.WorkerErr != "" {
		reason = strings.TrimSpace(reason + " " + r.WorkerErr)
	}
	return report.Case{
		Suite: suite, Name: "seed " + strconv.FormatUint(r.Seed, 10), Seed: r.Seed, Scenario: scenario,
		Verdict: r.Verdict, Status: status(r.Verdict), Reason: reason, Repro: r.Repro, Dir: r.Dir,
		Ops: r.Ops, Unknown: r.Unknown, WallSec: r.WallSec, CheckSec: r.CheckSec,
	}
}

// shard is one slice of a sweep's seed list: index I of N, I from 0.
type shard struct{ i, n int }

func (s shard) String() string {
	if s.n <= 1 {
		return ""
	}
	return fmt.Sprintf("%d/%d", s.i, s.n)
}

// parseShard reads --shard I/N; with no flag, Kubernetes' Indexed Job
// variables JOB_COMPLETION_INDEX and JOB_COMPLETIONS if both are set; else
// the whole list (0/1).
func parseShard(flag string, getenv func(string) string) (shard, error) {
	src := "--shard " + flag
	if flag == "" {
		idx, n := getenv("JOB_COMPLETION_INDEX"), getenv("JOB_COMPLETIONS")
		if idx == "" || n == "" {
			return shard{0, 1}, nil
		}
		flag, src = idx+"/"+n, "JOB_COMPLETION_INDEX/JOB_COMPLETIONS "+idx+"/"+n
	}
	a, b, ok := strings.Cut(flag, "/")
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || n < 1 || i < 0 || i >= n {
		return shard{}, fmt.Errorf("%s: want I/N with 0 <= I < N", src)
	}
	return shard{i, n}, nil
}

// slice is the shard's seeds: round-robin, every N-th seed from the I-th, so
// each shard gets a like mix of the list (cost grows with nothing in a seed's
// number, but a time-boxed shard still covers the whole range).
func (s shard) slice(seeds []uint64) []uint64 {
	var out []uint64
	for k := s.i; k < len(seeds); k += s.n {
		out = append(out, seeds[k])
	}
	return out
}

// isTerminal reports whether w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progressLog writes plain progress lines for a log (no terminal): one every
// tenth of the seeds or every interval, whichever comes first.
type progressLog struct {
	w        io.Writer
	total    int
	every    int
	interval time.Duration
	start    time.Time
	last     time.Time
	done     int
	failed   int
}

func newProgressLog(w io.Writer, total int, interval time.Duration) *progressLog {
	now := time.Now()
	return &progressLog{w: w, total: total, every: max(1, total/10), interval: interval, start: now, last: now}
}

// add counts one finished seed.
func (p *progressLog) add(verdict string) {
	p.done++
	if verdict != scenarios.VerdictOK {
		p.failed++
	}
	now := time.Now()
	if p.done%p.every == 0 || p.done == p.total || now.Sub(p.last) >= p.interval {
		p.last = now
		fmt.Fprintf(p.w, "progress: %d/%d seeds, %d not ok, %s\n", p.done, p.total, p.failed, now.Sub(p.start).Round(time.Second))
	}
}

func newReportCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Work with the results files sweeps write (merge shards)",
	}
	var junit, html, jsonOut string
	merge := &cobra.Command{
		Use:   "merge DIR...",
		Short: "Merge the results of sweep shards: one summary table, one JUnit file, one HTML index of failures",
		Long: `Read every results*.json in each DIR (a sweep writes results.json into its --out
directory, a shard results-shard-I-of-N.json) and merge them: print one summary table
and every failing seed with its reproduce line, and write one JUnit file (--junit), one
HTML index of the failures (--html) and the merged results (--json). A seed found in
two inputs is an error. Exit status 1 if any case failed.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, dirs []string) error {
			rs, err := report.ReadDirs(dirs...)
			if err != nil {
				return err
			}
			m, err := report.Merge(rs...)
			if err != nil {
				return err
			}
			report.Summary(cmd.OutOrStdout(), m)
			rf := reportFlags{junit: junit, json: jsonOut}
			if err := rf.write(m); err != nil {
				return err
			}
			if html != "" {
				if err := report.WriteFile(html, func(w io.Writer) error { return report.WriteHTML(w, m) }); err != nil {
					return fmt.Errorf("--html: %w", err)
				}
			}
			var verdicts []string
			for _, c := range m.Cases {
				verdicts = append(verdicts, c.Verdict)
			}
			if code := worstExit(verdicts...); code != exitOK {
				return &exitError{code: code}
			}
			return nil
		},
	}
	merge.Flags().StringVar(&junit, "junit", "", "write the merged JUnit XML report to this file")
	merge.Flags().StringVar(&html, "html", "", "write an HTML index of the failures to this file")
	merge.Flags().StringVar(&jsonOut, "json", "", "write the merged results to this file")
	cmd.AddCommand(merge)
	return cmd
}

// resultsPath is where a sweep writes its results file in out ("" if out is
// empty: no artifacts at all).
func resultsPath(out string, s shard) string {
	if out == "" {
		return ""
	}
	if s.n > 1 {
		return filepath.Join(out, report.ShardResultsFile(s.i, s.n))
	}
	return filepath.Join(out, report.ResultsFile)
}

var errNoSeeds = errors.New("this shard has no seeds (more shards than seeds)")
