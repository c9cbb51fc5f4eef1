package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/havoclab/havoc/scenarios"
	"github.com/havoclab/havoc/scenarios/scenario"
	"github.com/havoclab/havoc/scenarios/shrink"
)

// crashBug is a run whose drawn schedule (seed 7) has nine faults, one a
// crash; under HAVOC_TEST_PANIC_ON_CRASH a member panics while another is down.
const crashBug = `name: crash-bug
seed: 7
phases:
  safety: 20s
faults:
  generator:
    kinds: [partition-minority, delay, loss, crash, pause]
`

// TestShrinkInjectedCrashBug: a failure that only a crash reaches shrinks,
// on two worker processes, to at most two faults (the crash among them) and
// under a tenth of the operations, and the shrunk file fails the same way.
func TestShrinkInjectedCrashBug(t *testing.T) {
	if testing.Short() {
		t.Skip("about 80 simulated runs")
	}
	t.Setenv("HAVOC_HARNESS_MAIN", "1")
	t.Setenv("HAVOC_TEST_PANIC_ON_CRASH", "1")
	dir := t.TempDir()
	src, err := scenario.Decode(bytes.NewReader([]byte(crashBug)))
	require.NoError(t, err)
	exe, err := os.Executable()
	require.NoError(t, err)
	pool := newShrinkPool(exe, 2)
	defer pool.close()
	var stdout, stderr bytes.Buffer
	start := time.Now()
	require.NoError(t, runShrink(context.Background(), &stdout, &stderr, src, pool.run, shrink.Options{Parallel: 2, MaxRuns: 300}, dir, false))
	t.Logf("%s(wall %s)", stdout.String(), time.Since(start).Round(time.Millisecond))

	got, err := scenario.Load(filepath.Join(dir, "shrunk.yaml"))
	require.NoError(t, err)
	require.LessOrEqual(t, len(got.Faults.Schedule), 2)
	require.Contains(t, kindsOf(got), "crash")
	require.Equal(t, scenarios.VerdictPanic, got.Expect)
	require.Contains(t, stdout.String(), "class: member-panic")
	require.Contains(t, stdout.String(), "before: faults=9 ")
	require.Contains(t, stdout.String(), "reproduce: go run ./cmd/harness run --scenario "+filepath.Join(dir, "shrunk.yaml"))
	report, err := os.ReadFile(filepath.Join(dir, "report.txt"))
	require.NoError(t, err)
	require.Equal(t, stdout.String()[len(stdout.String())-len(report):], string(report))

	// The shrunk file, run again, fails the same way with far fewer operations.
	b, err := got.Encode()
	require.NoError(t, err)
	outs, err := pool.run(context.Background(), []*scenario.Scenario{got}, 0)
	require.NoError(t, err, string(b))
	require.Equal(t, scenarios.VerdictPanic, outs[0].Verdict, outs[0].Reason)
	orig, err := pool.run(context.Background(), []*scenario.Scenario{src}, 0)
	require.NoError(t, err)
	require.Less(t, outs[0].Ops*10, orig[0].Ops)
}

// TestShrinkStopsAtMaxRuns: the run budget stops a shrink with the smallest
// scenario found so far, and says so.
func TestShrinkStopsAtMaxRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("simulated runs")
	}
	t.Setenv("HAVOC_HARNESS_MAIN", "1")
	t.Setenv("HAVOC_TEST_PANIC_ON_CRASH", "1")
	dir := t.TempDir()
	src, err := scenario.Decode(bytes.NewReader([]byte(crashBug)))
	require.NoError(t, err)
	exe, err := os.Executable()
	require.NoError(t, err)
	pool := newShrinkPool(exe, 2)
	defer pool.close()
	var stdout, stderr bytes.Buffer
	require.NoError(t, runShrink(context.Background(), &stdout, &stderr, src, pool.run, shrink.Options{Parallel: 2, MaxRuns: 6}, dir, false))
	require.Contains(t, stdout.String(), "stopped early (run budget (6 runs) spent)")
	require.Contains(t, stdout.String(), "candidate runs: 6 ")
	require.FileExists(t, filepath.Join(dir, "shrunk.yaml"))
}

// TestShrinkRefusesPassingRun: a run that passes has nothing to shrink.
func TestShrinkRefusesPassingRun(t *testing.T) {
	if testing.Short() {
		t.Skip("simulated runs")
	}
	t.Setenv("HAVOC_HARNESS_MAIN", "1")
	src, err := scenario.Decode(bytes.NewReader([]byte("name: quiet\nseed: 3\nphases:\n  safety: 2s\nworkload:\n  rate: 50\n")))
	require.NoError(t, err)
	exe, err := os.Executable()
	require.NoError(t, err)
	pool := newShrinkPool(exe, 1)
	defer pool.close()
	var stdout, stderr bytes.Buffer
	err = runShrink(context.Background(), &stdout, &stderr, src, pool.run, shrink.Options{Parallel: 1}, t.TempDir(), false)
	require.ErrorContains(t, err, "the original run passes (seed 3); nothing to shrink")
}

// TestShrinkWorkerStopsAtBudget: a worker stops a run that has spent its CPU
// budget and reports it over budget (it does not fail the same way: a
// mutant's raft livelock once held a worker for minutes), then exits; the
// pool starts a new worker for the next run.
func TestShrinkWorkerStopsAtBudget(t *testing.T) {
	t.Setenv("HAVOC_HARNESS_MAIN", "1")
	src, err := scenario.Decode(bytes.NewReader([]byte("name: quiet\nseed: 3\nphases:\n  safety: 20s\nworkload:\n  rate: 100\n")))
	require.NoError(t, err)
	exe, err := os.Executable()
	require.NoError(t, err)
	pool := newShrinkPool(exe, 1)
	defer pool.close()
	outs, err := pool.run(context.Background(), []*scenario.Scenario{src, src}, time.Millisecond)
	require.NoError(t, err)
	for _, o := range outs {
		require.True(t, o.OverBudget, "%+v", o)
		require.GreaterOrEqual(t, o.CPU, time.Millisecond)
		require.Empty(t, shrink.Class(o))
	}
	outs, err = pool.run(context.Background(), []*scenario.Scenario{src}, time.Minute)
	require.NoError(t, err)
	require.Equal(t, scenarios.VerdictOK, outs[0].Verdict, "%+v", outs[0])
	require.False(t, outs[0].OverBudget)
	require.Positive(t, outs[0].CPU)
}

func kindsOf(s *scenario.Scenario) []string {
	var out []string
	for _, f := range s.Faults.Schedule {
		out = append(out, f.Kind)
	}
	return out
}
