package cluster

import (
	"fmt"

	"bytes"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
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
// store reports, or one the runtime sees itself; and every store point
// can be drawn.
func TestCrashPointsAreKnown(t *testing.T) {
	var want []string
	for _, p := range store.Points {
		want = append(want, string(p))
	}
	want = append(want, afterAppendResponse, afterVote)
	require.ElementsMatch(t, want, chaos.CrashPoints)
}

// TestSimMembershipChanges: each membership kind, applied through chaos on a
// simulated cluster under a trickle of writes, ends with the cluster of its
// original size converged, the slot's member replaced by one with a new ID
// that every member lists, and the old ID gone from every list.
func TestSimMembershipChanges(t *testing.T) {
	for _, kind := range []chaos.Kind{chaos.MemberReplace, chaos.LearnerPromote, chaos.RemoveVoter} {
		t.Run(string(kind), func(t *testing.T) {
			release := detrand.Acquire(11)
			defer release()
			w := sim.NewWorld(sim.Config{Seed: 11})
			c, err := NewSim(w, SimConfig{Members: 3, Dir: t.TempDir(), SnapshotCount: 50, CatchUpEntries: 10})
			require.NoError(t, err)
			defer c.Close()
			require.NoError(t, w.RunFor(3*time.Second))
			put := func(i int) {
				if l := c.Leader(); l != "" {
					c.members[l].submitOp(store.Request{Put: &pb.PutRequest{Key: []byte(fmt.Sprintf("k%d", i%7)), Value: []byte("v")}},
						func(store.Response) {})
				}
			}
			for i := range 200 {
				w.Schedule(time.Duration(i)*20*time.Millisecond, "put", func() { put(i) })
			}
			old := c.MemberID("m2")
			heal, desc, err := chaos.Apply(c, chaos.Fault{Kind: kind, Members: []int{1}, Duration: 2 * time.Second})
			require.NoError(t, err, desc)
			require.NoError(t, w.RunFor(2*time.Second))
			require.NoError(t, heal())
			require.NoError(t, w.RunUntil(func() bool { ok, _ := c.Converged(); return ok }, 20*time.Second), "%v", c.MemberChanges())
			require.NoError(t, c.Err())
			id := c.MemberID("m2")
			require.NotZero(t, id)
			require.NotEqual(t, old, id, "a new ID")
			for _, name := range c.Members() {
				var ids []uint64
				for _, m := range c.Node(name).Members() {
					ids = append(ids, m.ID)
					require.False(t, m.IsLearner, "%s lists %x as a learner still", name, m.ID)
				}
				require.Contains(t, ids, id, name)
				require.NotContains(t, ids, old, name)
				require.Len(t, ids, 3)
			}
			require.Positive(t, c.Node("m2").Status().Applied)
			t.Log(c.MemberChanges())
		})
	}
}

// answers is a client host that records the members' answers.
type answers struct{ got []store.Response }

func (a *answers) Start(*sim.Host) {}
func (a *answers) Receive(_ string, p any) {
	if r, ok := p.(*ClientResponse); ok {
		a.got = append(a.got, r.Resp)
	}
}

// TestRemovedMemberStopsServing: a member that has applied its own removal
// (here the leader, which removes itself) refuses clients with
// store.ErrRemoved instead of serving them from a replica the cluster no
// longer updates.
func TestRemovedMemberStopsServing(t *testing.T) {
	release := detrand.Acquire(5)
	defer release()
	w := sim.NewWorld(sim.Config{Seed: 5})
	c, err := NewSim(w, SimConfig{Members: 3, Dir: t.TempDir()})
	require.NoError(t, err)
	defer c.Close()
	a := &answers{}
	w.AddHost("c01", a)
	require.NoError(t, w.RunFor(3*time.Second))
	lead := c.Leader()
	require.NotEmpty(t, lead)
	get := &ClientRequest{ID: 1, Req: store.Request{Range: &pb.RangeRequest{Key: []byte("k"), Serializable: true}}}
	w.Schedule(0, "get", func() { w.Host("c01").Send(lead, get) })
	require.NoError(t, w.RunFor(time.Second))
	require.Len(t, a.got, 1)
	require.NoError(t, a.got[0].Err, "served before the removal")
	var removed store.Response
	w.Schedule(0, "remove", func() {
		c.members[lead].submitOp(store.Request{MemberRemove: &pb.MemberRemoveRequest{ID: c.MemberID(lead)}}, func(r store.Response) { removed = r })
	})
	require.NoError(t, w.RunFor(time.Second))
	require.NoError(t, removed.Err)
	require.True(t, c.Node(lead).Removed())
	w.Schedule(0, "get", func() { w.Host("c01").Send(lead, get) })
	require.NoError(t, w.RunFor(time.Second))
	require.Len(t, a.got, 2)
	require.ErrorIs(t, a.got[1].Err, store.ErrRemoved)
	require.True(t, a.got[1].Definite)
}

// TestLearnerServesOnlySerializableReads: while m2 is a learner it refuses a
// put (ErrLearner, definite) and serves a serializable get; once promoted it
// serves the put.
func TestLearnerServesOnlySerializableReads(t *testing.T) {
	release := detrand.Acquire(3)
	defer release()
	w := sim.NewWorld(sim.Config{Seed: 3})
	c, err := NewSim(w, SimConfig{Members: 3, Dir: t.TempDir()})
	require.NoError(t, err)
	defer c.Close()
	a := &answers{}
	w.AddHost("c01", a)
	require.NoError(t, w.RunFor(3*time.Second))
	heal, _, err := chaos.Apply(c, chaos.Fault{Kind: chaos.LearnerPromote, Members: []int{1}})
	require.NoError(t, err)
	require.NoError(t, w.RunFor(2*time.Second))
	require.True(t, c.Node("m2").Status().IsLearner)
	put := store.Request{Put: &pb.PutRequest{Key: []byte("k"), Value: []byte("v")}}
	get := store.Request{Range: &pb.RangeRequest{Key: []byte("k"), Serializable: true}}
	send := func(id uint64, r store.Request) {
		w.Schedule(0, "send", func() { w.Host("c01").Send("m2", &ClientRequest{ID: id, Req: r}) })
		require.NoError(t, w.RunFor(time.Second))
	}
	send(1, put)
	send(2, get)
	require.Len(t, a.got, 2)
	require.ErrorIs(t, a.got[0].Err, ErrLearner)
	require.True(t, a.got[0].Definite)
	require.NoError(t, a.got[1].Err)
	require.NoError(t, heal())
	require.NoError(t, w.RunUntil(func() bool { ok, _ := c.Converged(); return ok }, 10*time.Second))
	require.False(t, c.Node("m2").Status().IsLearner)
	send(3, put)
	require.Len(t, a.got, 3)
	require.NoError(t, a.got[2].Err)
}

// TestNoteVoteFindsADoubleVote: a voter may send its vote in a term again for
// the same candidate, but a vote for a second candidate in that term is a
// finding naming both.
func TestNoteVoteFindsADoubleVote(t *testing.T) {
	c := &Sim{w: sim.NewWorld(sim.Config{Seed: 1}), byID: map[uint64]string{1: "m1", 2: "m2", 3: "m3"}, votes: map[voteKey]uint64{}}
	c.noteVote(2, 7, 1)
	c.noteVote(2, 7, 1)
	c.noteVote(2, 8, 3)
	c.noteVote(1, 7, 1)
	require.NoError(t, c.Err())
	c.noteVote(2, 7, 3)
	require.ErrorContains(t, c.Err(), "member m2 voted for m1 and then for m3 in term 7")
}
