//go:build havoc_mutants

package scenarios

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/havoclab/havoc/chaos"
	"github.com/havoclab/havoc/internal/mutant"
)

// confChangeEarlySchedule replaces m1, the leader, while every link is slow:
// the new leader takes office with m1's removal in its log uncommitted, so
// raft drops the MemberAdd proposed in the first few hundred milliseconds of
// its term (one conf change at a time). The operator's retry is then told the
// peer URL exists: with conf-change-early the new leader listed the dropped
// member as it proposed it, and the operator starts that phantom member.
var confChangeEarlySchedule = chaos.Schedule{
	{At: 2500 * time.Millisecond, Duration: 5 * time.Second, Kind: chaos.Delay, Latency: 300 * time.Millisecond},
	{At: 3 * time.Second, Duration: 2 * time.Second, Kind: chaos.MemberReplace, Members: []int{0}},
}

// TestConfChangeEarlyIsCaught: with HAVOC_MUTANT=conf-change-early (go test
// -tags havoc_mutants) the run ends in divergence, a member list that is not
// the raft configuration; with no mutant the same run passes.
func TestConfChangeEarlyIsCaught(t *testing.T) {
	switch mutant.Active() {
	case mutant.ConfChangeEarly, "":
	default:
		t.Skipf("%s=%s is another mutant", mutant.EnvVar, mutant.Active())
	}
	res, err := RunSim(Config{Seed: 3, Duration: 10 * time.Second, Schedule: confChangeEarlySchedule})
	require.NoError(t, err)
	if mutant.Active() == "" {
		require.True(t, res.Passed(), "%s: %s", res.Verdict, res.Reason)
		return
	}
	require.Equal(t, VerdictDivergence, res.Verdict, res.Reason)
	require.Contains(t, res.Reason, "membership: m3 lists members")
	require.Contains(t, res.Reason, "but its raft configuration is")
}
