package cluster

import (
	"bytes"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/havoclab/havoc/chaos"
	"github.com/havoclab/havoc/internal/detrand"
	"github.com/havoclab/havoc/sim"
	"github.com/havoclab/havoc/store"
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
	require.Regexp(t, `m\d send -> m\d type:MsgPreVote to:m\d from:m\d term:\d+ logTerm:\d+ index:\d+\n`, s)
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

func TestDescribeMessage(t *testing.T) {
	c := &Sim{byID: map[uint64]string{691793654489339348: "m3", 42: "m1"}}
	msg := &raftpb.Message{Type: raftpb.MsgApp.Enum(), To: proto.Uint64(691793654489339348), From: proto.Uint64(42), Term: proto.Uint64(2),
		LogTerm: proto.Uint64(1), Index: proto.Uint64(3), Commit: proto.Uint64(3),
		Entries: []*raftpb.Entry{{Term: proto.Uint64(2), Index: proto.Uint64(4)}, {Term: proto.Uint64(2), Index: proto.Uint64(5), Type: raftpb.EntryConfChangeV2.Enum()}}}
	s, ok := c.describe(msg)
	require.True(t, ok)
	require.Equal(t, "type:MsgApp to:m3 from:m1 term:2 logTerm:1 index:3 entries:{Term:2 Index:4} entries:{Term:2 Index:5 Type:EntryConfChangeV2} commit:3", s)
	_, ok = c.describe("not a raft message")
	require.False(t, ok)
	require.Equal(t, "7", c.memberName(7))
}

// TestCrashPointsAreKnown: every crash point chaos can draw is a point the
// store reports, or the one the runtime sees itself; and every store point
// can be drawn.
func TestCrashPointsAreKnown(t *testing.T) {
	var want []string
	for _, p := range store.Points {
		want = append(want, string(p))
	}
	want = append(want, afterAppendResponse)
	require.ElementsMatch(t, want, chaos.CrashPoints)
}
