package sim

import (
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// ErrTimeout is returned (wrapped, with the virtual time) by RunUntil when the
// condition does not hold within the limit.
var ErrTimeout = errors.New("sim: timeout")

// ErrNoProgress is returned (wrapped) by the Run methods once the world has
// processed Config.MaxEvents events: a livelocked run fails with its seed
// instead of hanging.
var ErrNoProgress = errors.New("sim: event limit reached")

// DefaultEpoch is the virtual wall-clock time at which a world starts when
// Config.Start is zero.
var DefaultEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// Config configures a World. Everything a run does follows from the Config
// plus whatever faults are scheduled on the world, so a failing run can be
// replayed (and shrunk) from the same values.
type Config struct {
	// Seed seeds the world's PRNG and, through it and the host names, every
	// host's PRNG.
	Seed uint64
	// Start is the virtual epoch: World.Now at time zero. Zero means
	// DefaultEpoch (2000-01-01 UTC), never the wall clock.
	Start time.Time
	// Trace receives one line per event, formatted as
	// "%012.6f host event" in virtual seconds. Nil disables tracing, and then
	// no event is formatted at all. Write errors are ignored: tracing must not
	// change what the run does.
	Trace io.Writer
	// MaxEvents bounds the number of events the world processes over its
	// lifetime; past it the Run methods return ErrNoProgress. Zero means no
	// limit.
	MaxEvents int64
}

// Validate reports whether the config is usable.
func (c Config) Validate() error {
	if c.MaxEvents < 0 {
		return fmt.Errorf("sim: Config.MaxEvents %d < 0", c.MaxEvents)
	}
	return nil
}

// World is a deterministic simulated world: hosts running Processes, a
// network between them, a virtual clock and one event queue, all driven by
// one goroutine. A World is not safe for concurrent use; it uses no
// goroutines, channels, mutexes or wall-clock reads of its own.
type World struct {
	cfg     Config
	start   time.Time
	now     int64 // virtual nanoseconds since start
	rnd     *rand.Rand
	q       queue
	events  int64 // events processed so far
	running bool

	hosts  []*Host // in AddHost order; Host.idx indexes it
	sorted []*Host // by name
	byName map[string]*Host
	net    *Network

	tracing   bool
	tbuf      []byte
	describer func(p any) (string, bool)

	deadTimers int // cancelled or crashed timers still queued (an upper bound)

	current  *Host  // the host whose process code is running, for panics
	panicked *Panic // the recovered panic that stopped the world
}

// NewWorld returns an empty world at virtual time cfg.Start. It panics if
// cfg is invalid (a broken harness, not an expected error).
func NewWorld(cfg Config) *World {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	w := &World{
		cfg:     cfg,
		start:   cfg.Start,
		rnd:     rand.New(rand.NewPCG(cfg.Seed, splitmix(cfg.Seed^0x68617663))), // "havc"
		byName:  make(map[string]*Host),
		tracing: cfg.Trace != nil,
	}
	if w.start.IsZero() {
		w.start = DefaultEpoch
	}
	w.net = newNetwork(w)
	return w
}

// Now returns the true virtual time. Hosts see their own, possibly skewed,
// clock through Host.Now.
func (w *World) Now() time.Time { return w.start.Add(time.Duration(w.now)) }

// Elapsed returns the virtual time elapsed since the epoch.
func (w *World) Elapsed() time.Duration { return time.Duration(w.now) }

// Rand returns the world's PRNG. The network draws from it too, so any extra
// draw changes the rest of the run, deterministically.
func (w *World) Rand() *rand.Rand { return w.rnd }

// Net returns the world's network.
func (w *World) Net() *Network { return w.net }

// Events returns the number of events processed so far.
func (w *World) Events() int64 { return w.events }

// Pending returns the number of queued events (including cancelled timers
// that have not yet fallen due).
func (w *World) Pending() int { return w.q.len() }

// Tracing reports whether a trace writer is set; callers check it before
// formatting trace lines.
func (w *World) Tracing() bool { return w.tracing }

// AddHost adds a host named name running p, and returns it. Its first
// Start is queued as an event at the current virtual time rather than called
// directly, so that every host added in the same setup exists before any of
// them runs (and can be sent to). Names must be unique and non-empty.
func (w *World) AddHost(name string, p Process) *Host {
	if name == "" || strings.ContainsAny(name, " \t\n") {
		panic(fmt.Sprintf("sim: invalid host name %q", name))
	}
	if _, dup := w.byName[name]; dup {
		panic(fmt.Sprintf("sim: duplicate host %q", name))
	}
	if p == nil {
		panic(fmt.Sprintf("sim: host %q: nil Process", name))
	}
	h := &Host{
		w:    w,
		name: name,
		idx:  len(w.hosts),
		proc: p,
		rnd:  rand.New(rand.NewPCG(splitmix(w.cfg.Seed^fnv64(name)), splitmix(fnv64(name)+w.cfg.Seed))),
		up:   true,
	}
	w.hosts = append(w.hosts, h)
	i, _ := slices.BinarySearchFunc(w.sorted, name, func(x *Host, n string) int { return strings.Compare(x.name, n) })
	w.sorted = slices.Insert(w.sorted, i, h)
	w.byName[name] = h
	w.net.addHost()
	w.q.push(w.now, event{kind: evStart, host: h, id: h.epoch})
	return h
}

// Host returns the host named name, or nil.
func (w *World) Host(name string) *Host { return w.byName[name] }

// Hosts returns all hosts sorted by name (a fresh slice).
func (w *World) Hosts() []*Host { return slices.Clone(w.sorted) }

// Schedule queues fn to run as a world-level event d after now (d < 0 counts
// as 0). name appears in the trace. Faults are injected this way, so a fault
// schedule is plain data: (delay, name, action).
func (w *World) Schedule(d time.Duration, name string, fn func()) {
	if fn == nil {
		panic("sim: Schedule with nil func")
	}
	w.q.push(w.after(d), event{kind: evWorld, fn: fn, payload: name})
}

// ScheduleAt is Schedule at an absolute virtual time, measured from the epoch
// (as World.Elapsed is); a time already past runs now. A fault schedule whose
// offsets are relative to the start of the run maps onto it directly.
func (w *World) ScheduleAt(at time.Duration, name string, fn func()) {
	w.Schedule(at-time.Duration(w.now), name, fn)
}

// after returns the virtual time d from now, saturating.
func (w *World) after(d time.Duration) int64 {
	if d <= 0 {
		return w.now
	}
	if int64(d) > math.MaxInt64-w.now {
		return math.MaxInt64
	}
	return w.now + int64(d)
}

// RunFor processes every event due within d of now, then sets the clock to
// now+d. It returns ErrNoProgress (wrapped) if the event limit is reached, and
// the *Panic (wrapping ErrPanic) if a process panicked; a world stopped by a
// panic runs no more events.
func (w *World) RunFor(d time.Duration) error {
	deadline := w.after(d)
	_, err := w.run(deadline, nil)
	return err
}

// RunUntil processes events until cond holds (checked before the first event
// and after each one) or limit of virtual time has passed. If cond does not
// hold by then it returns ErrTimeout wrapped with the virtual time; the clock
// is then at now+limit.
func (w *World) RunUntil(cond func() bool, limit time.Duration) error {
	begin := w.now
	deadline := w.after(limit)
	met, err := w.run(deadline, cond)
	if err != nil {
		return err
	}
	if !met {
		return fmt.Errorf("%w: condition not met within %v (virtual time %v, from %v)",
			ErrTimeout, limit, time.Duration(w.now), time.Duration(begin))
	}
	return nil
}

// Step processes the next event, whatever its time, and reports whether
// there was one. It ignores MaxEvents.
func (w *World) Step() bool {
	if w.q.len() == 0 || w.panicked != nil {
		return false
	}
	w.enter()
	defer w.leave()
	at, ev := w.q.pop()
	w.now = at
	w.events++
	w.safeDispatch(ev)
	return true
}

func (w *World) enter() {
	if w.running {
		panic(errReentered)
	}
	w.running = true
}

func (w *World) leave() { w.running = false }

// errReentered is the panic of a Run method called from inside an event: a
// broken harness, which safeDispatch does not recover.
var errReentered = errors.New("sim: World run re-entered from inside an event")

// run is the event loop. It returns met=true as soon as cond (if non-nil)
// holds; otherwise it runs to deadline and leaves the clock there.
func (w *World) run(deadline int64, cond func() bool) (met bool, err error) {
	w.enter()
	defer w.leave()
	limit := w.cfg.MaxEvents
	for {
		if w.panicked != nil {
			return false, w.panicked
		}
		if cond != nil && cond() {
			return true, nil
		}
		at, ok := w.q.next()
		if !ok || at > deadline {
			if deadline > w.now {
				w.now = deadline
			}
			return false, nil
		}
		if limit > 0 && w.events >= limit {
			return false, fmt.Errorf("%w: %d events by virtual time %v (%d queued)",
				ErrNoProgress, w.events, time.Duration(w.now), w.q.len())
		}
		_, ev := w.q.pop()
		w.now = at
		w.events++
		w.safeDispatch(ev)
	}
}

func (w *World) dispatch(ev event) {
	switch ev.kind {
	case evDeliver:
		w.net.arriveLink(ev)
	case evLocal:
		w.net.arriveHost(ev)
	case evTimer:
		ev.host.fire(ev)
	case evStart:
		h := ev.host
		if !h.up || h.epoch != ev.id {
			return // crashed (and maybe restarted) before its first boot
		}
		if h.paused {
			h.parked = append(h.parked, ev)
			return
		}
		if w.tracing {
			w.Tracef(h.name, "start")
		}
		h.proc.Start(h)
	case evWorld:
		if w.tracing {
			w.Tracef("world", "%s", ev.payload)
		}
		ev.fn()
	default:
		panic(fmt.Sprintf("sim: unknown event kind %d", ev.kind))
	}
}

// timerDied notes a timer that was cancelled or dropped while its event is
// still queued, and compacts the queue when such dead events are the
// majority (e.g. request timeouts cancelled on every reply).
func (w *World) timerDied() {
	w.deadTimers++
	if w.deadTimers < 4096 || w.deadTimers < w.q.len()/2 {
		return
	}
	w.q.compact(func(ev *event) bool {
		if ev.kind != evTimer {
			return false
		}
		s := &ev.host.timers[uint32(ev.id)]
		return !s.live || s.gen != uint32(ev.id>>32)
	})
	w.deadTimers = 0
}

// Tracef writes one trace line "<virtual seconds> <host> <event>" if tracing
// is on. Callers on hot paths should check Tracing first to skip formatting
// the arguments.
func (w *World) Tracef(host, format string, args ...any) {
	if !w.tracing {
		return
	}
	b := appendSeconds(w.tbuf[:0], w.now)
	b = append(b, ' ')
	b = append(b, host...)
	b = append(b, ' ')
	b = fmt.Appendf(b, format, args...)
	b = append(b, '\n')
	w.tbuf = b
	_, _ = w.cfg.Trace.Write(b)
}

// appendSeconds appends ns as zero-padded seconds with six decimals, the
// same text as fmt's "%012.6f" (but truncated, with no float rounding).
func appendSeconds(b []byte, ns int64) []byte {
	sec := ns / 1e9
	us := (ns % 1e9) / 1e3
	var tmp [24]byte
	i := len(tmp)
	for k := 0; k < 6; k++ {
		i--
		tmp[i] = byte('0' + us%10)
		us /= 10
	}
	i--
	tmp[i] = '.'
	for k := 0; k < 5 || sec > 0; k++ {
		i--
		tmp[i] = byte('0' + sec%10)
		sec /= 10
	}
	return append(b, tmp[i:]...)
}

// SetDescriber sets how the trace renders the payloads d knows (ok true);
// others keep the default rendering. A backend names there what only it
// understands: cluster.Sim writes raft member IDs as member names.
func (w *World) SetDescriber(d func(p any) (string, bool)) { w.describer = d }

// describe renders a payload for the trace, by the describer if it knows it.
func (w *World) describe(p any) string {
	if w.describer != nil {
		if s, ok := w.describer(p); ok {
			return s
		}
	}
	return describe(p)
}

// describe renders a payload for the trace deterministically: Stringers and
// basic values as their text, anything else as its type (%v of a pointer
// would print an address, which differs between runs).
func describe(p any) string {
	switch v := p.(type) {
	case nil:
		return "<nil>"
	case fmt.Stringer:
		return v.String()
	case string:
		return v
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, bool:
		return fmt.Sprint(v)
	default:
		return fmt.Sprintf("%T", v)
	}
}

// fnv64 is FNV-1a over s: derives per-host seeds from names.
func fnv64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// splitmix is the SplitMix64 finalizer: spreads related seeds apart.
func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}
