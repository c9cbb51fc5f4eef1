package cluster

import (
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/havoclab/havoc/chaos"
	"github.com/havoclab/havoc/cluster/linkproxy"
	"github.com/havoclab/havoc/internal/detrand"
	"github.com/havoclab/havoc/sim"
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
// degradation are independent, a direction stays cut while any cause holds
// it, scoped degradations combine, and each scoped heal undoes only its own
// fault.
func TestRealNetLinkState(t *testing.T) {
	ms := []string{"m1", "m2", "m3"}
	slow := chaos.Links{Loss: 0.1, LatencyMin: 10 * time.Millisecond, LatencyMax: 20 * time.Millisecond}
	slowState := linkproxy.LinkState{Loss: 0.1, LatencyMin: 10 * time.Millisecond, LatencyMax: 20 * time.Millisecond}
	cutSlow := slowState
	cutSlow.Cut = true
	cut := linkproxy.LinkState{Cut: true}
	none := map[string]linkproxy.LinkState{}
	// all: every direction has s, but those in except.
	all := func(s linkproxy.LinkState, except map[string]linkproxy.LinkState) map[string]linkproxy.LinkState {
		out := map[string]linkproxy.LinkState{}
		for _, a := range ms {
			for _, b := range ms {
				if a != b && s != (linkproxy.LinkState{}) {
					out[a+"->"+b] = s
				}
			}
		}
		for k, v := range except {
			out[k] = v
		}
		return out
	}
	isolated := map[string]linkproxy.LinkState{"m1->m2": cut, "m2->m1": cut, "m1->m3": cut, "m3->m1": cut}
	isolatedSlow := all(slowState, map[string]linkproxy.LinkState{"m1->m2": cutSlow, "m2->m1": cutSlow, "m1->m3": cutSlow, "m3->m1": cutSlow})

	// A test case is a list of steps over named heals: "+name" starts a
	// fault and keeps its heal under name, "-name" runs that heal.
	type env struct {
		r     *realNet
		heals map[string]func() error
	}
	start := func(name string, f func(r *realNet) (func() error, error)) func(*env) error {
		return func(e *env) error {
			h, err := f(e.r)
			e.heals[name] = h
			return err
		}
	}
	end := func(name string) func(*env) error { return func(e *env) error { return e.heals[name]() } }
	do := func(f func(r *realNet) error) func(*env) error { return func(e *env) error { return f(e.r) } }

	scopedPartition := start("part", func(r *realNet) (func() error, error) {
		return r.CutLinks([]string{"m1"}, []string{"m2", "m3"}, true)
	})
	scopedIsolate := start("iso", func(r *realNet) (func() error, error) {
		return r.CutLinks([]string{"m1"}, []string{"m2", "m3"}, true)
	})
	scopedOneWay := start("oneway", func(r *realNet) (func() error, error) {
		return r.CutLinks([]string{"m2"}, []string{"m3"}, false)
	})
	scopedSlow := start("slow", func(r *realNet) (func() error, error) { return r.DegradeLinksScoped(slow) })
	scopedLossy := start("lossy", func(r *realNet) (func() error, error) {
		return r.DegradeLinksScoped(chaos.Links{Loss: 0.5, LatencyMin: 5 * time.Millisecond, LatencyMax: 50 * time.Millisecond})
	})
	partition := do(func(r *realNet) error { return r.Partition([]string{"m1"}, []string{"m2", "m3"}) })
	degrade := do(func(r *realNet) error { return r.DegradeLinks(slow) })
	heal := do(func(r *realNet) error { return r.HealNetwork() })

	for _, tc := range []struct {
		name  string
		steps []func(*env) error
		want  map[string]linkproxy.LinkState
	}{
		{"partition", []func(*env) error{partition}, isolated},
		{"degrade keeps an earlier cut", []func(*env) error{partition, degrade}, isolatedSlow},
		{"cut keeps an earlier degradation", []func(*env) error{degrade, partition}, isolatedSlow},
		{"heal ends everything", []func(*env) error{degrade, partition, scopedOneWay, scopedLossy, heal}, none},
		{"scoped cut and its heal", []func(*env) error{scopedPartition, end("part")}, none},
		{"a scoped cut's heal keeps a degradation", []func(*env) error{scopedSlow, scopedPartition, end("part")}, all(slowState, nil)},
		{"a scoped degradation's heal keeps a cut", []func(*env) error{scopedPartition, scopedSlow, end("slow")}, isolated},
		{"both heals in either order", []func(*env) error{scopedPartition, scopedSlow, end("part"), end("slow")}, none},
		{"a link stays cut while another fault holds it", []func(*env) error{scopedPartition, scopedIsolate, end("part")}, isolated},
		{"a one-way cut outlives an overlapping partition", []func(*env) error{scopedOneWay, scopedPartition, end("part")},
			map[string]linkproxy.LinkState{"m2->m3": cut}},
		{"an unscoped partition outlives a scoped cut of the same links", []func(*env) error{partition, scopedPartition, end("part")}, isolated},
		{"a heal twice is a heal once", []func(*env) error{scopedPartition, scopedIsolate, end("part"), end("part")}, isolated},
		{"a heal after HealNetwork does nothing", []func(*env) error{scopedPartition, heal, partition, end("part")}, isolated},
		{"degradations combine", []func(*env) error{scopedSlow, scopedLossy},
			all(linkproxy.LinkState{Loss: 1 - 0.9*0.5, LatencyMin: 10 * time.Millisecond, LatencyMax: 50 * time.Millisecond}, nil)},
		{"the first degradation ends, the second stays", []func(*env) error{scopedSlow, scopedLossy, end("slow")},
			all(linkproxy.LinkState{Loss: 0.5, LatencyMin: 5 * time.Millisecond, LatencyMax: 50 * time.Millisecond}, nil)},
		{"the last degradation ends: none", []func(*env) error{scopedSlow, scopedLossy, end("lossy"), end("slow")}, none},
		{"a degradation replaces an unscoped one", []func(*env) error{degrade, do(func(r *realNet) error { return r.DegradeLinks(chaos.Links{Loss: 0.5}) })},
			all(linkproxy.LinkState{Loss: 0.5}, nil)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := linkproxy.NewNetwork(1)
			defer n.Close()
			var events []string
			e := &env{r: &realNet{eps: noEndpoints{}, lnet: func() (*linkproxy.Network, error) { return n, nil },
				event: func(what string) { events = append(events, what) }}, heals: map[string]func() error{}}
			for _, s := range tc.steps {
				require.NoError(t, s(e))
			}
			got := linkStates(n)
			for k, v := range got { // losses are products: compare them to a few ulps
				if w, ok := tc.want[k]; ok && math.Abs(w.Loss-v.Loss) < 1e-12 {
					v.Loss = w.Loss
					got[k] = v
				}
			}
			require.Equal(t, tc.want, got)
			require.NotEmpty(t, events, "verbs are recorded")
		})
	}

	t.Run("refused verbs change nothing", func(t *testing.T) {
		n := linkproxy.NewNetwork(1)
		defer n.Close()
		r := &realNet{eps: noEndpoints{}, lnet: func() (*linkproxy.Network, error) { return n, nil }, event: func(string) {}}
		require.NoError(t, r.DegradeLinks(slow))
		require.ErrorIs(t, r.DegradeLinks(chaos.Links{Duplicate: 0.1, Loss: 0.9}), chaos.ErrUnsupported)
		require.ErrorIs(t, r.DegradeLinks(chaos.Links{Reorder: 0.1}), chaos.ErrUnsupported)
		_, err := r.DegradeLinksScoped(chaos.Links{Duplicate: 0.1})
		require.ErrorIs(t, err, chaos.ErrUnsupported)
		require.ErrorContains(t, r.Partition([]string{"m1"}, []string{"m4"}), `no member "m4"`)
		require.ErrorContains(t, r.PartitionOneWay([]string{"x"}, []string{"m1"}), `no member "x"`)
		_, err = r.CutLinks([]string{"m1"}, []string{"m9"}, true)
		require.ErrorContains(t, err, `no member "m9"`)
		require.Equal(t, all(slowState, nil), linkStates(n))
	})

	t.Run("before start", func(t *testing.T) {
		r := &realNet{eps: noEndpoints{}, lnet: func() (*linkproxy.Network, error) { return nil, errNotStarted }, event: func(string) {}}
		require.ErrorIs(t, r.Partition([]string{"m1"}, []string{"m2"}), errNotStarted)
		require.ErrorIs(t, r.HealNetwork(), errNotStarted)
		_, err := r.CutLinks([]string{"m1"}, []string{"m2"}, true)
		require.ErrorIs(t, err, errNotStarted)
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

// TestOverlappingFaultsSimAndReal applies overlapping faults through
// chaos.Apply on the simulator and on the real backends' link layer and
// checks that both end them the same way: ending a partition leaves the loss
// and another fault's cut, ending the loss leaves the cut.
func TestOverlappingFaultsSimAndReal(t *testing.T) {
	loss := chaos.Fault{Kind: chaos.Loss, Rate: 0.2}
	part := chaos.Fault{Kind: chaos.PartitionMinority, Members: []int{0}}
	oneWay := chaos.Fault{Kind: chaos.OneWay, Members: []int{0}}
	type view struct {
		cut  func(from, to string) bool
		loss func(from, to string) float64
	}
	run := func(t *testing.T, inj chaos.Injector, v view) {
		healLoss, _, err := chaos.Apply(inj, loss)
		require.NoError(t, err)
		healPart, _, err := chaos.Apply(inj, part)
		require.NoError(t, err)
		healOneWay, _, err := chaos.Apply(inj, oneWay)
		require.NoError(t, err)
		require.True(t, v.cut("m2", "m1"))
		require.InDelta(t, 0.2, v.loss("m2", "m1"), 1e-12)

		require.NoError(t, healPart())
		require.False(t, v.cut("m2", "m1"), "the partition's cut ended")
		require.True(t, v.cut("m1", "m2"), "the one-way cut holds m1 -> m2")
		require.InDelta(t, 0.2, v.loss("m2", "m1"), 1e-12, "the loss outlives the partition")

		require.NoError(t, healLoss())
		require.Zero(t, v.loss("m1", "m2"))
		require.True(t, v.cut("m1", "m3"), "the one-way cut outlives the loss")
		require.NoError(t, healOneWay())
		require.False(t, v.cut("m1", "m3"))
	}

	t.Run("real", func(t *testing.T) {
		n := linkproxy.NewNetwork(1)
		defer n.Close()
		r := &realNet{eps: noEndpoints{}, lnet: func() (*linkproxy.Network, error) { return n, nil }, event: func(string) {}}
		run(t, netOnly{r}, view{
			cut:  func(a, b string) bool { return n.Link(a, b).Cut },
			loss: func(a, b string) float64 { return n.Link(a, b).Loss },
		})
	})
	t.Run("sim", func(t *testing.T) {
		release := detrand.Acquire(1)
		defer release()
		w := sim.NewWorld(sim.Config{Seed: 1})
		c, err := NewSim(w, SimConfig{Members: 3, Dir: t.TempDir()})
		require.NoError(t, err)
		defer c.Close()
		run(t, c, view{
			cut:  func(a, b string) bool { return w.Net().Cuts(a, b) > 0 },
			loss: func(a, b string) float64 { return w.Net().Link(a, b).Loss },
		})
	})
}

// netOnly is a chaos.Injector of the link verbs alone.
type netOnly struct{ *realNet }

func (netOnly) Members() []string                           { return noEndpoints{}.Members() }
func (netOnly) Crash(string, bool) error                    { return chaos.ErrUnsupported }
func (netOnly) Restart(string) error                        { return chaos.ErrUnsupported }
func (netOnly) Pause(string) error                          { return chaos.ErrUnsupported }
func (netOnly) Resume(string) error                         { return chaos.ErrUnsupported }
func (netOnly) SetClock(string, time.Duration, int64) error { return chaos.ErrUnsupported }
