package main

import (
	"testing"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"
)

// TestSweepPassesEveryRunFlag: the sweep hands each of its run flags, with its
// effective value, to its workers (the list used to be kept by hand).
func TestSweepPassesEveryRunFlag(t *testing.T) {
	root, _, _ := newRoot()
	sweep, _, err := root.Find([]string{"sweep"})
	require.NoError(t, err)
	require.NoError(t, sweep.ParseFlags([]string{"--nodes", "5", "--rate", "1234.5", "--duration", "90s", "--faults", "crash", "--clients", "4", "--out", "x"}))
	names := []string{"nodes", "clients", "duration", "faults", "out", "rate"}
	args := workerArgs(sweep.Flags(), names)
	require.Equal(t, []string{"sweep-worker", "--nodes=5", "--clients=4", "--duration=1m30s", "--faults=crash", "--out=x", "--rate=1234.5"}, args)

	var f runFlags
	f.register(&cobra.Command{Use: "bare"}, false, false)
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
		{Seed: 4, Verdict: "no-liveness", Dir: "d4"}, {Seed: 5, Verdict: "unknown", Dir: "d5"}, {Seed: 6, Verdict: "no-liveness"},
	}
	require.Equal(t, []uint64{2, 4}, fullArtifactSeeds(all, 2))
	require.Equal(t, []uint64{2, 4, 5}, fullArtifactSeeds(all, 10))
	require.Empty(t, fullArtifactSeeds(all, 0))
}
