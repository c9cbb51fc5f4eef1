package linearizability

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
)

// WatchEvent is one event a watcher received, recorded beside the history.
type WatchEvent struct {
	Watcher  int    `json:"watcher"`
	Member   string `json:"member"`
	Time     int64  `json:"time"`
	Type     string `json:"type"` // "put", "delete" or WatchCompacted
	Key      string `json:"key"`
	Value    string `json:"value,omitempty"`
	Revision int64  `json:"rev"` // the event's mod revision; a mark's revision
	// Response numbers the watch responses a watcher received: the events
	// of one response share it (a progress notification has its own).
	Response int `json:"resp,omitempty"`
	// Create is the event's IsCreate (a put that created the key).
	Create bool `json:"create,omitempty"`
	// HasPrev and PrevValue are the event's prev_kv, if the store sent one.
	HasPrev   bool   `json:"has_prev,omitempty"`
	PrevValue string `json:"prev_value,omitempty"`
}

// The types of the marks a watcher records beside its events.
const (
	// WatchStart marks a (re)watch from Revision: the events after it come
	// from a new stream. Revision 0 is a watch from the member's current
	// revision (unknown to the client); a watcher's first mark says where
	// its events start (revision 1 when it has none).
	WatchStart = "start"
	// WatchProgress is a response without events (a progress notification)
	// at Revision: the stream holds every event up to it.
	WatchProgress = "progress"
)

// WatchCompacted is the type of the mark a watcher records when its watch
// was canceled because the revisions it asked for were compacted: Revision
// is the compact revision the store named, where the watcher resumed. The
// writes between its last event and that revision need not appear.
const WatchCompacted = "compacted"

// ErrWatch reports a broken watch guarantee.
var ErrWatch = errors.New("linearizability: watch guarantee broken")

// WatchOptions describe what the watchers watched.
type WatchOptions struct {
	// Prefix is the watched key prefix; every watcher watched it from the
	// revision of its first WatchStart mark (1 if it has none).
	Prefix string
	// Reached is, per watcher, the revision up to which it is known to have
	// received every event (its last progress notification or event). Writes
	// above it are not required to appear.
	Reached map[int]int64
	// IsCreate says the events carry IsCreate (and PrevKV that the watchers
	// asked for prev_kv on every watch): both are then checked against the
	// replay of each stream.
	IsCreate, PrevKV bool
}

// CheckWatch checks etcd's watch guarantees against a history:
//  1. ordered: each watcher's events have non-decreasing revisions and no event
//     twice (reconnecting from the last revision + 1 must not repeat or skip);
//  2. valid: a put event carries a value some operation wrote to that key, at the
//     revision that write was acknowledged with; a delete event has a delete or
//     lease revoke that could have made it;
//  3. agreed: watchers report the same events for the same revision;
//  4. bookmarkable: no event at or below the revision of a progress
//     notification comes after it, and a stream's notifications never go
//     backwards; atomic: the events of one revision come in one response;
//     IsCreate and prev_kv agree with the replay of the stream (checkEventKV);
//  5. complete: every acknowledged write to a watched key, from the revision a
//     watcher started at up to the revision it reached, appears in its
//     stream, except where the watcher was told its next revisions were
//     compacted (a WatchCompacted mark, which a requested compaction must
//     explain). A watcher that started at a member's current revision
//     (unknown) is held to it from its first event, or above its first
//     progress notification, whichever comes first;
//  6. resumable: a stream started at revision R holds no event below R.
func CheckWatch(ops []Operation, events []WatchEvent, opt WatchOptions) error {
	writer, txnKey := valueWriters(ops)
	deletesAt := map[int64]bool{}
	unknownDeletes := map[string]bool{}
	unknownRevoke := false
	for i := range ops {
		op := &ops[i]
		switch {
		case op.Kind == KindDelete && op.Outcome == OutcomeOK && op.Resp.Deleted > 0:
			deletesAt[op.Resp.Revision] = true
		case op.Kind == KindDelete && op.Outcome == OutcomeUnknown:
			unknownDeletes[op.Key] = true
		case op.Kind == KindLeaseRevoke && op.Outcome == OutcomeOK:
			deletesAt[op.Resp.Revision] = true
		case op.Kind == KindLeaseRevoke && op.Outcome == OutcomeUnknown:
			unknownRevoke = true
		case op.Kind == KindTxn:
			for _, w := range txnWrites(op) {
				switch {
				case !w.delete:
				case op.Outcome == OutcomeOK && op.Resp.Revision != 0:
					deletesAt[op.Resp.Revision] = true
				default:
					unknownDeletes[w.key] = true
				}
			}
		}
	}
	var compactedTo int64 // the highest compaction that may have happened
	for i := range ops {
		if op := &ops[i]; op.Kind == KindCompact && op.Outcome != OutcomeFail {
			compactedTo = max(compactedTo, op.Rev)
		}
	}
	// gap is a range of revisions a watcher skipped because they were compacted.
	type gap struct{ from, to int64 } // (from, to)
	gaps := map[int][]gap{}
	byWatcher := map[int][]WatchEvent{}
	for _, e := range events {
		byWatcher[e.Watcher] = append(byWatcher[e.Watcher], e)
	}
	type evKey struct {
		rev int64
		key string
	}
	canon := make(map[evKey]WatchEvent, len(events)/max(1, len(byWatcher)))
	seenBy := make(map[int]map[evKey]bool, len(byWatcher))
	// low is, per watcher, the revision at and below which writes need not
	// appear (before it started).
	low := make(map[int]int64, len(byWatcher))
	for _, w := range sortedWatchers(byWatcher) {
		seen := make(map[evKey]bool, len(byWatcher[w]))
		seenBy[w] = seen
		var last int64
		var (
			progress         int64 // the last progress notification of the current stream
			lastEv           WatchEvent
			streamEv         bool  // the current stream has delivered an event (lastEv)
			streamFrom       int64 // the revision the current stream started at (0: unknown)
			bookmark, markAt int64
		)
		first := true
		fromCurrent := false // the watcher started at a member's current revision
		low[w] = 0
		for _, e := range byWatcher[w] {
			if first {
				first = false
				if e.Type == WatchStart {
					if e.Revision == 0 {
						fromCurrent, low[w] = true, math.MaxInt64
					} else {
						low[w] = e.Revision - 1
					}
				}
			}
			if fromCurrent && (e.Type == "put" || e.Type == "delete") {
				low[w], fromCurrent = min(low[w], e.Revision-1), false
			}
			switch e.Type {
			case WatchStart:
				progress, streamEv, streamFrom = 0, false, e.Revision
				continue
			case WatchProgress:
				if fromCurrent {
					low[w], fromCurrent = min(low[w], e.Revision), false
				}
				if e.Revision < progress {
					return fmt.Errorf("%w: bookmarkable: watcher %d got a progress notification at revision %d after one at %d in the same stream (from %s)", ErrWatch, w, e.Revision, progress, e.Member)
				}
				progress = e.Revision
				if e.Revision > bookmark {
					bookmark, markAt = e.Revision, e.Time
				}
				continue
			}
			if e.Type == WatchCompacted {
				switch {
				case e.Revision > compactedTo:
					return fmt.Errorf("%w: watcher %d was told revision %d was compacted (from %s), but no compaction to it was requested", ErrWatch, w, e.Revision, e.Member)
				case e.Revision <= last:
					return fmt.Errorf("%w: watcher %d was told revision %d was compacted (from %s) after an event at revision %d", ErrWatch, w, e.Revision, e.Member, last)
				}
				gaps[w] = append(gaps[w], gap{from: last, to: e.Revision})
				// It resumes at the compact revision, whose events it must get.
				last = e.Revision - 1
				continue
			}
			k := evKey{e.Revision, e.Key}
			switch {
			case !strings.HasPrefix(e.Key, opt.Prefix):
				return fmt.Errorf("%w: watcher %d got key %q outside prefix %q", ErrWatch, w, e.Key, opt.Prefix)
			case e.Revision < last:
				return fmt.Errorf("%w: watcher %d got revision %d after %d (from %s)", ErrWatch, w, e.Revision, last, e.Member)
			case seen[k]:
				return fmt.Errorf("%w: watcher %d got %s %q at revision %d twice (from %s)", ErrWatch, w, e.Type, e.Key, e.Revision, e.Member)
			}
			if streamFrom > 0 && e.Revision < streamFrom {
				return fmt.Errorf("%w: resumable: watcher %d got %s %q at revision %d on a watch from revision %d (from %s)", ErrWatch, w, e.Type, e.Key, e.Revision, streamFrom, e.Member)
			}
			if e.Revision <= bookmark {
				return fmt.Errorf("%w: bookmarkable: watcher %d got %s %q at revision %d after a progress notification at revision %d (at %d)", ErrWatch, w, e.Type, e.Key, e.Revision, bookmark, markAt)
			}
			if streamEv && lastEv.Revision == e.Revision && lastEv.Response != e.Response {
				return fmt.Errorf("%w: atomic: watcher %d got revision %d split across responses %d and %d (from %s)", ErrWatch, w, e.Revision, lastEv.Response, e.Response, e.Member)
			}
			lastEv, streamEv = e, true
			seen[k] = true
			last = e.Revision
			if c, ok := canon[k]; ok && (c.Type != e.Type || c.Value != e.Value) {
				return fmt.Errorf("%w: at revision %d key %q watcher %d saw %s %q, watcher %d saw %s %q",
					ErrWatch, e.Revision, e.Key, c.Watcher, c.Type, c.Value, w, e.Type, e.Value)
			}
			canon[k] = e
			switch e.Type {
			case "put":
				i, ok := writer[e.Value]
				if !ok {
					return fmt.Errorf("%w: watcher %d got %q = %q at revision %d, a value nobody wrote", ErrWatch, w, e.Key, e.Value, e.Revision)
				}
				op := &ops[i]
				key := op.Key
				if op.Kind == KindTxn {
					key = txnKey[e.Value]
				}
				switch {
				case key != e.Key:
					return fmt.Errorf("%w: watcher %d got %q = %q, but #%d wrote that value to %q", ErrWatch, w, e.Key, e.Value, op.ID, key)
				case op.Outcome == OutcomeFail, op.Kind == KindCAS && op.Outcome == OutcomeOK && !op.Resp.Succeeded,
					op.Kind == KindTxn && op.Outcome == OutcomeOK && !txnWrote(op, e.Value):
					return fmt.Errorf("%w: watcher %d got %q = %q from #%d, which did not take effect", ErrWatch, w, e.Key, e.Value, op.ID)
				case op.Outcome == OutcomeOK && op.Resp.Revision != 0 && op.Resp.Revision != e.Revision:
					return fmt.Errorf("%w: watcher %d got %q = %q at revision %d, but #%d was acknowledged at %d", ErrWatch, w, e.Key, e.Value, e.Revision, op.ID, op.Resp.Revision)
				}
			case "delete":
				if !deletesAt[e.Revision] && !unknownDeletes[e.Key] && !unknownRevoke {
					return fmt.Errorf("%w: watcher %d got a delete of %q at revision %d that no delete or revoke explains", ErrWatch, w, e.Key, e.Revision)
				}
			default:
				return fmt.Errorf("%w: watcher %d got event type %q", ErrWatch, w, e.Type)
			}
		}
	}
	for _, w := range sortedWatchers(byWatcher) {
		reached := opt.Reached[w]
		have := seenBy[w]
		excused := func(r int64) bool {
			return r <= low[w] || slices.ContainsFunc(gaps[w], func(g gap) bool { return g.from < r && r < g.to })
		}
		for i := range ops {
			op := &ops[i]
			if op.Kind == KindTxn && op.Outcome == OutcomeOK && op.Resp.Revision != 0 && op.Resp.Revision <= reached {
				for _, tw := range txnWrites(op) {
					r := op.Resp.Revision
					if !strings.HasPrefix(tw.key, opt.Prefix) || excused(r) {
						continue
					}
					if !have[evKey{r, tw.key}] {
						return fmt.Errorf("%w: watcher %d reached revision %d but never got the write of %q by #%d %s at revision %d", ErrWatch, w, reached, tw.key, op.ID, Describe(op), r)
					}
				}
				continue
			}
			if op.Outcome != OutcomeOK || !strings.HasPrefix(op.Key, opt.Prefix) || op.Key == "" {
				continue
			}
			wrote := op.Kind == KindPut || op.Kind == KindPutLease || (op.Kind == KindCAS && op.Resp.Succeeded) ||
				(op.Kind == KindDelete && op.Resp.Deleted > 0)
			r := op.Resp.Revision
			if !wrote || r == 0 || r > reached {
				continue
			}
			if excused(r) {
				continue
			}
			if !have[evKey{r, op.Key}] {
				return fmt.Errorf("%w: watcher %d reached revision %d but never got #%d %s at revision %d", ErrWatch, w, reached, op.ID, Describe(op), r)
			}
		}
	}
	if !opt.IsCreate {
		return nil
	}
	compacted := newCompactions(ops)
	for _, w := range sortedWatchers(byWatcher) {
		// A stream known from revision 1 knows every key's history.
		fromStart, keys := low[w] == 0, map[string]keyView{}
		for _, e := range byWatcher[w] {
			switch e.Type {
			case WatchCompacted:
				fromStart, keys = false, map[string]keyView{}
			case "put", "delete":
				if err := checkEventKV(w, e, keys, fromStart, opt.PrevKV, compacted); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func sortedWatchers(m map[int][]WatchEvent) []int {
	ws := make([]int, 0, len(m))
	for w := range m {
		ws = append(ws, w)
	}
	slices.Sort(ws)
	return ws
}

// WriteWatchEvents writes events as JSON lines, ordered by watcher then arrival.
func WriteWatchEvents(w io.Writer, events []WatchEvent) error {
	evs := slices.Clone(events)
	slices.SortStableFunc(evs, func(a, b WatchEvent) int { return cmp.Compare(a.Watcher, b.Watcher) })
	enc := json.NewEncoder(w)
	for _, e := range evs {
		if err := enc.Encode(e); err != nil {
			return err
		}
	}
	return nil
}

// keyView is what a watcher's stream says of one key so far.
type keyView struct {
	present bool
	value   string
}

// checkEventKV checks an event against what the watcher's stream said of
// its key before (if the stream is known from the key's beginning: from
// revision 1, with no compacted gap since): a put is a create (IsCreate)
// exactly when the key was absent, and with prev_kv asked for, an event on
// a present key carries its previous value, one on an absent key none. It
// records the event in keys.
//
// etcd reads prev_kv at the event's revision - 1 when it sends the event, so
// an event sent after a compaction to at least its revision has none: a
// missing prev_kv is excused when such a compaction was requested (and did
// not fail) before the event arrived.
func checkEventKV(w int, e WatchEvent, keys map[string]keyView, fromStart, prevKV bool, compacted *compactions) error {
	before, known := keys[e.Key]
	known = known || fromStart
	if e.Type == "put" {
		keys[e.Key] = keyView{present: true, value: e.Value}
	} else {
		keys[e.Key] = keyView{}
	}
	if !known {
		return nil
	}
	if e.Type == "put" && e.Create == before.present {
		return fmt.Errorf("%w: IsCreate: watcher %d got put %q = %q at revision %d with IsCreate %t, but the key was %s (from %s)",
			ErrWatch, w, e.Key, e.Value, e.Revision, e.Create, presence(before.present), e.Member)
	}
	if prevKV && before.present && !e.HasPrev && compacted.before(e.Revision, e.Time) {
		return nil
	}
	if prevKV && (e.HasPrev != before.present || e.PrevValue != before.value) {
		got := "no prev_kv"
		if e.HasPrev {
			got = fmt.Sprintf("prev_kv %q", e.PrevValue)
		}
		want := "none"
		if before.present {
			want = fmt.Sprintf("%q", before.value)
		}
		return fmt.Errorf("%w: prev_kv: watcher %d got %s %q at revision %d with %s, but the replayed previous value is %s (from %s)",
			ErrWatch, w, e.Type, e.Key, e.Revision, got, want, e.Member)
	}
	return nil
}

// compactions are the requested compactions that did not fail, by call time,
// with the highest revision asked for up to each.
type compactions struct {
	calls  []int64
	maxRev []int64
}

func newCompactions(ops []Operation) *compactions {
	var cs []Operation
	for _, op := range ops {
		if op.Kind == KindCompact && op.Outcome != OutcomeFail {
			cs = append(cs, op)
		}
	}
	slices.SortStableFunc(cs, func(a, b Operation) int { return cmp.Compare(a.Call, b.Call) })
	c := &compactions{}
	var hi int64
	for _, op := range cs {
		hi = max(hi, op.Rev)
		c.calls, c.maxRev = append(c.calls, op.Call), append(c.maxRev, hi)
	}
	return c
}

// before reports whether a compaction to rev or above was requested before t.
func (c *compactions) before(rev, t int64) bool {
	i, _ := slices.BinarySearch(c.calls, t) // calls before t: [0, i)
	return i > 0 && c.maxRev[i-1] >= rev
}

func presence(present bool) string {
	if present {
		return "present"
	}
	return "absent"
}
