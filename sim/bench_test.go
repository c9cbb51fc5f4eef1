package sim

import (
	"fmt"
	"testing"
	"time"
)

// reportRates reports events/s and virtual seconds per wall second.
func reportRates(b *testing.B, w *World, events0 int64, virt0 time.Duration) {
	wall := b.Elapsed().Seconds()
	if wall <= 0 {
		return
	}
	b.ReportMetric(float64(w.Events()-events0)/wall, "events/s")
	b.ReportMetric((w.Elapsed()-virt0).Seconds()/wall, "virt-s/s")
	b.ReportMetric(0, "ns/op") // an op is an arbitrary slice of virtual time
}

// BenchmarkPingPong: 3 "members" and 16 "clients" ping random peers every
// 1-2 ms over a faulty network (tracing off), each ping answered.
func BenchmarkPingPong(b *testing.B) {
	w := NewWorld(Config{Seed: 1})
	w.Net().SetDefault(LinkConfig{
		LatencyMin: 200 * time.Microsecond, LatencyMax: 2 * time.Millisecond,
		Loss: 0.01, Duplicate: 0.01, Reorder: 0.01,
	})
	var names []string
	for i := 0; i < 3; i++ {
		names = append(names, fmt.Sprintf("m%d", i))
	}
	for i := 0; i < 16; i++ {
		names = append(names, fmt.Sprintf("c%02d", i))
	}
	for _, n := range names {
		w.AddHost(n, &pingPong{peers: names[:3], period: time.Millisecond})
	}
	if err := w.RunFor(time.Second); err != nil { // warm up the slabs
		b.Fatal(err)
	}
	events0, virt0 := w.Events(), w.Elapsed()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := w.RunFor(100 * time.Millisecond); err != nil {
			b.Fatal(err)
		}
	}
	reportRates(b, w, events0, virt0)
}

// timerProc re-arms a tick every period and, like a client with a request
// timeout, sets a long timer on each tick and cancels the previous one.
type timerProc struct {
	h       *Host
	period  time.Duration
	timeout TimerID
	tick    func()
}

func (p *timerProc) Start(h *Host) {
	p.h = h
	p.tick = func() {
		p.h.Cancel(p.timeout)
		p.timeout = p.h.After(time.Second, p.tick)
		p.h.After(p.period, p.tick)
	}
	h.After(p.period, p.tick)
}

func (p *timerProc) Receive(string, any) {}

// BenchmarkTimers: 19 hosts, each ticking every 100µs with a cancelled
// timeout per tick.
func BenchmarkTimers(b *testing.B) {
	w := NewWorld(Config{Seed: 1})
	for i := 0; i < 19; i++ {
		h := w.AddHost(fmt.Sprintf("h%02d", i), &timerProc{period: 100 * time.Microsecond})
		h.SetClock(0, int64(i*100)) // some drift: exercises the conversion
	}
	if err := w.RunFor(100 * time.Millisecond); err != nil {
		b.Fatal(err)
	}
	events0, virt0 := w.Events(), w.Elapsed()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := w.RunFor(10 * time.Millisecond); err != nil {
			b.Fatal(err)
		}
	}
	reportRates(b, w, events0, virt0)
}
