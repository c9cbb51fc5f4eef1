package scenario

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/havoclab/havoc/chaos"
	"github.com/havoclab/havoc/linearizability"
	"github.com/havoclab/havoc/scenarios"
)

// TestSwarmDrawIsValidAndRoundTrips: over 1000 seeds the swarm draw is a
// function of the seed, always valid, within its ranges (a non-empty subset
// of the fault kinds, every profile drawn, a mix of the drawn profile's with
// a read and a write), and its scenario file
// decodes to the same configuration, so a failing seed replays without the
// swarm.
func TestSwarmDrawIsValidAndRoundTrips(t *testing.T) {
	n := uint64(1000)
	if testing.Short() {
		n = 200
	}
	reads := []linearizability.Kind{linearizability.KindGet, linearizability.KindRange}
	writes := []linearizability.Kind{linearizability.KindPut, linearizability.KindDelete, linearizability.KindCAS, linearizability.KindPutLease}
	sizes, profiles := map[int]int{}, map[string]int{}
	for seed := uint64(1); seed <= n; seed++ {
		for _, d := range []time.Duration{10 * time.Second, time.Minute} {
			base := scenarios.Config{Seed: seed, Duration: d}
			c, err := scenarios.Swarm(base)
			require.NoError(t, err, "seed %d", seed)
			again, err := scenarios.Swarm(base)
			require.NoError(t, err)
			require.Equal(t, c, again, "seed %d: the draw is a function of the seed", seed)
			require.NoError(t, c.Validate())
			require.Contains(t, []int{1, 3, 5}, c.Members)
			sizes[c.Members]++
			profile := c.Workload.Profile
			profiles[profile]++
			require.NotEmpty(t, c.Faults)
			for _, k := range c.Faults {
				require.Contains(t, chaos.AllKinds, k)
			}
			hasRead, hasWrite := false, false
			for _, m := range c.Workload.Mix {
				require.Contains(t, scenarios.Profiles[profile], m, "seed %d: the mix is a subset of the profile's", seed)
				hasRead = hasRead || containsKind(reads, m.Kind)
				hasWrite = hasWrite || containsKind(writes, m.Kind)
			}
			require.True(t, hasRead && hasWrite, "seed %d %s: %v", seed, profile, c.Workload.Mix)
			require.Equal(t, base.Duration, c.Duration)
			require.LessOrEqual(t, c.Workload.Rate/float64(c.Workload.Keys), 16.0, "seed %d: a key is offered at most 16 ops/s", seed)

			got, b := roundTrip(t, c)
			require.Equal(t, normal(c), normal(got), "seed %d:\n%s", seed, b)
		}
	}
	require.Len(t, sizes, 3, "every cluster size is drawn")
	require.Len(t, profiles, len(scenarios.Profiles), "every profile is drawn: %v", profiles)
}

func containsKind(ks []linearizability.Kind, k linearizability.Kind) bool {
	for _, x := range ks {
		if x == k {
			return true
		}
	}
	return false
}
