package scenarios

import (
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/havoclab/havoc/cluster"
	"github.com/havoclab/havoc/linearizability"
	"github.com/havoclab/havoc/sim"
	"github.com/havoclab/havoc/store/mvcc"
)

// simWatcher is a watch session as a simulated host: it watches the workload's
// key prefix from revision 1 on one member, asks for a progress notification
// every progressEvery, and when the member stays silent for silentAfter (or
// once in rewatchOneIn polls, on purpose) it cancels and re-watches on
// another member from the last revision it has seen + 1, as clientv3 does
// after a broken stream.
type simWatcher struct {
	id      int
	prefix  string
	members []string
	host    *sim.Host
	target  int
	watchID uint64
	seq     uint64 // last message number of the current watch
	broken  bool   // a message of the current watch was lost
	lastRev int64
	// responses counts the watch responses received (events carry it, so
	// the checker can tell a revision split across responses).
	responses int
	heard     time.Duration
	events    *[]linearizability.WatchEvent
	stopped   bool
	// slow makes the watcher a slow reader: now and then it stops reading
	// (the member holds its events) for holdMin to holdMin + holdSpread.
	slow bool
	held bool
}

const (
	progressEvery = 500 * time.Millisecond
	silentAfter   = 2 * time.Second
	// rewatchOneIn is how rarely (one poll in so many) a watcher that is
	// not silent cancels and re-watches anyway.
	rewatchOneIn = 20
	holdMin      = 500 * time.Millisecond
	holdSpread   = 2 * time.Second
)

// Start begins the session.
func (w *simWatcher) Start(h *sim.Host) {
	w.host = h
	w.target = h.Rand().IntN(len(w.members))
	w.rewatch()
	h.After(progressEvery, w.poll)
}

func (w *simWatcher) rewatch() {
	if w.watchID > 0 {
		w.host.Send(w.members[w.target], &cluster.ClientWatch{ID: w.watchID, Cancel: true})
	}
	w.watchID++
	w.seq, w.broken = 0, false
	w.heard = w.host.World().Elapsed()
	key := []byte(w.prefix)
	*w.events = append(*w.events, linearizability.WatchEvent{
		Watcher: w.id, Member: w.members[w.target], Time: int64(w.host.World().Elapsed()),
		Type: linearizability.WatchStart, Revision: w.lastRev + 1,
	})
	w.host.Send(w.members[w.target], &cluster.ClientWatch{ID: w.watchID, Key: key, End: prefixEnd(key), StartRev: w.lastRev + 1, PrevKV: true})
}

func (w *simWatcher) poll() {
	if w.stopped {
		return
	}
	if w.held {
		w.host.After(progressEvery, w.poll)
		return
	}
	if silent := w.host.World().Elapsed()-w.heard > silentAfter; silent || w.host.Rand().IntN(rewatchOneIn) == 0 {
		// Silent, or once in a while on purpose: cancel and re-watch on
		// another member from the last revision seen + 1.
		if len(w.members) > 1 {
			w.target = (w.target + 1 + w.host.Rand().IntN(len(w.members)-1)) % len(w.members)
		}
		w.rewatch()
	} else if w.slow && w.host.Rand().IntN(4) == 0 {
		w.hold()
	} else {
		w.host.Send(w.members[w.target], &cluster.ClientWatch{ID: w.watchID, Progress: true})
	}
	w.host.After(progressEvery, w.poll)
}

// hold stops reading the current watch for a while: the member keeps its
// events (past its queue bound the watcher falls behind and catches up
// from history), then delivers them when it reads again.
func (w *simWatcher) hold() {
	w.held = true
	member, watchID := w.members[w.target], w.watchID
	w.host.Send(member, &cluster.ClientWatch{ID: watchID, Hold: true})
	w.host.After(holdMin+time.Duration(w.host.Rand().Int64N(int64(holdSpread))), func() {
		w.held = false
		if !w.broken {
			// It heard nothing while it did not read: the silence
			// counts from now (a broken stream re-watches at once).
			w.heard = w.host.World().Elapsed()
		}
		w.host.Send(member, &cluster.ClientWatch{ID: watchID, Release: true})
	})
}

// Receive records the events of the current watch; answers to older watches are
// ignored (their stream is considered broken).
func (w *simWatcher) Receive(from string, payload any) {
	r, ok := payload.(*cluster.ClientWatchEvents)
	if !ok || r.ID != w.watchID || from != w.members[w.target] {
		return
	}
	if w.broken {
		return
	}
	if r.Seq != w.seq+1 {
		// A message of this stream was lost: the stream is broken. Re-watch at
		// the next poll from the last revision seen.
		w.heard = -silentAfter
		w.broken = true
		return
	}
	w.seq = r.Seq
	w.heard = w.host.World().Elapsed()
	for _, resp := range r.Responses {
		if resp.Canceled {
			if resp.CompactRevision > w.lastRev+1 {
				// The revisions it has not seen were compacted away: note
				// the gap (the checker excuses only that) and resume at
				// the compact revision, as clientv3 users must.
				*w.events = append(*w.events, linearizability.WatchEvent{
					Watcher: w.id, Member: from, Time: int64(w.host.World().Elapsed()),
					Type: linearizability.WatchCompacted, Revision: resp.CompactRevision,
				})
				w.lastRev = resp.CompactRevision - 1
			}
			w.heard = -silentAfter // force a re-watch at the next poll
			return
		}
		w.record(from, resp)
	}
}

func (w *simWatcher) record(from string, resp mvcc.WatchEvent) {
	w.responses++
	now := int64(w.host.World().Elapsed())
	for _, ev := range resp.Events {
		*w.events = append(*w.events, watchEvent(w.id, from, now, w.responses, ev))
		w.lastRev = max(w.lastRev, ev.Kv.ModRevision)
	}
	if len(resp.Events) == 0 {
		*w.events = append(*w.events, linearizability.WatchEvent{
			Watcher: w.id, Member: from, Time: now, Type: linearizability.WatchProgress, Response: w.responses, Revision: resp.Revision,
		})
		w.lastRev = max(w.lastRev, resp.Revision)
	}
}

// shortWatcherBase is the watcher ID of a short watcher's first stream;
// each stream after it takes the next ID.
const shortWatcherBase = 100

// simShortWatcher opens short watches one after another, each on a random
// member (lagging or not) and lasting shortWatchMin to shortWatchMin +
// shortWatchSpread: half from the member's current revision (a watch the
// member serves from its synced path at once), a quarter from a past
// revision (possibly compacted), a quarter from a future one. It asks for
// progress at once and every progressEvery. Each stream is a watcher of
// its own for the checker, compared with the long-lived watchers event by
// event (CheckWatch's rule 3) and held to completeness from its start.
type simShortWatcher struct {
	prefix  string
	members []string
	host    *sim.Host
	events  *[]linearizability.WatchEvent
	// reached is, per stream, the revision it is known to have every event
	// up to; the run hands it to the checker.
	reached map[int]int64

	id, target      int
	watchID, seq    uint64
	open, broken    bool
	responses       int
	lastRev, maxRev int64 // this stream's; the highest seen by any
	stopped         bool
	streams         int
}

const (
	shortWatchMin    = 500 * time.Millisecond
	shortWatchSpread = 2 * time.Second
)

// Start begins the session.
func (w *simShortWatcher) Start(h *sim.Host) {
	w.host = h
	w.openNext()
}

func (w *simShortWatcher) openNext() {
	if w.stopped {
		return
	}
	h := w.host
	w.id = shortWatcherBase + w.streams
	w.streams++
	w.target = h.Rand().IntN(len(w.members))
	w.watchID++
	w.seq, w.broken, w.open, w.responses, w.lastRev = 0, false, true, 0, 0
	var start int64
	switch p := h.Rand().IntN(4); {
	case p == 0 && w.maxRev > 0:
		start = max(1, w.maxRev-h.Rand().Int64N(200))
	case p == 1 && w.maxRev > 0:
		start = w.maxRev + 1 + h.Rand().Int64N(20)
	}
	if start > 0 {
		w.lastRev = start - 1
	}
	member := w.members[w.target]
	*w.events = append(*w.events, linearizability.WatchEvent{
		Watcher: w.id, Member: member, Time: int64(h.World().Elapsed()), Type: linearizability.WatchStart, Revision: start,
	})
	key := []byte(w.prefix)
	h.Send(member, &cluster.ClientWatch{ID: w.watchID, Key: key, End: prefixEnd(key), StartRev: start, PrevKV: true})
	h.Send(member, &cluster.ClientWatch{ID: w.watchID, Progress: true})
	watchID := w.watchID
	h.After(progressEvery, func() { w.poll(watchID) })
	h.After(shortWatchMin+time.Duration(h.Rand().Int64N(int64(shortWatchSpread))), func() { w.close(watchID) })
}

func (w *simShortWatcher) poll(watchID uint64) {
	if w.stopped || watchID != w.watchID || !w.open {
		return
	}
	w.host.Send(w.members[w.target], &cluster.ClientWatch{ID: w.watchID, Progress: true})
	w.host.After(progressEvery, func() { w.poll(watchID) })
}

// close cancels the stream, notes how far it reached, and opens the next.
func (w *simShortWatcher) close(watchID uint64) {
	if watchID != w.watchID || !w.open {
		return
	}
	w.end()
	w.openNext()
}

func (w *simShortWatcher) end() {
	w.open = false
	w.host.Send(w.members[w.target], &cluster.ClientWatch{ID: w.watchID, Cancel: true})
	if w.responses > 0 {
		w.reached[w.id] = w.lastRev
	}
}

// stop ends the session, keeping what its open stream reached.
func (w *simShortWatcher) stop() {
	if w.open {
		w.end()
	}
	w.stopped = true
}

// Receive records the events of the open stream. A lost message ends what
// the stream is held to; a cancel (compaction) ends the stream.
func (w *simShortWatcher) Receive(from string, payload any) {
	r, ok := payload.(*cluster.ClientWatchEvents)
	if !ok || r.ID != w.watchID || from != w.members[w.target] || !w.open || w.broken {
		return
	}
	if r.Seq != w.seq+1 {
		w.broken = true
		return
	}
	w.seq = r.Seq
	now := int64(w.host.World().Elapsed())
	for _, resp := range r.Responses {
		if resp.Canceled {
			if resp.CompactRevision > w.lastRev+1 {
				*w.events = append(*w.events, linearizability.WatchEvent{
					Watcher: w.id, Member: from, Time: now, Type: linearizability.WatchCompacted, Revision: resp.CompactRevision,
				})
			}
			w.broken = true
			return
		}
		w.responses++
		for _, ev := range resp.Events {
			*w.events = append(*w.events, watchEvent(w.id, from, now, w.responses, ev))
			w.lastRev = max(w.lastRev, ev.Kv.ModRevision)
		}
		if len(resp.Events) == 0 {
			*w.events = append(*w.events, linearizability.WatchEvent{
				Watcher: w.id, Member: from, Time: now, Type: linearizability.WatchProgress, Response: w.responses, Revision: resp.Revision,
			})
			w.lastRev = max(w.lastRev, resp.Revision)
		}
		w.maxRev = max(w.maxRev, w.lastRev)
	}
}

// watchEvent is the checker's record of one event of watch response
// response (counted per watcher) that watcher got from member at now.
func watchEvent(watcher int, member string, now int64, response int, ev *mvccpb.Event) linearizability.WatchEvent {
	e := linearizability.WatchEvent{
		Watcher: watcher, Member: member, Time: now, Type: "put", Response: response,
		Key: string(ev.Kv.Key), Value: string(ev.Kv.Value), Revision: ev.Kv.ModRevision,
		Create: ev.IsCreate(),
	}
	if ev.Type == mvccpb.Event_DELETE {
		e.Type = "delete"
	}
	if ev.PrevKv != nil {
		e.HasPrev, e.PrevValue = true, string(ev.PrevKv.Value)
	}
	return e
}
