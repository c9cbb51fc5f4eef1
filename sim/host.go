package sim

import (
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"time"
)

// Process is what runs on a host: a store member or a client. The world
// calls it from its single goroutine, one event at a time; a Process must not
// start goroutines or read the wall clock, and must draw randomness only from
// Host.Rand.
type Process interface {
	// Start (re)boots the process: at its first event after AddHost and on
	// every Restart. After a crash the same Process value is started again
	// and must rebuild its state from the host's disk, not from its fields.
	Start(h *Host)
	// Receive handles a message delivered from host from.
	Receive(from string, payload any)
}

// Disk is what a crash does to a host's storage. The world does not care
// what the disk is; vfs.Mem implements it (Crash drops unsynced writes,
// CrashTorn also tears them using the given PRNG).
type Disk interface {
	Crash()
	CrashTorn(rnd *rand.Rand)
}

// TimerID names a pending timer of one host; the zero TimerID is never
// issued.
type TimerID uint64

// String renders the ID as "t<slot>.<generation>" for traces.
func (id TimerID) String() string {
	return fmt.Sprintf("t%d.%d", uint32(id), uint32(id>>32))
}

// timerSlot is one entry of a host's timer table. A TimerID is the slot
// index and the slot's generation; freeing a slot bumps the generation, so
// stale queued events and stale IDs are recognized without a map.
type timerSlot struct {
	gen  uint32
	live bool
	fn   func()
}

// Host is the runtime a Process sees: its name, clock, PRNG, timers,
// network endpoint and disk, plus the fault verbs (Crash, Restart, Pause,
// Resume, SetClock) the world applies to it.
type Host struct {
	w    *World
	name string
	idx  int
	proc Process
	disk Disk
	rnd  *rand.Rand

	up     bool
	paused bool
	epoch  uint64  // bumped by every crash; queued boots carry it
	parked []event // timers and deliveries that fell due while paused

	timers     []timerSlot
	freeTimers []uint32

	clockOffset int64 // local - true at clockSince
	clockDrift  int64 // ppm
	clockSince  int64 // virtual time of the last SetClock
}

// Name returns the host's name, which is also its network address.
func (h *Host) Name() string { return h.name }

// World returns the world the host lives in (for harness code that needs
// true time, e.g. to record a history; processes should use Now).
func (h *Host) World() *World { return h.w }

// Process returns the process running on the host.
func (h *Host) Process() Process { return h.proc }

// Rand returns the host's PRNG, derived from the world seed and the host
// name: a host's draws do not depend on other hosts' draws. It persists
// across restarts.
func (h *Host) Rand() *rand.Rand { return h.rnd }

// Up reports whether the host is running (not crashed).
func (h *Host) Up() bool { return h.up }

// Paused reports whether the host is paused.
func (h *Host) Paused() bool { return h.paused }

// Tracef writes a trace line for this host (see World.Tracef).
func (h *Host) Tracef(format string, args ...any) {
	if h.w.tracing {
		h.w.Tracef(h.name, format, args...)
	}
}

// Tracing reports whether the world traces (check before costly formatting).
func (h *Host) Tracing() bool { return h.w.tracing }

// Now returns the host-local clock: true time plus the offset set by
// SetClock, plus the drift accumulated since then.
func (h *Host) Now() time.Time {
	return h.w.start.Add(time.Duration(h.local(h.w.now)))
}

// local converts true virtual time t (>= clockSince) to host-local time.
// It is non-decreasing in t because driftPPM > -1e6.
func (h *Host) local(t int64) int64 {
	l := t + h.clockOffset
	if h.clockDrift != 0 {
		el := uint64(t - h.clockSince)
		if h.clockDrift > 0 {
			l += int64(mulDiv(el, uint64(h.clockDrift), 1e6, false))
		} else {
			l -= int64(mulDiv(el, uint64(-h.clockDrift), 1e6, false))
		}
	}
	return l
}

// SetClock steps the host clock to read true time plus offset now, and
// makes it run at (1 + driftPPM/1e6) times true speed from now on. A step
// back makes Host.Now go backwards, as a real NTP step can. Timers already
// pending keep the rate they were set with. driftPPM must be > -1e6.
func (h *Host) SetClock(offset time.Duration, driftPPM int64) {
	if driftPPM <= -1e6 {
		panic(fmt.Sprintf("sim: host %s: driftPPM %d <= -1e6 would stop or reverse the clock", h.name, driftPPM))
	}
	h.clockOffset = int64(offset)
	h.clockDrift = driftPPM
	h.clockSince = h.w.now
	if h.w.tracing {
		h.w.Tracef(h.name, "clock offset=%v drift=%dppm", offset, driftPPM)
	}
}

// After calls fn once d of HOST-LOCAL time has passed (so drift stretches or
// shrinks it), unless the timer is cancelled or the host crashes first. A
// timer falling due while the host is paused fires at Resume. On a crashed
// host After does nothing and returns the zero TimerID.
func (h *Host) After(d time.Duration, fn func()) TimerID {
	if fn == nil {
		panic("sim: After with nil func")
	}
	if !h.up {
		return 0
	}
	var idx uint32
	if n := len(h.freeTimers); n > 0 {
		idx = h.freeTimers[n-1]
		h.freeTimers = h.freeTimers[:n-1]
	} else {
		idx = uint32(len(h.timers))
		h.timers = append(h.timers, timerSlot{gen: 1})
	}
	s := &h.timers[idx]
	s.live = true
	s.fn = fn
	id := TimerID(uint64(s.gen)<<32 | uint64(idx))
	h.w.q.push(h.w.after(h.trueDelay(d)), event{kind: evTimer, host: h, id: uint64(id)})
	return id
}

// trueDelay converts a host-local duration to true virtual time, rounding
// up so that a timer never fires before the local clock has advanced by d.
func (h *Host) trueDelay(d time.Duration) time.Duration {
	if d <= 0 || h.clockDrift == 0 {
		return d
	}
	q := mulDiv(uint64(d), 1e6, uint64(1e6+h.clockDrift), true)
	if q > math.MaxInt64 {
		return math.MaxInt64
	}
	return time.Duration(q)
}

// Cancel stops a pending timer and reports whether it was pending.
func (h *Host) Cancel(id TimerID) bool {
	idx := uint32(id)
	if id == 0 || int(idx) >= len(h.timers) {
		return false
	}
	s := &h.timers[idx]
	if !s.live || s.gen != uint32(id>>32) {
		return false
	}
	h.freeTimer(idx)
	h.w.timerDied()
	return true
}

func (h *Host) freeTimer(idx uint32) {
	s := &h.timers[idx]
	s.live = false
	s.fn = nil
	s.gen++
	if s.gen == 0 {
		s.gen = 1 // keep the zero TimerID unissued
	}
	h.freeTimers = append(h.freeTimers, idx)
}

// fire runs a timer event if its timer is still pending.
func (h *Host) fire(ev event) {
	idx := uint32(ev.id)
	s := &h.timers[idx]
	if !s.live || s.gen != uint32(ev.id>>32) {
		return // cancelled, or dropped by a crash
	}
	if h.paused {
		h.parked = append(h.parked, ev)
		return
	}
	fn := s.fn
	h.freeTimer(idx)
	if h.w.tracing {
		h.w.Tracef(h.name, "timer %v", TimerID(ev.id))
	}
	fn()
}

// Send sends payload to the host named to through the network. The payload
// is handed over as is (not copied): the receiver must treat it as
// read-only, as the sender must after sending.
func (h *Host) Send(to string, payload any) { h.w.net.send(h, to, payload) }

// SetDisk attaches the disk that Crash crashes.
func (h *Host) SetDisk(d Disk) { h.disk = d }

// Disk returns the attached disk, or nil.
func (h *Host) Disk() Disk { return h.disk }

// Crash kills the host's process: pending timers are dropped, messages
// parked by a pause are dropped, messages arriving while down are dropped,
// and the disk (if any) loses its unsynced writes. Crashing a crashed host
// does nothing.
func (h *Host) Crash() { h.crash(false) }

// CrashTorn is Crash with torn writes: the disk's unsynced writes are torn
// using the world PRNG (Disk.CrashTorn).
func (h *Host) CrashTorn() { h.crash(true) }

func (h *Host) crash(torn bool) {
	if !h.up {
		return
	}
	if h.w.tracing {
		if torn {
			h.w.Tracef(h.name, "crash torn")
		} else {
			h.w.Tracef(h.name, "crash")
		}
	}
	h.up = false
	h.paused = false
	h.epoch++
	for _, ev := range h.parked {
		if ev.kind == evLocal {
			h.w.net.stats.InFlight--
			h.w.net.drop(ev.from, h, ev.payload, DropDown)
		}
	}
	h.parked = nil
	for i := range h.timers {
		if h.timers[i].live {
			h.freeTimer(uint32(i))
			h.w.timerDied()
		}
	}
	if h.disk != nil {
		if torn {
			h.disk.CrashTorn(h.w.rnd)
		} else {
			h.disk.Crash()
		}
	}
}

// Restart boots the host again: Start is called at once with the same
// Process value. Restarting a running host crashes it first (a bounce).
func (h *Host) Restart() {
	if h.up {
		h.Crash()
	}
	h.up = true
	if h.w.tracing {
		h.w.Tracef(h.name, "restart")
	}
	prev := h.w.current
	h.w.current = h
	h.proc.Start(h)
	h.w.current = prev
}

// Pause freezes the host (like SIGSTOP): timers and deliveries falling due
// wait, in order, until Resume. A paused host is still up.
func (h *Host) Pause() {
	if !h.up || h.paused {
		return
	}
	h.paused = true
	if h.w.tracing {
		h.w.Tracef(h.name, "pause")
	}
}

// Resume unfreezes the host: what fell due while paused is queued now, in
// the order it fell due.
func (h *Host) Resume() {
	if !h.paused {
		return
	}
	h.paused = false
	if h.w.tracing {
		h.w.Tracef(h.name, "resume (%d parked)", len(h.parked))
	}
	for _, ev := range h.parked {
		h.w.q.push(h.w.now, ev)
	}
	h.parked = h.parked[:0]
}

// mulDiv returns a*b/c, rounded up if up, else down. It panics if the
// result does not fit in 64 bits (a broken harness: years of virtual time).
func mulDiv(a, b, c uint64, up bool) uint64 {
	hi, lo := bits.Mul64(a, b)
	if hi >= c {
		panic(fmt.Sprintf("sim: %d*%d/%d overflows", a, b, c))
	}
	q, r := bits.Div64(hi, lo, c)
	if up && r != 0 {
		q++
	}
	return q
}
