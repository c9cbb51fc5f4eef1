package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/havoclab/havoc/internal/mutant"
	"github.com/havoclab/havoc/scenarios"
	"github.com/havoclab/havoc/scenarios/report"
)

// mutantResult is what `harness mutants` found for one mutant.
type mutantResult struct {
	ID      mutant.ID
	Caught  bool
	First   sweepResult // the first failing seed (Caught) or zero
	Seeds   int         // seeds run up to and including the first failing one (all run when missed)
	Elapsed time.Duration
	// Repro is the verdict of re-running First.Seed; Reproduced reports whether
	// it is the same verdict and reason.
	Repro      sweepResult
	Reproduced bool
	// Passed counts the seeds that ran without a failure, by verdict (ok or
	// inconclusive): a mutant missed on inconclusive seeds was not really tried.
	Passed map[string]int
}

func newMutantsCmd() *cobra.Command {
	var f runFlags
	var list, seeds, binary string
	var parallel, budget int
	var show bool
	var rf reportFlags
	cmd := &cobra.Command{
		Use:   "mutants",
		Short: "Measure bug-finding power: sweep seeds against deliberately broken stores until each fails",
		Long: `Build the harness with the build tag ` + mutant.BuildTag + ` (go build -tags ` + mutant.BuildTag + `,
from the module's source; or take --binary), then for each mutant in --mutants run the
seeds of --seeds in order (at most --budget of them) on --parallel sweep workers with
` + mutant.EnvVar + ` set, until the first seed that fails without failing the same way
with no mutant (a seed that fails without it too is tallied as baseline-VERDICT and the
hunt goes on). The first failing seed is then run again, which must give the same
verdict and reason. Prints a table (mutant, caught or missed, first failing seed, seeds
and seconds to detection, verdict, whether it reproduced, reason) and the line that
reproduces each caught mutant. Exit status 1 if a mutant is missed or its failure does
not reproduce. --list prints the mutants and exits. A normal build carries no mutation:
every site is a constant false without the tag.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			if show {
				tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "MUTANT\tSITE\tBUG")
				for _, m := range mutant.All {
					fmt.Fprintf(tw, "%s\t%s\t%s\n", m.ID, m.Site, m.Bug)
				}
				return tw.Flush()
			}
			ids, err := parseMutants(list)
			if err != nil {
				return usageError(err)
			}
			all, err := parseSeeds(seeds)
			if err != nil {
				return usageError(err)
			}
			if budget > 0 && budget < len(all) {
				all = all[:budget]
			}
			if parallel < 1 {
				return usageError(fmt.Errorf("--parallel %d: at least one worker", parallel))
			}
			if _, err := f.config(1); err != nil {
				return usageError(err)
			}
			if err := f.swarmConflict(cmd.Flags()); err != nil {
				return usageError(err)
			}
			if binary == "" {
				dir, err := os.MkdirTemp("", "havoc-mutants-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(dir)
				if binary, err = buildMutantHarness(dir, cmd.ErrOrStderr()); err != nil {
					return &exitError{code: exitInfra, msg: "harness mutants: " + err.Error()}
				}
			}
			args := workerArgs(cmd.Flags(), f.names)
			var results []mutantResult
			for _, id := range ids {
				r := hunt(binary, args, id, all, min(parallel, len(all)))
				fmt.Fprintf(cmd.ErrOrStderr(), "%s: %s\n", id, caughtWord(r))
				results = append(results, r)
			}
			if err := rf.write(mutantResults(results, len(ids))); err != nil {
				return err
			}
			return mutantTable(out, results, len(all))
		},
	}
	f.swarmDefault = true
	f.register(cmd, false, false)
	rf.register(cmd)
	cmd.Flags().StringVar(&list, "mutants", "all", "mutants to hunt: all, or a comma list (see --list)")
	cmd.Flags().BoolVar(&show, "list", false, "list the mutants and exit")
	cmd.Flags().StringVar(&seeds, "seeds", "1-200", "seeds to try, in order: 1-200, 7, or a comma list")
	cmd.Flags().IntVar(&budget, "budget", 0, "at most this many seeds per mutant, the first of --seeds (0: all of them)")
	cmd.Flags().IntVar(&parallel, "parallel", 2, "worker processes")
	cmd.Flags().StringVar(&binary, "binary", "", "a harness built with -tags "+mutant.BuildTag+" (default: build one)")
	return cmd
}

func parseMutants(s string) ([]mutant.ID, error) {
	if s == "all" {
		ids := make([]mutant.ID, len(mutant.All))
		for i, m := range mutant.All {
			ids[i] = m.ID
		}
		return ids, nil
	}
	var ids []mutant.ID
	for part := range strings.SplitSeq(s, ",") {
		id := mutant.ID(strings.TrimSpace(part))
		if _, ok := mutant.Lookup(id); !ok {
			return nil, fmt.Errorf("--mutants: no mutant %q (harness mutants --list)", id)
		}
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return nil, errors.New("--mutants is empty")
	}
	return ids, nil
}

// buildMutantHarness builds cmd/harness with the mutant build tag into dir,
// from the module the go command finds in the working directory.
func buildMutantHarness(dir string, stderr io.Writer) (string, error) {
	bin := filepath.Join(dir, "harness-mutants")
	build := exec.Command("go", "build", "-tags", mutant.BuildTag, "-o", bin, "github.com/havoclab/havoc/cmd/harness")
	build.Stdout, build.Stderr = stderr, stderr
	if err := build.Run(); err != nil {
		return "", fmt.Errorf("go build -tags %s (run harness mutants inside the havoc module, or pass --binary): %w", mutant.BuildTag, err)
	}
	return bin, nil
}

// caught reports whether a verdict is a failure found by the checks: anything
// but ok, inconclusive and a baseline failure (a worker that died counts: the
// mutant crashed it).
func caught(v string) bool {
	return v != scenarios.VerdictOK && v != scenarios.VerdictInconclusive && !strings.HasPrefix(v, "baseline-")
}

func caughtWord(r mutantResult) string {
	if !r.Caught {
		return fmt.Sprintf("missed in %d seeds (%s): %s", r.Seeds, r.Elapsed.Round(time.Second), tally(r.Passed))
	}
	rep := "reproduces"
	if !r.Reproduced {
		rep = "does not reproduce (" + r.Repro.Verdict + ")"
	}
	return fmt.Sprintf("caught by seed %d after %d seeds (%s): %s, %s", r.First.Seed, r.Seeds, r.Elapsed.Round(time.Second), r.First.Verdict, rep)
}

// hunt runs seeds in order on parallel workers with mutant id active until a
// seed fails; seeds already started finish, and the smallest failing seed is
// the first. It then re-runs that seed once.
func hunt(bin string, args []string, id mutant.ID, seeds []uint64, parallel int) mutantResult {
	controlEnv := append(os.Environ(), mutant.EnvVar+"=")
	env := append(os.Environ(), mutant.EnvVar+"="+string(id))
	start := time.Now()
	var mu sync.Mutex
	var failed []sweepResult
	passed := map[string]int{}
	var firstAt time.Duration
	stop := false
	work := make(chan uint64)
	var wg sync.WaitGroup
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := &mutantWorker{bin: bin, args: args, env: env}
			defer w.close()
			control := &mutantWorker{bin: bin, args: args, env: controlEnv}
			defer control.close()
			for s := range work {
				r := w.run(s)
				// A seed that fails without the mutant too is the store's (or the
				// harness's) own failure, not a catch: count it and go on.
				if caught(r.Verdict) {
					if c := control.run(s); caught(c.Verdict) {
						r.Verdict = "baseline-" + c.Verdict
					}
				}
				mu.Lock()
				if caught(r.Verdict) {
					failed = append(failed, r)
					if !stop {
						stop, firstAt = true, time.Since(start)
					}
				} else {
					passed[r.Verdict]++
				}
				mu.Unlock()
			}
		}()
	}
	sent := 0
	for _, s := range seeds {
		mu.Lock()
		done := stop
		mu.Unlock()
		if done {
			break
		}
		work <- s
		sent++
	}
	close(work)
	wg.Wait()
	r := mutantResult{ID: id, Seeds: sent, Elapsed: time.Since(start), Passed: passed}
	if len(failed) == 0 {
		return r
	}
	first := failed[0]
	for _, f := range failed[1:] {
		if f.Seed < first.Seed {
			first = f
		}
	}
	r.Caught, r.First, r.Elapsed = true, first, firstAt
	for i, s := range seeds {
		if s == first.Seed {
			r.Seeds = i + 1
		}
	}
	w := &mutantWorker{bin: bin, args: args, env: env}
	r.Repro = w.run(first.Seed)
	w.close()
	r.Reproduced = r.Repro.Verdict == first.Verdict && r.Repro.Reason == first.Reason
	return r
}

// mutantWorker is one sweep-worker process of the tagged binary.
type mutantWorker struct {
	bin  string
	args []string
	env  []string
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Scanner
}

func (w *mutantWorker) start() error {
	w.cmd = exec.Command(w.bin, w.args...)
	w.cmd.Env = w.env
	w.cmd.Stderr = io.Discard
	var err error
	if w.in, err = w.cmd.StdinPipe(); err != nil {
		return err
	}
	pipe, err := w.cmd.StdoutPipe()
	if err != nil {
		return err
	}
	w.out = bufio.NewScanner(pipe)
	w.out.Buffer(make([]byte, 1<<20), 1<<24)
	return w.cmd.Start()
}

func (w *mutantWorker) close() {
	if w.cmd != nil {
		_ = w.in.Close()
		_ = w.cmd.Wait()
		w.cmd = nil
	}
}

// run runs one seed; a worker that dies is reported as a worker error (and a
// fresh one starts for the next seed).
func (w *mutantWorker) run(seed uint64) sweepResult {
	if w.cmd == nil {
		if err := w.start(); err != nil {
			w.cmd = nil
			return sweepResult{Seed: seed, Verdict: verdictWorkerError, WorkerErr: err.Error()}
		}
	}
	var r sweepResult
	_, err := fmt.Fprintf(w.in, "%d %s\n", seed, modeSummary)
	if err == nil && w.out.Scan() {
		err = json.Unmarshal(w.out.Bytes(), &r)
	} else if err == nil {
		err = fmt.Errorf("worker exited: %v", w.out.Err())
	}
	if err != nil {
		w.close()
		return sweepResult{Seed: seed, Verdict: verdictWorkerError, WorkerErr: err.Error()}
	}
	return r
}

// mutantRepro turns a run's reproduce line into one that builds the mutant.
func mutantRepro(id mutant.ID, repro string) string {
	if repro == "" {
		return ""
	}
	return mutant.EnvVar + "=" + string(id) + " " + strings.Replace(repro, "go run ./cmd/harness", "go run -tags "+mutant.BuildTag+" ./cmd/harness", 1)
}

func mutantTable(w io.Writer, results []mutantResult, budget int) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MUTANT\tRESULT\tFIRST SEED\tSEEDS\tSECONDS\tVERDICT\tREPRODUCES\tREASON")
	missed, unreproduced, nCaught := 0, 0, 0
	for _, r := range results {
		if !r.Caught {
			missed++
			fmt.Fprintf(tw, "%s\tmissed\t-\t%d\t%.0f\t%s\t-\t-\n", r.ID, r.Seeds, r.Elapsed.Seconds(), tally(r.Passed))
			continue
		}
		nCaught++
		rep := "yes"
		if !r.Reproduced {
			unreproduced++
			rep = "NO: " + r.Repro.Verdict
		}
		reason := r.First.Reason
		if reason == "" {
			reason = r.First.WorkerErr
		}
		fmt.Fprintf(tw, "%s\tcaught\t%d\t%d\t%.0f\t%s\t%s\t%s\n", r.ID, r.First.Seed, r.Seeds, r.Elapsed.Seconds(), r.First.Verdict, rep, oneLine(reason, 100))
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "\n%d of %d mutants caught within %d seeds each\n", nCaught, len(results), budget)
	for _, r := range results {
		if r.Caught {
			fmt.Fprintf(w, "%s: seed %d\n  reproduce: %s\n", r.ID, r.First.Seed, mutantRepro(r.ID, r.First.Repro))
		}
	}
	if missed > 0 || unreproduced > 0 {
		return &exitError{code: exitViolation, msg: fmt.Sprintf("harness mutants: %d missed, %d not reproduced", missed, unreproduced)}
	}
	return nil
}

// tally renders verdict counts as "ok×28 inconclusive×2", in verdict order.
func tally(counts map[string]int) string {
	var parts []string
	for _, v := range sortedKeys(counts) {
		parts = append(parts, fmt.Sprintf("%s×%d", v, counts[v]))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

// oneLine cuts s to its first line and at most n bytes.
func oneLine(s string, n int) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}

// mutantResults are the hunt's results as report cases, one per mutant: a
// mutant caught by a failure that reproduces passes (the checks found the
// bug); a missed or unreproduced one fails, with its tally or verdict.
func mutantResults(results []mutantResult, planned int) report.Results {
	res := report.Results{Command: "mutants", Planned: planned}
	for _, r := range results {
		c := report.Case{Suite: "mutants", Name: string(r.ID), Seed: r.First.Seed, WallSec: r.Elapsed.Seconds(),
			Verdict: "caught", Status: report.StatusPassed, Repro: mutantRepro(r.ID, r.First.Repro),
			Reason: fmt.Sprintf("seed %d after %d seeds: %s: %s", r.First.Seed, r.Seeds, r.First.Verdict, oneLine(r.First.Reason, 200))}
		switch {
		case !r.Caught:
			c.Verdict, c.Status, c.Repro = "missed", report.StatusFailed, ""
			c.Reason = fmt.Sprintf("missed in %d seeds: %s", r.Seeds, tally(r.Passed))
		case !r.Reproduced:
			c.Verdict, c.Status = "not-reproduced", report.StatusFailed
			c.Reason += "; the rerun gave " + r.Repro.Verdict
		}
		res.Cases = append(res.Cases, c)
		res.ElapsedSec += c.WallSec
	}
	return res
}
