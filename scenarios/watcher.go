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
// every progressEvery, and when the member stays silent for silentAfter it
// re-watches on another member from the last revision it has seen + 1, as
// clientv3 does after a broken stream.
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
}

const (
	progressEvery = 500 * time.Millisecond
	silentAfter   = 2 * time.Second
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
	if w.host.World().Elapsed()-w.heard > silentAfter {
		if len(w.members) > 1 {
			w.target = (w.target + 1 + w.host.Rand().IntN(len(w.members)-1)) % len(w.members)
		}
		w.rewatch()
	} else {
		w.host.Send(w.members[w.target], &cluster.ClientWatch{ID: w.watchID, Progress: true})
	}
	w.host.After(progressEvery, w.poll)
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
		e := linearizability.WatchEvent{
			Watcher: w.id, Member: from, Time: now, Type: "put", Response: w.responses,
			Key: string(ev.Kv.Key), Value: string(ev.Kv.Value), Revision: ev.Kv.ModRevision,
			Create: ev.IsCreate(),
		}
		if ev.Type == mvccpb.Event_DELETE {
			e.Type = "delete"
		}
		if ev.PrevKv != nil {
			e.HasPrev, e.PrevValue = true, string(ev.PrevKv.Value)
		}
		*w.events = append(*w.events, e)
		w.lastRev = max(w.lastRev, ev.Kv.ModRevision)
	}
	if len(resp.Events) == 0 {
		*w.events = append(*w.events, linearizability.WatchEvent{
			Watcher: w.id, Member: from, Time: now, Type: linearizability.WatchProgress, Response: w.responses, Revision: resp.Revision,
		})
		w.lastRev = max(w.lastRev, resp.Revision)
	}
}
