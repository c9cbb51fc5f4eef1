package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/havoclab/havoc/chaos"
	"github.com/havoclab/havoc/cluster"
	"github.com/havoclab/havoc/scenarios"
)

// newDrillCmd is `harness drill NAME`: a named backup and recovery drill in the
// simulator (scenarios.RunDrill) or, with --backend process, on OS processes of
// havoc or etcd (scenarios.RunRealDrill).
func newDrillCmd() *cobra.Command {
	var c scenarios.DrillConfig
	var faults string
	var asJSON bool
	var rf realDrillFlags
	cmd := &cobra.Command{
		Use:   "drill NAME",
		Short: "Run a backup/recovery drill in the simulator or on real processes: " + strings.Join(scenarios.DrillNames, ", "),
		Long: `Run a named backup and recovery drill. In the simulator (default) the drill is
deterministic per seed and its times are virtual. With --backend process the members are
OS processes on 127.0.0.1 (this binary's serve, or etcd with --target etcd --etcd-bin PATH);
snapshots are taken over gRPC, restored with havoc's restore (havoc) or etcdutl (etcd,
--etcdutl-bin, default: etcdutl next to --etcd-bin or on PATH), and times are wall-clock.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			kinds, err := chaos.ParseKinds(faults)
			if err != nil {
				return err
			}
			c.Faults = kinds
			if c.Seed == 0 {
				c.Seed = freshSeed()
			}
			var r *scenarios.DrillReport
			if rf.backend == "sim" {
				r, err = scenarios.RunDrill(args[0], c)
			} else {
				r, err = rf.run(cmd.Context(), args[0], c)
			}
			if err != nil {
				return err
			}
			if asJSON {
				b, _ := json.MarshalIndent(r, "", "  ")
				fmt.Fprintln(cmd.OutOrStdout(), string(b))
			} else {
				fmt.Fprintln(cmd.OutOrStdout(), r)
			}
			if !r.Passed() {
				return &exitError{code: 1}
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
	fl.StringVar(&rf.backend, "backend", "sim", "where the members run: sim (deterministic simulator) or process (OS processes on 127.0.0.1, wall clock)")
	fl.StringVar(&rf.target, "target", "havoc", "store the real members run: havoc (this binary's serve) or etcd (--etcd-bin)")
	fl.StringVar(&rf.etcdBin, "etcd-bin", "", "etcd binary for --target etcd (default: etcd on PATH)")
	fl.StringVar(&rf.etcdutlBin, "etcdutl-bin", "", "etcdutl binary restoring etcd (default: etcdutl next to --etcd-bin, else on PATH)")
	fl.StringVar(&rf.runDir, "run-dir", "", "where real members keep data dirs, logs and snapshots (default: a temporary directory, removed afterwards)")
	return cmd
}

// realDrillFlags choose the real backend of `harness drill`.
type realDrillFlags struct {
	backend, target, etcdBin, etcdutlBin, runDir string
}

// run runs the drill on process clusters. Ctrl-C (or SIGTERM) cancels it; the
// clusters are closed on every path.
func (f *realDrillFlags) run(ctx context.Context, name string, c scenarios.DrillConfig) (*scenarios.DrillReport, error) {
	if f.backend != "process" {
		return nil, fmt.Errorf("unknown --backend %q for a drill (want sim or process)", f.backend)
	}
	rc := scenarios.RealDrillConfig{DrillConfig: c, Target: cluster.Target(f.target), Etcdutl: f.etcdutlBin, Dir: f.runDir}
	switch rc.Target {
	case cluster.TargetHavoc:
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		rc.Binary = exe
	case cluster.TargetEtcd:
		rc.Binary = f.etcdBin
		if rc.Binary == "" {
			p, err := exec.LookPath("etcd")
			if err != nil {
				return nil, errors.New("--target etcd needs --etcd-bin (build one: go build -o /tmp/etcd go.etcd.io/etcd/server/v3)")
			}
			rc.Binary = p
		}
	default:
		return nil, fmt.Errorf("unknown --target %q (want havoc or etcd)", f.target)
	}
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	return scenarios.RunRealDrill(ctx, name, rc)
}
