package vfs

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"syscall"
	"time"
)

// ErrInjected marks every error a Mem returns because a fault told it to
// (FailSyncs, Fill): a runtime can tell a disk error the harness caused from
// one the store should never have met. Such errors also wrap the errno they
// stand for (ErrIO, ErrNoSpace).
var ErrInjected = errors.New("vfs: injected fault")

// ErrIO is returned (wrapped) by a sync that failed. It wraps syscall.EIO.
var ErrIO = fmt.Errorf("vfs: input/output error: %w", syscall.EIO)

// injected is an error a fault caused: it matches both its errno and
// ErrInjected.
type injected struct{ err error }

func (e injected) Error() string   { return e.err.Error() + " (injected)" }
func (e injected) Unwrap() []error { return []error{e.err, ErrInjected} }

// Latency is a distribution of fsync latencies: uniform from Base/2 to 3/2
// Base, plus, with probability Tail, a heavy tail (Pareto of shape 1.5 and
// scale Base, capped at TailMax), as a slow or overloaded disk stalls now and
// then far beyond its usual latency. The zero Latency is instant.
type Latency struct {
	Base    time.Duration
	Tail    float64
	TailMax time.Duration
}

// paretoShape is the tail's shape: below 2, so its variance is infinite.
const paretoShape = 1.5

// Draw draws one latency from rnd.
func (l Latency) Draw(rnd *rand.Rand) time.Duration {
	if l.Base <= 0 {
		return 0
	}
	d := l.Base/2 + time.Duration(rnd.Int64N(int64(l.Base)+1))
	if l.Tail > 0 && rnd.Float64() < l.Tail {
		x := float64(l.Base) * math.Pow(1-rnd.Float64(), -1/paretoShape)
		d += time.Duration(min(x, float64(max(l.TailMax, l.Base))))
	}
	return d
}

// memFaults are the faults injected into a Mem (all off when zero).
type memFaults struct {
	failSyncs bool
	full      bool
	latency   Latency
	rnd       *rand.Rand
	delay     time.Duration // drawn sync latency not yet taken
	onSync    func(name string)
}

// FailSyncs makes every File.Sync, SyncDir and SyncExternal fail with an
// error wrapping ErrIO and ErrInjected while on. A failed File.Sync behaves as
// Linux's fsync after a writeback error ("fsyncgate"): the file's unsynced
// bytes stay readable, but they will not reach the disk, not even through a
// later Sync that succeeds (that Sync makes zeros, or the bytes synced before,
// durable in their place) unless they are written again. A store that
// retries the sync and carries on therefore loses data on the next crash.
func (m *Mem) FailSyncs(on bool) { m.faults.failSyncs = on }

// Fill makes the disk full while on: every write or Truncate that grows a
// linked file fails with an error wrapping ErrNoSpace and ErrInjected and
// changes nothing, and so does SyncExternal.
func (m *Mem) Fill(on bool) { m.faults.full = on }

// SetSyncLatency makes every File.Sync, SyncDir and SyncExternal take a
// latency drawn from l with rnd (the zero Latency turns it off). The Mem does
// not wait: it adds the latency up for the runtime to take with
// TakeSyncDelay and to delay, by that much, what the store does next.
func (m *Mem) SetSyncLatency(l Latency, rnd *rand.Rand) {
	if l.Base > 0 && rnd == nil {
		panic("vfs: SetSyncLatency with nil *rand.Rand")
	}
	m.faults.latency, m.faults.rnd = l, rnd
}

// TakeSyncDelay returns the sync latency drawn since the last call, and
// resets it.
func (m *Mem) TakeSyncDelay() time.Duration {
	d := m.faults.delay
	m.faults.delay = 0
	return d
}

// OnSync sets a hook called by every File.Sync of a file with unsynced data,
// with the file's name, before anything is synced (nil removes it). The hook
// may panic to stop the caller there: the simulator crashes a member in the
// middle of its write that way (torn-write), and nothing of the sync is done.
func (m *Mem) OnSync(fn func(name string)) { m.faults.onSync = fn }

// SyncExternal stands for the fsync of a file the Mem does not hold (the
// simulator keeps the store's bbolt backend on tmpfs): it draws a sync
// latency and fails as a sync of this disk would (an injected EIO while syncs
// fail, an injected ENOSPC while the disk is full, as a commit that must grow
// the file would).
func (m *Mem) SyncExternal() error {
	if err := m.syncFault(); err != nil {
		return err
	}
	if m.faults.full {
		return injected{ErrNoSpace}
	}
	return nil
}

// syncFault draws a sync's latency and returns the injected error of a
// failing sync (nil when syncs succeed).
func (m *Mem) syncFault() error {
	if m.faults.latency.Base > 0 {
		m.faults.delay += m.faults.latency.Draw(m.faults.rnd)
	}
	if m.faults.failSyncs {
		return injected{ErrIO}
	}
	return nil
}

// lostRange is a byte range of a file whose last sync failed: a later Sync
// makes old durable in its place (the bytes synced before, then zeros)
// instead of the file's bytes, until they are written again.
type lostRange struct {
	lo, hi int
	old    []byte // synced bytes at [lo, lo+len(old)) when the sync failed
}

// loseUnsynced records, after a failed sync of n, that its unsynced bytes
// will not reach the disk.
func (n *memNode) loseUnsynced() {
	lo := len(n.synced)
	if n.dirty {
		lo = 0
	}
	if lo >= len(n.data) {
		return
	}
	r := lostRange{lo: lo, hi: len(n.data)}
	if lo < len(n.synced) {
		r.old = slices.Clone(n.synced[lo:])
	}
	n.lost = append(n.lost, r)
}

// rewritten drops [off, end) from the lost ranges: written again, those
// bytes will be synced.
func (n *memNode) rewritten(off, end int) {
	if len(n.lost) == 0 || off >= end {
		return
	}
	var out []lostRange
	for _, r := range n.lost {
		if end <= r.lo || off >= r.hi {
			out = append(out, r)
			continue
		}
		if off > r.lo {
			out = append(out, r.slice(r.lo, off))
		}
		if end < r.hi {
			out = append(out, r.slice(end, r.hi))
		}
	}
	n.lost = out
}

// slice returns the part [lo, hi) of r.
func (r lostRange) slice(lo, hi int) lostRange {
	s := lostRange{lo: lo, hi: hi}
	if a, b := lo-r.lo, min(hi-r.lo, len(r.old)); a < b {
		s.old = r.old[a:b]
	}
	return s
}

// cut drops what lies at or past size from the lost ranges (a shrinking
// Truncate).
func (n *memNode) cut(size int) {
	out := n.lost[:0]
	for _, r := range n.lost {
		if r.lo < size {
			out = append(out, r.slice(r.lo, min(r.hi, size)))
		}
	}
	n.lost = out
}

// durable is what a successful Sync of n makes durable: its data, with the
// lost ranges replaced by what the disk really holds there.
func (n *memNode) durable() []byte {
	d := slices.Clone(n.data)
	for _, r := range n.lost {
		for i := r.lo; i < min(r.hi, len(d)); i++ {
			d[i] = 0
			if k := i - r.lo; k < len(r.old) {
				d[i] = r.old[k]
			}
		}
	}
	return d
}
