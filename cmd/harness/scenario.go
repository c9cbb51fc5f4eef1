package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/havoclab/havoc/chaos"
	"github.com/havoclab/havoc/scenarios"
	"github.com/havoclab/havoc/scenarios/drill"
	"github.com/havoclab/havoc/scenarios/library"
	"github.com/havoclab/havoc/scenarios/scenario"
)

// flagsScenario names the effective scenario of a run described by flags alone.
const flagsScenario = "run"

// loadScenario reads --scenario: a library scenario's name, or a file.
func loadScenario(arg string) (*scenario.Scenario, error) {
	if e, ok, err := library.Get(arg); err != nil {
		return nil, err
	} else if ok {
		return e.Scenario, nil
	}
	if _, err := os.Stat(arg); err != nil {
		return nil, fmt.Errorf("--scenario %s: neither a file nor a library scenario (harness scenarios lists them): %w", arg, err)
	}
	return scenario.Load(arg)
}

// effective is the run the command line describes, and its effective scenario
// (every field at its effective value, as scenario.yaml stores it). Without
// --scenario that is the flags alone; with it, the file, with every flag
// given explicitly overriding its field (--faults replaces an explicit
// schedule with a generator). seed, when not zero, is the seed (a sweep's);
// else --seed if given, else the file's, else a fresh one. bf, when not nil,
// takes the file's backend and target unless their flags were given.
func (f *runFlags) effective(fs *pflag.FlagSet, seed uint64, bf *backendFlags) (scenarios.Config, *scenario.Scenario, error) {
	// The flags' own checks (zero counts and the like) hold either way.
	if _, err := f.config(1); err != nil {
		return scenarios.Config{}, nil, err
	}
	src := &scenario.Scenario{Name: flagsScenario, Description: "harness run with flags"}
	var c scenarios.Config
	if f.scenario == "" {
		if seed == 0 {
			seed = f.seed
		}
		if seed == 0 {
			seed = freshSeed()
		}
		var err error
		if c, err = f.config(seed); err != nil {
			return scenarios.Config{}, nil, err
		}
		if f.swarm {
			if c, err = scenarios.Swarm(c); err != nil {
				return scenarios.Config{}, nil, err
			}
			src.Description = "harness run --swarm"
		}
	} else {
		var err error
		if src, err = loadScenario(f.scenario); err != nil {
			return scenarios.Config{}, nil, err
		}
		if err := f.override(fs, src); err != nil {
			return scenarios.Config{}, nil, err
		}
		switch {
		case seed != 0:
		case fs.Changed("seed") && f.seed != 0:
			seed = f.seed
		case src.Seed != 0:
			seed = src.Seed
		default:
			seed = freshSeed()
		}
		src.Seed = seed
		if c, err = src.Config(); err != nil {
			return scenarios.Config{}, nil, err
		}
		c.Out, c.Keep = f.out, f.keep
	}
	if bf != nil {
		if !fs.Changed("backend") && src.Backend != "" {
			bf.backend = src.Backend
		}
		if !fs.Changed("target") && src.Target != "" {
			bf.target = src.Target
		}
	}
	eff, err := scenario.FromConfig(src.Name, c)
	if err != nil {
		return scenarios.Config{}, nil, err
	}
	eff.Description, eff.Drill, eff.Phases.After, eff.Expect = src.Description, src.Drill, src.Phases.After, src.ExpectedVerdict()
	eff.Backend, eff.Target = src.Backend, src.Target
	if bf != nil {
		// The backend the run came from; a simulated run has no target of
		// its own (--target is for real members), so it keeps the file's.
		eff.Backend = bf.backend
		if bf.backend != "sim" {
			eff.Target = bf.target
		}
	}
	if c.Scenario, err = eff.Encode(); err != nil {
		return scenarios.Config{}, nil, err
	}
	return c, eff, nil
}

// override sets the fields of s whose flags were given explicitly.
func (f *runFlags) override(fs *pflag.FlagSet, s *scenario.Scenario) error {
	if fs.Changed("nodes") {
		s.Cluster.Members = f.nodes
	}
	if fs.Changed("clients") {
		s.Workload.Clients = f.clients
	}
	if fs.Changed("rate") {
		s.Workload.Rate = f.rate
	}
	if fs.Changed("profile") {
		s.Workload.Profile, s.Workload.Mix = f.profile, nil // the profile's own mix
	}
	if fs.Changed("duration") {
		s.Phases.Safety = scenario.Duration(f.duration)
	}
	if fs.Changed("faults") {
		kinds, err := chaos.ParseKinds(f.faults)
		if err != nil {
			return err
		}
		g := &scenario.Generator{Kinds: []string{}}
		if s.Faults.Generator != nil {
			g.Warmup, g.MaxFault = s.Faults.Generator.Warmup, s.Faults.Generator.MaxFault
		}
		for _, k := range kinds {
			g.Kinds = append(g.Kinds, string(k))
		}
		s.Faults = scenario.Faults{Generator: g}
	}
	return s.Validate()
}

// memberArgs are the member flags (etcd's names, which havoc's serve shares)
// that give real members the cluster settings of c.
func memberArgs(c scenarios.Config) []string {
	return []string{
		"--snapshot-count", strconv.FormatUint(c.SnapshotCount, 10),
		"--heartbeat-interval", strconv.FormatInt(c.TickInterval.Milliseconds(), 10),
		"--election-timeout", strconv.FormatInt((time.Duration(c.ElectionTicks) * c.TickInterval).Milliseconds(), 10),
		"--quota-backend-bytes", strconv.FormatInt(c.QuotaBackendBytes, 10),
	}
}

// runDrillScenario runs the drill a scenario names, in the simulator or on
// the real backend of bf.
func runDrillScenario(ctx context.Context, w io.Writer, s *scenario.Scenario, bf *backendFlags) error {
	dc, err := s.DrillConfig()
	if err != nil {
		return usageError(err)
	}
	var r *drill.Report
	if bf.backend == "sim" {
		r, err = drill.Run(context.Background(), s.Drill, dc, drill.Backend{})
	} else {
		rf := realDrillFlags{backend: bf.backend, target: bf.target, etcdBin: bf.etcdBin, runDir: bf.runDir, docker: bf.docker}
		r, err = rf.run(ctx, s.Drill, dc)
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(w, r)
	if r.Verdict != s.ExpectedVerdict() {
		fmt.Fprintf(w, "expected verdict %s, got %s\n", s.ExpectedVerdict(), r.Verdict)
	}
	if !r.Passed() {
		return &exitError{code: exitViolation}
	}
	return nil
}

// newScenariosCmd is `harness scenarios`: the scenario library.
func newScenariosCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "scenarios",
		Short: "List the scenario library: name, the backends that can run it, what it exercises",
		Long: `List the scenarios shipped with the harness (scenarios/library). Run one by name with
harness run --scenario NAME [--seed N] [--backend process]; print one as a file to copy
and edit with harness scenarios NAME.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			w := cmd.OutOrStdout()
			if len(args) == 1 {
				e, ok, err := library.Get(args[0])
				if err != nil {
					return err
				}
				if !ok {
					return usageError(fmt.Errorf("no library scenario %q (harness scenarios lists them)", args[0]))
				}
				_, err = w.Write(e.File)
				return err
			}
			all, err := library.All()
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tBACKENDS\tEXERCISES")
			for _, e := range all {
				s := e.Scenario
				fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Name, strings.Join(s.Backends(), ","), firstSentence(s.Description))
			}
			for _, p := range library.Pending {
				fmt.Fprintf(tw, "%s\t-\t%s: %s\n", p.Name, p.Needs, p.Description)
			}
			return tw.Flush()
		},
	}
}

// firstSentence is a description's first sentence, its one-line summary.
func firstSentence(s string) string {
	if i := strings.Index(s, ". "); i > 0 {
		return s[:i+1]
	}
	return s
}

// faultsOf describes a scenario's faults as the run's first line does.
func faultsOf(s *scenario.Scenario) string {
	switch {
	case len(s.Faults.Schedule) > 0:
		return fmt.Sprintf("%d scheduled", len(s.Faults.Schedule))
	case s.Faults.Generator == nil || len(s.Faults.Generator.Kinds) == 0:
		return "none"
	}
	return strings.Join(s.Faults.Generator.Kinds, ",")
}

// errDrillSweep refuses a sweep over a drill scenario.
var errDrillSweep = errors.New("--scenario: a drill scenario runs with harness run, not sweep")
