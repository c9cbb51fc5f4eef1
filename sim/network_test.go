package sim

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// netWorld returns a world with hosts named names running recording procs.
func netWorld(t *testing.T, seed uint64, names ...string) (*World, map[string]*proc) {
	t.Helper()
	w := NewWorld(Config{Seed: seed})
	procs := map[string]*proc{}
	for _, n := range names {
		procs[n] = &proc{}
		w.AddHost(n, procs[n])
	}
	require.NoError(t, w.RunFor(0))
	return w, procs
}

func TestFIFOWithoutReorder(t *testing.T) {
	w, procs := netWorld(t, 3, "a", "b")
	w.Net().SetLink("a", "b", LinkConfig{LatencyMin: time.Millisecond, LatencyMax: 50 * time.Millisecond})
	a := w.Host("a")
	var want []any
	for i := 0; i < 2000; i++ {
		want = append(want, i)
		a.Send("b", i)
		if i%3 == 0 {
			require.NoError(t, w.RunFor(time.Duration(i%7)*time.Millisecond))
		}
	}
	require.NoError(t, w.RunFor(time.Second))
	assert.Equal(t, want, procs["b"].payloads())
}

func TestReorder(t *testing.T) {
	w, procs := netWorld(t, 3, "a", "b")
	// Even a fixed latency reorders: reordered messages get extra delay.
	w.Net().SetLink("a", "b", LinkConfig{LatencyMin: time.Millisecond, LatencyMax: time.Millisecond, Reorder: 0.3})
	for i := 0; i < 200; i++ {
		w.Host("a").Send("b", i)
		require.NoError(t, w.RunFor(100*time.Microsecond))
	}
	require.NoError(t, w.RunFor(time.Second))
	got := procs["b"].payloads()
	require.Len(t, got, 200)
	inversions := 0
	for i := 1; i < len(got); i++ {
		if got[i].(int) < got[i-1].(int) {
			inversions++
		}
	}
	assert.Positive(t, inversions)
}

func TestLossAndDuplicate(t *testing.T) {
	w, procs := netWorld(t, 5, "a", "b")
	w.Net().SetDefault(LinkConfig{Loss: 0.25, Duplicate: 0.25})
	for i := 0; i < 4000; i++ {
		w.Host("a").Send("b", i)
		if i%100 == 0 {
			require.NoError(t, w.RunFor(time.Millisecond)) // stay under the queue limit
		}
	}
	require.NoError(t, w.RunFor(time.Second))
	s := w.Net().Stats()
	assert.InDelta(t, 1000, s.Dropped[DropLoss], 150)
	assert.InDelta(t, 750, s.Duplicated, 150)
	assert.Equal(t, s.Sent-s.Dropped[DropLoss]+s.Duplicated, s.Delivered)
	assert.Equal(t, int(s.Delivered), len(procs["b"].got))
}

func TestQueueLimit(t *testing.T) {
	w, procs := netWorld(t, 1, "a", "b")
	w.Net().SetLink("a", "b", LinkConfig{LatencyMin: time.Second, LatencyMax: time.Second, QueueLimit: 10})
	for i := 0; i < 15; i++ {
		w.Host("a").Send("b", i)
	}
	require.NoError(t, w.RunFor(2*time.Second))
	assert.Len(t, procs["b"].got, 10)
	assert.Equal(t, int64(5), w.Net().Stats().Dropped[DropQueue])
	// The limit is on messages in flight: it frees up as they arrive.
	w.Host("a").Send("b", 99)
	require.NoError(t, w.RunFor(2*time.Second))
	assert.Len(t, procs["b"].got, 11)

	// Default limit: 1024.
	w.Net().SetLink("a", "b", LinkConfig{LatencyMin: time.Second, LatencyMax: time.Second})
	for i := 0; i < 1100; i++ {
		w.Host("a").Send("b", i)
	}
	assert.Equal(t, int64(5+76), w.Net().Stats().Dropped[DropQueue])
}

func TestUnknownHost(t *testing.T) {
	w, _ := netWorld(t, 1, "a")
	w.Host("a").Send("ghost", 1)
	assert.Equal(t, int64(1), w.Net().Stats().Dropped[DropUnknown])
	assert.Panics(t, func() { w.Net().Partition([]string{"a"}, []string{"ghost"}) })
}

// TestPartitions sends one message on every ordered pair after applying a
// fault and checks which pairs deliver.
func TestPartitions(t *testing.T) {
	hosts := []string{"a", "b", "c"}
	cases := []struct {
		name  string
		fault func(n *Network)
		want  []string // "from>to" pairs that deliver
	}{
		{"none", func(*Network) {}, []string{"a>b", "a>c", "b>a", "b>c", "c>a", "c>b"}},
		{"partition", func(n *Network) { n.Partition([]string{"a"}, []string{"b", "c"}) }, []string{"b>c", "c>b"}},
		{"oneway", func(n *Network) { n.PartitionOneWay([]string{"a"}, []string{"b"}) }, []string{"a>c", "b>a", "b>c", "c>a", "c>b"}},
		{"isolate", func(n *Network) { n.Isolate("c") }, []string{"a>b", "b>a"}},
		{"repair", func(n *Network) {
			n.Partition([]string{"a"}, []string{"b", "c"})
			n.Repair([]string{"a"}, []string{"c"})
		}, []string{"a>c", "b>c", "c>a", "c>b"}},
		{"repair-oneway", func(n *Network) {
			n.Isolate("a")
			n.RepairOneWay([]string{"b"}, []string{"a"})
		}, []string{"b>a", "b>c", "c>b"}},
		{"heal", func(n *Network) {
			n.Isolate("a")
			n.PartitionOneWay([]string{"b"}, []string{"c"})
			n.SetLink("c", "a", LinkConfig{Loss: 1})
			n.Heal()
		}, []string{"a>b", "a>c", "b>a", "b>c", "c>a", "c>b"}},
		{"loss1", func(n *Network) { n.SetLink("c", "a", LinkConfig{Loss: 1}) }, []string{"a>b", "a>c", "b>a", "b>c", "c>b"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w, procs := netWorld(t, 1, hosts...)
			c.fault(w.Net())
			for _, f := range hosts {
				for _, to := range hosts {
					if f != to {
						w.Host(f).Send(to, f+">"+to)
					}
				}
			}
			require.NoError(t, w.RunFor(time.Second))
			got := []string{}
			for _, h := range hosts {
				for _, r := range procs[h].got {
					got = append(got, r.payload.(string))
				}
			}
			assert.ElementsMatch(t, c.want, got)
		})
	}
}

func TestCutDropsInFlight(t *testing.T) {
	w, procs := netWorld(t, 1, "a", "b")
	w.Net().SetDefault(LinkConfig{LatencyMin: 10 * time.Millisecond, LatencyMax: 10 * time.Millisecond})
	w.Host("a").Send("b", "cut")
	w.Host("b").Send("a", "other-way")
	w.Schedule(5*time.Millisecond, "cut", func() { w.Net().PartitionOneWay([]string{"a"}, []string{"b"}) })
	w.Schedule(6*time.Millisecond, "repair", func() { w.Net().RepairOneWay([]string{"a"}, []string{"b"}) })
	require.NoError(t, w.RunFor(time.Second))
	assert.Empty(t, procs["b"].got, "a message on a cut cable is lost even if repaired before arrival")
	assert.Equal(t, []any{"other-way"}, procs["a"].payloads())
	w.Host("a").Send("b", "later")
	require.NoError(t, w.RunFor(time.Second))
	assert.Equal(t, []any{"later"}, procs["b"].payloads())
}

func TestHoldRelease(t *testing.T) {
	w, procs := netWorld(t, 1, "a", "b")
	w.Net().SetDefault(LinkConfig{LatencyMin: time.Millisecond, LatencyMax: 5 * time.Millisecond})
	a := w.Host("a")
	a.Send("b", 0) // in flight when the hold starts: held too
	w.Net().Hold("a", "b")
	for i := 1; i < 50; i++ {
		a.Send("b", i)
	}
	w.Host("b").Send("a", "unheld")
	require.NoError(t, w.RunFor(time.Second))
	assert.Empty(t, procs["b"].got)
	assert.Equal(t, []any{"unheld"}, procs["a"].payloads(), "hold is per direction")
	assert.Equal(t, int64(50), w.Net().Stats().InFlight)

	w.Net().Release("a", "b")
	a.Send("b", 50) // sent after release: arrives after the held ones
	require.NoError(t, w.RunFor(time.Second))
	var want []any
	for i := 0; i <= 50; i++ {
		want = append(want, i)
	}
	assert.Equal(t, want, procs["b"].payloads())
	assert.Equal(t, time.Second+time.Millisecond*0, procs["b"].got[0].at, "held messages arrive at release")
	assert.Zero(t, w.Net().Stats().InFlight)

	// Heal releases holds.
	w.Net().Hold("a", "b")
	a.Send("b", "h")
	require.NoError(t, w.RunFor(time.Second))
	w.Net().Heal()
	require.NoError(t, w.RunFor(time.Second))
	assert.Equal(t, "h", procs["b"].got[len(procs["b"].got)-1].payload)

	// A cut during a hold loses the held messages.
	w.Net().Hold("a", "b")
	a.Send("b", "lost")
	require.NoError(t, w.RunFor(time.Second))
	w.Net().Partition([]string{"a"}, []string{"b"})
	w.Net().Heal()
	require.NoError(t, w.RunFor(time.Second))
	assert.NotEqual(t, "lost", procs["b"].got[len(procs["b"].got)-1].payload)
	assert.Equal(t, int64(1), w.Net().Stats().Dropped[DropPartition])
}

func TestLinkConfig(t *testing.T) {
	w, _ := netWorld(t, 1, "a", "b")
	assert.Equal(t, DefaultLinkConfig, w.Net().Link("a", "b"))
	c := LinkConfig{LatencyMax: time.Second, Loss: 0.5}
	w.Net().SetLink("a", "b", c)
	assert.Equal(t, c, w.Net().Link("a", "b"))
	assert.Equal(t, DefaultLinkConfig, w.Net().Link("b", "a"), "per direction")
	w.Net().Heal()
	assert.Equal(t, DefaultLinkConfig, w.Net().Link("a", "b"))

	for _, bad := range []LinkConfig{
		{LatencyMin: -1},
		{LatencyMin: 2, LatencyMax: 1},
		{Loss: 1.5},
		{Duplicate: -0.1},
		{QueueLimit: -1},
	} {
		assert.Error(t, bad.Validate(), "%+v", bad)
		assert.Panics(t, func() { w.Net().SetDefault(bad) })
	}
	assert.Equal(t, "partition", DropPartition.String())
	assert.Equal(t, "DropReason(99)", DropReason(99).String())
}

// TestOwnedCutsOverlap: two causes cut the same direction; releasing one
// leaves it cut, releasing both heals it, and a Partition's repair does not
// heal a cut another cause still holds.
func TestOwnedCutsOverlap(t *testing.T) {
	w, procs := netWorld(t, 5, "a", "b", "c")
	n := w.Net()
	delivered := func(from, to string, payload int) bool {
		before := len(procs[to].payloads())
		w.Host(from).Send(to, payload)
		require.NoError(t, w.RunFor(100*time.Millisecond))
		return len(procs[to].payloads()) > before
	}
	r1 := n.Cut([]string{"a"}, []string{"b", "c"}, true)
	r2 := n.Cut([]string{"a"}, []string{"b"}, false)
	assert.Equal(t, 2, n.Cuts("a", "b"))
	assert.Equal(t, 1, n.Cuts("b", "a"))
	assert.False(t, delivered("a", "b", 1))
	r1()
	r1() // a second release is a no-op
	assert.False(t, delivered("a", "b", 2), "r2 still holds a->b")
	assert.True(t, delivered("b", "a", 3))
	assert.True(t, delivered("a", "c", 4))
	n.Partition([]string{"a"}, []string{"b"})
	n.Repair([]string{"a"}, []string{"b"})
	assert.False(t, delivered("a", "b", 5), "Repair must not heal r2's cut")
	r2()
	assert.True(t, delivered("a", "b", 6))

	r3 := n.Cut([]string{"c"}, []string{"a"}, true)
	n.Heal()
	assert.Equal(t, 0, n.Cuts("c", "a"))
	r4 := n.Cut([]string{"c"}, []string{"a"}, false)
	r3() // released by Heal already: must not release r4's cut
	assert.Equal(t, 1, n.Cuts("c", "a"))
	assert.False(t, delivered("c", "a", 7))
	r4()
	assert.True(t, delivered("c", "a", 8))
}

func TestResetLink(t *testing.T) {
	w, _ := netWorld(t, 5, "a", "b")
	n := w.Net()
	n.SetLink("a", "b", LinkConfig{Loss: 1})
	assert.Equal(t, 1.0, n.Link("a", "b").Loss)
	n.ResetLink("a", "b")
	assert.Equal(t, n.Default(), n.Link("a", "b"))
}
