//go:build unix

package scenarios

import (
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/havoclab/havoc/chaos"
	"github.com/havoclab/havoc/linearizability"
)

// defaultRunHistory returns the history of the default 60 s simulated run
// of seed (every fault kind), and writes it to HAVOC_DUMP_HISTORY if set.
func defaultRunHistory(tb testing.TB, seed uint64) []linearizability.Operation {
	res, err := RunSim(Config{Seed: seed, Faults: chaos.AllKinds})
	require.NoError(tb, err)
	require.True(tb, res.Passed(), "%s: %s", res.Verdict, res.Reason)
	if path := os.Getenv("HAVOC_DUMP_HISTORY"); path != "" {
		f, err := os.Create(path)
		require.NoError(tb, err)
		require.NoError(tb, linearizability.WriteHistory(f, res.History))
		require.NoError(tb, f.Close())
	}
	return res.History
}

// cpuTime returns the CPU time the process has used (user and system).
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	require.NoError(tb, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCheckDefaultRun measures the linearizability check alone of a
// default 60 s simulated run's history (the run itself is not timed). Its
// target is half a second on one core (-cpu 1); on a shared machine the
// CPU time it reports says more than the wall time.
func BenchmarkCheckDefaultRun(b *testing.B) {
	ops := defaultRunHistory(b, 1)
	runtime.GC()
	var steps int64
	var cpu time.Duration
	for b.Loop() {
		c := cpuTime(b)
		res, err := linearizability.Check(ops, linearizability.Options{})
		cpu += cpuTime(b) - c
		require.NoError(b, err)
		require.Equal(b, linearizability.VerdictOK, res.Verdict, res.Reason)
		steps = res.Steps
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/check")
	b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/check")
	b.ReportMetric(float64(len(ops)), "ops")
	b.ReportMetric(float64(steps), "steps")
}

// BenchmarkDefaultRun measures the default run: 3 members, 16 clients, about 1,000
// operations per virtual second for 60 virtual seconds with every fault kind,
// checking included.
// It reports operations recorded per CPU-second (checking included), to
// divide by store's BenchmarkBareRaft on the same machine.
func BenchmarkDefaultRun(b *testing.B) {
	benchRuns(b, func(seed uint64) (Config, error) { return Config{Seed: seed, Faults: chaos.AllKinds}, nil })
}

// BenchmarkSwarmRuns measures swarm runs (Swarm of the default run) of seeds
// 1, 2, ...: -benchtime 100x is the sweep of seeds 1-100.
func BenchmarkSwarmRuns(b *testing.B) {
	benchRuns(b, func(seed uint64) (Config, error) { return Swarm(Config{Seed: seed}) })
}

// benchRuns runs the configuration of seeds 1, 2, ... and reports virtual
// seconds per wall second, check seconds per run and operations recorded
// per CPU-second.
func benchRuns(b *testing.B, config func(seed uint64) (Config, error)) {
	var virtual, wall, check time.Duration
	ops := 0
	cpu0 := cpuTime(b)
	for i := 0; b.Loop(); i++ {
		c, err := config(uint64(i + 1))
		require.NoError(b, err)
		res, err := RunSim(c)
		require.NoError(b, err)
		virtual += res.Virtual
		wall += res.Wall
		check += res.CheckWall
		ops += res.Operations
	}
	cpu := cpuTime(b) - cpu0
	b.ReportMetric(virtual.Seconds()/wall.Seconds(), "virtual-s/wall-s")
	b.ReportMetric(check.Seconds()/float64(b.N), "check-s/run")
	b.ReportMetric(float64(ops)/cpu.Seconds(), "ops/cpu-s")
}
