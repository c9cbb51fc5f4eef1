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
	"github.com/spf13/pflag"

	"github.com/havoclab/havoc/scenarios"
	"github.com/havoclab/havoc/scenarios/report"
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
	// Full is set by the sweep for a seed whose full artifacts were written.
	Full bool `json:"-"`
}

func newSweepCmd() *cobra.Command {
	var f runFlags
	var seeds string
	var parallel, fullArtifacts int
	var quiet bool
	var shardFlag string
	var budget time.Duration
	var rf reportFlags
	var bf backendFlags
	cmd := &cobra.Command{
		Use:   "sweep",
		Short: "Run many seeds in the simulator (or on real clusters) across cores and report the failing ones",
		Long: `Run every seed of --seeds in the simulator, one worker process per core (a simulated
world owns process-wide state, so worlds never share a process), with a progress bar,
then print a summary table and the failing seeds with the line that reproduces each.
Each seed draws its configuration (--swarm, on by default: cluster size, timing,
snapshots, fault kinds, profile, operation kinds, load); --swarm=false runs the fixed
configuration of --nodes, --clients, --faults, --rate and --profile instead.
Every failing seed leaves a summary in --out (seed, config.json, schedule.txt,
summary.txt); the first --full-artifacts failing seeds in seed order also get their
history, watch events and trace (rebuilt by re-running them traced).
The results of every seed go to --out/results.json (a shard's to
results-shard-I-of-N.json), the file "harness report merge" reads; --junit and --json
write them elsewhere too.

--shard I/N (0 <= I < N; or, without the flag, Kubernetes' JOB_COMPLETION_INDEX and
JOB_COMPLETIONS) runs the I-th slice of the seed list, round-robin: seeds at positions
I, I+N, I+2N... of --seeds. --for D is a wall-clock budget: seeds are started in order
(the first always) until D has passed, the running ones finish, and the summary says how many ran. Each
seed's verdict stays what it is in any other sweep; only how many seeds run depends
on the machine.

The progress bar is drawn on a terminal only; otherwise (a CI log) a plain progress
line is printed every tenth of the seeds or every 10 s.

--profile all gives each seed one of the traffic profiles, in turn by seed
(seed mod the number of profiles, in name order); its reproduce line names it.

With --backend process or docker every seed runs on a real cluster of its own,
started for the seed and closed after it, on the wall clock (see "harness run"):
--parallel clusters at once (default: one per CPU; a 3-member cluster at the default
load used about half a core of a 2-core machine), each with its own ports, run
dir (--run-dir/seed-N if --run-dir is given, kept) and, on Docker, its own run ID.
There --duration defaults to 20s (wall clock; the simulator's 60s is virtual and costs
far less) and --profile to all. Fault kinds the backend cannot express are dropped
from each seed's list (the sweep prints them once), so the schedule holds only faults
that happen; a scenario file's own schedule keeps them, skipped and logged. A real
seed is not replayable, so every failing one leaves its full artifacts and member
logs at once (no traced rerun), and its reproduce line carries --backend, --target
and --etcd-version: it reruns the same workload and schedule, not the same
interleaving. --etcd-version is built (or found cached) once before the workers start.

Exit status 1 if any seed failed its check, else 4 if a seed could not run, else 3 if
a check was inconclusive (see harness --help).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			list, err := parseSeeds(seeds)
			if err != nil {
				return usageError(err)
			}
			if err := bf.validate(); err != nil {
				return usageError(err)
			}
			real := bf.backend != "sim"
			if real && !cmd.Flags().Changed("swarm") {
				f.swarm = false // a real sweep runs the flags' configuration unless told --swarm
			}
			if err := f.swarmConflict(cmd.Flags()); err != nil {
				return usageError(err)
			}
			if real {
				if !cmd.Flags().Changed("duration") && f.scenario == "" {
					_ = cmd.Flags().Set("duration", realSweepDuration.String())
				}
				if !cmd.Flags().Changed("profile") && f.scenario == "" {
					_ = cmd.Flags().Set("profile", profileAll)
				}
			}
			restore := f.pinProfile(list[0])
			c, sc, err := f.effective(cmd.Flags(), 1, nil)
			restore()
			if err != nil {
				return usageError(err)
			}
			sh, err := parseShard(shardFlag, os.Getenv)
			if err != nil {
				return usageError(err)
			}
			if budget < 0 {
				return usageError(fmt.Errorf("--for %s: a wall-clock budget (0: none)", budget))
			}
			list = sh.slice(list)
			if len(list) == 0 {
				return usageError(errNoSeeds)
			}
			if sc.Drill != "" {
				return usageError(errDrillSweep)
			}
			if parallel < 1 {
				return usageError(fmt.Errorf("--parallel %d: at least one worker", parallel))
			}
			if fullArtifacts < 0 {
				return usageError(fmt.Errorf("--full-artifacts %d: a count (0: summaries only)", fullArtifacts))
			}
			parallel = min(parallel, len(list))
			o := sweepOpts{args: workerArgs(cmd.Flags(), f.names), seeds: list, parallel: parallel, fullArtifacts: fullArtifacts,
				quiet: quiet, shard: sh, budget: budget, results: resultsPath(c.Out, sh), report: rf, real: real}
			if real {
				if err := prepareRealSweep(cmd.OutOrStdout(), &bf, c); err != nil {
					return err
				}
				o.args = append(o.args, backendWorkerArgs(cmd.Flags())...)
			}
			if f.scenario != "" {
				o.scenario = sc.Name
			}
			return sweepWith(cmd.OutOrStdout(), cmd.ErrOrStderr(), o)
		},
	}
	f.swarmDefault = true
	f.register(cmd, false, false)
	bf.register(cmd)
	cmd.Flags().StringVar(&seeds, "seeds", "1-100", "seeds to run: 1-1000, 7, or a comma list")
	cmd.Flags().IntVar(&parallel, "parallel", runtime.NumCPU(), "worker processes, each running one seed at a time, on a real backend each with its own cluster (default: one per CPU)")
	cmd.Flags().IntVar(&fullArtifacts, "full-artifacts", 5, "failing seeds (the first, in seed order) that get full artifacts; the rest get summaries (0: summaries only)")
	cmd.Flags().BoolVar(&quiet, "quiet", false, "no progress bar or progress lines")
	cmd.Flags().StringVar(&shardFlag, "shard", "", "run shard I of N (I/N, 0 <= I < N): seeds at positions I, I+N, ... of --seeds (default: JOB_COMPLETION_INDEX/JOB_COMPLETIONS if set, else all)")
	cmd.Flags().DurationVar(&budget, "for", 0, "wall-clock budget: start seeds in order until it is spent, then finish the running ones (0: run every seed)")
	rf.register(cmd)
	return cmd
}

// workerArgs passes every run flag of the sweep (names, as registered) on to
// its workers, with its effective value, so a new run flag cannot be dropped.
// With --scenario only the flags given explicitly are passed: the others
// must leave the file's fields alone.
func workerArgs(fs *pflag.FlagSet, names []string) []string {
	args := []string{"sweep-worker"}
	fromFile := fs.Lookup("scenario") != nil && fs.Lookup("scenario").Value.String() != ""
	for _, n := range names {
		if fromFile && !fs.Changed(n) {
			continue
		}
		args = append(args, "--"+n+"="+fs.Lookup(n).Value.String())
	}
	return args
}

// Worker modes: a seed line may end in one of these words.
const (
	modeSummary = "summary" // a failing seed leaves its summary only
	modeFull    = "full"    // a failing seed leaves its full artifacts
)

// sweepOpts are what a sweep runs and where its results go.
type sweepOpts struct {
	args          []string // the worker's command line
	seeds         []uint64 // this shard's seeds
	parallel      int
	fullArtifacts int
	quiet         bool
	shard         shard
	budget        time.Duration // wall-clock budget (0: none)
	results       string        // results file ("" : none)
	scenario      string        // the scenario's name, if the sweep runs a scenario file
	report        reportFlags
	// real is set for a sweep on a real backend: its workers write every
	// failing seed's full artifacts at once (a rerun would not replay it).
	real bool
}

func sweep(stdout, stderr io.Writer, args []string, seeds []uint64, parallel, fullArtifacts int, quiet bool) error {
	return sweepWith(stdout, stderr, sweepOpts{args: args, seeds: seeds, parallel: parallel, fullArtifacts: fullArtifacts, quiet: quiet})
}

func sweepWith(stdout, stderr io.Writer, o sweepOpts) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	start := time.Now()
	var deadline time.Time
	if o.budget > 0 {
		deadline = start.Add(o.budget)
	}
	progress := progressNone
	switch {
	case o.quiet:
	case isTerminal(stderr):
		progress = progressBar
	default:
		progress = progressLines
	}
	all := runSeeds(exe, o.args, o.seeds, o.parallel, modeSummary, progress, deadline, stderr)
	if o.real {
		for i := range all {
			all[i].Full = all[i].Dir != ""
		}
	} else if full := fullArtifactSeeds(all, o.fullArtifacts); len(full) > 0 {
		again := runSeeds(exe, o.args, full, min(o.parallel, len(full)), modeFull, progressNone, time.Time{}, stderr)
		for _, r := range again {
			i, _ := slices.BinarySearchFunc(all, r.Seed, func(a sweepResult, s uint64) int { return cmp.Compare(a.Seed, s) })
			all[i].Full = r.Verdict == all[i].Verdict
		}
	}
	elapsed := time.Since(start)
	if sh := o.shard.String(); sh != "" {
		fmt.Fprintf(stdout, "shard %s: %d seeds of the list (round-robin)\n", sh, len(o.seeds))
	}
	if o.budget > 0 {
		fmt.Fprintf(stdout, "time box --for %s: ran %d of %d seeds\n", o.budget, len(all), len(o.seeds))
	}
	res := report.Results{Command: "sweep", Shard: o.shard.String(), Planned: len(o.seeds), ElapsedSec: elapsed.Seconds()}
	for _, r := range all {
		res.Cases = append(res.Cases, seedCase("sweep", o.scenario, r))
	}
	if o.results != "" {
		if err := report.WriteFile(o.results, func(w io.Writer) error { return report.WriteJSON(w, res) }); err != nil {
			return err
		}
	}
	if err := o.report.write(res); err != nil {
		return err
	}
	return summarize(stdout, all, elapsed, o.parallel)
}

// How a sweep shows its progress.
const (
	progressNone  = iota
	progressBar   // a progress bar, on a terminal
	progressLines // plain lines, for a log
)

// fullArtifactSeeds picks the seeds that get full artifacts: the first n
// failing seeds that left a summary, in seed order (all is sorted). A rerun is
// exact, so the choice does not depend on the workers' timing.
func fullArtifactSeeds(all []sweepResult, n int) []uint64 {
	var full []uint64
	for _, r := range all {
		if len(full) < n && r.Verdict != scenarios.VerdictOK && r.Verdict != verdictWorkerError && r.Dir != "" {
			full = append(full, r.Seed)
		}
	}
	return full
}

// runSeeds runs seeds on parallel worker processes in mode and returns their
// results in seed order.
// With a deadline, no seed starts after it.
func runSeeds(exe string, args []string, seeds []uint64, parallel int, mode string, progress int, deadline time.Time, stderr io.Writer) []sweepResult {
	var bar *progressbar.ProgressBar
	var lines *progressLog
	if progress == progressLines {
		lines = newProgressLog(stderr, len(seeds), 10*time.Second)
	}
	if progress == progressBar {
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
			runWorker(exe, args, mode, work, results)
		}()
	}
	go func() {
		for i, s := range seeds {
			// The first seed always runs: a time box always has a result.
			if i > 0 && !deadline.IsZero() && !time.Now().Before(deadline) {
				break
			}
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
		if lines != nil {
			lines.add(r.Verdict)
		}
	}
	if bar != nil {
		_ = bar.Finish()
	}
	slices.SortFunc(all, func(a, b sweepResult) int { return cmp.Compare(a.Seed, b.Seed) })
	return all
}

// runWorker feeds seeds to one worker process and relays its results. If the
// worker dies, the seed it was running is reported as a failure and a new worker
// takes over.
func runWorker(exe string, args []string, mode string, work <-chan uint64, results chan<- sweepResult) {
	var cmd *exec.Cmd
	var in io.WriteCloser
	var out *bufio.Scanner
	startProc := func() error {
		cmd = exec.Command(exe, args...)
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
		_, err := fmt.Fprintf(in, "%d %s\n", seed, mode)
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
	var bf backendFlags
	cmd := &cobra.Command{
		Use:    "sweep-worker",
		Short:  "Internal: run seeds read from stdin, one JSON result per line on stdout",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in := bufio.NewScanner(os.Stdin)
			enc := json.NewEncoder(cmd.OutOrStdout())
			for in.Scan() {
				word, mode, _ := strings.Cut(strings.TrimSpace(in.Text()), " ")
				seed, err := strconv.ParseUint(word, 10, 64)
				if err != nil || (mode != modeSummary && mode != modeFull) {
					return fmt.Errorf("sweep-worker: bad seed line %q", in.Text())
				}
				restore := f.pinProfile(seed)
				c, _, err := f.effective(cmd.Flags(), seed, nil)
				restore()
				if err != nil {
					return err
				}
				c.SummaryOnly = mode == modeSummary
				var r sweepResult
				var res *scenarios.Result
				if bf.backend != "" && bf.backend != "sim" {
					r, res, err = runRealSeed(cmd.Context(), cmd.Flags(), bf, &f, c)
				} else {
					r = sweepResult{Seed: seed, Repro: scenarios.Repro(c)}
					res, err = scenarios.RunSim(c)
				}
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
	f.register(cmd, false, false)
	bf.register(cmd)
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
		fmt.Fprintf(w, "seed %d: %s: %s\n  reproduce: %s\n", r.Seed, r.Verdict, strings.TrimSpace(r.Reason+" "+r.WorkerErr), r.Repro)
		switch {
		case r.Dir != "" && r.Full:
			fmt.Fprintf(w, "  artifacts: %s\n", r.Dir)
		case r.Dir != "":
			fmt.Fprintf(w, "  summary: %s (full artifacts: rerun with the line above)\n", r.Dir)
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
