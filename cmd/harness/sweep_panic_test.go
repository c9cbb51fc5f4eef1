package main

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSweepReportsMemberPanic: a member's panic in a sweep is that seed's
// verdict, with its artifacts; the worker does not die with it.
func TestSweepReportsMemberPanic(t *testing.T) {
	t.Setenv("HAVOC_HARNESS_MAIN", "1")
	t.Setenv("HAVOC_TEST_PANIC", "m3")
	out := t.TempDir()
	args := []string{"sweep-worker", "--nodes=3", "--clients=4", "--duration=4s", "--faults=none", "--out=" + out, "--rate=200"}
	var stdout, stderr bytes.Buffer
	err := sweep(&stdout, &stderr, args, []uint64{1, 2}, 1, 2, true)
	var ee *exitError
	require.ErrorAs(t, err, &ee)
	require.Equal(t, 1, ee.code)
	t.Log(stdout.String())
	require.Regexp(t, `member-panic\s+2\n`, stdout.String())
	require.NotContains(t, stdout.String(), "worker-error")
	require.Contains(t, stdout.String(), "seed 1: member-panic: member m3 panicked at 2.000s (no faults active): tocommit(3492) is out of range [lastIndex(3491)]")
	require.FileExists(t, filepath.Join(out, "seed-2", "summary.txt"))
}
