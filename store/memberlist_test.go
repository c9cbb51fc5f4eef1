package store

import (
	"testing"

	"github.com/stretchr/testify/require"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// TestLinearizableMemberList: a member cut off from the others misses a member
// update. A serializable member list may answer from its stale table; a
// linearizable one (clientv3's default) must wait for a ReadIndex and so answer
// only once the member has applied the update, as etcd's linearizableReadNotify.
func TestLinearizableMemberList(t *testing.T) {
	l := newLoop(t, 3, 47, 0)
	lead := l.waitLeader()
	l.tick(3)
	f := l.followers(lead)[0]
	l.isolate(f, true)
	upd := l.do(lead, Request{MemberUpdate: &pb.MemberUpdateRequest{ID: lead, PeerURLs: []string{"http://moved:2380"}}})
	require.NoError(t, upd.Err)
	peersOf := func(r *pb.MemberListResponse) []string {
		for _, m := range r.Members {
			if m.ID == lead {
				return m.PeerURLs
			}
		}
		return nil
	}

	stale := l.do(f, Request{MemberList: &pb.MemberListRequest{Linearizable: false}})
	require.NoError(t, stale.Err)
	require.NotEqual(t, []string{"http://moved:2380"}, peersOf(stale.MemberList), "the cut-off member has not seen the update")

	l.token++
	tok := l.token
	l.nodes[f].Submit(tok, Request{MemberList: &pb.MemberListRequest{Linearizable: true}})
	l.tick(3)
	if r, ok := l.resps[tok]; ok {
		require.Error(t, r.Err, "a linearizable member list must not answer from a stale table")
	}
	l.isolate(f, false)
	for range 100 {
		if _, ok := l.resps[tok]; ok {
			break
		}
		l.tick(1)
	}
	r, ok := l.resps[tok]
	require.True(t, ok, "answered once the member is back")
	require.NoError(t, r.Err)
	require.Equal(t, []string{"http://moved:2380"}, peersOf(r.MemberList))
}
