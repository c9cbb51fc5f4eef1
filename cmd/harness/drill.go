package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/havoclab/havoc/chaos"
	"github.com/havoclab/havoc/cluster"
	"github.com/havoclab/havoc/scenarios/drill"
	"github.com/havoclab/havoc/scenarios/report"
)

// newDrillCmd is `harness drill NAME`: a named backup and recovery drill in the
// simulator (drill.Run) or, with --backend process or docker, on OS
// processes or containers of havoc or etcd (drill.Run with a real backend).
func newDrillCmd() *cobra.Command {
	var c drill.Config
	var faults string
	var asJSON bool
	var rf realDrillFlags
	var rep reportFlags
	cmd := &cobra.Command{
		Use:   "drill NAME",
		Short: "Run a backup/recovery drill in the simulator, on real processes or in containers: " + strings.Join(drill.Names, ", "),
		Long: `Run a named backup and recovery drill. In the simulator (default) the drill is
deterministic per seed and its times are virtual. With --backend process the members are
OS processes on 127.0.0.1 (this binary's serve, or etcd with --target etcd --etcd-bin PATH);
snapshots are taken over gRPC, restored with havoc's restore (havoc) or etcdutl (etcd,
--etcdutl-bin, default: etcdutl next to --etcd-bin or on PATH), and times are wall-clock.
With --backend docker every member runs in its own container (see scripts/start-docker.sh
for an engine): the image holds a static binary built from this repository (havoc, so run
from the repository) or --etcd-bin (a static Linux etcd; default: go.mod's pinned etcd,
built); restores still run on the host (havoc's restore or etcdutl) and are copied into
the members' volumes before they start.

` + drillList() + `
Without NAME, list the drills.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				fmt.Fprint(cmd.OutOrStdout(), drillList())
				return nil
			}
			kinds, err := chaos.ParseKinds(faults)
			if err != nil {
				return usageError(err)
			}
			if err := drillFlagsValid(c); err != nil {
				return usageError(err)
			}
			if !slices.Contains(drill.Names, args[0]) {
				return usageError(fmt.Errorf("unknown drill %q (want %s)", args[0], strings.Join(drill.Names, ", ")))
			}
			if err := rf.validate(); err != nil {
				return usageError(err)
			}
			c.Faults = kinds
			if c.Seed == 0 {
				c.Seed = freshSeed()
			}
			var r *drill.Report
			started := time.Now()
			if rf.backend == "sim" {
				r, err = drill.Run(context.Background(), args[0], c, drill.Backend{})
			} else {
				r, err = rf.run(cmd.Context(), args[0], c)
			}
			if err != nil {
				return err
			}
			if err := rep.write(drillResults(r, drillRepro(cmd.Flags(), args[0], c.Seed), time.Since(started))); err != nil {
				return err
			}
			if asJSON {
				b, _ := json.MarshalIndent(r, "", "  ")
				fmt.Fprintln(cmd.OutOrStdout(), string(b))
			} else {
				fmt.Fprintln(cmd.OutOrStdout(), r)
			}
			if !r.Passed() {
				return &exitError{code: exitViolation}
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.Uint64Var(&c.Seed, "seed", 0, "seed of the drill (0 = draw one)")
	fl.IntVar(&c.Members, "nodes", 3, "cluster members")
	fl.DurationVar(&c.Duration, "duration", 10*time.Second, "load phase before (and around) the save (virtual in the simulator)")
	fl.DurationVar(&c.After, "after", 5*time.Second, "time the restored cluster serves the workload (virtual in the simulator)")
	fl.StringVar(&faults, "faults", "none", "fault kinds during the save-restore load phase: all, none, or a comma list")
	fl.IntVar(&c.Workload.Clients, "clients", 16, "concurrent client sessions")
	fl.Float64Var(&c.Workload.Rate, "rate", 1000, "offered load, operations per second (virtual in the simulator)")
	fl.BoolVar(&asJSON, "json", false, "print the report as JSON")
	fl.StringVar(&rf.backend, "backend", "sim", "where the members run: sim (deterministic simulator), process (OS processes on 127.0.0.1, wall clock) or docker (containers, wall clock)")
	fl.StringVar(&rf.target, "target", "havoc", "store the real members run: havoc (this binary's serve) or etcd (--etcd-bin)")
	fl.StringVar(&rf.etcdBin, "etcd-bin", "", "etcd binary for --target etcd (default: etcd on PATH)")
	fl.StringVar(&rf.etcdVersion, "etcd-version", "", etcdVersionUsage)
	fl.StringVar(&rf.etcdutlBin, "etcdutl-bin", "", "etcdutl binary restoring etcd (default: etcdutl next to --etcd-bin, else on PATH)")
	fl.StringVar(&rf.runDir, "run-dir", "", "where real members keep data dirs, logs and snapshots (default: a temporary directory, removed afterwards)")
	registerLazyFS(fl, &rf.lazyfs)
	rf.docker.register(fl)
	fl.StringVar(&rep.junit, "junit", "", "write a JUnit XML report (one test case: the drill) to this file")
	return cmd
}

// drillRepro is the command line that reruns a drill: its seed and every
// flag given, but those that only say where output goes.
func drillRepro(fs *pflag.FlagSet, name string, seed uint64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "go run ./cmd/harness drill %s --seed %d", name, seed)
	fs.Visit(func(f *pflag.Flag) {
		switch f.Name {
		case "seed", "json", "junit", "run-dir":
		case "lazyfs": // a bool: `--lazyfs true` would be an argument
			fmt.Fprintf(&b, " --%s=%s", f.Name, f.Value.String())
		default:
			fmt.Fprintf(&b, " --%s %s", f.Name, f.Value.String())
		}
	})
	return b.String()
}

// drillResults are a drill's results, for --junit.
func drillResults(r *drill.Report, repro string, wall time.Duration) report.Results {
	c := report.Case{Suite: "drill", Name: r.Name, Seed: r.Seed, Verdict: r.Verdict, Status: status(r.Verdict),
		Reason: r.Reason, Repro: repro, WallSec: wall.Seconds()}
	return report.Results{Command: "drill", Planned: 1, ElapsedSec: wall.Seconds(), Cases: []report.Case{c}}
}

// drillList describes every drill, one paragraph each.
func drillList() string {
	var b strings.Builder
	b.WriteString("Drills:\n")
	for _, name := range drill.Names {
		fmt.Fprintf(&b, "  %s\n", name)
		line := "   "
		for _, w := range strings.Fields(drill.About[name]) {
			if len(line)+1+len(w) > 92 {
				b.WriteString(line + "\n")
				line = "   "
			}
			line += " " + w
		}
		b.WriteString(line + "\n")
	}
	return b.String()
}

// drillFlagsValid refuses zero and negative counts, durations and rates: the
// drill config would read a zero as its default, and a flag never means a
// silent default.
func drillFlagsValid(c drill.Config) error {
	switch {
	case c.Members < 1:
		return fmt.Errorf("--nodes %d: a cluster has 1 to 9 members", c.Members)
	case c.Workload.Clients < 1:
		return fmt.Errorf("--clients %d: at least one client", c.Workload.Clients)
	case c.Duration <= 0:
		return fmt.Errorf("--duration %s: must be positive", c.Duration)
	case c.After <= 0:
		return fmt.Errorf("--after %s: must be positive", c.After)
	case !(c.Workload.Rate > 0):
		return fmt.Errorf("--rate %v: the offered load must be positive", c.Workload.Rate)
	}
	return nil
}

// realDrillFlags choose the real backend of `harness drill`.
type realDrillFlags struct {
	backend, target, etcdBin, etcdutlBin, runDir string
	etcdVersion                                  string // resolved into etcdBin and etcdutlBin by resolveEtcd
	docker                                       dockerFlags
	lazyfs                                       bool
}

// validate refuses a backend or target the harness does not know.
func (f *realDrillFlags) validate() error {
	b := backendFlags{backend: f.backend, target: f.target, docker: f.docker, lazyfs: f.lazyfs}
	return b.validate()
}

// run runs the drill on process or Docker clusters. Ctrl-C (or SIGTERM)
// cancels it; the clusters are closed on every path.
func (f *realDrillFlags) run(ctx context.Context, name string, c drill.Config) (*drill.Report, error) {
	if err := f.resolveEtcd(); err != nil {
		return nil, err
	}
	rc := drill.Backend{Kind: f.backend, Target: cluster.Target(f.target), Etcdutl: f.etcdutlBin, Dir: f.runDir, LazyFS: f.lazyfs}
	var err error
	switch f.backend {
	case drill.BackendProcess:
		err = f.processConfig(&rc)
	case drill.BackendDocker:
		err = f.dockerConfig(&rc, name)
	default:
		err = fmt.Errorf("unknown --backend %q for a drill (want sim, process or docker)", f.backend)
	}
	if err != nil {
		return nil, err
	}
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	return drill.Run(ctx, name, c, rc)
}

// processConfig fills rc for --backend process: this binary serves havoc;
// etcd is --etcd-bin or etcd on PATH.
func (f *realDrillFlags) processConfig(rc *drill.Backend) error {
	switch rc.Target {
	case cluster.TargetHavoc:
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		rc.Binary = exe
	case cluster.TargetEtcd:
		rc.Binary = f.etcdBin
		if rc.Binary == "" {
			p, err := exec.LookPath("etcd")
			if err != nil {
				return errors.New("--target etcd needs --etcd-version vX.Y.Z (built once and cached) or --etcd-bin PATH")
			}
			rc.Binary = p
		}
	default:
		return fmt.Errorf("unknown --target %q (want havoc or etcd)", f.target)
	}
	return nil
}

// dockerConfig fills rc for --backend docker: the image is built from this
// repository (havoc) or from --etcd-bin, else go.mod's pinned etcd; an etcd
// restore needs etcdutl on the host.
func (f *realDrillFlags) dockerConfig(rc *drill.Backend, name string) error {
	mem, err := parseBytes(f.docker.memory)
	if err != nil {
		return err
	}
	rc.Docker = cluster.DockerConfig{CPUs: f.docker.cpus, MemoryBytes: mem, Log: os.Stderr}
	switch rc.Target {
	case cluster.TargetHavoc:
	case cluster.TargetEtcd:
		rc.Binary = f.etcdBin // a static Linux etcd; empty: build go.mod's pinned etcd
		restores := name == drill.SaveRestore || name == drill.DisasterRecovery
		if restores && rc.Etcdutl == "" && f.etcdBin == "" {
			if _, err := exec.LookPath("etcdutl"); err != nil {
				return errors.New("--target etcd restores with etcdutl on the host: pass --etcd-version vX.Y.Z (which brings its etcdutl) or --etcdutl-bin")
			}
		}
	default:
		return fmt.Errorf("unknown --target %q (want havoc or etcd)", f.target)
	}
	return nil
}
