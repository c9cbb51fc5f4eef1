package vfs_test

import (
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/havoclab/havoc/vfs"
)

func TestMemFailSyncsLosesTheUnsyncedBytesForGood(t *testing.T) {
	m := vfs.NewMem()
	f := durableFile(t, m, "a", "synced")
	_, err := f.Write([]byte("+lost"))
	require.NoError(t, err)
	m.FailSyncs(true)
	err = f.Sync()
	require.ErrorIs(t, err, vfs.ErrIO)
	require.ErrorIs(t, err, syscall.EIO)
	require.ErrorIs(t, err, vfs.ErrInjected)
	require.ErrorIs(t, m.SyncDir("."), vfs.ErrInjected)
	assert.Equal(t, "synced+lost", content(t, m, "a"), "the page cache still holds the bytes")

	// fsyncgate: a later sync succeeds, but the failed bytes never reach the
	// disk; bytes written after them do.
	m.FailSyncs(false)
	_, err = f.Write([]byte("+kept"))
	require.NoError(t, err)
	require.NoError(t, f.Sync())
	assert.Equal(t, "synced+lost+kept", content(t, m, "a"))
	m.Crash()
	assert.Equal(t, "synced\x00\x00\x00\x00\x00+kept", content(t, m, "a"))
}

func TestMemFailedBytesWrittenAgainAreSynced(t *testing.T) {
	m := vfs.NewMem()
	f := durableFile(t, m, "a", "0123")
	_, err := f.Write([]byte("456789"))
	require.NoError(t, err)
	m.FailSyncs(true)
	require.Error(t, f.Sync())
	m.FailSyncs(false)
	require.NoError(t, f.Truncate(8)) // drops "89"
	// Rewrite "56" in the middle of the lost range through a fresh handle.
	h, err := m.OpenAppend("a")
	require.NoError(t, err)
	require.NoError(t, h.Truncate(5))
	_, err = h.Write([]byte("56"))
	require.NoError(t, err)
	require.NoError(t, h.Sync())
	m.Crash()
	assert.Equal(t, "0123\x0056", content(t, m, "a"), "only the rewritten bytes of the failed range are durable")
}

func TestMemCrashAfterFailedSyncKeepsTheLastGoodSync(t *testing.T) {
	m := vfs.NewMem()
	f := durableFile(t, m, "a", "synced")
	_, err := f.Write([]byte("+lost"))
	require.NoError(t, err)
	m.FailSyncs(true)
	require.Error(t, f.Sync())
	m.CrashTorn(rand.New(rand.NewPCG(1, 2)))
	assert.Equal(t, "synced", content(t, m, "a"), "a failed sync's bytes are not torn onto the disk")
	m.FailSyncs(false)
	g, err := m.OpenAppend("a")
	require.NoError(t, err)
	_, err = g.Write([]byte("+new"))
	require.NoError(t, err)
	require.NoError(t, g.Sync())
	m.Crash()
	assert.Equal(t, "synced+new", content(t, m, "a"), "a crash forgets the failed range")
}

func TestMemFill(t *testing.T) {
	m := vfs.NewMem()
	f := durableFile(t, m, "a", "abc")
	m.Fill(true)
	_, err := f.Write([]byte("d"))
	require.ErrorIs(t, err, vfs.ErrNoSpace)
	require.ErrorIs(t, err, syscall.ENOSPC)
	require.ErrorIs(t, err, vfs.ErrInjected)
	require.ErrorIs(t, f.Truncate(10), vfs.ErrInjected)
	require.ErrorIs(t, m.SyncExternal(), vfs.ErrNoSpace)
	require.NoError(t, f.Truncate(1), "shrinking needs no space")
	require.NoError(t, f.Sync(), "syncing needs no space")
	assert.Equal(t, "a", content(t, m, "a"))
	m.Fill(false)
	g, err := m.OpenAppend("a")
	require.NoError(t, err)
	_, err = g.Write([]byte("bc"))
	require.NoError(t, err)
	require.NoError(t, m.SyncExternal())
	assert.Equal(t, "abc", content(t, m, "a"))
	// The capacity's own ENOSPC is not an injected fault.
	m.SetCapacity(m.Used())
	_, err = g.Write([]byte("d"))
	require.ErrorIs(t, err, vfs.ErrNoSpace)
	require.NotErrorIs(t, err, vfs.ErrInjected)
}

func TestMemSyncLatency(t *testing.T) {
	delays := func(seed uint64) []time.Duration {
		m := vfs.NewMem()
		f := durableFile(t, m, "a", "x")
		require.Zero(t, m.TakeSyncDelay(), "no latency unless set")
		m.SetSyncLatency(vfs.Latency{Base: 10 * time.Millisecond, Tail: 0.5, TailMax: time.Second}, rand.New(rand.NewPCG(seed, 0)))
		var out []time.Duration
		for range 20 {
			require.NoError(t, f.Sync())
			require.NoError(t, m.SyncExternal())
			out = append(out, m.TakeSyncDelay())
		}
		require.Zero(t, m.TakeSyncDelay(), "taking resets")
		m.SetSyncLatency(vfs.Latency{}, nil)
		require.NoError(t, f.Sync())
		require.Zero(t, m.TakeSyncDelay(), "the zero Latency is instant")
		return out
	}
	a := delays(7)
	require.Equal(t, a, delays(7), "the same PRNG draws the same latencies")
	require.NotEqual(t, a, delays(8))
	for _, d := range a {
		require.GreaterOrEqual(t, d, 10*time.Millisecond, "two syncs of at least Base/2 each")
		require.LessOrEqual(t, d, 2*(15*time.Millisecond+time.Second), "the tail is capped")
	}
}

func TestLatencyDraw(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 4))
	l := vfs.Latency{Base: 20 * time.Millisecond}
	for range 1000 {
		d := l.Draw(rnd)
		require.GreaterOrEqual(t, d, 10*time.Millisecond)
		require.LessOrEqual(t, d, 30*time.Millisecond)
	}
	l.Tail, l.TailMax = 0.1, 2*time.Second
	long := 0
	for range 10000 {
		d := l.Draw(rnd)
		require.LessOrEqual(t, d, 30*time.Millisecond+2*time.Second)
		if d > 200*time.Millisecond {
			long++
		}
	}
	// P(tail) * P(Pareto(1.5, 20ms) > 170ms) = 0.1 * (20/170)^1.5 ~ 0.4%.
	require.Greater(t, long, 10, "a heavy tail stalls now and then")
	require.Less(t, long, 100)
	require.Zero(t, vfs.Latency{}.Draw(rnd))
}

func TestMemOnSync(t *testing.T) {
	m := vfs.NewMem()
	f := durableFile(t, m, "a", "synced")
	var seen []string
	m.OnSync(func(name string) { seen = append(seen, name) })
	require.NoError(t, f.Sync())
	require.Empty(t, seen, "nothing to sync, no hook")
	_, err := f.Write([]byte("+x"))
	require.NoError(t, err)
	m.OnSync(func(name string) { panic("crash " + name) })
	require.PanicsWithValue(t, "crash a", func() { _ = f.Sync() })
	m.OnSync(nil)
	m.Crash()
	assert.Equal(t, "synced", content(t, m, "a"), "a sync stopped by the hook synced nothing")
}
