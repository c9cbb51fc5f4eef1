//go:build unix

package scenarios

import (
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/havoclab/havoc/chaos"
	"github.com/havoclab/havoc/linearizability"
)

// BenchmarkCheckProfiles measures the check alone (linearizability, as
// BenchmarkCheckDefaultRun) of the default 60 s run of seed 1 in each traffic
// profile. The target is a second of CPU per check on one core (-cpu 1).
func BenchmarkCheckProfiles(b *testing.B) {
	for _, p := range ProfileNames() {
		b.Run(p, func(b *testing.B) {
			res, err := RunSim(Config{Seed: 1, Faults: chaos.AllKinds, Workload: Workload{Profile: p}})
			require.NoError(b, err)
			require.True(b, res.Passed(), "%s: %s", res.Verdict, res.Reason)
			runtime.GC()
			var cpu float64
			for b.Loop() {
				c := cpuTime(b)
				out, err := linearizability.Check(res.History, linearizability.Options{})
				cpu += (cpuTime(b) - c).Seconds()
				require.NoError(b, err)
				require.Equal(b, linearizability.VerdictOK, out.Verdict, out.Reason)
			}
			b.ReportMetric(cpu/float64(b.N), "cpu-s/check")
			b.ReportMetric(float64(len(res.History)), "ops")
		})
	}
}
