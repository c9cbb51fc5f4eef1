package mvcc

import (
	"bytes"
	"fmt"
	"sort"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"

	"github.com/havoclab/havoc/internal/mutant"
)

// watchQueueMax is the number of undelivered responses a synced watcher may hold; past
// it the watcher falls back to catching up from history (etcd's victim handling), so a
// slow drainer costs disk reads, not memory.
const watchQueueMax = 1024

// watchChunkEntries is how many key bucket entries one catch-up step reads at most
// (rounded up to a whole revision).
const watchChunkEntries = 1000

// WatchRequest asks for the events of a key or range from a start revision.
type WatchRequest struct {
	// Key is the key or range start; End the range end as in etcd: nil for the single
	// key, "\x00" for every key >= Key.
	Key, End []byte
	// StartRev is the first revision to report; 0 means the next one (current+1).
	StartRev int64
	// PrevKV fills each non-create event's PrevKv with the key's value just before it.
	PrevKV bool
	// NoPut and NoDelete drop those event types.
	NoPut, NoDelete bool
	// Fragment is recorded for the gRPC layer, which splits large responses; the
	// store itself never fragments.
	Fragment bool
}

// WatchEvent is one response for one watcher: events of increasing revisions up to
// Revision, or a progress notification (no events), or a compaction cancel.
type WatchEvent struct {
	ID       int64
	Revision int64
	Events   []*mvccpb.Event
	// CompactRevision is set, with Canceled, when the watcher's next revision was
	// compacted away; the watcher is then gone.
	CompactRevision int64
	Canceled        bool
}

type watcher struct {
	id                   int64
	key, end             []byte // end: nil single key, empty = every key >= key
	prevKV, noPut, noDel bool
	fragment             bool
	minRev               int64 // no event below minRev is reported
	synced               bool  // every revision <= store rev is delivered or queued
	nextRev              int64 // unsynced: next revision to read from history
	queue                []WatchEvent
	held                 bool // DrainWatch skips it (HoldWatch)
}

// watchState holds the watchers sorted by id: every walk over them is in id order.
type watchState struct {
	ws []*watcher
}

func (st *watchState) init() { st.ws = nil }

func (st *watchState) find(id int64) (int, bool) {
	i := sort.Search(len(st.ws), func(i int) bool { return st.ws[i].id >= id })
	return i, i < len(st.ws) && st.ws[i].id == id
}

func (w *watcher) contains(k []byte) bool {
	if w.end == nil {
		return bytes.Equal(k, w.key)
	}
	return bytes.Compare(k, w.key) >= 0 && (len(w.end) == 0 || bytes.Compare(k, w.end) < 0)
}

// Watch registers watcher id (chosen by the caller, unique among live watchers).
// A start revision in the past makes it catch up from history in DrainWatch; one below
// the compaction revision gets a single canceled response with CompactRevision set.
func (s *Store) Watch(id int64, r WatchRequest) error {
	i, ok := s.watch.find(id)
	if ok {
		return fmt.Errorf("%w: %d", ErrWatchIDExists, id)
	}
	w := &watcher{id: id, key: bytes.Clone(r.Key), end: mkGteRange(r.End), prevKV: r.PrevKV,
		noPut: r.NoPut, noDel: r.NoDelete, fragment: r.Fragment, minRev: r.StartRev}
	if w.end != nil {
		w.end = bytes.Clone(w.end)
	}
	if w.minRev == 0 {
		w.minRev = s.rev + 1
	}
	if w.minRev > s.rev {
		w.synced = true
	} else {
		w.nextRev = w.minRev
		if mutant.On(mutant.WatchResumeOffByOne) {
			w.nextRev++
		}
	}
	s.watch.ws = append(s.watch.ws, nil)
	copy(s.watch.ws[i+1:], s.watch.ws[i:])
	s.watch.ws[i] = w
	return nil
}

// CancelWatch removes a watcher and its undelivered responses; false if unknown.
func (s *Store) CancelWatch(id int64) bool {
	i, ok := s.watch.find(id)
	if ok {
		s.watch.ws = append(s.watch.ws[:i], s.watch.ws[i+1:]...)
	}
	return ok
}

// HoldWatch stops (hold) or resumes DrainWatch for watcher id; unknown ids are
// ignored. A held watcher keeps its responses in the store, up to its queue bound,
// past which it falls behind and later catches up from history: a runtime whose
// client reads slowly holds the watcher instead of buffering its events (etcd's
// victim watchers), and loses none.
func (s *Store) HoldWatch(id int64, hold bool) {
	if i, ok := s.watch.find(id); ok {
		s.watch.ws[i].held = hold
	}
}

// RequestProgress queues a progress notification (no events, Revision = current) for
// a synced watcher; an unsynced one gets nothing, as in etcd.
func (s *Store) RequestProgress(id int64) {
	if i, ok := s.watch.find(id); ok && s.watch.ws[i].synced {
		w := s.watch.ws[i]
		w.queue = append(w.queue, WatchEvent{ID: id, Revision: s.rev})
	}
}

// notify queues the changes of revision rev for every synced watcher they concern.
func (st *watchState) notify(s *Store, rev int64, changes []*mvccpb.KeyValue) {
	if len(st.ws) == 0 {
		return
	}
	evs := make([]*mvccpb.Event, len(changes))
	for i, c := range changes {
		if c.CreateRevision == 0 {
			evs[i] = &mvccpb.Event{Type: mvccpb.Event_DELETE, Kv: &mvccpb.KeyValue{Key: c.Key, ModRevision: rev}}
		} else {
			evs[i] = &mvccpb.Event{Type: mvccpb.Event_PUT, Kv: c}
		}
	}
	prev := make([]*mvccpb.KeyValue, len(evs))
	for _, w := range st.ws {
		if !w.synced || rev < w.minRev {
			continue
		}
		var out []*mvccpb.Event
		for i, ev := range evs {
			if e := s.watchEvent(w, ev, &prev[i]); e != nil {
				out = append(out, e)
			}
		}
		if len(out) == 0 {
			continue
		}
		if len(w.queue) >= watchQueueMax {
			w.fallBehind()
			continue
		}
		w.queue = append(w.queue, WatchEvent{ID: w.id, Revision: rev, Events: out})
	}
}

// fallBehind turns a synced watcher with a full queue into an unsynced one that
// resumes from its first undelivered revision.
func (w *watcher) fallBehind() {
	for i, r := range w.queue {
		if len(r.Events) > 0 {
			w.nextRev = r.Revision
			w.queue = w.queue[:i:i]
			w.synced = false
			return
		}
	}
	panic(fmt.Sprintf("mvcc: watcher %d has a full queue without events", w.id))
}

// watchEvent filters ev for w and attaches the previous value if asked; *prev caches
// the previous value across watchers.
func (s *Store) watchEvent(w *watcher, ev *mvccpb.Event, prev **mvccpb.KeyValue) *mvccpb.Event {
	if !w.contains(ev.Kv.Key) || (w.noPut && ev.Type == mvccpb.Event_PUT) ||
		(w.noDel && ev.Type == mvccpb.Event_DELETE) {
		return nil
	}
	out := &mvccpb.Event{Type: ev.Type, Kv: ev.Kv}
	isCreate := ev.Type == mvccpb.Event_PUT && ev.Kv.CreateRevision == ev.Kv.ModRevision
	if w.prevKV && !isCreate && !mutant.On(mutant.WatchDropPrevKV) {
		if *prev == nil {
			*prev = s.prevValue(ev.Kv.Key, ev.Kv.ModRevision-1)
		}
		if len((*prev).Key) > 0 {
			out.PrevKv = *prev
		}
	}
	return out
}

// prevValue is the value of key at rev, or an empty KeyValue if there is none or it
// was compacted (etcd's watch stream then omits PrevKv).
func (s *Store) prevValue(key []byte, rev int64) *mvccpb.KeyValue {
	tw := &writeTxn{s: s, beginRev: s.rev}
	rr, err := tw.rangeKeys(key, nil, rangeOpts{rev: rev})
	if err != nil || len(rr.kvs) == 0 {
		return &mvccpb.KeyValue{}
	}
	return rr.kvs[0]
}

// DrainWatch returns up to max pending responses (max <= 0: all), by watcher id and
// then revision. Unsynced watchers read history in chunks of whole revisions; a watcher
// is synced once it has read up to the current revision, after which new writes queue
// for it directly, so no revision is skipped or repeated.
func (s *Store) DrainWatch(max int) []WatchEvent {
	var out []WatchEvent
	full := func() bool { return max > 0 && len(out) >= max }
	for i := 0; i < len(s.watch.ws) && !full(); i++ {
		w := s.watch.ws[i]
		if w.held {
			continue
		}
		n := len(w.queue)
		if max > 0 {
			n = min(n, max-len(out))
		}
		out = append(out, w.queue[:n]...)
		w.queue = w.queue[n:]
		if len(w.queue) == 0 {
			w.queue = nil
		}
		for !w.synced && !full() {
			if w.nextRev < s.compactRev {
				out = append(out, WatchEvent{ID: w.id, CompactRevision: s.compactRev, Canceled: true})
				s.watch.ws = append(s.watch.ws[:i], s.watch.ws[i+1:]...)
				i--
				break
			}
			if r, ok := s.catchUp(w); ok {
				out = append(out, r)
			}
		}
	}
	return out
}

// catchUp reads one chunk of history for an unsynced watcher.
func (s *Store) catchUp(w *watcher) (WatchEvent, bool) {
	var evs []*mvccpb.Event
	last, read, stopped := int64(0), 0, false
	c := s.bucket(BucketKey).Cursor()
	for k, v := c.Seek(revKey(revision{main: max(w.nextRev, 0)}, false)); k != nil; k, v = c.Next() {
		r, tomb := parseRevKey(k)
		if read >= s.watchChunk && r.main != last {
			stopped = true
			break
		}
		last = r.main
		read++
		kv := &mvccpb.KeyValue{}
		if err := proto.Unmarshal(v, kv); err != nil {
			panic(fmt.Sprintf("mvcc: undecodable value at %x: %v", k, err))
		}
		ev := &mvccpb.Event{Type: mvccpb.Event_PUT, Kv: kv}
		if tomb {
			ev.Type = mvccpb.Event_DELETE
			kv.ModRevision = r.main
		}
		var prev *mvccpb.KeyValue
		if e := s.watchEvent(w, ev, &prev); e != nil {
			evs = append(evs, e)
		}
	}
	end := s.rev
	if stopped {
		end = last
	}
	w.nextRev = end + 1
	if w.nextRev > s.rev {
		w.synced = true
	}
	if len(evs) == 0 {
		return WatchEvent{}, false
	}
	return WatchEvent{ID: w.id, Revision: end, Events: evs}, true
}

// resync makes every synced watcher catch up from history after the keyspace was
// replaced, starting after the revision it had seen (etcd's watchable store Restore).
func (st *watchState) resync(oldRev int64) {
	for _, w := range st.ws {
		if w.synced {
			w.synced = false
			w.nextRev = max(w.minRev, oldRev+1)
		}
	}
}
