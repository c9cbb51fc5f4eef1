package sim

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestPanicStopsTheWorld: a process that panics in a delivery, a timer, a boot
// or a world-driven restart does not take the caller down; the host is marked
// down, the Run methods return the *Panic naming it, and nothing runs after it.
func TestPanicStopsTheWorld(t *testing.T) {
	const msg = "tocommit(3492) is out of range [lastIndex(3491)]. Was the raft log corrupted, truncated, or lost?"
	cases := []struct {
		name  string
		setup func(w *World, victim *proc)
	}{
		{"receive", func(w *World, victim *proc) {
			victim.receive = func(string, any) { panic(msg + "\ngoroutine 1") }
			w.Schedule(time.Second, "send", func() { w.Host("a").Send("b", "x") })
		}},
		{"timer", func(w *World, victim *proc) {
			victim.start = func(h *Host) { h.After(time.Second, func() { panic(errors.New(msg)) }) }
		}},
		{"restart", func(w *World, victim *proc) {
			victim.start = func(h *Host) {
				if victim.starts > 1 {
					panic(msg)
				}
			}
			w.Schedule(time.Second, "bounce", func() { w.Host("b").Restart() })
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var trace bytes.Buffer
			w := NewWorld(Config{Seed: 1, Trace: &trace})
			ticks := 0
			other := &proc{}
			other.start = func(h *Host) {
				var tick func()
				tick = func() { ticks++; h.After(100*time.Millisecond, tick) }
				tick()
			}
			victim := &proc{}
			w.AddHost("a", other)
			w.AddHost("b", victim)
			c.setup(w, victim)
			err := w.RunFor(10 * time.Second)
			require.ErrorIs(t, err, ErrPanic)
			var p *Panic
			require.ErrorAs(t, err, &p)
			require.Equal(t, "b", p.Host)
			require.Equal(t, w.Elapsed(), p.At)
			require.GreaterOrEqual(t, p.At, time.Second)
			require.Less(t, p.At, 2*time.Second)
			require.Equal(t, msg, p.FirstLine())
			require.Contains(t, string(p.Stack), "panic_test.go")
			require.Equal(t, "b panicked at "+p.At.String()+": "+msg, p.Error())
			require.Same(t, p, w.Panic())
			require.False(t, w.Host("b").Up(), "the panicked host is down")
			require.Contains(t, trace.String(), "b panic: "+msg)
			before := ticks
			require.ErrorIs(t, w.RunFor(time.Second), ErrPanic)
			require.False(t, w.Step())
			require.Equal(t, before, ticks, "nothing runs after a panic")
			require.LessOrEqual(t, ticks, 11)
		})
	}
}
