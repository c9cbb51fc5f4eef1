package main

import (
	"bufio"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/havoclab/havoc/scenarios"
)

// parseSeeds parses "1-1000", "7", or a comma list of both.
func parseSeeds(s string) ([]uint64, error) {
	var out []uint64
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.ParseUint(lo, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("bad seed %q in --seeds %q", lo, s)
		}
		b := a
		if isRange {
			if b, err = strconv.ParseUint(hi, 10, 64); err != nil || b < a {
				return nil, fmt.Errorf("bad seed range %q in --seeds %q", part, s)
			}
		}
		if b-a > 10_000_000 {
			return nil, fmt.Errorf("seed range %q is too large", part)
		}
		for x := a; x <= b; x++ {
			out = append(out, x)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("--seeds is empty")
	}
	return out, nil
}

// Verdicts a sweep reports for seeds that did not run to a verdict.
const (
	verdictError       = "error"        // the run returned an error
	verdictWorkerError = "worker-error" // the worker process died or could not start
)

// sweepResult is one line of a sweep worker's output.
type sweepResult struct {
	Seed      uint64  `json:"seed"`
	Verdict   string  `json:"verdict"`
	Reason    string  `json:"reason,omitempty"`
	Ops       int     `json:"ops"`
	Unknown   int     `json:"unknown"`
	WallSec   float64 `json:"wall_s"`
	CheckSec  float64 `json:"check_s"`
	Dir       string  `json:"dir,omitempty"`
	Repro     string  `json:"repro"`
	WorkerErr string  `json:"worker_error,omitempty"`
}

func newSweepCmd() *cobra.Command {
	var f runFlags
	var seeds string
	var parallel int
	var quiet bool
	cmd := &cobra.Command{
		Use:   "sweep",
		Short: "Run many seeds in the simulator across cores and report the failing ones",
		Long: `Run every seed of --seeds in the simulator, one worker process per core (a simulated
world owns process-wide state, so worlds never share a process), with a progress bar,
then print a summary table and the failing seeds with the line that reproduces each.
Exit status 1 if any seed failed its check, else 4 if a seed could not run, else 3 if
a check was inconclusive (see harness --help).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			list, err := parseSeeds(seeds)
			if err != nil {
				return usageError(err)
			}
			if _, err := f.config(1); err != nil {
				return usageError(err)
			}
			if parallel < 1 {
				parallel = runtime.NumCPU()
			}
			parallel = min(parallel, len(list))
			return sweep(cmd.OutOrStdout(), cmd.ErrOrStderr(), f, list, parallel, quiet)
		},
	}
	f.register(cmd, false)
	cmd.Flags().StringVar(&seeds, "seeds", "1-100", "seeds to run: 1-1000, 7, or a comma list")
	cmd.Flags().IntVar(&parallel, "parallel", 0, "worker processes (0 = one per CPU)")
	cmd.Flags().BoolVar(&quiet, "quiet", false, "no progress bar")
	return cmd
}

func (f runFlags) workerArgs() []string {
	return []string{"sweep-worker", "--nodes", strconv.Itoa(f.nodes), "--clients", strconv.Itoa(f.clients),
		"--duration", f.duration.String(), "--faults", f.faults, "--out", f.out, "--rate", strconv.FormatFloat(f.rate, 'g', -1, 64)}
}

func sweep(stdout, stderr io.Writer, f runFlags, seeds []uint64, parallel int, quiet bool) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	start := time.Now()
	var bar *progressbar.ProgressBar
	if !quiet {
		bar = progressbar.NewOptions(len(seeds), progressbar.OptionSetWriter(stderr), progressbar.OptionSetDescription("seeds"),
			progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetItsString("seeds"),
			progressbar.OptionThrottle(200*time.Millisecond), progressbar.OptionClearOnFinish())
	}
	work := make(chan uint64)
	results := make(chan sweepResult)
	var wg sync.WaitGroup
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runWorker(exe, f, work, results)
		}()
	}
	go func() {
		for _, s := range seeds {
			work <- s
		}
		close(work)
	}()
	go func() { wg.Wait(); close(results) }()
	var all []sweepResult
	for r := range results {
		all = append(all, r)
		if bar != nil {
			_ = bar.Add(1)
		}
	}
	if bar != nil {
		_ = bar.Finish()
	}
	elapsed := time.Since(start)
	slices.SortFunc(all, func(a, b sweepResult) int { return cmp.Compare(a.Seed, b.Seed) })
	return summarize(stdout, all, elapsed, parallel)
}

// runWorker feeds seeds to one worker process and relays its results. If the
// worker dies, the seed it was running is reported as a failure and a new worker
// takes over.
func runWorker(exe string, f runFlags, work <-chan uint64, results chan<- sweepResult) {
	var cmd *exec.Cmd
	var in io.WriteCloser
	var out *bufio.Scanner
	startProc := func() error {
		cmd = exec.Command(exe, f.workerArgs()...)
		cmd.Stderr = os.Stderr
		var err error
		if in, err = cmd.StdinPipe(); err != nil {
			return err
		}
		pipe, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		out = bufio.NewScanner(pipe)
		out.Buffer(make([]byte, 1<<20), 1<<24)
		return cmd.Start()
	}
	stop := func() {
		if cmd != nil {
			_ = in.Close()
			_ = cmd.Wait()
			cmd = nil
		}
	}
	defer stop()
	for seed := range work {
		if cmd == nil {
			if err := startProc(); err != nil {
				results <- sweepResult{Seed: seed, Verdict: verdictWorkerError, WorkerErr: err.Error()}
				continue
			}
		}
		var r sweepResult
		_, err := fmt.Fprintf(in, "%d\n", seed)
		if err == nil && out.Scan() {
			err = json.Unmarshal(out.Bytes(), &r)
		} else if err == nil {
			err = fmt.Errorf("worker exited: %v", out.Err())
		}
		if err != nil {
			r = sweepResult{Seed: seed, Verdict: verdictWorkerError, WorkerErr: err.Error()}
			stop()
		}
		results <- r
	}
}

func newSweepWorkerCmd() *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:    "sweep-worker",
		Short:  "Internal: run seeds read from stdin, one JSON result per line on stdout",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in := bufio.NewScanner(os.Stdin)
			enc := json.NewEncoder(cmd.OutOrStdout())
			for in.Scan() {
				seed, err := strconv.ParseUint(strings.TrimSpace(in.Text()), 10, 64)
				if err != nil {
					return fmt.Errorf("sweep-worker: bad seed line %q", in.Text())
				}
				c, err := f.config(seed)
				if err != nil {
					return err
				}
				r := sweepResult{Seed: seed, Repro: scenarios.Repro(c)}
				res, err := scenarios.RunSim(c)
				if err != nil {
					r.Verdict, r.Reason = verdictError, err.Error()
				} else {
					r.Verdict, r.Reason, r.Ops, r.Unknown, r.Dir = res.Verdict, res.Reason, res.Operations, res.Unknown, res.Dir
					r.WallSec, r.CheckSec = res.Wall.Seconds(), res.CheckWall.Seconds()
				}
				if err := enc.Encode(r); err != nil {
					return err
				}
			}
			return in.Err()
		},
	}
	f.register(cmd, false)
	return cmd
}

func summarize(w io.Writer, all []sweepResult, elapsed time.Duration, parallel int) error {
	byVerdict := map[string]int{}
	var verdicts []string
	var failed []sweepResult
	var ops, unknown int
	var wall, check float64
	for _, r := range all {
		byVerdict[r.Verdict]++
		verdicts = append(verdicts, r.Verdict)
		ops += r.Ops
		unknown += r.Unknown
		wall += r.WallSec
		check += r.CheckSec
		if r.Verdict != scenarios.VerdictOK {
			failed = append(failed, r)
		}
	}
	n := float64(max(len(all), 1))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "seeds\t%d\n", len(all))
	for _, v := range sortedKeys(byVerdict) {
		fmt.Fprintf(tw, "  %s\t%d\n", v, byVerdict[v])
	}
	fmt.Fprintf(tw, "operations\t%d (%d unknown outcome)\n", ops, unknown)
	fmt.Fprintf(tw, "mean wall per seed\t%.2fs (checking %.2fs)\n", wall/n, check/n)
	fmt.Fprintf(tw, "elapsed\t%s with %d workers\n", elapsed.Round(time.Millisecond), parallel)
	fmt.Fprintf(tw, "throughput\t%.0f seeds/hour\n", float64(len(all))/elapsed.Hours())
	_ = tw.Flush()
	if len(failed) == 0 {
		fmt.Fprintln(w, "all seeds passed")
		return nil
	}
	fmt.Fprintf(w, "\n%d failing seeds:\n", len(failed))
	for _, r := range failed {
		fmt.Fprintf(w, "seed %d: %s: %s %s\n  reproduce: %s\n", r.Seed, r.Verdict, r.Reason, r.WorkerErr, r.Repro)
		if r.Dir != "" {
			fmt.Fprintf(w, "  artifacts: %s\n", r.Dir)
		}
	}
	return &exitError{code: worstExit(verdicts...)}
}

func sortedKeys(m map[string]int) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
