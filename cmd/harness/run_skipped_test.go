package main

import (
	"bytes"
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/havoclab/havoc/chaos"
	"github.com/havoclab/havoc/scenarios"
)

// TestRunSaysWhatItSkipped: on the process backend, a schedule of only faults
// a real process cannot suffer is printed with each marked skipped, and the
// run does not end in a plain PASS. The members are this test binary running
// `harness serve` (TestMain).
func TestRunSaysWhatItSkipped(t *testing.T) {
	t.Setenv("HAVOC_HARNESS_MAIN", "1")
	const faults = "duplicate,reorder,clock-skew"
	kinds, err := chaos.ParseKinds(faults)
	require.NoError(t, err)
	seed := uint64(1)
	for ; len(scenarios.Plan(scenarios.Config{Seed: seed, Members: 3, Duration: 5 * time.Second, Faults: kinds})) == 0; seed++ {
		require.Less(t, seed, uint64(100), "no seed draws a fault")
	}
	var out bytes.Buffer
	cmd := newRunCmd()
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs([]string{"--backend", "process", "--seed", itoa(seed), "--duration", "5s", "--faults", faults,
		"--clients", "2", "--rate", "50", "--out", t.TempDir(), "--run-dir", t.TempDir()})
	err = cmd.ExecuteContext(context.Background())
	t.Log(out.String())
	require.NoError(t, err)
	require.Contains(t, out.String(), "(skipped: not expressible on this backend)")
	require.Regexp(t, `\nskipped: [a-z, -]+ \(\d+ of \d+ faults\)\n`, out.String())
	require.Regexp(t, `\nPASS \(no faults applied: skipped [a-z, -]+\) seed=`, out.String())
	require.NotRegexp(t, `\nPASS seed=`, out.String())
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

// TestRecurrence: a scenario that expects a violation says whether it recurred.
func TestRecurrence(t *testing.T) {
	require.Empty(t, recurrence("ok", "ok", "sim"))
	require.Equal(t, "expected verdict ok, got no-liveness", recurrence("ok", "no-liveness", "process"))
	require.Equal(t, "the violation recurred on process: not-linearizable, as the scenario expects",
		recurrence("not-linearizable", "not-linearizable", "process"))
	require.Equal(t, "the violation did not recur on docker: expected member-panic, got ok",
		recurrence("member-panic", "ok", "docker"))
}
