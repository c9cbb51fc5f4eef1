package sim

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// runPingPong runs a faulty ping-pong workload and returns its trace and
// delivery log.
func runPingPong(t *testing.T, seed uint64) (string, []string, NetStats) {
	t.Helper()
	var trace bytes.Buffer
	w := NewWorld(Config{Seed: seed, Trace: &trace})
	w.Net().SetDefault(LinkConfig{
		LatencyMin: time.Millisecond, LatencyMax: 20 * time.Millisecond,
		Loss: 0.1, Duplicate: 0.1, Reorder: 0.2,
	})
	names := []string{"n3", "n1", "n2", "c1"}
	var log []string
	for _, n := range names {
		peers := slices.DeleteFunc(slices.Clone(names), func(s string) bool { return s == n })
		w.AddHost(n, &pingPong{peers: peers, period: 5 * time.Millisecond, log: &log})
	}
	w.Schedule(300*time.Millisecond, "partition", func() { w.Net().Partition([]string{"n1"}, []string{"n2", "n3"}) })
	w.Schedule(400*time.Millisecond, "crash n3", func() { w.Host("n3").Crash() })
	w.Schedule(500*time.Millisecond, "heal", func() { w.Net().Heal(); w.Host("n3").Restart() })
	require.NoError(t, w.RunFor(time.Second))
	return trace.String(), log, w.Net().Stats()
}

func TestDeterminism(t *testing.T) {
	trace1, log1, stats1 := runPingPong(t, 42)
	trace2, log2, stats2 := runPingPong(t, 42)
	require.Equal(t, trace1, trace2, "same seed must give byte-identical traces")
	require.Equal(t, log1, log2, "same seed must give the same delivery order")
	require.Equal(t, stats1, stats2)
	require.Greater(t, len(log1), 500)
	// Every fault fired, so the test exercises them all.
	for _, s := range []string{"(loss)", "dup ", "(partition)", "(down)", "world heal", "n3 restart"} {
		assert.Contains(t, trace1, s)
	}

	trace3, log3, _ := runPingPong(t, 43)
	assert.NotEqual(t, trace1, trace3, "different seeds should differ")
	assert.NotEqual(t, log1, log3)
}

func TestStatsBalance(t *testing.T) {
	_, _, s := runPingPong(t, 7)
	assert.Equal(t, s.Sent+s.Duplicated, s.Delivered+s.DroppedTotal()+s.InFlight, "%+v", s)
	assert.Positive(t, s.Dropped[DropLoss])
	assert.Positive(t, s.Dropped[DropPartition])
	assert.Positive(t, s.Duplicated)
}

func TestTraceFormat(t *testing.T) {
	var buf bytes.Buffer
	w := NewWorld(Config{Trace: &buf})
	w.Schedule(1500*time.Millisecond+7*time.Microsecond, "hello", func() {})
	w.Tracef("h", "x=%d", 1)
	require.NoError(t, w.RunFor(2*time.Second))
	assert.Equal(t, "00000.000000 h x=1\n00001.500007 world hello\n", buf.String())

	for _, ns := range []int64{0, 1, 999, 1000, 123456789, 1e9, 99999 * 1e9, 123456*1e9 + 5e3} {
		want := fmt.Sprintf("%012.6f", float64(ns/1e3)/1e6)
		assert.Equal(t, want, string(appendSeconds(nil, ns)), "ns=%d", ns)
	}
}

func TestNoTraceNoFormatting(t *testing.T) {
	w := NewWorld(Config{})
	a := w.AddHost("a", &proc{})
	w.AddHost("b", &proc{})
	require.NoError(t, w.RunFor(0))
	p := ping{From: "a"}
	allocs := testing.AllocsPerRun(100, func() {
		a.Send("b", p)
		require.NoError(t, w.RunFor(10*time.Millisecond))
	})
	// The only allocations allowed are the payload boxing and the
	// receiver's log append; the world itself formats nothing.
	assert.LessOrEqual(t, allocs, 3.0)
}

func TestEpochAndNow(t *testing.T) {
	w := NewWorld(Config{})
	assert.Equal(t, DefaultEpoch, w.Now())
	start := time.Date(2030, 5, 1, 0, 0, 0, 0, time.UTC)
	w = NewWorld(Config{Start: start})
	require.NoError(t, w.RunFor(3*time.Second))
	assert.Equal(t, start.Add(3*time.Second), w.Now())
	assert.Equal(t, 3*time.Second, w.Elapsed())
}

func TestScheduleOrder(t *testing.T) {
	w := NewWorld(Config{})
	var got []string
	for _, c := range []struct {
		d    time.Duration
		name string
	}{{2, "c"}, {1, "a"}, {1, "b"}, {0, "z"}, {-5, "y"}, {2, "d"}} {
		w.Schedule(c.d, c.name, func() { got = append(got, c.name) })
	}
	require.NoError(t, w.RunFor(10))
	assert.Equal(t, []string{"z", "y", "a", "b", "c", "d"}, got, "ties run in schedule order")
}

func TestScheduleAt(t *testing.T) {
	w := NewWorld(Config{})
	require.NoError(t, w.RunFor(time.Second))
	var at []time.Duration
	rec := func() { at = append(at, w.Elapsed()) }
	w.ScheduleAt(1500*time.Millisecond, "abs", rec)
	w.ScheduleAt(500*time.Millisecond, "past", rec)
	require.NoError(t, w.RunFor(time.Second))
	assert.Equal(t, []time.Duration{time.Second, 1500 * time.Millisecond}, at)
}

func TestRunUntil(t *testing.T) {
	w := NewWorld(Config{})
	fired := false
	w.Schedule(time.Second, "x", func() { fired = true })

	err := w.RunUntil(func() bool { return fired }, 500*time.Millisecond)
	require.ErrorIs(t, err, ErrTimeout)
	assert.Contains(t, err.Error(), "500ms")
	assert.Equal(t, 500*time.Millisecond, w.Elapsed(), "clock ends at the limit")

	require.NoError(t, w.RunUntil(func() bool { return fired }, time.Second))
	assert.Equal(t, time.Second, w.Elapsed(), "clock stops at the event that met the condition")

	require.NoError(t, w.RunUntil(func() bool { return true }, 0), "already true")
}

func TestMaxEvents(t *testing.T) {
	w := NewWorld(Config{MaxEvents: 100})
	var loop func()
	loop = func() { w.Schedule(0, "spin", loop) } // livelock: no time passes
	w.Schedule(0, "spin", loop)
	err := w.RunFor(time.Second)
	require.ErrorIs(t, err, ErrNoProgress)
	assert.Equal(t, int64(100), w.Events())
	require.ErrorIs(t, w.RunUntil(func() bool { return false }, time.Second), ErrNoProgress)
}

func TestConfigValidate(t *testing.T) {
	require.Error(t, Config{MaxEvents: -1}.Validate())
	require.Panics(t, func() { NewWorld(Config{MaxEvents: -1}) })
}

func TestReentryPanics(t *testing.T) {
	w := NewWorld(Config{})
	w.Schedule(0, "bad", func() { _ = w.RunFor(time.Second) })
	require.Panics(t, func() { _ = w.RunFor(time.Second) })
}

func TestHostsSorted(t *testing.T) {
	w := NewWorld(Config{})
	for _, n := range []string{"m2", "c10", "m1", "c2"} {
		w.AddHost(n, &proc{})
	}
	var names []string
	for _, h := range w.Hosts() {
		names = append(names, h.Name())
	}
	assert.Equal(t, []string{"c10", "c2", "m1", "m2"}, names)
	assert.Nil(t, w.Host("nope"))
	assert.Panics(t, func() { w.AddHost("m1", &proc{}) })
	assert.Panics(t, func() { w.AddHost("", &proc{}) })
	assert.Panics(t, func() { w.AddHost("a b", &proc{}) })
}

func TestStartDeferredUntilAllAdded(t *testing.T) {
	w := NewWorld(Config{})
	b := &proc{}
	// a sends to b in Start: b is added after a but must receive it.
	w.AddHost("a", &proc{start: func(h *Host) { h.Send("b", "hi") }})
	w.AddHost("b", b)
	assert.Equal(t, 0, b.starts, "Start runs as an event, not inside AddHost")
	require.NoError(t, w.RunFor(time.Second))
	assert.Equal(t, 1, b.starts)
	assert.Equal(t, []any{"hi"}, b.payloads())
}

// TestQueueOracle checks the heap against a sorted-slice oracle.
func TestQueueOracle(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	var q queue
	type item struct {
		at  int64
		seq int
	}
	var oracle []item
	seq := 0
	for step := 0; step < 20000; step++ {
		if rnd.IntN(3) != 0 || len(oracle) == 0 {
			at := rnd.Int64N(50)
			seq++
			q.push(at, event{id: uint64(seq)})
			oracle = append(oracle, item{at, seq})
			continue
		}
		slices.SortStableFunc(oracle, func(a, b item) int {
			if a.at != b.at {
				return int(a.at - b.at)
			}
			return a.seq - b.seq
		})
		at, ev := q.pop()
		require.Equal(t, oracle[0].at, at)
		require.Equal(t, uint64(oracle[0].seq), ev.id)
		oracle = oracle[1:]
	}
	require.Equal(t, len(oracle), q.len())
}
