package sim

import (
	"fmt"
	"strings"
	"time"
)

// LinkConfig is the behaviour of one direction of a link. The zero value is
// a perfect link: no latency, no loss, no duplication, FIFO, queue limit
// 1024.
type LinkConfig struct {
	// LatencyMin and LatencyMax bound the one-way latency, drawn uniformly
	// per message from the world PRNG.
	LatencyMin, LatencyMax time.Duration
	// Loss is the probability that a message is dropped.
	Loss float64
	// Duplicate is the probability that a message is delivered twice (the
	// copy has its own latency).
	Duplicate float64
	// Reorder is the probability that a message leaves the link's FIFO
	// order: it is delayed by an extra [0, LatencyMax] and not held behind
	// earlier messages, so it may overtake them and be overtaken.
	Reorder float64
	// QueueLimit bounds the messages in flight (including held ones) on the
	// link; beyond it new messages are dropped. Zero means 1024.
	QueueLimit int
}

// DefaultLinkConfig is the network's default link until SetDefault: a LAN
// with 0.5-2 ms latency and no faults.
var DefaultLinkConfig = LinkConfig{LatencyMin: 500 * time.Microsecond, LatencyMax: 2 * time.Millisecond}

// Validate reports whether c is usable.
func (c LinkConfig) Validate() error {
	if c.LatencyMin < 0 || c.LatencyMax < c.LatencyMin {
		return fmt.Errorf("sim: LinkConfig latency [%v, %v] invalid", c.LatencyMin, c.LatencyMax)
	}
	for _, p := range []struct {
		name string
		v    float64
	}{{"Loss", c.Loss}, {"Duplicate", c.Duplicate}, {"Reorder", c.Reorder}} {
		if !(p.v >= 0 && p.v <= 1) {
			return fmt.Errorf("sim: LinkConfig.%s %v not in [0, 1]", p.name, p.v)
		}
	}
	if c.QueueLimit < 0 {
		return fmt.Errorf("sim: LinkConfig.QueueLimit %d < 0", c.QueueLimit)
	}
	return nil
}

func (c LinkConfig) queueLimit() int {
	if c.QueueLimit == 0 {
		return 1024
	}
	return c.QueueLimit
}

// DropReason says why the network dropped a message.
type DropReason uint8

// The drop reasons, indexes into NetStats.Dropped.
const (
	DropPartition DropReason = iota // the link was cut at send or before delivery
	DropLoss                        // random loss
	DropQueue                       // the link's QueueLimit was reached
	DropDown                        // the destination (or sender) was crashed
	DropUnknown                     // no host has that name
	NumDropReasons
)

var dropNames = [NumDropReasons]string{"partition", "loss", "queue", "down", "unknown"}

// String returns the reason's name as used in the trace.
func (r DropReason) String() string {
	if r < NumDropReasons {
		return dropNames[r]
	}
	return fmt.Sprintf("DropReason(%d)", uint8(r))
}

// NetStats counts what the network did. Sent+Duplicated always equals
// Delivered + the sum of Dropped + InFlight.
type NetStats struct {
	Sent       int64 // Send calls
	Delivered  int64 // Receive calls
	Duplicated int64 // extra copies created
	InFlight   int64 // queued on links, held, or parked at paused hosts
	Dropped    [NumDropReasons]int64
}

// DroppedTotal returns the number of dropped messages for every reason.
func (s NetStats) DroppedTotal() int64 {
	var n int64
	for _, d := range s.Dropped {
		n += d
	}
	return n
}

// link is the state of one direction from → to.
type link struct {
	from, to *Host
	cfg      LinkConfig
	custom   bool   // cfg set by SetLink; else the network default applies
	cut      bool   // cutSet || cutRefs > 0
	cutSet   bool   // cut by Partition/Isolate, until Repair or Heal
	cutRefs  int    // owned cuts (Cut) not yet released
	cutGen   uint64 // bumped on every cut: messages sent before a cut die
	held     bool
	heldQ    []event
	inflight int
	last     int64 // latest FIFO delivery time scheduled on this link
}

// Network is the simulated network: per-direction links between every pair
// of hosts, with latency, loss, duplication, reordering, partitions and
// holds. Its verbs name hosts; naming an unknown host panics (a broken
// scenario).
type Network struct {
	w     *World
	def   LinkConfig
	links [][]*link // [from.idx][to.idx], allocated lazily
	stats NetStats
	// healGen is bumped by Heal: a release of a Cut made before it does
	// nothing (Heal already released it).
	healGen uint64
}

func newNetwork(w *World) *Network {
	return &Network{w: w, def: DefaultLinkConfig}
}

func (n *Network) addHost() {
	for i := range n.links {
		n.links[i] = append(n.links[i], nil)
	}
	n.links = append(n.links, make([]*link, len(n.w.hosts)))
}

func (n *Network) link(from, to *Host) *link {
	l := n.links[from.idx][to.idx]
	if l == nil {
		l = &link{from: from, to: to}
		n.links[from.idx][to.idx] = l
	}
	return l
}

func (n *Network) host(name string) *Host {
	h := n.w.byName[name]
	if h == nil {
		panic(fmt.Sprintf("sim: network: unknown host %q", name))
	}
	return h
}

// SetDefault sets the config of every link not set with SetLink.
func (n *Network) SetDefault(c LinkConfig) {
	if err := c.Validate(); err != nil {
		panic(err)
	}
	n.def = c
	n.tracef("default %+v", c)
}

// Default returns the default link config.
func (n *Network) Default() LinkConfig { return n.def }

// SetLink sets the config of the direction from → to.
func (n *Network) SetLink(from, to string, c LinkConfig) {
	if err := c.Validate(); err != nil {
		panic(err)
	}
	l := n.link(n.host(from), n.host(to))
	l.cfg = c
	l.custom = true
	n.tracef("link %s->%s %+v", from, to, c)
}

// Link returns the config in force for the direction from → to.
func (n *Network) Link(from, to string) LinkConfig {
	return *n.link(n.host(from), n.host(to)).config(n)
}

func (l *link) config(n *Network) *LinkConfig {
	if l.custom {
		return &l.cfg
	}
	return &n.def
}

// Partition cuts both directions between every host of a and every host of
// b. Messages in flight on a cut link are dropped when they arrive, even if
// the link is repaired before then (a cut cable loses what was on it).
func (n *Network) Partition(a, b []string) {
	n.tracef("partition %s | %s", strings.Join(a, ","), strings.Join(b, ","))
	n.setCut(a, b, true, true)
}

// PartitionOneWay cuts only the directions from → to.
func (n *Network) PartitionOneWay(from, to []string) {
	n.tracef("partition-oneway %s -> %s", strings.Join(from, ","), strings.Join(to, ","))
	n.setCut(from, to, true, false)
}

// Repair undoes Partition(a, b): both directions between a and b work again.
func (n *Network) Repair(a, b []string) {
	n.tracef("repair %s | %s", strings.Join(a, ","), strings.Join(b, ","))
	n.setCut(a, b, false, true)
}

// RepairOneWay undoes PartitionOneWay(from, to).
func (n *Network) RepairOneWay(from, to []string) {
	n.tracef("repair-oneway %s -> %s", strings.Join(from, ","), strings.Join(to, ","))
	n.setCut(from, to, false, false)
}

// Isolate cuts host off from every other current host, both ways.
func (n *Network) Isolate(host string) {
	h := n.host(host)
	n.tracef("isolate %s", host)
	for _, o := range n.w.sorted {
		if o != h {
			n.cutLink(n.link(h, o), true)
			n.cutLink(n.link(o, h), true)
		}
	}
}

func (n *Network) setCut(a, b []string, cut, both bool) {
	for _, x := range a {
		hx := n.host(x)
		for _, y := range b {
			hy := n.host(y)
			if hx == hy {
				continue
			}
			n.cutLink(n.link(hx, hy), cut)
			if both {
				n.cutLink(n.link(hy, hx), cut)
			}
		}
	}
}

func (n *Network) cutLink(l *link, cut bool) {
	l.cutSet = cut
	l.update()
}

// update recomputes whether l is cut from its causes.
func (l *link) update() {
	cut := l.cutSet || l.cutRefs > 0
	if cut && !l.cut {
		l.cutGen++
	}
	l.cut = cut
}

// Cut is Partition (both) or PartitionOneWay owned by one cause: it returns
// the function that releases this cut only. A direction stays cut while any
// cause holds it (Partition, Isolate or another Cut), so overlapping faults
// each heal only what they broke. Heal releases every cut; a release after it
// does nothing. Calling the release twice is the same as once.
func (n *Network) Cut(from, to []string, both bool) (release func()) {
	n.tracef("cut %s -> %s both=%v", strings.Join(from, ","), strings.Join(to, ","), both)
	var ls []*link
	for _, x := range from {
		hx := n.host(x)
		for _, y := range to {
			hy := n.host(y)
			if hx == hy {
				continue
			}
			ls = append(ls, n.link(hx, hy))
			if both {
				ls = append(ls, n.link(hy, hx))
			}
		}
	}
	for _, l := range ls {
		l.cutRefs++
		l.update()
	}
	gen, done := n.healGen, false
	return func() {
		if done || gen != n.healGen {
			return
		}
		done = true
		n.tracef("uncut %s -> %s both=%v", strings.Join(from, ","), strings.Join(to, ","), both)
		for _, l := range ls {
			l.cutRefs--
			l.update()
		}
	}
}

// Cuts returns how many causes hold the direction from → to cut (Partition
// and Isolate count as one).
func (n *Network) Cuts(from, to string) int {
	l := n.link(n.host(from), n.host(to))
	c := l.cutRefs
	if l.cutSet {
		c++
	}
	return c
}

// InFlight returns how many messages are on the direction from → to: sent
// and not yet delivered or dropped, held ones included.
func (n *Network) InFlight(from, to string) int {
	return n.link(n.host(from), n.host(to)).inflight
}

// ResetLink makes the direction from → to follow the default config again
// (undoes SetLink).
func (n *Network) ResetLink(from, to string) {
	n.link(n.host(from), n.host(to)).custom = false
	n.tracef("link %s->%s default", from, to)
}

// Hold queues every message arriving on from → to (including those already
// in flight) until Release.
func (n *Network) Hold(from, to string) {
	n.tracef("hold %s->%s", from, to)
	n.link(n.host(from), n.host(to)).held = true
}

// Release ends a hold: the held messages are delivered now, in the order
// they arrived (unless the link was cut meanwhile).
func (n *Network) Release(from, to string) {
	n.tracef("release %s->%s", from, to)
	n.release(n.link(n.host(from), n.host(to)))
}

func (n *Network) release(l *link) {
	l.held = false
	for _, ev := range l.heldQ {
		n.w.q.push(n.w.now, ev)
	}
	l.heldQ = l.heldQ[:0]
	l.last = max(l.last, n.w.now)
}

// Heal removes every partition and hold (releasing held messages) and
// resets every link to the default config.
func (n *Network) Heal() {
	n.tracef("heal")
	n.healGen++
	// Iterate in host order (AddHost order), so released messages queue
	// deterministically.
	for _, row := range n.links {
		for _, l := range row {
			if l == nil {
				continue
			}
			l.cut, l.cutSet, l.cutRefs = false, false, 0
			l.custom = false
			if l.held {
				n.release(l)
			}
		}
	}
}

// Stats returns the network counters.
func (n *Network) Stats() NetStats { return n.stats }

func (n *Network) tracef(format string, args ...any) {
	if n.w.tracing {
		n.w.Tracef("net", format, args...)
	}
}

// send implements Host.Send.
func (n *Network) send(from *Host, to string, payload any) {
	n.stats.Sent++
	dst := n.w.byName[to]
	if dst == nil {
		n.dropName(from, to, payload, DropUnknown)
		return
	}
	if !from.up {
		n.drop(from, dst, payload, DropDown)
		return
	}
	l := n.link(from, dst)
	if l.cut {
		n.drop(from, dst, payload, DropPartition)
		return
	}
	cfg := l.config(n)
	rnd := n.w.rnd
	if cfg.Loss > 0 && rnd.Float64() < cfg.Loss {
		n.drop(from, dst, payload, DropLoss)
		return
	}
	if n.w.tracing {
		n.w.Tracef(from.name, "send -> %s %s", to, n.w.describe(payload))
	}
	n.enqueue(l, cfg, payload)
	if cfg.Duplicate > 0 && rnd.Float64() < cfg.Duplicate {
		n.stats.Duplicated++
		if n.w.tracing {
			n.w.Tracef(from.name, "dup -> %s %s", to, n.w.describe(payload))
		}
		n.enqueue(l, cfg, payload)
	}
}

// enqueue puts one copy of a message on link l.
func (n *Network) enqueue(l *link, cfg *LinkConfig, payload any) {
	if l.inflight >= cfg.queueLimit() {
		n.drop(l.from, l.to, payload, DropQueue)
		return
	}
	rnd := n.w.rnd
	lat := int64(cfg.LatencyMin)
	if span := int64(cfg.LatencyMax - cfg.LatencyMin); span > 0 {
		lat += rnd.Int64N(span + 1)
	}
	at := n.w.after(time.Duration(lat))
	if cfg.Reorder > 0 && rnd.Float64() < cfg.Reorder {
		at = n.w.after(time.Duration(lat + rnd.Int64N(int64(cfg.LatencyMax)+1)))
	} else {
		// FIFO like TCP: never before the previous in-order message. Equal
		// times keep send order through the queue's sequence numbers.
		at = max(at, l.last)
		l.last = at
	}
	l.inflight++
	n.stats.InFlight++
	n.w.q.push(at, event{kind: evDeliver, host: l.to, from: l.from, link: l, payload: payload, id: l.cutGen})
}

// arriveLink handles a message reaching the end of its link.
func (n *Network) arriveLink(ev event) {
	l := ev.link
	if l.cut || ev.id != l.cutGen {
		l.inflight--
		n.stats.InFlight--
		n.drop(ev.from, ev.host, ev.payload, DropPartition)
		return
	}
	if l.held {
		l.heldQ = append(l.heldQ, ev)
		return
	}
	l.inflight--
	ev.kind = evLocal
	n.arriveHost(ev)
}

// arriveHost hands a message that crossed the network to its destination.
func (n *Network) arriveHost(ev event) {
	h := ev.host
	if !h.up {
		n.stats.InFlight--
		n.drop(ev.from, h, ev.payload, DropDown)
		return
	}
	if h.paused {
		h.parked = append(h.parked, ev)
		return
	}
	n.stats.InFlight--
	n.stats.Delivered++
	if n.w.tracing {
		n.w.Tracef(h.name, "recv <- %s %s", ev.from.name, n.w.describe(ev.payload))
	}
	h.proc.Receive(ev.from.name, ev.payload)
}

// drop counts (and traces) a dropped message. Callers adjust InFlight.
func (n *Network) drop(from, to *Host, payload any, why DropReason) {
	n.dropName(from, to.name, payload, why)
}

func (n *Network) dropName(from *Host, to string, payload any, why DropReason) {
	n.stats.Dropped[why]++
	if n.w.tracing {
		n.w.Tracef(from.name, "drop -> %s %s (%s)", to, n.w.describe(payload), why)
	}
}
