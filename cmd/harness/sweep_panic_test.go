package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/havoclab/havoc/cluster"
	"github.com/havoclab/havoc/internal/testhook"
	"github.com/havoclab/havoc/sim"
)

// TestMain lets the test binary stand in for the harness: with
// HAVOC_HARNESS_MAIN=1 it runs main (a sweep's workers are os.Executable), and
// with HAVOC_TEST_PANIC=<member> that member panics 2 virtual seconds into
// every simulated run.
func TestMain(m *testing.M) {
	if os.Getenv("HAVOC_HARNESS_MAIN") == "1" {
		if member := os.Getenv("HAVOC_TEST_PANIC"); member != "" {
			testhook.Sim = func(w *sim.World, _ *cluster.Sim) {
				w.ScheduleAt(2*time.Second, "inject", func() {
					w.Host(member).After(0, func() { panic("tocommit(3492) is out of range [lastIndex(3491)]") })
				})
			}
		}
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestSweepReportsMemberPanic: a member's panic in a sweep is that seed's
// verdict, with its artifacts; the worker does not die with it.
func TestSweepReportsMemberPanic(t *testing.T) {
	t.Setenv("HAVOC_HARNESS_MAIN", "1")
	t.Setenv("HAVOC_TEST_PANIC", "m3")
	out := t.TempDir()
	f := runFlags{nodes: 3, clients: 4, duration: 4 * time.Second, faults: "none", out: out, rate: 200}
	var stdout, stderr bytes.Buffer
	err := sweep(&stdout, &stderr, f, []uint64{1, 2}, 1, true)
	var ee *exitError
	require.ErrorAs(t, err, &ee)
	require.Equal(t, 1, ee.code)
	t.Log(stdout.String())
	require.Regexp(t, `member-panic\s+2\n`, stdout.String())
	require.NotContains(t, stdout.String(), "worker-error")
	require.Contains(t, stdout.String(), "seed 1: member-panic: member m3 panicked at 2.000s: tocommit(3492) is out of range [lastIndex(3491)]")
	require.FileExists(t, filepath.Join(out, "seed-2", "summary.txt"))
}
