package sim

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTimers(t *testing.T) {
	w := NewWorld(Config{})
	var fired []string
	var h *Host
	h = w.AddHost("a", &proc{start: func(hh *Host) { h = hh }})
	require.NoError(t, w.RunFor(0))
	h.After(30*time.Millisecond, func() { fired = append(fired, "30") })
	id := h.After(20*time.Millisecond, func() { fired = append(fired, "20-cancelled") })
	h.After(10*time.Millisecond, func() { fired = append(fired, "10") })
	h.After(10*time.Millisecond, func() { fired = append(fired, "10b") })
	require.NotZero(t, id)
	assert.True(t, h.Cancel(id))
	assert.False(t, h.Cancel(id), "second cancel")
	assert.False(t, h.Cancel(0))
	// The cancelled slot is reused; the stale ID must not cancel the new timer.
	h.After(25*time.Millisecond, func() { fired = append(fired, "25") })
	assert.False(t, h.Cancel(id))
	assert.Equal(t, "t1.1", id.String())
	require.NoError(t, w.RunFor(time.Second))
	assert.Equal(t, []string{"10", "10b", "25", "30"}, fired)
}

func TestCrashRestart(t *testing.T) {
	w := NewWorld(Config{})
	disk := &fakeDisk{}
	fired := 0
	p := &proc{start: func(h *Host) {
		h.After(100*time.Millisecond, func() { fired++ })
	}}
	a := w.AddHost("a", p)
	a.SetDisk(disk)
	assert.Same(t, Disk(disk), a.Disk())
	sender := w.AddHost("s", &proc{})
	require.NoError(t, w.RunFor(10*time.Millisecond))
	assert.Equal(t, 1, p.starts)

	disk.Write("synced")
	disk.Sync()
	disk.Write("lost")
	sender.Send("a", "in-flight") // arrives at ~11ms, while a is down
	a.Crash()
	assert.False(t, a.Up())
	assert.Equal(t, 1, disk.crashes)
	assert.Equal(t, []string{"synced"}, disk.synced)
	assert.Empty(t, disk.unsynced)
	assert.Zero(t, a.After(time.Millisecond, func() { fired++ }), "no timers on a crashed host")
	a.Crash()
	assert.Equal(t, 1, disk.crashes, "crashing a crashed host is a no-op")

	require.NoError(t, w.RunFor(200*time.Millisecond))
	assert.Equal(t, 0, fired, "timer dropped by crash")
	assert.Empty(t, p.got, "message to a crashed host dropped")
	assert.Equal(t, int64(1), w.Net().Stats().Dropped[DropDown])

	a.Restart()
	assert.True(t, a.Up())
	assert.Equal(t, 2, p.starts)
	sender.Send("a", "after")
	require.NoError(t, w.RunFor(200*time.Millisecond))
	assert.Equal(t, 1, fired, "timer set by the second Start fires")
	assert.Equal(t, []any{"after"}, p.payloads())

	// Restart of a running host is a bounce: crash, then start.
	a.Restart()
	assert.Equal(t, 2, disk.crashes)
	assert.Equal(t, 3, p.starts)

	// CrashTorn draws from the world PRNG.
	a.CrashTorn()
	assert.Equal(t, 1, disk.torn)
	assert.NotZero(t, disk.tornDraw)
}

func TestCrashBeforeFirstStart(t *testing.T) {
	w := NewWorld(Config{})
	p := &proc{}
	a := w.AddHost("a", p)
	a.Crash()
	require.NoError(t, w.RunFor(time.Second))
	assert.Equal(t, 0, p.starts, "the queued first boot died with the crash")
	a.Restart()
	require.NoError(t, w.RunFor(time.Second))
	assert.Equal(t, 1, p.starts)
}

func TestPause(t *testing.T) {
	w := NewWorld(Config{})
	w.Net().SetDefault(LinkConfig{LatencyMin: time.Millisecond, LatencyMax: time.Millisecond})
	var order []string
	p := &proc{receive: func(_ string, m any) { order = append(order, m.(string)) }}
	a := w.AddHost("a", p)
	s := w.AddHost("s", &proc{})
	require.NoError(t, w.RunFor(0))

	a.After(5*time.Millisecond, func() { order = append(order, "t5") })
	cancelled := a.After(6*time.Millisecond, func() { order = append(order, "t6-cancelled") })
	a.After(20*time.Millisecond, func() { order = append(order, "t20") })
	w.Schedule(3*time.Millisecond, "send", func() { s.Send("a", "m1") }) // arrives 4ms
	w.Schedule(6*time.Millisecond, "send", func() { s.Send("a", "m2") }) // arrives 7ms
	w.Schedule(2*time.Millisecond, "pause", a.Pause)
	w.Schedule(8*time.Millisecond, "cancel", func() { a.Cancel(cancelled) })
	w.Schedule(10*time.Millisecond, "resume", a.Resume)

	require.NoError(t, w.RunFor(9*time.Millisecond))
	assert.Empty(t, order, "nothing runs while paused")
	assert.True(t, a.Paused())
	assert.True(t, a.Up())
	assert.Equal(t, int64(2), w.Net().Stats().InFlight, "parked messages are still in flight")

	require.NoError(t, w.RunFor(time.Millisecond))
	assert.Equal(t, []string{"m1", "t5", "m2"}, order, "delivered at resume, in the order they fell due")
	assert.Equal(t, []time.Duration{10 * time.Millisecond, 10 * time.Millisecond}, []time.Duration{p.got[0].at, p.got[1].at})
	require.NoError(t, w.RunFor(time.Second))
	assert.Equal(t, []string{"m1", "t5", "m2", "t20"}, order)
}

func TestCrashWhilePaused(t *testing.T) {
	w := NewWorld(Config{})
	p := &proc{}
	a := w.AddHost("a", p)
	s := w.AddHost("s", &proc{})
	require.NoError(t, w.RunFor(0))
	a.Pause()
	s.Send("a", "x")
	require.NoError(t, w.RunFor(time.Second))
	a.Crash()
	assert.False(t, a.Paused())
	a.Restart()
	require.NoError(t, w.RunFor(time.Second))
	assert.Empty(t, p.got)
	st := w.Net().Stats()
	assert.Equal(t, int64(1), st.Dropped[DropDown])
	assert.Zero(t, st.InFlight)
}

func TestClock(t *testing.T) {
	cases := []struct {
		name     string
		offset   time.Duration
		drift    int64
		after    time.Duration // true time after SetClock
		wantNow  time.Duration // host clock minus epoch at that point (SetClock at 1s)
		timer    time.Duration // host-local timer set at SetClock
		wantFire time.Duration // true elapsed time when it fires
	}{
		{"none", 0, 0, time.Second, 2 * time.Second, 100 * time.Millisecond, 1100 * time.Millisecond},
		{"offset", 5 * time.Second, 0, time.Second, 7 * time.Second, 100 * time.Millisecond, 1100 * time.Millisecond},
		{"behind", -500 * time.Millisecond, 0, time.Second, 1500 * time.Millisecond, 100 * time.Millisecond, 1100 * time.Millisecond},
		// Fast clock (+10%): local time runs ahead, local timers fire early in true time.
		{"fast", 0, 100_000, time.Second, 2100 * time.Millisecond, 110 * time.Millisecond, 1100 * time.Millisecond},
		// Slow clock (-50%): half speed, timers take twice as long.
		{"slow", 0, -500_000, time.Second, 1500 * time.Millisecond, 100 * time.Millisecond, 1200 * time.Millisecond},
		{"both", time.Hour, 1000, 10 * time.Second, time.Hour + 11*time.Second + 10*time.Millisecond, time.Second, 1999001000}, // ceil(1e9/1.001)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := NewWorld(Config{})
			a := w.AddHost("a", &proc{})
			require.NoError(t, w.RunFor(time.Second))
			a.SetClock(c.offset, c.drift)
			var firedAt time.Duration
			var localAtFire time.Time
			localAtSet := a.Now()
			a.After(c.timer, func() { firedAt = w.Elapsed(); localAtFire = a.Now() })
			require.NoError(t, w.RunFor(c.after))
			assert.Equal(t, DefaultEpoch.Add(c.wantNow), a.Now())
			assert.Equal(t, c.wantFire, firedAt)
			assert.GreaterOrEqual(t, localAtFire.Sub(localAtSet), c.timer, "never fires early by the local clock")
			assert.Equal(t, DefaultEpoch.Add(time.Second+c.after), w.Now(), "world time is unaffected")
		})
	}
	w := NewWorld(Config{})
	a := w.AddHost("a", &proc{})
	assert.Panics(t, func() { a.SetClock(0, -1_000_000) })
}

func TestHostRandIndependent(t *testing.T) {
	draws := func(extra bool) []uint64 {
		w := NewWorld(Config{Seed: 9})
		a := w.AddHost("a", &proc{})
		b := w.AddHost("b", &proc{})
		var out []uint64
		for i := 0; i < 5; i++ {
			if extra {
				b.Rand().Uint64()
				w.Rand().Uint64()
			}
			out = append(out, a.Rand().Uint64())
		}
		return out
	}
	assert.Equal(t, draws(false), draws(true), "a's stream must not depend on b's or the world's draws")

	w := NewWorld(Config{Seed: 9})
	a, b := w.AddHost("a", &proc{}), w.AddHost("b", &proc{})
	assert.NotEqual(t, a.Rand().Uint64(), b.Rand().Uint64())
	w2 := NewWorld(Config{Seed: 10})
	assert.NotEqual(t, NewWorld(Config{Seed: 9}).AddHost("a", &proc{}).Rand().Uint64(), w2.AddHost("a", &proc{}).Rand().Uint64())
}

func TestCancelledTimersCompacted(t *testing.T) {
	w := NewWorld(Config{})
	a := w.AddHost("a", &proc{})
	require.NoError(t, w.RunFor(0))
	var fired []int
	var keep []int
	for i := 0; i < 20000; i++ {
		id := a.After(time.Duration(20000-i)*time.Millisecond, func() { fired = append(fired, i) })
		if i%7 == 0 {
			keep = append(keep, i)
		} else {
			require.True(t, a.Cancel(id))
		}
	}
	assert.Less(t, w.Pending(), 20000/2+10, "dead timers are compacted away")
	require.NoError(t, w.RunFor(time.Hour))
	// Later i: shorter delay, so they fire in reverse order.
	for l, r := 0, len(keep)-1; l < r; l, r = l+1, r-1 {
		keep[l], keep[r] = keep[r], keep[l]
	}
	assert.Equal(t, keep, fired)
}
