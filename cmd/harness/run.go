package main

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/havoclab/havoc/chaos"
	"github.com/havoclab/havoc/scenarios"
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
}

func (f *runFlags) register(cmd *cobra.Command, withSeed bool) {
	fl := cmd.Flags()
	if withSeed {
		fl.Uint64Var(&f.seed, "seed", 0, "seed of the run (0 = draw a fresh one and print it)")
	}
	fl.IntVar(&f.nodes, "nodes", 3, "cluster members")
	fl.IntVar(&f.clients, "clients", 16, "concurrent client sessions")
	fl.DurationVar(&f.duration, "duration", 60*time.Second, "virtual length of the fault (safety) phase")
	fl.StringVar(&f.faults, "faults", "all", "fault kinds: all, none, or a comma list of "+kindNames())
	fl.StringVar(&f.out, "out", "havoc-runs", "directory for the artifacts of failing runs")
	fl.Float64Var(&f.rate, "rate", 1000, "offered load, operations per virtual second over all clients")
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

func (f *runFlags) config(seed uint64) (scenarios.Config, error) {
	kinds, err := chaos.ParseKinds(f.faults)
	if err != nil {
		return scenarios.Config{}, err
	}
	c := scenarios.Config{
		Seed: seed, Members: f.nodes, Duration: f.duration, Faults: kinds, Out: f.out,
		Workload: scenarios.Workload{Clients: f.clients, Rate: f.rate},
	}
	return c, c.Validate()
}

func freshSeed() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:]) >> 1
}

func newRunCmd() *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run one scenario in the deterministic simulator and check it",
		Long: `Run a cluster in the deterministic simulator under a fault schedule drawn from the
seed, record every client operation, require the healed cluster to converge, and check
the history for linearizability. The same seed replays the same run byte for byte.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			seed := f.seed
			if seed == 0 {
				seed = freshSeed()
			}
			c, err := f.config(seed)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "seed %d: %d members, %d clients, %s, faults: %s\n", seed, c.Members, c.Workload.Clients, c.Duration, f.faults)
			fmt.Fprint(w, scenarios.Plan(c).String())
			res, err := scenarios.RunSim(c)
			if err != nil {
				return err
			}
			printResult(w, c, res)
			if !res.Passed() {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	f.register(cmd, true)
	return cmd
}

func printResult(w io.Writer, c scenarios.Config, r *scenarios.Result) {
	verdict := "PASS"
	if !r.Passed() {
		verdict = "FAIL"
	}
	fmt.Fprintf(w, "%s seed=%d verdict=%s ops=%d ok=%d fail=%d unknown=%d virtual=%s wall=%s check=%s events=%d\n",
		verdict, r.Seed, r.Verdict, r.Operations, r.OK, r.Failed, r.Unknown, r.Virtual.Round(time.Millisecond),
		r.Wall.Round(time.Millisecond), r.CheckWall.Round(time.Millisecond), r.Events)
	if !r.Passed() {
		fmt.Fprintf(w, "reason: %s\n", r.Reason)
		if r.Dir != "" {
			fmt.Fprintf(w, "artifacts: %s\n", r.Dir)
		}
		fmt.Fprintf(w, "reproduce: %s\n", scenarios.Repro(c))
	}
}
