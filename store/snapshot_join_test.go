package store

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// TestMemberAddedAfterCompactionCatchesUp: a member added after the leader
// compacted its log can only start from a snapshot, and the snapshot raft keeps
// in storage predates the member, so its configuration does not name it (raft
// refuses such a snapshot). As etcd does, the leader sends the snapshot as of
// its applied index and configuration instead.
func TestMemberAddedAfterCompactionCatchesUp(t *testing.T) {
	for _, learner := range []bool{true, false} {
		t.Run(fmt.Sprintf("learner=%v", learner), func(t *testing.T) {
			l := newLoop(t, 3, 9, 10)
			lead := l.waitLeader()
			for i := range 30 {
				l.put(lead, fmt.Sprintf("k%02d", i), "v")
			}
			first, _ := l.nodes[lead].storage.FirstIndex()
			require.Greater(t, first, uint64(1), "the leader must have compacted its log")
			peer := "http://127.0.0.1:2399"
			r := l.do(lead, Request{MemberAdd: &pb.MemberAddRequest{PeerURLs: []string{peer}, IsLearner: learner}})
			require.NoError(t, r.Err)
			id := r.MemberAdd.Member.ID
			l.names[id], l.disks[id] = "m4", newMemDisk()
			l.initial = append(l.initial, memberOf(id, "m4", peer))
			l.open(id, true)
			l.tick(30)
			st := l.nodes[id].Status()
			require.Greater(t, st.SnapshotIndex, uint64(0), "the new member starts from a snapshot")
			require.Equal(t, l.nodes[lead].Status().Applied, st.Applied, "the new member caught up")
			require.Len(t, l.get(id, "k29", true).Kvs, 1)
			if learner {
				r = l.do(lead, Request{MemberPromote: &pb.MemberPromoteRequest{ID: id}})
				require.NoError(t, r.Err, "the learner is in sync")
			}
			l.put(lead, "after", "join")
			l.requireConverged()
		})
	}
}
