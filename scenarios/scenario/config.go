package scenario

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/havoclab/havoc/chaos"
	"github.com/havoclab/havoc/linearizability"
	"github.com/havoclab/havoc/scenarios"
	"github.com/havoclab/havoc/scenarios/drill"
)

// Config is the run s describes, validated (defaults filled). Out, Keep,
// Trace and Scenario are left for the caller.
func (s *Scenario) Config() (scenarios.Config, error) {
	if err := s.Validate(); err != nil {
		return scenarios.Config{}, err
	}
	w := s.Workload
	c := scenarios.Config{
		Seed: s.Seed, Members: s.Cluster.Members, Duration: time.Duration(s.Phases.Safety),
		LivenessTimeout: time.Duration(s.Phases.LivenessTimeout), SnapshotCount: s.Cluster.SnapshotCount,
		CatchUpEntries: s.Cluster.CatchUpEntries, TickInterval: time.Duration(s.Cluster.Tick), ElectionTicks: s.Cluster.ElectionTicks,
		QuotaBackendBytes: s.Cluster.QuotaBackendBytes, Watchers: s.Checks.Watchers,
		LeaseSafetyUnderSkew: s.Checks.LeaseSafetyUnderSkew, CheckBudget: s.Checks.Budget,
		Workload: scenarios.Workload{Profile: w.Profile, Clients: w.Clients, Rate: w.Rate, Keys: w.Keys, LeaseKeys: w.LeaseKeys,
			Timeout: time.Duration(w.ClientTimeout), LeaseTTL: int64(time.Duration(w.LeaseTTL) / time.Second)},
	}
	if s.Checks.Watch != nil && !*s.Checks.Watch {
		c.Watchers = -1
	}
	for _, m := range w.Mix {
		c.Workload.Mix = append(c.Workload.Mix, scenarios.Weight{Kind: linearizability.Kind(m.Kind), Serializable: m.Serializable,
			Variant: scenarios.Variant(m.Variant), Weight: m.Weight})
	}
	if g := s.Faults.Generator; g != nil {
		c.Faults, c.FaultWarmup, c.FaultMax = generatorKinds(g.Kinds), time.Duration(g.Warmup), time.Duration(g.MaxFault)
	}
	members := c.Members
	if members == 0 {
		members = 3
	}
	if len(s.Faults.Schedule) > 0 {
		c.Schedule = chaos.Schedule{}
	}
	for _, f := range s.Faults.Schedule {
		cf, err := f.fault(members)
		if err != nil {
			return scenarios.Config{}, err
		}
		c.Schedule = append(c.Schedule, cf)
	}
	if err := c.Validate(); err != nil {
		return scenarios.Config{}, fmt.Errorf("%w: %s: %w", ErrInvalid, s.Name, err)
	}
	return c, nil
}

// FromConfig is the scenario of the run c, with every field at its effective
// value (so that the file replays c even if a default changes), named name.
// An empty schedule is written as no faults.
func FromConfig(name string, c scenarios.Config) (*Scenario, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	s := &Scenario{
		Name: name, Seed: c.Seed,
		Cluster: Cluster{Members: c.Members, Tick: Duration(c.TickInterval), ElectionTicks: c.ElectionTicks, HeartbeatTicks: 1,
			SnapshotCount: c.SnapshotCount, CatchUpEntries: c.CatchUpEntries, QuotaBackendBytes: c.QuotaBackendBytes},
		Workload: Workload{Profile: c.Workload.Profile, Clients: c.Workload.Clients, Rate: c.Workload.Rate, Keys: c.Workload.Keys,
			LeaseKeys: c.Workload.LeaseKeys, ClientTimeout: Duration(c.Workload.Timeout),
			LeaseTTL: Duration(time.Duration(c.Workload.LeaseTTL) * time.Second)},
		Phases: Phases{Safety: Duration(c.Duration), LivenessTimeout: Duration(c.LivenessTimeout)},
		Checks: Checks{Linearizability: on(true), Watch: on(c.Watchers > 0), Lease: on(true), Convergence: on(true),
			LeaseSafetyUnderSkew: c.LeaseSafetyUnderSkew, Budget: c.CheckBudget},
		Expect: scenarios.VerdictOK,
	}
	if c.Watchers > 0 {
		s.Checks.Watchers = c.Watchers
	}
	for _, m := range c.Workload.Mix {
		s.Workload.Mix = append(s.Workload.Mix, Weight{Kind: string(m.Kind), Serializable: m.Serializable, Variant: string(m.Variant), Weight: m.Weight})
	}
	switch {
	case len(c.Schedule) > 0:
		for _, f := range c.Schedule {
			s.Faults.Schedule = append(s.Faults.Schedule, faultOf(f))
		}
	default:
		g := &Generator{Kinds: []string{}, Warmup: Duration(c.FaultWarmup), MaxFault: Duration(c.FaultMax)}
		for _, k := range c.Faults {
			g.Kinds = append(g.Kinds, string(k))
		}
		s.Faults.Generator = g
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return s, nil
}

// generatorKinds are the kinds a generator draws from, in order (a kind
// listed twice is drawn twice as often): "all" alone is every kind, "none"
// alone none. The kinds are valid (Validate checked them).
func generatorKinds(names []string) []chaos.Kind {
	switch strings.Join(names, ",") {
	case "", "none":
		return nil
	case "all":
		return slices.Clone(chaos.AllKinds)
	}
	kinds := make([]chaos.Kind, len(names))
	for i, n := range names {
		kinds[i] = chaos.Kind(n)
	}
	return kinds
}

func on(b bool) *bool { return &b }

// faultOf is f in a scenario file.
func faultOf(f chaos.Fault) Fault {
	out := Fault{At: Duration(f.At), Duration: Duration(f.Duration), Kind: string(f.Kind),
		Params: Params{Rate: f.Rate, DriftPPM: f.DriftPPM, Torn: f.Torn, Point: f.Point}}
	if slices.Contains(clockKinds, f.Kind) {
		out.Params.Offset = Duration(f.Latency)
	} else {
		out.Params.Latency = Duration(f.Latency)
	}
	for _, m := range f.Members {
		out.Members = append(out.Members, chaos.MemberName(m))
	}
	return out
}

// DrillConfig is the drill s names, validated.
func (s *Scenario) DrillConfig() (drill.Config, error) {
	c, err := s.Config()
	if err != nil {
		return drill.Config{}, err
	}
	if s.Drill == "" {
		return drill.Config{}, fmt.Errorf("%w: %s names no drill", ErrInvalid, s.Name)
	}
	d := drill.Config{Seed: c.Seed, Members: c.Members, Duration: time.Duration(s.Phases.Safety),
		After: time.Duration(s.Phases.After), Faults: c.Faults, Workload: c.Workload, SnapshotCount: c.SnapshotCount,
		CheckBudget: c.CheckBudget}
	return d, d.Validate()
}
