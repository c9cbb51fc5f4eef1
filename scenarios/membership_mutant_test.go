//go:build havoc_mutants

package scenarios

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/havoclab/havoc/chaos"
	"github.com/havoclab/havoc/internal/mutant"
)

// confChangeEarlySchedule replaces member i (the leader, for some seeds)
// while every link is slow: a new leader takes office with the removal in its
// log uncommitted, so raft drops a MemberAdd proposed in the first few hundred
// milliseconds of its term (one conf change at a time). The operator's retry
// is then told the peer URL exists: with conf-change-early the new leader
// listed the dropped member as it proposed it, and the operator starts that
// phantom member.
func confChangeEarlySchedule(i int) chaos.Schedule {
	return chaos.Schedule{
		{At: 2500 * time.Millisecond, Duration: 5 * time.Second, Kind: chaos.Delay, Latency: 300 * time.Millisecond},
		{At: 3 * time.Second, Duration: 2 * time.Second, Kind: chaos.MemberReplace, Members: []int{i}},
	}
}

// TestConfChangeEarlyIsCaught: with HAVOC_MUTANT=conf-change-early (go test
// -tags havoc_mutants) one of a few short runs that replace a member under
// slow links ends in divergence, a member list that is not the raft
// configuration; with no mutant they pass. (The trigger is a timing window,
// so the test tries seeds 1-6 and each member rather than pinning one run.)
func TestConfChangeEarlyIsCaught(t *testing.T) {
	switch mutant.Active() {
	case mutant.ConfChangeEarly, "":
	default:
		t.Skipf("%s=%s is another mutant", mutant.EnvVar, mutant.Active())
	}
	for seed := uint64(1); seed <= 6; seed++ {
		for i := range 3 {
			res, err := RunSim(Config{Seed: seed, Duration: 10 * time.Second, Schedule: confChangeEarlySchedule(i)})
			require.NoError(t, err)
			if mutant.Active() == "" {
				require.True(t, res.Passed(), "seed %d m%d: %s: %s", seed, i+1, res.Verdict, res.Reason)
				continue
			}
			if res.Passed() {
				continue
			}
			require.Equal(t, VerdictDivergence, res.Verdict, res.Reason)
			require.Contains(t, res.Reason, "membership: ")
			require.Contains(t, res.Reason, "but its raft configuration is")
			t.Logf("caught by seed %d, replacing m%d: %s", seed, i+1, res.Reason)
			return
		}
	}
	if mutant.Active() != "" {
		t.Fatal("conf-change-early missed in 18 runs")
	}
}
