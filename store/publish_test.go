package store

import (
	"testing"

	"github.com/stretchr/testify/require"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// TestPublishRetriesUntilApplied loses a member's first publish proposal (its
// links to the others are cut one way, so it still hears the leader). A member
// counts as published only once its attributes are applied, and retries until
// then, as etcd's publish does; before, forwarding the proposal once was enough
// and the member list never showed the member's client URLs.
func TestPublishRetriesUntilApplied(t *testing.T) {
	l := newLoop(t, 3, 43, 0)
	f := l.ids()[0]
	for _, other := range l.ids() {
		l.cut[[2]uint64{f, other}] = true
	}
	lead := l.waitLeader()
	require.NotEqual(t, f, lead)
	l.tick(10)
	require.Equal(t, lead, l.nodes[f].lead, "the member knows the leader, so it tried to publish")
	for _, other := range l.ids() {
		l.cut[[2]uint64{f, other}] = false
	}
	l.tick(3 * l.nodes[f].cfg.ElectionTicks)
	r := l.do(lead, Request{MemberList: &pb.MemberListRequest{}})
	require.NoError(t, r.Err)
	var got *pb.Member
	for _, m := range r.MemberList.Members {
		if m.ID == f {
			got = m
		}
	}
	require.NotNil(t, got)
	require.Equal(t, []string{"http://" + l.names[f]}, got.ClientURLs, "the member's attributes must be applied")
	require.True(t, l.nodes[f].published)
}
