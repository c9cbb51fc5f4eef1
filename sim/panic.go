package sim

import (
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"time"
)

// ErrPanic is returned (as a *Panic, which wraps it) by the Run methods once a
// process panicked: the world recovered the panic, marked the host down and
// stopped. A member that panics is a finding of the run, not a crash of the
// harness.
var ErrPanic = errors.New("sim: process panicked")

// Panic describes a panic recovered from a process (or a world event).
type Panic struct {
	// Host is the host whose process panicked; "world" for a world event
	// (World.Schedule) that panicked outside any host.
	Host string
	// At is the virtual time of the panic (as World.Elapsed).
	At time.Duration
	// Value is what was passed to panic.
	Value any
	// Stack is the panicking goroutine's stack.
	Stack []byte
}

// FirstLine returns the first line of the panic value's text.
func (p *Panic) FirstLine() string {
	s := fmt.Sprint(p.Value)
	if err, ok := p.Value.(error); ok {
		s = err.Error()
	}
	first, _, _ := strings.Cut(s, "\n")
	return first
}

// Error renders the panic in one line: host, virtual time and the first line
// of the value.
func (p *Panic) Error() string {
	return fmt.Sprintf("%s panicked at %s: %s", p.Host, p.At, p.FirstLine())
}

// Unwrap makes errors.Is(p, ErrPanic) hold.
func (p *Panic) Unwrap() error { return ErrPanic }

// Panic returns the panic that stopped the world, or nil.
func (w *World) Panic() *Panic { return w.panicked }

// safeDispatch dispatches ev and recovers a panic of the code it runs: the
// host that was running (w.current) is crashed, as a real process would die,
// and the panic is kept for the Run methods to return.
func (w *World) safeDispatch(ev event) {
	defer func() {
		v := recover()
		if v == nil {
			w.current = nil
			return
		}
		if v == errReentered {
			panic(v)
		}
		p := &Panic{Host: "world", At: time.Duration(w.now), Value: v, Stack: debug.Stack()}
		h := w.current
		w.current = nil
		if h != nil {
			p.Host = h.name
		}
		w.panicked = p
		if w.tracing {
			w.Tracef(p.Host, "panic: %s", p.FirstLine())
		}
		if h != nil {
			h.crash(false)
		}
	}()
	if ev.kind != evWorld {
		w.current = ev.host
	}
	w.dispatch(ev)
}
