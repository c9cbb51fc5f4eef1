// Package shrink reduces a failing simulated run to a small scenario that
// still fails the same way, in the manner of delta debugging over the
// scenario's parts: the drawn fault schedule is made explicit, the healed
// phase bounded short (for a safety violation), then faults are dropped
// (ddmin over the schedule), the remaining ones shortened and narrowed, then
// the workload reduced (clients, keys, rate, safety phase, operation kinds,
// watchers), then the cluster (fewer members). Every candidate is a scenario
// file that a Runner runs in the simulator, so every step is deterministic
// and can be replayed; only a candidate stopped at its CPU budget
// (Options.Budget) is judged by the machine's speed (it does not fail).
package shrink

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/havoclab/havoc/scenarios"
	"github.com/havoclab/havoc/scenarios/scenario"
)

// Outcome is what one simulated run of a candidate found.
type Outcome struct {
	Verdict string `json:"verdict"`
	Reason  string `json:"reason,omitempty"`
	// Ops is the number of client operations the run recorded.
	Ops int `json:"ops"`
	// Err is set when the candidate could not run (it does not fail the
	// same way).
	Err string `json:"error,omitempty"`
	// CPU is the CPU time the run took (its worker's, when measured).
	CPU time.Duration `json:"cpu,omitempty"`
	// OverBudget: the run was stopped when it had spent the CPU budget (it
	// does not fail the same way).
	OverBudget bool `json:"over_budget,omitempty"`
}

// Runner runs each candidate once in the simulator and returns its outcomes,
// in order. It may run them in parallel. It stops a run that has spent budget
// of CPU time (none when zero) and reports it OverBudget. On an interrupt it
// returns ctx's error with the outcomes it has (a zero Outcome for a run that
// did not finish).
type Runner func(ctx context.Context, cands []*scenario.Scenario, budget time.Duration) ([]Outcome, error)

// opKind finds the operation kinds a not-linearizable reason names
// ("#812 put by c03 via m2", "#3 get (unknown) by c01"), and not the
// anomaly's own words ("the write #417 has revision 240").
var opKind = regexp.MustCompile(`#\d+ ([a-z][a-z/-]*)(?: \(\w+\))? by `)

// Class is the class of violation an outcome shows: its verdict, and for a
// linearizability failure the kind of the first operation its reason names
// ("not-linearizable/put"). A passing run has class "ok"; one that could not
// run or was stopped at its budget has "".
func Class(o Outcome) string {
	if o.Err != "" || o.OverBudget {
		return ""
	}
	if o.Verdict == scenarios.VerdictIllegal {
		if m := opKind.FindStringSubmatch(o.Reason); m != nil {
			return o.Verdict + "/" + m[1]
		}
	}
	return o.Verdict
}

// Options bound and observe a shrink.
type Options struct {
	// Parallel is how many candidates are run at once (1 when zero).
	Parallel int
	// MaxRuns bounds the candidate runs (none when zero).
	MaxRuns int
	// Progress, when set, is called after every batch of runs.
	Progress func(Progress)
	// Budget bounds the CPU time of one candidate run: a run that spends it
	// is stopped (Outcome.OverBudget) and does not fail the same way. When
	// zero it is DefaultBudgetFactor times the original's run, at least
	// DefaultBudgetMin. Some candidates cost far more per simulated second
	// than the run they came from (dropping faults can leave a mutant's raft
	// leader re-sending megabyte appends to a follower that lost entries it
	// acknowledged, thousands of times a simulated second), so without a
	// bound one candidate holds a worker for many minutes. CPU time, not wall
	// time, so that the judgement does not follow the machine's load.
	Budget time.Duration
}

// DefaultBudgetFactor and DefaultBudgetMin make Options.Budget when it is
// zero: a candidate is never larger than the original (it has fewer faults,
// clients, keys...), but a run without faults serves more operations, a few
// times the original's.
const (
	DefaultBudgetFactor = 10
	DefaultBudgetMin    = 10 * time.Second
)

// Progress is the state of a shrink after a batch of runs.
type Progress struct {
	Step string
	Runs int
	Best Size
}

// Size is what a scenario holds: its faults, members, workload and safety
// phase, and the operations its run recorded.
type Size struct {
	Faults, Ops, Members, Clients, Keys, Kinds int
	Rate                                       float64
	Safety                                     time.Duration
}

// String is s on one line.
func (s Size) String() string {
	return fmt.Sprintf("faults=%d ops=%d members=%d clients=%d keys=%d kinds=%d rate=%g safety=%s",
		s.Faults, s.Ops, s.Members, s.Clients, s.Keys, s.Kinds, s.Rate, scenarios.Seconds(s.Safety))
}

// SizeOf is s's size with the operations of its run.
func SizeOf(s *scenario.Scenario, ops int) Size {
	c, err := s.Config()
	if err != nil {
		return Size{Faults: len(s.Faults.Schedule), Ops: ops}
	}
	kinds := 0
	for _, m := range c.Workload.Mix {
		if m.Weight > 0 {
			kinds++
		}
	}
	return Size{Faults: len(s.Faults.Schedule), Ops: ops, Members: c.Members, Clients: c.Workload.Clients,
		Keys: c.Workload.Keys, Kinds: kinds, Rate: c.Workload.Rate, Safety: c.Duration}
}

// Report is the outcome of a shrink.
type Report struct {
	// Class is the violation kept (Class of the original run).
	Class string
	// Original and Shrunk are the scenarios (Shrunk expects Class's verdict),
	// Before and After their sizes.
	Original, Shrunk *scenario.Scenario
	Before, After    Size
	// Outcome is the shrunk scenario's run.
	Outcome Outcome
	// Runs counts the candidate runs (the original's included); OverBudget
	// those stopped at the CPU budget.
	Runs, OverBudget int
	// Budget is the CPU time each candidate run had (Options.Budget).
	Budget time.Duration
	// Stopped says why the shrink stopped early ("" if it reached a fixpoint).
	Stopped string
}

// Ratio is the shrunk run's operations as a fraction of the original's.
func (r *Report) Ratio() float64 {
	if r.Before.Ops == 0 {
		return 1
	}
	return float64(r.After.Ops) / float64(r.Before.Ops)
}

// errBudget stops a shrink at Options.MaxRuns.
var errBudget = errors.New("shrink: run budget spent")

// Explicit is s with its drawn fault schedule written out (the schedule a run
// of s plays: scenarios.Plan), so that faults can be dropped one by one. A
// scenario with an explicit schedule, or none, is returned as a copy.
func Explicit(s *scenario.Scenario) (*scenario.Scenario, error) {
	if s.Drill != "" {
		return nil, fmt.Errorf("shrink: %s is a drill; only fault runs shrink", s.Name)
	}
	if s.Seed == 0 {
		return nil, fmt.Errorf("shrink: %s has no seed (shrink a run's scenario.yaml)", s.Name)
	}
	c, err := s.Config()
	if err != nil {
		return nil, err
	}
	c.Schedule = scenarios.Plan(c)
	if len(c.Schedule) == 0 {
		c.Schedule, c.Faults = nil, nil
	}
	out, err := scenario.FromConfig(s.Name, c)
	if err != nil {
		return nil, err
	}
	out.Description, out.Backend, out.Target, out.Expect = s.Description, s.Backend, s.Target, s.Expect
	if len(c.Schedule) == 0 {
		out.Faults = scenario.Faults{}
	}
	return out, nil
}

// clone is a deep copy of s.
func clone(s *scenario.Scenario) *scenario.Scenario {
	b, err := s.Encode()
	if err != nil {
		panic(err)
	}
	out, err := scenario.Decode(strings.NewReader(string(b)))
	if err != nil {
		panic(fmt.Sprintf("shrink: a valid scenario does not decode: %v", err))
	}
	return out
}

// shrinker is one shrink in progress.
type shrinker struct {
	ctx    context.Context
	run    Runner
	opt    Options
	class  string
	runs   int
	over   int
	budget time.Duration // of a candidate; none while the original runs
	best   *scenario.Scenario
	out    Outcome
	step   string
	tested map[string]bool
}

// Shrink reduces s, whose run fails, while its run keeps the class of
// violation (Class) of the original. It stops at a fixpoint, at
// Options.MaxRuns, or when ctx ends, and returns the smallest scenario found
// either way (Report.Stopped says why it stopped early). It fails only if the
// original run does not fail or its explicit schedule does not fail the same
// way.
func Shrink(ctx context.Context, s *scenario.Scenario, run Runner, opt Options) (*Report, error) {
	opt.Parallel = max(opt.Parallel, 1)
	ex, err := Explicit(s)
	if err != nil {
		return nil, err
	}
	k := &shrinker{ctx: ctx, run: run, opt: opt, step: "original", tested: map[string]bool{}}
	outs, err := k.runAll([]*scenario.Scenario{s, ex})
	if err != nil {
		return nil, fmt.Errorf("shrink: running the original: %w", err)
	}
	k.budget = opt.Budget
	if k.budget == 0 {
		k.budget = max(DefaultBudgetFactor*max(outs[0].CPU, outs[1].CPU), DefaultBudgetMin)
	}
	rep := &Report{Original: s, Before: SizeOf(ex, outs[0].Ops), Class: Class(outs[0])}
	switch {
	case outs[0].Err != "":
		return nil, fmt.Errorf("shrink: the original does not run: %s", outs[0].Err)
	case outs[0].Verdict == scenarios.VerdictOK:
		return nil, fmt.Errorf("shrink: the original run passes (seed %d); nothing to shrink", s.Seed)
	case Class(outs[1]) != rep.Class:
		return nil, fmt.Errorf("shrink: the original fails with %s but its explicit schedule with %s (%s)", rep.Class, Class(outs[1]), outs[1].Reason)
	}
	k.class, k.best, k.out = rep.Class, ex, outs[1]
	k.progress()
	err = k.shrink()
	switch {
	case errors.Is(err, errBudget):
		rep.Stopped = fmt.Sprintf("run budget (%d runs) spent", opt.MaxRuns)
	case err != nil && ctx.Err() != nil:
		rep.Stopped = context.Cause(ctx).Error()
	case err != nil:
		return nil, err
	}
	rep.Shrunk = clone(k.best)
	rep.Shrunk.Expect = k.out.Verdict
	rep.Shrunk.Description = fmt.Sprintf("shrunk from %s (seed %d): %s", s.Name, s.Seed, rep.Class)
	rep.After, rep.Outcome, rep.Runs, rep.OverBudget, rep.Budget = SizeOf(k.best, k.out.Ops), k.out, k.runs, k.over, k.budget
	return rep, nil
}

// shrink runs the passes until none makes progress. The workload is reduced
// once before the faults too: a candidate's cost grows with its operations,
// and ddmin over a long schedule runs many.
func (k *shrinker) shrink() error {
	for {
		before := SizeOf(k.best, k.out.Ops)
		for _, pass := range []func() error{k.shortenLiveness, k.reduceWorkload, k.dropFaults, k.narrowFaults, k.reduceWorkload, k.reduceMix, k.reduceMembers} {
			if err := pass(); err != nil {
				return err
			}
		}
		if SizeOf(k.best, k.out.Ops) == before {
			return nil
		}
	}
}

func (k *shrinker) progress() {
	if k.opt.Progress != nil {
		k.opt.Progress(Progress{Step: k.step, Runs: k.runs, Best: SizeOf(k.best, k.out.Ops)})
	}
}

// runAll runs cands (at most the budget of runs left), counting the runs
// and those stopped at the CPU budget (none while the original runs).
func (k *shrinker) runAll(cands []*scenario.Scenario) ([]Outcome, error) {
	var budget error
	if k.opt.MaxRuns > 0 {
		if left := k.opt.MaxRuns - k.runs; left < len(cands) {
			cands, budget = cands[:max(left, 0)], errBudget
		}
	}
	if len(cands) == 0 {
		return nil, budget
	}
	outs, err := k.run(k.ctx, cands, k.budget)
	k.runs += len(cands)
	for _, o := range outs {
		if o.OverBudget {
			k.over++
		}
	}
	if err == nil {
		err = k.ctx.Err()
	}
	return outs, cmpErr(err, budget)
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// fails judges candidates (nil or invalid ones, and ones already judged, do
// not fail) and takes the first that fails the same way as the best so far.
func (k *shrinker) fails(cands []*scenario.Scenario) ([]bool, error) {
	got := make([]bool, len(cands))
	var torun []*scenario.Scenario
	var at []int
	for i, c := range cands {
		if c == nil || c.Validate() != nil {
			continue
		}
		if _, err := c.Config(); err != nil {
			continue
		}
		b, err := c.Encode()
		if err != nil || k.tested[string(b)] {
			continue
		}
		k.tested[string(b)] = true
		torun, at = append(torun, c), append(at, i)
	}
	outs, err := k.runAll(torun)
	first := -1
	for j, o := range outs {
		if j < len(at) && o.Verdict != "" && Class(o) == k.class {
			got[at[j]] = true
			if first < 0 {
				first = j
			}
		}
	}
	if first >= 0 {
		k.best, k.out = torun[first], outs[first]
	}
	k.progress()
	return got, err
}

// try takes the first candidate of cands that fails the same way.
func (k *shrinker) try(cands []*scenario.Scenario) (bool, error) {
	i, err := First(cands, k.opt.Parallel, k.fails)
	return i >= 0, err
}

// shortLiveness is the healed phase's bound that shortenLiveness tries.
const shortLiveness = 5 * time.Second

// shortenLiveness bounds the healed phase by shortLiveness when the
// violation kept is not a liveness one (a safety verdict outranks a cluster
// that did not converge, so a short bound keeps it). It runs first: every
// later candidate then spends little on a cluster that never converges (a
// mutant's raft livelock costs seconds of CPU per simulated second).
func (k *shrinker) shortenLiveness() error {
	k.step = "liveness"
	c, err := k.best.Config()
	if err != nil || c.LivenessTimeout <= shortLiveness || k.class == scenarios.VerdictNoLiveness || k.class == scenarios.VerdictInconclusive {
		return err
	}
	s := clone(k.best)
	s.Phases.LivenessTimeout = scenario.Duration(shortLiveness)
	_, err = k.try([]*scenario.Scenario{s})
	return err
}

// dropFaults is ddmin over the fault schedule.
func (k *shrinker) dropFaults() error {
	k.step = "faults"
	base := k.best
	_, err := Minimize(base.Faults.Schedule, k.opt.Parallel, func(subs [][]scenario.Fault) ([]bool, error) {
		cands := make([]*scenario.Scenario, len(subs))
		for i, sub := range subs {
			c := clone(base)
			c.Faults.Schedule = slices.Clone(sub)
			cands[i] = c
		}
		return k.fails(cands)
	})
	return err
}

// narrowFaults halves each fault's duration, takes a member off it, and
// moves it earlier, fault by fault, until none of these keeps the failure.
func (k *shrinker) narrowFaults() error {
	k.step = "narrow"
	for {
		var cands []*scenario.Scenario
		for i, f := range k.best.Faults.Schedule {
			edit := func(fn func(*scenario.Fault)) {
				c := clone(k.best)
				fn(&c.Faults.Schedule[i])
				cands = append(cands, c)
			}
			if d := time.Duration(f.Duration) / 2; d >= 100*time.Millisecond {
				edit(func(f *scenario.Fault) { f.Duration = scenario.Duration(d.Round(time.Millisecond)) })
			}
			for j := range f.Members {
				if len(f.Members) > 1 {
					edit(func(f *scenario.Fault) { f.Members = slices.Delete(slices.Clone(f.Members), j, j+1) })
				}
			}
			if f.At >= scenario.Duration(200*time.Millisecond) {
				edit(func(f *scenario.Fault) { f.At = scenario.Duration((time.Duration(f.At) / 2).Round(time.Millisecond)) })
			}
		}
		ok, err := k.try(cands)
		if err != nil || !ok {
			return err
		}
	}
}

// reduceWorkload halves the clients, keys, rate and watchers and shortens the
// safety phase (to the end of the last fault at the least), one at a time,
// until none keeps the failure.
func (k *shrinker) reduceWorkload() error {
	k.step = "workload"
	for {
		c, err := k.best.Config()
		if err != nil {
			return err
		}
		var cands []*scenario.Scenario
		edit := func(fn func(*scenario.Scenario)) {
			s := clone(k.best)
			fn(s)
			cands = append(cands, s)
		}
		w := c.Workload
		if w.Clients > 1 {
			edit(func(s *scenario.Scenario) { s.Workload.Clients = w.Clients / 2 })
		}
		var end time.Duration
		for _, f := range k.best.Faults.Schedule {
			end = max(end, time.Duration(f.At+f.Duration))
		}
		if safety := max(c.Duration/2, (end + time.Second - 1).Truncate(time.Second), time.Second); safety < c.Duration {
			edit(func(s *scenario.Scenario) { s.Phases.Safety = scenario.Duration(safety) })
		}
		if w.Rate >= 20 {
			edit(func(s *scenario.Scenario) { s.Workload.Rate = float64(int(w.Rate / 2)) })
		}
		if w.Keys > 1 {
			edit(func(s *scenario.Scenario) { s.Workload.Keys = w.Keys / 2 })
		}
		if w.LeaseKeys > 1 {
			edit(func(s *scenario.Scenario) { s.Workload.LeaseKeys = w.LeaseKeys / 2 })
		}
		if c.Watchers > 1 {
			edit(func(s *scenario.Scenario) { s.Checks.Watchers = c.Watchers / 2 })
		}
		ok, err := k.try(cands)
		if err != nil || !ok {
			return err
		}
	}
}

// reduceMix is ddmin over the operation mix's kinds.
func (k *shrinker) reduceMix() error {
	k.step = "mix"
	c, err := k.best.Config()
	if err != nil {
		return err
	}
	base := clone(k.best)
	if len(base.Workload.Mix) == 0 {
		for _, m := range c.Workload.Mix {
			base.Workload.Mix = append(base.Workload.Mix, scenario.Weight{Kind: string(m.Kind), Serializable: m.Serializable,
				Variant: string(m.Variant), Weight: m.Weight})
		}
	}
	var mix []scenario.Weight
	for _, m := range base.Workload.Mix {
		if m.Weight > 0 {
			mix = append(mix, m)
		}
	}
	_, err = Minimize(mix, k.opt.Parallel, func(subs [][]scenario.Weight) ([]bool, error) {
		cands := make([]*scenario.Scenario, len(subs))
		for i, sub := range subs {
			if len(sub) == 0 {
				continue // an empty mix is not a workload
			}
			s := clone(base)
			s.Workload.Mix = slices.Clone(sub)
			cands[i] = s
		}
		return k.fails(cands)
	})
	return err
}

// reduceMembers tries smaller clusters, smallest first; a fault's member
// beyond the smaller cluster is renamed into it (m3 of 2 members is m1), and a
// candidate whose faults no longer fit is not run.
func (k *shrinker) reduceMembers() error {
	k.step = "members"
	c, err := k.best.Config()
	if err != nil {
		return err
	}
	var cands []*scenario.Scenario
	for m := 1; m < c.Members; m++ {
		s := clone(k.best)
		s.Cluster.Members = m
		for i := range s.Faults.Schedule {
			s.Faults.Schedule[i].Members = fold(s.Faults.Schedule[i].Members, m)
		}
		cands = append(cands, s)
	}
	_, err = k.try(cands)
	return err
}

// fold renames the members of names beyond m into m1..mm (m<i> to
// m<(i-1)%m+1>), each once, keeping their order.
func fold(names []string, m int) []string {
	var out []string
	for _, n := range names {
		i, err := strconv.Atoi(strings.TrimPrefix(n, "m"))
		if err == nil && i > m {
			n = "m" + strconv.Itoa((i-1)%m+1)
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}
