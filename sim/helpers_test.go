package sim

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// proc is a Process built from functions, for tests.
type proc struct {
	start   func(h *Host)
	receive func(from string, payload any)
	starts  int
	got     []recv
	h       *Host
}

type recv struct {
	from    string
	payload any
	at      time.Duration
}

func (p *proc) Start(h *Host) {
	p.starts++
	p.h = h
	if p.start != nil {
		p.start(h)
	}
}

func (p *proc) Receive(from string, payload any) {
	p.got = append(p.got, recv{from: from, payload: payload, at: p.h.World().Elapsed()})
	if p.receive != nil {
		p.receive(from, payload)
	}
}

func (p *proc) payloads() []any {
	out := []any{}
	for _, r := range p.got {
		out = append(out, r.payload)
	}
	return out
}

// fakeDisk models a disk with synced and unsynced writes.
type fakeDisk struct {
	synced, unsynced []string
	crashes, torn    int
	tornDraw         uint64
}

func (d *fakeDisk) Write(s string) { d.unsynced = append(d.unsynced, s) }
func (d *fakeDisk) Sync() {
	d.synced = append(d.synced, d.unsynced...)
	d.unsynced = nil
}
func (d *fakeDisk) Crash() { d.crashes++; d.unsynced = nil }
func (d *fakeDisk) CrashTorn(rnd *rand.Rand) {
	d.torn++
	d.tornDraw = rnd.Uint64()
	d.unsynced = nil
}

// pingPong is a workload: every host sends pings to random peers every
// period; a ping is answered with a pong. It logs every delivery.
type pingPong struct {
	peers  []string
	period time.Duration
	log    *[]string
	h      *Host
	n      int
	limit  int
}

type ping struct {
	From string
	N    int
	Pong bool
}

func (p ping) String() string {
	if p.Pong {
		return fmt.Sprintf("pong(%s#%d)", p.From, p.N)
	}
	return fmt.Sprintf("ping(%s#%d)", p.From, p.N)
}

func (p *pingPong) Start(h *Host) {
	p.h = h
	h.After(p.period, p.tick)
}

func (p *pingPong) tick() {
	if p.limit > 0 && p.n >= p.limit {
		return
	}
	p.n++
	to := p.peers[p.h.Rand().IntN(len(p.peers))]
	p.h.Send(to, ping{From: p.h.Name(), N: p.n})
	// Jitter from the host PRNG exercises it in the determinism test.
	p.h.After(p.period+time.Duration(p.h.Rand().Int64N(int64(p.period))), p.tick)
}

func (p *pingPong) Receive(from string, payload any) {
	m := payload.(ping)
	if p.log != nil {
		*p.log = append(*p.log, fmt.Sprintf("%v %s<-%s %v", p.h.World().Elapsed(), p.h.Name(), from, m))
	}
	if !m.Pong {
		p.h.Send(from, ping{From: m.From, N: m.N, Pong: true})
	}
}
