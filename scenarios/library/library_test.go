package library

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/havoclab/havoc/scenarios"
	"github.com/havoclab/havoc/scenarios/drill"
)

func TestLibraryIsValid(t *testing.T) {
	all, err := All()
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(all), 12)
	names := map[string]bool{}
	for _, e := range all {
		s := e.Scenario
		require.NotEmpty(t, s.Description, s.Name)
		require.Zero(t, s.Seed, "%s: a library scenario takes its seed from the run", s.Name)
		names[s.Name] = true
	}
	for _, d := range drill.Names {
		require.True(t, names["drill-"+d], "every drill is in the library: %s", d)
	}
	for _, p := range Pending {
		require.False(t, names[p.Name], "%s is pending and not in the library", p.Name)
	}
	_, ok, err := Get("leader-isolation")
	require.NoError(t, err)
	require.True(t, ok)
	_, ok, err = Get("no-such-scenario")
	require.NoError(t, err)
	require.False(t, ok)
}

// exercised maps a scenario to a trace line fragment that shows it did what
// its description says, so that a change cannot quietly turn it into an
// ordinary run.
var exercised = map[string]string{
	"snapshot-catch-up": "type:MsgSnap", // the leader sent the follower a snapshot
	// a member was removed, wiped and added back with a new ID
	"member-replace-under-load": "added through",
	// the leader refused to promote a learner that was cut off
	"learner-promotion-during-partition": "can only promote a learner member which is in sync with leader",
}

// TestLibraryVerdicts runs every library scenario in the simulator for two
// seeds (one with -short) and requires the verdict each expects.
func TestLibraryVerdicts(t *testing.T) {
	all, err := All()
	require.NoError(t, err)
	seeds := []uint64{1, 2}
	if testing.Short() {
		seeds = seeds[:1]
	}
	for _, e := range all {
		s := e.Scenario
		for _, seed := range seeds {
			t.Run(fmt.Sprintf("%s/seed-%d", s.Name, seed), func(t *testing.T) {
				s.Seed = seed
				if s.Drill != "" {
					dc, err := s.DrillConfig()
					require.NoError(t, err)
					r, err := drill.Run(context.Background(), s.Drill, dc, drill.Backend{})
					require.NoError(t, err)
					require.Equal(t, s.ExpectedVerdict(), r.Verdict, "%s", r)
					return
				}
				c, err := s.Config()
				require.NoError(t, err)
				mark, traced := exercised[s.Name]
				c.Trace = traced
				r, err := scenarios.RunSim(c)
				require.NoError(t, err)
				require.Equal(t, s.ExpectedVerdict(), r.Verdict, "%s: %s\n%v", s.Name, r.Reason, r.FaultLog)
				if traced {
					require.Contains(t, string(r.Trace), mark, "%s no longer exercises what it names", s.Name)
				}
				t.Logf("%s seed %d: %s, %d ops, virtual %s, wall %s", s.Name, seed, r.Verdict, r.Operations, r.Virtual, r.Wall)
			})
		}
	}
}
