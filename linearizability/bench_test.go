//go:build unix

package linearizability

import (
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The targets of these benchmarks are for one core: run them with -cpu 1.
// On a shared machine wall time says little, so each also reports the CPU
// time the process spent (user and system, GC included) per check.

// cpuTime returns the CPU time the process has used.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	require.NoError(tb, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCheck100k checks the 100,000-operation history (target: 1 s).
func BenchmarkCheck100k(b *testing.B) {
	ops := generate(b, long100k)
	var cpu time.Duration
	for b.Loop() {
		c := cpuTime(b)
		res, err := Check(ops, Options{})
		cpu += cpuTime(b) - c
		require.NoError(b, err)
		require.Equal(b, VerdictOK, res.Verdict, res.Reason)
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/check")
	b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/check")
	b.ReportMetric(float64(len(ops)*b.N)/b.Elapsed().Seconds(), "ops/s")
}

// BenchmarkCheckTestHistories checks every history the tests generate and
// check with the default budget (TestGeneratedHistoriesAreLinearizable's
// 30 seeds, TestMutatedHistoriesAreNot's mutated histories) and reports the
// slowest (target: 2 s each).
func BenchmarkCheckTestHistories(b *testing.B) {
	var hs [][]Operation
	for seed := range uint64(30) {
		hs = append(hs, generate(b, suiteConfig(seed)))
	}
	for _, m := range mutations {
		for seed := range uint64(12) {
			ops := generate(b, mutationConfig(seed))
			if m.apply(ops, rand.New(rand.NewPCG(seed, 99))) {
				hs = append(hs, ops)
			}
		}
	}
	var worst, worstCPU time.Duration
	for b.Loop() {
		for _, ops := range hs {
			start, c := time.Now(), cpuTime(b)
			_, err := Check(ops, Options{})
			worstCPU = max(worstCPU, cpuTime(b)-c)
			worst = max(worst, time.Since(start))
			require.NoError(b, err)
		}
	}
	b.ReportMetric(float64(len(hs)), "histories")
	b.ReportMetric(worst.Seconds(), "max-s/check")
	b.ReportMetric(worstCPU.Seconds(), "max-cpu-s/check")
}
