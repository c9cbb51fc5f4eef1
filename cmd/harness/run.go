package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/havoclab/havoc/chaos"
	"github.com/havoclab/havoc/cluster"
	"github.com/havoclab/havoc/scenarios"
	"github.com/havoclab/havoc/scenarios/report"
)

// runFlags are the flags shared by run, sweep and the sweep worker.
type runFlags struct {
	seed     uint64
	nodes    int
	clients  int
	duration time.Duration
	faults   string
	out      string
	rate     float64
	profile  string
	keep     bool
	scenario string
	swarm    bool
	// swarmDefault is --swarm's default (set before register).
	swarmDefault bool
	// names are the flags register added, in order (the sweep passes them all
	// on to its workers).
	names []string
}

func (f *runFlags) register(cmd *cobra.Command, withSeed, withKeep bool) {
	fl := cmd.Flags()
	before := map[string]bool{}
	fl.VisitAll(func(fl *pflag.Flag) { before[fl.Name] = true })
	if withSeed {
		fl.Uint64Var(&f.seed, "seed", 0, "seed of the run (0 = draw a fresh one and print it)")
	}
	fl.IntVar(&f.nodes, "nodes", 3, "cluster members (1 to 9)")
	fl.IntVar(&f.clients, "clients", 16, "concurrent client sessions (at least 1)")
	fl.DurationVar(&f.duration, "duration", 60*time.Second, "length of the fault (safety) phase, at least 1s (virtual in the simulator)")
	fl.StringVar(&f.faults, "faults", "all", "fault kinds: all, none, or a comma list of "+kindNames())
	fl.StringVar(&f.out, "out", "havoc-runs", "directory for the artifacts of failing runs (empty: write none)")
	fl.Float64Var(&f.rate, "rate", 1000, "offered load, operations per second over all clients (positive; virtual in the simulator)")
	fl.StringVar(&f.profile, "profile", scenarios.ProfileEtcd, "traffic profile: "+strings.Join(scenarios.ProfileNames(), ", "))
	if withKeep {
		fl.BoolVar(&f.keep, "keep", false, "write the artifacts of a passing run too")
	}
	fl.BoolVar(&f.swarm, "swarm", f.swarmDefault, "draw the configuration from the seed (cluster size, timing, snapshots, quota, fault kinds, profile and operation kinds, rate, clients, keys; "+
		"--swarm=false for the fixed configuration of the flags); ignored with --scenario, whose file holds a drawn configuration")
	fl.StringVar(&f.scenario, "scenario", "", "scenario file, or library scenario name (harness scenarios); flags given explicitly override its fields")
	fl.VisitAll(func(fl *pflag.Flag) {
		if !before[fl.Name] {
			f.names = append(f.names, fl.Name)
		}
	})
}

// replayNeutral are the flags of `harness run` that do not change what a
// simulated run does, each with the reason: the reproduce line leaves them
// out. Every other flag of run must reach scenarios.Config, which the
// reproduce line is built from (TestReproCarriesEveryFlag holds it so).
var replayNeutral = map[string]string{
	"out":          "where the artifacts go, not what they hold",
	"keep":         "whether a passing run's artifacts are written, not what they hold",
	"cpuprofile":   "profiles the harness itself",
	"backend":      "the simulator's reproduce line replays on the simulator; a real run prints a rerun line with its backend flags",
	"target":       "real backends only (in the rerun line of a real run)",
	"etcd-bin":     "real backends only (in the rerun line of a real run)",
	"etcd-version": "real backends only (in the rerun line of a real run)",
	"run-dir":      "where real members keep their data dirs",
	"cpus":         "Docker backend only (in the rerun line of a real run)",
	"memory":       "Docker backend only (in the rerun line of a real run)",
	"lazyfs":       "process backend only (in the rerun line of a real run)",
	"tls":          "process backend only (in the rerun line of a real run)",
	"auth":         "process backend only (in the rerun line of a real run)",
	"help":         "prints help",
	"swarm":        "a swarm run's reproduce line is --scenario DIR/scenario.yaml, which holds everything drawn",
	"scenario":     "a scenario run's reproduce line is --scenario DIR/scenario.yaml, which holds the whole run",
	"junit":        "where the results are reported, not what they are",
	"json":         "where the results are reported, not what they are",
}

func kindNames() string {
	s := ""
	for i, k := range chaos.AllKinds {
		if i > 0 {
			s += ","
		}
		s += string(k)
	}
	return s
}

// swarmDrawn are the run flags whose values a swarm run draws instead.
var swarmDrawn = []string{"nodes", "clients", "faults", "rate", "profile"}

// swarmConflict refuses a flag given explicitly that --swarm would replace
// by its draw (a silent override would run something else than asked).
func (f *runFlags) swarmConflict(fs *pflag.FlagSet) error {
	if !f.swarm || f.scenario != "" {
		return nil
	}
	for _, n := range swarmDrawn {
		if fs.Changed(n) {
			return fmt.Errorf("--%s: --swarm draws it from the seed; add --swarm=false to set it", n)
		}
	}
	return nil
}

// config is the scenario the flags describe. Zero and negative counts,
// durations and rates are refused here: scenarios.Config would read a zero
// as its default, and a flag never means a silent default.
func (f *runFlags) config(seed uint64) (scenarios.Config, error) {
	switch {
	case f.nodes < 1:
		return scenarios.Config{}, fmt.Errorf("--nodes %d: a cluster has 1 to 9 members", f.nodes)
	case f.clients < 1:
		return scenarios.Config{}, fmt.Errorf("--clients %d: at least one client", f.clients)
	case f.duration < time.Second:
		return scenarios.Config{}, fmt.Errorf("--duration %s: at least 1s", f.duration)
	case !(f.rate > 0):
		return scenarios.Config{}, fmt.Errorf("--rate %v: the offered load must be positive", f.rate)
	}
	kinds, err := chaos.ParseKinds(f.faults)
	if err != nil {
		return scenarios.Config{}, err
	}
	c := scenarios.Config{
		Seed: seed, Members: f.nodes, Duration: f.duration, Faults: kinds, Out: f.out, Keep: f.keep,
		Workload: scenarios.Workload{Clients: f.clients, Rate: f.rate, Profile: f.profile},
	}
	return c, c.Validate()
}

func freshSeed() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:]) >> 1
}

// backendFlags choose where `harness run` runs the cluster.
type backendFlags struct {
	backend string // sim | process | docker
	target  string // havoc | etcd
	etcdBin string
	// etcdVersion is --etcd-version: a release built (once, then cached) by
	// cluster/etcdbin, resolved into etcdBin by resolveEtcd.
	etcdVersion string
	runDir      string
	docker      dockerFlags
	// tls and auth are --tls and --auth: a secured process cluster.
	tls, auth bool
	// memberArgs are added to every real member's command line (a scenario's
	// cluster settings).
	memberArgs []string
	// lazyfs puts process members' data dirs on cluster/lazyfs.
	lazyfs bool
}

func (b *backendFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&b.backend, "backend", "sim", "where the members run: sim (deterministic simulator), process (OS processes on 127.0.0.1, wall clock) or docker (containers, wall clock)")
	fl.StringVar(&b.target, "target", "havoc", "store the real members run: havoc (this binary's serve) or etcd (--etcd-bin)")
	fl.StringVar(&b.etcdBin, "etcd-bin", "", "etcd binary for --target etcd (default: etcd on PATH)")
	fl.StringVar(&b.etcdVersion, "etcd-version", "", etcdVersionUsage)
	fl.StringVar(&b.runDir, "run-dir", "", "where real members keep data dirs and logs (default: a temporary directory, removed afterwards)")
	registerLazyFS(fl, &b.lazyfs)
	b.docker.register(fl)
	fl.BoolVar(&b.tls, "tls", false, "process backend: TLS with client certificates on every client and peer link, certificates generated into the run dir (tls/)")
	fl.BoolVar(&b.auth, "auth", false, "process backend: enable etcd's auth (root user, and a workload user that may read and write the workload's keys); with --tls clients authenticate by certificate, else by password")
}

// registerLazyFS adds --lazyfs. It is off by default: it needs /dev/fuse and
// root or fusermount3, and costs write throughput.
func registerLazyFS(fl *pflag.FlagSet, v *bool) {
	fl.BoolVar(v, "lazyfs", false, "--backend process: put every member's data dir on a lazy file system (FUSE), so that crash and power-loss lose what the member had not fsynced, torn if asked; needs /dev/fuse and root or fusermount3")
}

// validate refuses a backend or target the harness does not know.
func (b *backendFlags) validate() error {
	switch b.backend {
	case "sim", "process", "docker":
	default:
		return fmt.Errorf("unknown --backend %q (want sim, process or docker)", b.backend)
	}
	switch cluster.Target(b.target) {
	case cluster.TargetHavoc, cluster.TargetEtcd:
	default:
		return fmt.Errorf("unknown --target %q (want havoc or etcd)", b.target)
	}
	if b.lazyfs && b.backend != "process" {
		return fmt.Errorf("--lazyfs needs --backend process (the simulator's disk drops unsynced writes already; docker is not supported), not %s", b.backend)
	}
	if (b.tls || b.auth) && b.backend != "process" {
		return fmt.Errorf("--tls and --auth need --backend process (the %s backend starts plain clusters)", b.backend)
	}
	if b.docker.cpus < 0 {
		return fmt.Errorf("--cpus %v: a CPU limit (0: none)", b.docker.cpus)
	}
	if _, err := parseBytes(b.docker.memory); err != nil {
		return fmt.Errorf("--memory: %w", err)
	}
	return nil
}

// newBackend builds the real backend the flags name.
func (b *backendFlags) newBackend(c scenarios.Config) (cluster.Backend, error) {
	if err := b.resolveEtcd(); err != nil {
		return nil, err
	}
	if b.lazyfs && b.backend != "process" {
		return nil, fmt.Errorf("--lazyfs needs --backend process, not %s", b.backend)
	}
	if b.backend == "docker" {
		return b.newDocker(c)
	}
	if b.backend != "process" {
		return nil, fmt.Errorf("unknown --backend %q (want sim, process or docker)", b.backend)
	}
	pc := cluster.ProcessConfig{Target: cluster.Target(b.target), Members: c.Members, Dir: b.runDir, Seed: c.Seed, ExtraArgs: b.memberArgs, LazyFS: b.lazyfs,
		Security: cluster.Security{TLS: b.tls, Auth: b.auth, Prefixes: c.Workload.KeyPrefixes()}}
	switch pc.Target {
	case cluster.TargetHavoc:
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		pc.Binary = exe
	case cluster.TargetEtcd:
		pc.Binary = b.etcdBin
		if pc.Binary == "" {
			p, err := exec.LookPath("etcd")
			if err != nil {
				return nil, errors.New("--target etcd needs --etcd-version vX.Y.Z (built once and cached) or --etcd-bin PATH")
			}
			pc.Binary = p
		}
	default:
		return nil, fmt.Errorf("unknown --target %q (want havoc or etcd)", b.target)
	}
	return cluster.NewProcess(pc)
}

// runReal runs c on a real backend. Ctrl-C (or SIGTERM) cancels the run, and
// the backend is closed on every path, so no member outlives the harness.
func (b *backendFlags) runReal(ctx context.Context, w io.Writer, c scenarios.Config) (*scenarios.Result, error) {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	be, err := b.newBackend(c)
	if err != nil {
		return nil, err
	}
	fmt.Fprint(w, scenarios.Plan(c).Annotate(chaos.Unsupported(be)))
	defer func() {
		if err := be.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "harness: close backend:", err)
		}
	}()
	started := time.Now()
	if err := be.Start(ctx); err != nil {
		return nil, err
	}
	fmt.Fprintf(w, "%s backend, target %s: %d members up in %s, run dir %s\n", b.backend, b.target, len(be.Members()),
		time.Since(started).Round(time.Millisecond), be.Dir())
	return scenarios.RunReal(ctx, be, c)
}

func newRunCmd() *cobra.Command {
	var f runFlags
	var bf backendFlags
	var rf reportFlags
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run one scenario in the deterministic simulator (or on real processes) and check it",
		Long: `Run a cluster in the deterministic simulator under a fault schedule drawn from the
seed, record every client operation, require the healed cluster to converge, and check
the history for linearizability. The same seed replays the same run byte for byte.

With --backend process the members are OS processes on 127.0.0.1 (havoc's own
"harness serve", or a real etcd with --target etcd --etcd-bin PATH) behind a TCP proxy
on every peer link, and every client session and watcher reaches each member through
a proxy of its own (the client-* faults act there); the run follows the wall clock:
--duration is real time.
Faults a real process cannot suffer (clock skew, duplication, reordering) are skipped
and logged.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.swarmConflict(cmd.Flags()); err != nil {
				return usageError(err)
			}
			c, sc, err := f.effective(cmd.Flags(), 0, &bf)
			if err != nil {
				return usageError(err)
			}
			seed := c.Seed
			if err := bf.validate(); err != nil {
				return usageError(err)
			}
			w := cmd.OutOrStdout()
			faults := f.faults
			if f.scenario != "" {
				fmt.Fprintf(w, "scenario %s: %s\n", sc.Name, sc.Summary())
				if sc.Drill != "" {
					if bf.tls || bf.auth {
						return usageError(fmt.Errorf("--tls and --auth are for workload runs; drill %s starts plain clusters", sc.Drill))
					}
					return runDrillScenario(cmd.Context(), w, sc, &bf)
				}
				if why := sc.SimOnly(); why != "" && bf.backend != "sim" {
					fmt.Fprintf(w, "note: %s; on %s the faults it cannot express are skipped\n", why, bf.backend)
				}
				bf.memberArgs = memberArgs(c)
				faults = faultsOf(sc)
			} else if f.swarm {
				faults = "drawn (below)"
			}
			fmt.Fprintf(w, "seed %d: %d members, %d clients, %s, %s ops/s, faults: %s\n", seed, c.Members, c.Workload.Clients,
				scenarios.Seconds(c.Duration), strconv.FormatFloat(c.Workload.Rate, 'g', -1, 64), faults)
			fmt.Fprintln(w, scenarios.SwarmLine(c))
			var res *scenarios.Result
			if bf.backend == "sim" {
				fmt.Fprint(w, scenarios.Plan(c).String())
				res, err = scenarios.RunSim(c)
			} else {
				res, err = bf.runReal(cmd.Context(), w, c)
			}
			if err != nil {
				return err
			}
			printResult(w, c, res, bf.backend == "sim")
			if f.scenario != "" && bf.backend == "sim" && res.Dir != "" && scenarios.FlagsExpress(c) {
				// Flags express this scenario run: its file replays it too.
				fmt.Fprintf(w, "reproduce: %s\n", scenarios.ScenarioRepro(filepath.Join(res.Dir, scenarios.ScenarioFile)))
			}
			if f.scenario != "" {
				if line := recurrence(sc.ExpectedVerdict(), res.Verdict, bf.backend); line != "" {
					fmt.Fprintln(w, line)
				}
			}
			repro := scenarios.Repro(c)
			if bf.backend != "sim" {
				repro += backendArgs(cmd.Flags())
			}
			if bf.backend != "sim" && !res.Passed() {
				fmt.Fprintf(w, "rerun on %s (same workload and schedule, not the same interleaving): %s\n", bf.backend, repro)
			}
			name := ""
			if f.scenario != "" {
				name = sc.Name
			}
			if err := rf.write(runResults(name, repro, res)); err != nil {
				return err
			}
			if code := verdictExit(res.Verdict); code != exitOK {
				return &exitError{code: code}
			}
			return nil
		},
	}
	f.register(cmd, true, true)
	bf.register(cmd)
	rf.register(cmd)
	return cmd
}

// runResults are the results of one run, for --junit and --json.
func runResults(scenario, repro string, res *scenarios.Result) report.Results {
	r := sweepResult{Seed: res.Seed, Verdict: res.Verdict, Reason: res.Reason, Ops: res.Operations, Unknown: res.Unknown,
		WallSec: res.Wall.Seconds(), CheckSec: res.CheckWall.Seconds(), Dir: res.Dir, Repro: repro}
	return report.Results{Command: "run", Planned: 1, ElapsedSec: r.WallSec, Cases: []report.Case{seedCase("run", scenario, r)}}
}

// backendArgs are the backend flags of a real run, those that differ from their
// defaults (the run dir excepted), for its rerun line.
func backendArgs(fs *pflag.FlagSet) string {
	var b strings.Builder
	for _, name := range []string{"backend", "target", "etcd-bin", "etcd-version", "cpus", "memory", "lazyfs", "tls", "auth"} {
		if fl := fs.Lookup(name); fl != nil && fl.Value.Type() == "bool" {
			if fl.Value.String() == "true" {
				fmt.Fprintf(&b, " --%s", name)
			}
		} else if fl != nil && (name == "backend" || fl.Value.String() != fl.DefValue) {
			fmt.Fprintf(&b, " --%s %s", name, fl.Value.String())
		}
	}
	return b.String()
}

// printResult prints the run's result line; the simulator's counters (virtual
// time, events) only for a simulated run.
func printResult(w io.Writer, c scenarios.Config, r *scenarios.Result, simulated bool) {
	verdict := "PASS"
	if !r.Passed() {
		verdict = "FAIL"
	}
	if cav := r.Caveat(); cav != "" {
		verdict += " (" + cav + ")"
	}
	fmt.Fprintf(w, "%s seed=%d verdict=%s ops=%d ok=%d fail=%d unknown=%d watch-events=%d leases=%d",
		verdict, r.Seed, r.Verdict, r.Operations, r.OK, r.Failed, r.Unknown, len(r.Watch), r.LeasesGranted)
	if simulated {
		fmt.Fprintf(w, " virtual=%s", scenarios.Seconds(r.Virtual.Round(time.Millisecond)))
	}
	fmt.Fprintf(w, " wall=%s check=%s", scenarios.Seconds(r.Wall.Round(time.Millisecond)), scenarios.Seconds(r.CheckWall.Round(time.Millisecond)))
	if simulated {
		fmt.Fprintf(w, " events=%d", r.Events)
	}
	fmt.Fprintln(w)
	if !r.Passed() {
		fmt.Fprintf(w, "reason: %s\n", r.Reason)
	}
	if r.Dir != "" {
		fmt.Fprintf(w, "artifacts: %s\n", r.Dir)
	}
	if (!r.Passed() || r.Dir != "") && simulated {
		fmt.Fprintf(w, "reproduce: %s\n", scenarios.Repro(c))
	}
}

// recurrence says how a scenario run's verdict compares with the one its file
// expects. A file that expects a violation is a failure being reproduced (a
// shrunk or stored failing run, perhaps from another backend): the line says
// whether the violation recurred on this backend. Empty when a scenario that
// expects ok passed.
func recurrence(expect, got, backend string) string {
	switch {
	case expect == scenarios.VerdictOK && got == expect:
		return ""
	case expect == scenarios.VerdictOK:
		return fmt.Sprintf("expected verdict %s, got %s", expect, got)
	case got == expect:
		return fmt.Sprintf("the violation recurred on %s: %s, as the scenario expects", backend, got)
	default:
		return fmt.Sprintf("the violation did not recur on %s: expected %s, got %s", backend, expect, got)
	}
}
