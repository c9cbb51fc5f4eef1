package shrink

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/havoclab/havoc/scenarios"
	"github.com/havoclab/havoc/scenarios/scenario"
)

const drawn = `name: drawn
seed: 7
phases:
  safety: 20s
faults:
  generator:
    kinds: [partition-minority, delay, loss, crash, pause]
`

func load(t *testing.T, text string) *scenario.Scenario {
	t.Helper()
	s, err := scenario.Decode(strings.NewReader(text))
	require.NoError(t, err)
	return s
}

// TestExplicitIsThePlan: the explicit schedule is the one a run of the
// drawn scenario plays, and the rest of the run is unchanged.
func TestExplicitIsThePlan(t *testing.T) {
	s := load(t, drawn)
	ex, err := Explicit(s)
	require.NoError(t, err)
	require.Nil(t, ex.Faults.Generator)
	c, err := s.Config()
	require.NoError(t, err)
	want := scenarios.Plan(c)
	got, err := ex.Config()
	require.NoError(t, err)
	require.Equal(t, want, got.Schedule)
	require.Len(t, got.Schedule, 9)
	got.Schedule, got.Faults, c.Faults = nil, nil, nil
	require.Equal(t, c, got)

	_, err = Explicit(load(t, "name: x\nphases:\n  safety: 5s\n"))
	require.ErrorContains(t, err, "has no seed")
}

// synthetic is a Runner without a simulator: a run fails when one of its
// faults is of kind on a member, with an operation of kind op named in its
// reason; its operations are clients × rate × safety.
func synthetic(kind, op string, runs *int) Runner {
	return func(_ context.Context, cands []*scenario.Scenario, _ time.Duration) ([]Outcome, error) {
		outs := make([]Outcome, len(cands))
		for i, s := range cands {
			*runs++
			c, err := s.Config()
			if err != nil {
				outs[i].Err = err.Error()
				continue
			}
			outs[i] = Outcome{Verdict: scenarios.VerdictOK, Ops: int(float64(c.Workload.Clients) * c.Workload.Rate * c.Duration.Seconds())}
			hasOp := slices.ContainsFunc(c.Workload.Mix, func(w scenarios.Weight) bool { return string(w.Kind) == op && w.Weight > 0 })
			for _, f := range scenarios.Plan(c) {
				if string(f.Kind) == kind && hasOp {
					outs[i].Verdict, outs[i].Reason = scenarios.VerdictIllegal, "no linearization: key \"k/001\"; #12 "+op+" by c01 via m1 at 1.000s"
				}
			}
		}
		return outs, nil
	}
}

// TestShrinkSynthetic: a failure that needs one crash and put operations
// shrinks to that crash, one member, one client, one kind, and the shortest
// safety phase, deterministically.
func TestShrinkSynthetic(t *testing.T) {
	var shrunk [2][]byte
	for i := range shrunk {
		runs := 0
		var seen []Progress
		rep, err := Shrink(context.Background(), load(t, drawn), synthetic("crash", "put", &runs),
			Options{Parallel: 2, Progress: func(p Progress) { seen = append(seen, p) }})
		require.NoError(t, err)
		require.Equal(t, "not-linearizable/put", rep.Class)
		require.Empty(t, rep.Stopped)
		require.Equal(t, runs, rep.Runs)
		require.Equal(t, 9, rep.Before.Faults)
		require.Equal(t, []string{"crash"}, kinds(rep.Shrunk))
		require.Equal(t, Size{Faults: 1, Ops: rep.After.Ops, Members: 1, Clients: 1, Keys: 1, Kinds: 1, Rate: 15, Safety: time.Second}, rep.After)
		require.Equal(t, scenarios.VerdictIllegal, rep.Shrunk.Expect)
		require.Less(t, rep.Ratio(), 0.01)
		require.NotEmpty(t, seen)
		require.Equal(t, rep.After, seen[len(seen)-1].Best)
		shrunk[i], err = rep.Shrunk.Encode()
		require.NoError(t, err)
	}
	require.Equal(t, string(shrunk[0]), string(shrunk[1]))
}

// TestShrinkKeepsOperationKind: a linearizability failure on another kind of
// operation is not the same failure.
func TestShrinkKeepsOperationKind(t *testing.T) {
	require.Equal(t, "not-linearizable/get", Class(Outcome{Verdict: scenarios.VerdictIllegal, Reason: "lost write: key \"k\"; #3 get (unknown) by c01 via m2 at 1.0s"}))
	require.Equal(t, scenarios.VerdictPanic, Class(Outcome{Verdict: scenarios.VerdictPanic, Reason: "member m1 panicked"}))
	// The anomaly's words are not an operation (this was "not-linearizable/has").
	require.Equal(t, "not-linearizable/get", Class(Outcome{Verdict: scenarios.VerdictIllegal,
		Reason: "the write #417 has revision 240: key \"k/001\"; #418 get by c01 via m3 at 29.522s, #417 put by c01 via m3 at 29.497s"}))
	require.Empty(t, Class(Outcome{Err: "bad"}))
}

// TestShrinkBudgetAndInterrupt: the run budget and a cancelled context stop
// the shrink with the best scenario so far; a passing original is refused.
func TestShrinkBudgetAndInterrupt(t *testing.T) {
	runs := 0
	rep, err := Shrink(context.Background(), load(t, drawn), synthetic("crash", "put", &runs), Options{Parallel: 2, MaxRuns: 7})
	require.NoError(t, err)
	require.Equal(t, 7, rep.Runs)
	require.Contains(t, rep.Stopped, "run budget (7 runs) spent")
	require.Less(t, rep.After.Ops, rep.Before.Ops)

	ctx, cancel := context.WithCancelCause(context.Background())
	n := 0
	inner := synthetic("crash", "put", &runs)
	rep, err = Shrink(ctx, load(t, drawn), func(ctx context.Context, c []*scenario.Scenario, budget time.Duration) ([]Outcome, error) {
		if n++; n == 4 {
			cancel(errors.New("interrupt"))
		}
		return inner(ctx, c, budget)
	}, Options{Parallel: 2})
	require.NoError(t, err)
	require.Equal(t, "interrupt", rep.Stopped)

	_, err = Shrink(context.Background(), load(t, drawn), synthetic("bridge", "put", &runs), Options{})
	require.ErrorContains(t, err, "the original run passes")
}

// TestShrinkStopsStalledCandidates: a candidate that does not finish (as a
// mutant's raft livelock, re-sending megabyte appends thousands of times a
// simulated second, made one run for many minutes) is given a CPU budget, ten
// times the original's, is stopped at it and does not fail the same way; the
// shrink goes on and finishes. Here a candidate with a crash but no loss runs
// until stopped (forever without a budget).
func TestShrinkStopsStalledCandidates(t *testing.T) {
	runs := 0
	inner := synthetic("crash", "put", &runs)
	var budgets []time.Duration
	run := func(ctx context.Context, cands []*scenario.Scenario, budget time.Duration) ([]Outcome, error) {
		budgets = append(budgets, budget)
		outs, err := inner(ctx, cands, budget)
		for i, c := range cands {
			outs[i].CPU = time.Second
			ks := kinds(c)
			if c.Faults.Generator != nil || !slices.Contains(ks, "crash") || slices.Contains(ks, "loss") {
				continue
			}
			if budget == 0 {
				<-ctx.Done()
				return outs, ctx.Err()
			}
			outs[i] = Outcome{OverBudget: true, CPU: budget}
		}
		return outs, err
	}
	done := make(chan *Report, 1)
	go func() {
		rep, err := Shrink(context.Background(), load(t, drawn), run, Options{Parallel: 2})
		assert.NoError(t, err)
		done <- rep
	}()
	select {
	case rep := <-done:
		require.NotNil(t, rep)
		require.Empty(t, rep.Stopped)
		require.Positive(t, rep.OverBudget)
		require.Equal(t, DefaultBudgetMin, rep.Budget)
		require.Equal(t, time.Duration(0), budgets[0], "the original runs without a budget")
		require.ElementsMatch(t, []string{"crash", "loss"}, kinds(rep.Shrunk))
		require.Equal(t, "not-linearizable/put", Class(rep.Outcome))
		require.Empty(t, Class(Outcome{Verdict: scenarios.VerdictIllegal, OverBudget: true}))
	case <-time.After(time.Minute):
		t.Fatal("the shrink did not finish: a stalled candidate held it")
	}
}

func TestFold(t *testing.T) {
	require.Equal(t, []string{"m1"}, fold([]string{"m3"}, 2))
	require.Equal(t, []string{"m1", "m2"}, fold([]string{"m1", "m3", "m2"}, 2))
}

func kinds(s *scenario.Scenario) []string {
	var out []string
	for _, f := range s.Faults.Schedule {
		out = append(out, f.Kind)
	}
	return out
}
