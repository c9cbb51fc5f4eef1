package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/havoclab/havoc/scenarios"
	"github.com/havoclab/havoc/scenarios/scenario"
	"github.com/havoclab/havoc/scenarios/shrink"
)

func newShrinkCmd() *cobra.Command {
	var out string
	var parallel, maxRuns int
	var maxTime, budget time.Duration
	var quiet bool
	cmd := &cobra.Command{
		Use:   "shrink DIR|SCENARIO",
		Short: "Reduce a failing simulated run to a small scenario that fails the same way",
		Long: `Shrink a failing simulated run, given by its artifacts directory (its scenario.yaml)
or a scenario file with a seed, while its run keeps the same class of violation (the
same verdict; for a linearizability failure, on the same kind of operation). The drawn
fault schedule is written out, then faults are dropped (delta debugging over the
schedule), the remaining ones shortened and narrowed, then the workload reduced
(clients, keys, rate, safety phase, operation kinds) and the cluster (members).
Every candidate is a scenario run in the simulator, on --parallel worker processes.
Ctrl-C, --max-runs and --max-time stop it with the smallest scenario found so far;
--budget stops a candidate that spends too much CPU time (it then counts as not failing).
It writes shrunk.yaml and report.txt to --out and prints the line that replays it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if parallel < 1 || maxRuns < 0 || maxTime < 0 || budget < 0 {
				return usageError(fmt.Errorf("--parallel %d, --max-runs %d, --max-time %s, --budget %s: want at least one worker and no negative bound", parallel, maxRuns, maxTime, budget))
			}
			src, err := shrinkSource(args[0])
			if err != nil {
				return usageError(err)
			}
			if out == "" {
				out = "shrunk"
				if st, err := os.Stat(args[0]); err == nil && st.IsDir() {
					out = filepath.Join(args[0], "shrunk")
				}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if maxTime > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeoutCause(ctx, maxTime, fmt.Errorf("--max-time %s reached", maxTime))
				defer cancel()
			}
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			pool := newShrinkPool(exe, parallel)
			defer pool.close()
			return runShrink(ctx, cmd.OutOrStdout(), cmd.ErrOrStderr(), src, pool.run, shrink.Options{Parallel: parallel, MaxRuns: maxRuns, Budget: budget}, out, !quiet)
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "directory for shrunk.yaml and report.txt (default DIR/shrunk, or ./shrunk for a file)")
	cmd.Flags().IntVar(&parallel, "parallel", runtime.NumCPU(), "worker processes: candidates run at once")
	cmd.Flags().IntVar(&maxRuns, "max-runs", 500, "stop after this many candidate runs (0: no bound)")
	cmd.Flags().DurationVar(&maxTime, "max-time", 30*time.Minute, "stop after this long (0: no bound)")
	cmd.Flags().DurationVar(&budget, "budget", 0, fmt.Sprintf("stop a candidate run that has spent this much CPU time; it then does not fail the same way (0: %d times the original's run, at least %s)",
		shrink.DefaultBudgetFactor, shrink.DefaultBudgetMin))
	cmd.Flags().BoolVar(&quiet, "quiet", false, "no progress bar")
	return cmd
}

// shrinkSource reads the scenario to shrink: DIR/scenario.yaml, or a file.
func shrinkSource(arg string) (*scenario.Scenario, error) {
	path := arg
	if st, err := os.Stat(arg); err == nil && st.IsDir() {
		path = filepath.Join(arg, scenarios.ScenarioFile)
	}
	return scenario.Load(path)
}

// runShrink shrinks src with run and writes the result to out.
func runShrink(ctx context.Context, stdout, stderr io.Writer, src *scenario.Scenario, run shrink.Runner, opt shrink.Options, out string, progress bool) error {
	start := time.Now()
	var bar *progressbar.ProgressBar
	if progress {
		max := int64(opt.MaxRuns)
		if max == 0 {
			max = -1
		}
		bar = progressbar.NewOptions64(max, progressbar.OptionSetWriter(stderr), progressbar.OptionSetDescription("shrink"),
			progressbar.OptionShowCount(), progressbar.OptionSetItsString("runs"), progressbar.OptionShowIts(),
			progressbar.OptionThrottle(200*time.Millisecond), progressbar.OptionClearOnFinish(), progressbar.OptionFullWidth())
		opt.Progress = func(p shrink.Progress) {
			bar.Describe(fmt.Sprintf("%-8s faults=%d ops=%d members=%d clients=%d", p.Step, p.Best.Faults, p.Best.Ops, p.Best.Members, p.Best.Clients))
			_ = bar.Set(p.Runs)
		}
	}
	fmt.Fprintf(stdout, "shrinking %s (seed %d): %s\n", src.Name, src.Seed, src.Summary())
	rep, err := shrink.Shrink(ctx, src, run, opt)
	if bar != nil {
		_ = bar.Finish()
	}
	if err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	b, err := rep.Shrunk.Encode()
	if err != nil {
		return err
	}
	path := filepath.Join(out, "shrunk.yaml")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return err
	}
	text := shrinkReport(rep, time.Since(start), opt.Parallel, path)
	if err := os.WriteFile(filepath.Join(out, "report.txt"), []byte(text), 0o644); err != nil {
		return err
	}
	fmt.Fprint(stdout, text)
	return nil
}

// shrinkReport is the before and after of rep, and the line that replays it.
func shrinkReport(rep *shrink.Report, wall time.Duration, parallel int, path string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "class: %s\n", rep.Class)
	fmt.Fprintf(&b, "before: %s\n", rep.Before)
	fmt.Fprintf(&b, "after:  %s\n", rep.After)
	fmt.Fprintf(&b, "operations: %d -> %d (%.1f%%), faults: %d -> %d, members: %d -> %d, safety: %s -> %s\n",
		rep.Before.Ops, rep.After.Ops, 100*rep.Ratio(), rep.Before.Faults, rep.After.Faults, rep.Before.Members, rep.After.Members,
		scenarios.Seconds(rep.Before.Safety), scenarios.Seconds(rep.After.Safety))
	fmt.Fprintf(&b, "shrunk run: %s: %s\n", rep.Outcome.Verdict, rep.Outcome.Reason)
	fmt.Fprintf(&b, "candidate runs: %d in %s on %d workers", rep.Runs, wall.Round(time.Millisecond), parallel)
	if rep.OverBudget > 0 {
		fmt.Fprintf(&b, " (%d stopped at the CPU budget of %s)", rep.OverBudget, rep.Budget.Round(time.Millisecond))
	}
	b.WriteString("\n")
	if rep.Stopped != "" {
		fmt.Fprintf(&b, "stopped early (%s): the scenario is the smallest found so far\n", rep.Stopped)
	}
	fmt.Fprintf(&b, "reproduce: %s\n", scenarios.ScenarioRepro(path))
	return b.String()
}

// shrinkPool is a pool of shrink-worker processes (a simulated world owns
// process-wide state, so each runs one world at a time).
type shrinkPool struct {
	exe  string
	idle chan *shrinkWorker
}

type shrinkWorker struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

func newShrinkPool(exe string, n int) *shrinkPool {
	p := &shrinkPool{exe: exe, idle: make(chan *shrinkWorker, n)}
	for range n {
		p.idle <- nil
	}
	return p
}

func (p *shrinkPool) start() (*shrinkWorker, error) {
	w := &shrinkWorker{cmd: exec.Command(p.exe, "shrink-worker")}
	w.cmd.Stderr = os.Stderr
	// Its own process group: Ctrl-C stops the shrink, which stops the workers.
	w.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var err error
	if w.in, err = w.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	pipe, err := w.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	w.out = bufio.NewScanner(pipe)
	w.out.Buffer(make([]byte, 1<<20), 1<<24)
	return w, w.cmd.Start()
}

func (w *shrinkWorker) stop(kill bool) {
	if kill {
		_ = w.cmd.Process.Kill()
	}
	_ = w.in.Close()
	_ = w.cmd.Wait()
}

// run runs cands on the pool's workers, each with a CPU budget, and returns
// their outcomes in order.
func (p *shrinkPool) run(ctx context.Context, cands []*scenario.Scenario, budget time.Duration) ([]shrink.Outcome, error) {
	outs := make([]shrink.Outcome, len(cands))
	var wg sync.WaitGroup
	for i, c := range cands {
		var w *shrinkWorker
		select {
		case w = <-p.idle:
		case <-ctx.Done():
			wg.Wait()
			return outs, ctx.Err()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i], w = p.runOne(ctx, w, c, budget)
			p.idle <- w
		}()
	}
	wg.Wait()
	return outs, ctx.Err()
}

// runOne runs c on w (started if nil) and returns the worker to reuse (nil
// if it died or was stopped: a worker that stopped a run at its budget exits).
func (p *shrinkPool) runOne(ctx context.Context, w *shrinkWorker, c *scenario.Scenario, budget time.Duration) (shrink.Outcome, *shrinkWorker) {
	b, err := c.Encode()
	if err != nil {
		return shrink.Outcome{Err: err.Error()}, w
	}
	if w == nil {
		if w, err = p.start(); err != nil {
			return shrink.Outcome{Err: err.Error()}, nil
		}
	}
	line, _ := json.Marshal(shrinkJob{Scenario: string(b), Budget: budget})
	done := make(chan struct{})
	var o shrink.Outcome
	go func() {
		defer close(done)
		if _, err = fmt.Fprintf(w.in, "%s\n", line); err != nil {
			return
		}
		if !w.out.Scan() {
			err = fmt.Errorf("shrink worker exited: %v", w.out.Err())
			return
		}
		err = json.Unmarshal(w.out.Bytes(), &o)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		w.stop(true)
		<-done
		return shrink.Outcome{}, nil
	}
	if err != nil {
		w.stop(true)
		return shrink.Outcome{Err: err.Error()}, nil
	}
	if o.OverBudget {
		w.stop(true)
		return o, nil
	}
	return o, w
}

func (p *shrinkPool) close() {
	for range cap(p.idle) {
		if w := <-p.idle; w != nil {
			w.stop(false)
		}
	}
}

// shrinkJob is one line a shrink worker reads: a scenario file and the CPU
// time its run may spend (none when zero).
type shrinkJob struct {
	Scenario string        `json:"scenario"`
	Budget   time.Duration `json:"budget,omitempty"`
}

func newShrinkWorkerCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "shrink-worker",
		Short:  "Internal: run scenarios read from stdin (JSON lines), one outcome per line on stdout",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in := bufio.NewScanner(os.Stdin)
			in.Buffer(make([]byte, 1<<20), 1<<24)
			out := &outcomeWriter{enc: json.NewEncoder(cmd.OutOrStdout())}
			for in.Scan() {
				var job shrinkJob
				if err := json.Unmarshal(in.Bytes(), &job); err != nil {
					return fmt.Errorf("shrink-worker: bad line: %w", err)
				}
				start := cpuTime()
				stop := out.watchBudget(start, job.Budget)
				o := runCandidate(job.Scenario)
				o.CPU = cpuTime() - start
				stop()
				if err := out.write(o); err != nil {
					return err
				}
			}
			return in.Err()
		},
	}
}

// outcomeWriter writes a shrink worker's outcomes, one a line: the run's, or
// the budget watcher's when the run spent its budget (then the worker exits,
// since a simulated run cannot be stopped midway, and the pool starts another).
type outcomeWriter struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func (w *outcomeWriter) write(o shrink.Outcome) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.enc.Encode(o)
}

// budgetPoll is how often a shrink worker looks at the CPU time of its run.
const budgetPoll = 50 * time.Millisecond

// watchBudget stops the process, after writing an OverBudget outcome, once it
// has spent budget of CPU time since start (never when budget is zero). The
// returned func ends the watch.
func (w *outcomeWriter) watchBudget(start, budget time.Duration) (stop func()) {
	if budget <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(budgetPoll)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			if spent := cpuTime() - start; spent >= budget {
				w.mu.Lock()
				_ = w.enc.Encode(shrink.Outcome{OverBudget: true, CPU: spent,
					Err: fmt.Sprintf("stopped at the CPU budget of %s", budget)})
				os.Exit(0) // holding mu: the run's own outcome is never written
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// cpuTime is the CPU time (user and system) this process has spent.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// runCandidate runs one scenario file in the simulator, without artifacts.
func runCandidate(text string) shrink.Outcome {
	s, err := scenario.Decode(strings.NewReader(text))
	if err != nil {
		return shrink.Outcome{Err: err.Error()}
	}
	c, err := s.Config()
	if err != nil {
		return shrink.Outcome{Err: err.Error()}
	}
	if c.Seed == 0 {
		return shrink.Outcome{Err: errors.New("no seed").Error()}
	}
	res, err := scenarios.RunSim(c)
	if err != nil {
		return shrink.Outcome{Err: err.Error()}
	}
	return shrink.Outcome{Verdict: res.Verdict, Reason: res.Reason, Ops: res.Operations}
}
