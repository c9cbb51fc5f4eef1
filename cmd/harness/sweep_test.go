package main

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"
)

// TestSweepPassesEveryRunFlag: the sweep hands each of its run flags, with its
// effective value, to its workers (the list used to be kept by hand); a
// sweep draws each seed's configuration unless told --swarm=false.
func TestSweepPassesEveryRunFlag(t *testing.T) {
	root, _, _ := newRoot()
	sweep, _, err := root.Find([]string{"sweep"})
	require.NoError(t, err)
	require.NoError(t, sweep.ParseFlags([]string{"--nodes", "5", "--rate", "1234.5", "--duration", "90s", "--faults", "crash", "--clients", "4", "--out", "x"}))
	names := []string{"nodes", "clients", "duration", "faults", "out", "profile", "rate", "scenario", "swarm"}
	args := workerArgs(sweep.Flags(), names)
	require.Equal(t, []string{"sweep-worker", "--nodes=5", "--clients=4", "--duration=1m30s", "--faults=crash", "--out=x", "--profile=etcd", "--rate=1234.5", "--scenario=", "--swarm=true"}, args)

	var f runFlags
	f.register(&cobra.Command{Use: "bare"}, false, false)
	require.False(t, f.swarm, "run and the worker run the flags' configuration unless told --swarm")
	require.ElementsMatch(t, names, f.names, "the sweep's run flags are the worker's")
	w2 := newSweepWorkerCmd()
	require.NoError(t, w2.ParseFlags(args[1:]))
	for _, n := range names {
		require.Equal(t, sweep.Flags().Lookup(n).Value.String(), w2.Flags().Lookup(n).Value.String(), n)
	}
}

func TestFullArtifactSeeds(t *testing.T) {
	all := []sweepResult{
		{Seed: 1, Verdict: "ok"}, {Seed: 2, Verdict: "not-linearizable", Dir: "d2"}, {Seed: 3, Verdict: "worker-error"},
		{Seed: 4, Verdict: "no-liveness", Dir: "d4"}, {Seed: 5, Verdict: "inconclusive", Dir: "d5"}, {Seed: 6, Verdict: "no-liveness"},
	}
	require.Equal(t, []uint64{2, 4}, fullArtifactSeeds(all, 2))
	require.Equal(t, []uint64{2, 4, 5}, fullArtifactSeeds(all, 10))
	require.Empty(t, fullArtifactSeeds(all, 0))
}

// TestSweepFullArtifactBudget: every failing seed leaves a summary; only the
// first --full-artifacts of them, in seed order, leave history and trace.
func TestSweepFullArtifactBudget(t *testing.T) {
	t.Setenv("HAVOC_HARNESS_MAIN", "1")
	t.Setenv("HAVOC_TEST_PANIC", "m2") // every seed fails (see TestMain)
	out := t.TempDir()
	args := []string{"sweep-worker", "--nodes=3", "--clients=2", "--duration=3s", "--faults=none", "--out=" + out, "--rate=100"}
	var stdout, stderr bytes.Buffer
	err := sweep(&stdout, &stderr, args, []uint64{1, 2, 3}, 2, 1, true)
	var ee *exitError
	require.ErrorAs(t, err, &ee)
	require.Equal(t, exitViolation, ee.code)
	s := stdout.String()
	require.Contains(t, s, "  artifacts: "+filepath.Join(out, "seed-1")+"\n")
	for _, seed := range []string{"seed-2", "seed-3"} {
		require.Contains(t, s, "  summary: "+filepath.Join(out, seed)+" (full artifacts: rerun with the line above)\n")
		require.NoFileExists(t, filepath.Join(out, seed, "trace.log.gz"))
		require.NoFileExists(t, filepath.Join(out, seed, "history.json.gz"))
		require.FileExists(t, filepath.Join(out, seed, "summary.txt"))
		require.FileExists(t, filepath.Join(out, seed, "config.json"))
	}
	require.FileExists(t, filepath.Join(out, "seed-1", "trace.log.gz"))
	require.FileExists(t, filepath.Join(out, "seed-1", "history.json.gz"))
}

// TestSwarmRefusesDrawnFlags: with --swarm (a sweep's default) a flag the
// draw replaces is refused with a one-line usage error rather than ignored;
// with --swarm=false it is taken.
func TestSwarmRefusesDrawnFlags(t *testing.T) {
	for _, n := range swarmDrawn {
		code, _, errOut := harness(t, "sweep", "--seeds", "1", "--"+n+"=1", "--out", "")
		require.Equal(t, exitUsage, code, n)
		require.Contains(t, errOut, "--"+n+": --swarm draws it from the seed; add --swarm=false to set it")
		code, _, errOut = harness(t, "run", "--swarm", "--"+n+"=1", "--out", "")
		require.Equal(t, exitUsage, code, n)
		require.Contains(t, errOut, "--swarm=false")
	}
}

// TestRealSweepIsNotSwarm: a sweep on a real backend runs the flags'
// configuration unless told --swarm, so its --nodes is taken (and checked).
func TestRealSweepIsNotSwarm(t *testing.T) {
	code, _, errOut := harness(t, "sweep", "--backend", "process", "--seeds", "1", "--nodes", "0", "--out", "")
	require.Equal(t, exitUsage, code)
	require.Contains(t, errOut, "--nodes 0: a cluster has 1 to 9 members")
}
