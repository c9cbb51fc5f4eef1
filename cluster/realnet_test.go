package cluster

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/havoclab/havoc/chaos"
	"github.com/havoclab/havoc/cluster/linkproxy"
)

// noEndpoints is a memberEndpoints with three members and no clients: the
// link verbs need only the names.
type noEndpoints struct{}

func (noEndpoints) Members() []string { return []string{"m1", "m2", "m3"} }
func (noEndpoints) Client(string) (*clientv3.Client, error) {
	return nil, errors.New("no clients in this test")
}
func (noEndpoints) ClientURL(string) string { return "" }

// linkStates renders every unhealthy direction between m1..m3, in order.
func linkStates(n *linkproxy.Network) map[string]linkproxy.LinkState {
	out := map[string]linkproxy.LinkState{}
	for _, a := range (noEndpoints{}).Members() {
		for _, b := range (noEndpoints{}).Members() {
			if s := n.Link(a, b); s != (linkproxy.LinkState{}) {
				out[a+"->"+b] = s
			}
		}
	}
	return out
}

// TestRealNetLinkState runs orderings of cuts, degradations and heals on the
// shared link verbs of the real backends, with no member running: a cut and a
// degradation are independent, and each undo heals only what its fault broke.
func TestRealNetLinkState(t *testing.T) {
	ms := []string{"m1", "m2", "m3"}
	slow := chaos.Links{Loss: 0.1, LatencyMin: 10 * time.Millisecond, LatencyMax: 20 * time.Millisecond}
	slowState := linkproxy.LinkState{Loss: 0.1, LatencyMin: 10 * time.Millisecond, LatencyMax: 20 * time.Millisecond}
	cutSlow := slowState
	cutSlow.Cut = true
	cut := linkproxy.LinkState{Cut: true}
	// every direction but those listed has state s.
	all := func(s linkproxy.LinkState, except map[string]linkproxy.LinkState) map[string]linkproxy.LinkState {
		out := map[string]linkproxy.LinkState{}
		for _, a := range ms {
			for _, b := range ms {
				if a != b {
					out[a+"->"+b] = s
				}
			}
		}
		for k, v := range except {
			if v == (linkproxy.LinkState{}) {
				delete(out, k)
			} else {
				out[k] = v
			}
		}
		return out
	}
	type step func(r *realNet) error
	partition := func(r *realNet) error { return r.Partition([]string{"m1"}, []string{"m2", "m3"}) }
	repair := func(r *realNet) error { return r.Repair([]string{"m1"}, []string{"m2", "m3"}) }
	oneWay := func(r *realNet) error { return r.PartitionOneWay([]string{"m2"}, []string{"m3"}) }
	repairOneWay := func(r *realNet) error { return r.RepairOneWay([]string{"m2"}, []string{"m3"}) }
	degrade := func(r *realNet) error { return r.DegradeLinks(slow) }
	restore := func(r *realNet) error { return r.RestoreLinks() }
	heal := func(r *realNet) error { return r.HealNetwork() }
	isolated := map[string]linkproxy.LinkState{"m1->m2": cut, "m2->m1": cut, "m1->m3": cut, "m3->m1": cut}
	for _, tc := range []struct {
		name  string
		steps []step
		want  map[string]linkproxy.LinkState
	}{
		{"partition", []step{partition}, isolated},
		{"partition then repair", []step{partition, repair}, map[string]linkproxy.LinkState{}},
		{"degrade keeps an earlier cut", []step{partition, degrade},
			all(slowState, map[string]linkproxy.LinkState{"m1->m2": cutSlow, "m2->m1": cutSlow, "m1->m3": cutSlow, "m3->m1": cutSlow})},
		{"cut keeps an earlier degradation", []step{degrade, partition},
			all(slowState, map[string]linkproxy.LinkState{"m1->m2": cutSlow, "m2->m1": cutSlow, "m1->m3": cutSlow, "m3->m1": cutSlow})},
		{"repair heals only the cut", []step{degrade, partition, repair}, all(slowState, nil)},
		{"restore heals only the degradation", []step{partition, degrade, restore}, isolated},
		{"restore then repair is healthy", []step{degrade, partition, restore, repair}, map[string]linkproxy.LinkState{}},
		{"one-way cuts one direction", []step{oneWay}, map[string]linkproxy.LinkState{"m2->m3": cut}},
		{"one-way repair leaves the partition", []step{partition, oneWay, repairOneWay}, isolated},
		{"partition repair leaves the one-way cut", []step{oneWay, partition, repair}, map[string]linkproxy.LinkState{"m2->m3": cut}},
		{"degrade replaces a degradation", []step{degrade, func(r *realNet) error { return r.DegradeLinks(chaos.Links{Loss: 0.5}) }},
			all(linkproxy.LinkState{Loss: 0.5}, nil)},
		{"heal ends everything", []step{oneWay, degrade, partition, heal}, map[string]linkproxy.LinkState{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := linkproxy.NewNetwork(1)
			defer n.Close()
			var events []string
			r := &realNet{eps: noEndpoints{}, lnet: func() (*linkproxy.Network, error) { return n, nil },
				event: func(what string) { events = append(events, what) }}
			for _, s := range tc.steps {
				require.NoError(t, s(r))
			}
			require.Equal(t, tc.want, linkStates(n))
			require.Len(t, events, len(tc.steps), "every verb is recorded")
		})
	}

	t.Run("refused verbs change nothing", func(t *testing.T) {
		n := linkproxy.NewNetwork(1)
		defer n.Close()
		r := &realNet{eps: noEndpoints{}, lnet: func() (*linkproxy.Network, error) { return n, nil }, event: func(string) {}}
		require.NoError(t, r.DegradeLinks(slow))
		require.ErrorIs(t, r.DegradeLinks(chaos.Links{Duplicate: 0.1, Loss: 0.9}), chaos.ErrUnsupported)
		require.ErrorIs(t, r.DegradeLinks(chaos.Links{Reorder: 0.1}), chaos.ErrUnsupported)
		require.ErrorContains(t, r.Partition([]string{"m1"}, []string{"m4"}), `no member "m4"`)
		require.ErrorContains(t, r.PartitionOneWay([]string{"x"}, []string{"m1"}), `no member "x"`)
		require.Equal(t, all(slowState, nil), linkStates(n))
	})

	t.Run("before start", func(t *testing.T) {
		r := &realNet{eps: noEndpoints{}, lnet: func() (*linkproxy.Network, error) { return nil, errNotStarted }, event: func(string) {}}
		require.ErrorIs(t, r.Partition([]string{"m1"}, []string{"m2"}), errNotStarted)
		require.ErrorIs(t, r.HealNetwork(), errNotStarted)
		require.ErrorIs(t, r.RestoreLinks(), errNotStarted)
		require.Equal(t, "", r.Leader(), "no member answers")
	})
}

// TestChooseLeader pins the one leader rule of every backend.
func TestChooseLeader(t *testing.T) {
	c := func(m string, term uint64, leads bool) leaderClaim {
		return leaderClaim{member: m, term: term, leads: leads}
	}
	for i, tc := range []struct {
		claims []leaderClaim
		want   string
	}{
		{nil, ""},
		{[]leaderClaim{c("m1", 3, false), c("m2", 3, false)}, ""},
		{[]leaderClaim{c("m1", 3, false), c("m2", 3, true), c("m3", 3, false)}, "m2"},
		// A stale leader cut off in term 3 and the new one in term 4.
		{[]leaderClaim{c("m1", 3, true), c("m2", 4, true), c("m3", 4, false)}, "m2"},
		{[]leaderClaim{c("m1", 5, true), c("m2", 4, true)}, "m1"},
		// A follower's higher term does not name a leader.
		{[]leaderClaim{c("m1", 3, true), c("m2", 9, false)}, "m1"},
		// Two claims in one term (a broken store): the later member, as Sim always chose.
		{[]leaderClaim{c("m1", 4, true), c("m3", 4, true)}, "m3"},
	} {
		t.Run(fmt.Sprint(i), func(t *testing.T) { require.Equal(t, tc.want, chooseLeader(tc.claims)) })
	}
}
