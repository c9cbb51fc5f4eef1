package cluster

import (
	"bytes"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/havoclab/havoc/internal/detrand"
	"github.com/havoclab/havoc/sim"
)

// TestSimTraceNamesMembers: raft messages in the trace name members m1..mN,
// not their 64-bit raft IDs.
func TestSimTraceNamesMembers(t *testing.T) {
	release := detrand.Acquire(7)
	defer release()
	var trace bytes.Buffer
	w := sim.NewWorld(sim.Config{Seed: 7, Trace: &trace})
	c, err := NewSim(w, SimConfig{Members: 3, Dir: t.TempDir()})
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, w.RunFor(3*time.Second))
	s := trace.String()
	require.Regexp(t, `m(\d) send -> m(\d) type:MsgPreVote to:m\d from:m\d `, s)
	require.Contains(t, s, "logTerm:")
	require.NotRegexp(t, regexp.MustCompile(`(to|from):[0-9]{6,}`), s, "raw raft IDs in the trace")
	for id, name := range c.byID {
		require.NotContains(t, s, ":"+itoa(id), "raft ID of %s", name)
	}
}

func itoa(u uint64) string {
	var b []byte
	for {
		b = append([]byte{byte('0' + u%10)}, b...)
		if u /= 10; u == 0 {
			return string(b)
		}
	}
}

func TestNameIDs(t *testing.T) {
	c := &Sim{byID: map[uint64]string{691793654489339348: "m3", 42: "m1"}}
	require.Equal(t, "to:m3 from:m1 term:2 index:421 x42 42y conf_state:{voters:m3 voters:m1}",
		c.nameIDs("to:691793654489339348 from:42 term:2 index:421 x42 42y conf_state:{voters:691793654489339348 voters:42}"))
}
