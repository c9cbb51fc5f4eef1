package linearizability

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
)

// violation is one broken rule, with the operations and keys it involves.
type violation struct {
	reason string
	ops    []int64
	keys   []string
	// at is the index in ops of the operation that broke the rule (the
	// read that saw too much or too little, the later of two operations
	// whose revisions disagree): the one a visualization must show.
	at int
}

// failing returns the ID of the operation that broke the rule.
func (v *violation) failing() int64 { return v.ops[v.at] }

func (v *violation) String() string { return v.reason }

// revWrite is a write whose revision is known: acknowledged, or observed
// through a read's mod_revision.
type revWrite struct {
	rev    int64
	op     int // index into ops
	delete bool
}

// observation is what one read saw of one key at header revision h. It is
// kept small (the checker makes one per key a range covers) and points into
// the operation for the key-value it saw.
type observation struct {
	op int32 // index into ops
	// kvAt is the index into the range's KVs, -1 for a get's own
	// response, or for a read inside a txn -2-i for side[i].
	kvAt  int32
	found bool
	key   string
	h     int64
}

// kv returns the key-value the observation saw (zero if it saw none);
// side holds what reads inside txns saw.
func (o *observation) kv(ops []Operation, side []KV) KV {
	switch {
	case !o.found:
		return KV{}
	case o.kvAt == -1:
		return respKV(&ops[o.op])
	case o.kvAt < -1:
		return side[-2-o.kvAt]
	}
	return ops[o.op].Resp.KVs[o.kvAt]
}

// checkRevisions runs the cheap global checks that Porcupine's per-key
// partitions cannot see, in O(n log n) (plus the keys each range covers):
//  1. acknowledged writes have distinct revisions;
//  2. revisions agree with real time: if A returned before B was called,
//     a write B has a revision above A's, a linearizable read B a header
//     revision at least A's;
//  3. every value a read (serializable or not) returns was written to that
//     key by a write that may have happened, at the mod_revision the read
//     reports, and no known write of that key (nor a revoke of its lease)
//     falls between that mod_revision and the read's header revision;
//  4. a read that finds a key absent is not preceded (by revision) by a
//     known put of it, unless a delete or lease of unknown revision could
//     explain the absence;
//  5. reads at a past revision (Operation.Rev) are checked by rules 3 and
//     4 at that revision, and compactions and the revisions reads name
//     agree (checkCompactions). The pages of a paginated list all read at
//     the revision of the first page, so checking each against the replay
//     at that revision checks the whole list as one snapshot; a page covers
//     its prefix from its From key, up to its last key if it said there
//     were more, and holds at most Limit keys;
//  6. a range with options equals what etcd makes of a plain range of the
//     same span at the same revision (checkRangeOptions).
//
// revisionFacts is what checkRevisions learned: the first violation (nil if
// none) and the revision reads saw each unknown write at (by op index).
type revisionFacts struct {
	violation   *violation
	observedRev map[int]int64
}

// checkRevisions returns the facts it learned, with the first violation.
func checkRevisions(ops []Operation) revisionFacts {
	var rf revisionFacts
	rf.violation = checkRevisionRules(ops, &rf)
	return rf
}

// valueWriters indexes the written values (unique per write): writer maps a
// value to the index of the operation that wrote it, txnKey a value a txn
// wrote to its key.
func valueWriters(ops []Operation) (writer map[string]int, txnKey map[string]string) {
	writer, txnKey = make(map[string]int, len(ops)), map[string]string{}
	for i := range ops {
		switch op := &ops[i]; {
		case op.Kind == KindTxn:
			op.Txn.each(func(o *TxnOp) {
				if o.Kind == KindPut {
					writer[o.Value], txnKey[o.Value] = i, o.Key
				}
			})
		case op.Kind.writesValue():
			writer[op.Value] = i
		}
	}
	return writer, txnKey
}

// checkRevisionRules returns the first violation, or nil.
func checkRevisionRules(ops []Operation, rf *revisionFacts) *violation {
	writer, txnKey := valueWriters(ops)
	// writtenTo is the key op w wrote value v to.
	writtenTo := func(w int, v string) string {
		if ops[w].Kind == KindTxn {
			return txnKey[v]
		}
		return ops[w].Key
	}
	known := make([]int64, len(ops)) // known revision of each write, 0 if none
	revOwner := make(map[int64]int)
	for i := range ops {
		op := &ops[i]
		if op.Outcome != OutcomeOK || op.Resp.Revision == 0 {
			continue
		}
		switch {
		case op.Kind == KindPut || op.Kind == KindPutLease,
			op.Kind == KindCAS && op.Resp.Succeeded,
			op.Kind == KindDelete && op.Resp.Deleted > 0,
			op.Kind == KindTxn && len(txnWrites(op)) > 0:
			r := op.Resp.Revision
			known[i] = r
			if j, dup := revOwner[r]; dup {
				return &violation{
					reason: fmt.Sprintf("duplicate revision %d: acknowledged writes #%d (%s) and #%d (%s)", r, ops[j].ID, Describe(&ops[j]), op.ID, Describe(op)),
					ops:    []int64{ops[j].ID, op.ID}, keys: []string{ops[j].Key, op.Key}, at: 1,
				}
			}
			revOwner[r] = i
		}
	}

	// Gather what reads saw.
	writtenKeys := map[string]struct{}{}
	// Deletes whose revision is unknown (outcome unknown) and revokes whose
	// revision is unknown may remove a key at any time after their call: keep
	// the earliest such call per key and per lease.
	unknownDeleteCall := map[string]int64{}
	unknownRevokeCall := map[int64]int64{}
	// A leased put of unknown outcome may have written the key and had its
	// lease revoked since, which deletes the key too.
	type leasedPut struct{ call, lease int64 }
	unknownLeasedPuts := map[string][]leasedPut{}
	earliest := func(m map[string]int64, k string, t int64) {
		if old, ok := m[k]; !ok || t < old {
			m[k] = t
		}
	}
	for i := range ops {
		op := &ops[i]
		if op.Outcome == OutcomeFail {
			continue
		}
		switch op.Kind {
		case KindPut, KindCAS, KindPutLease:
			writtenKeys[op.Key] = struct{}{}
			if op.Kind == KindPutLease && op.Outcome == OutcomeUnknown {
				unknownLeasedPuts[op.Key] = append(unknownLeasedPuts[op.Key], leasedPut{op.Call, op.Lease})
			}
		case KindDelete:
			if op.Outcome == OutcomeUnknown {
				earliest(unknownDeleteCall, op.Key, op.Call)
			}
		case KindTxn:
			for _, w := range txnWrites(op) {
				switch {
				case !w.delete:
					writtenKeys[w.key] = struct{}{}
				case op.Outcome == OutcomeUnknown || op.Resp.Revision == 0:
					earliest(unknownDeleteCall, w.key, op.Call)
				}
			}
		case KindLeaseRevoke:
			if op.Outcome == OutcomeUnknown || op.Resp.Revision == 0 {
				if old, ok := unknownRevokeCall[op.Lease]; !ok || op.Call < old {
					unknownRevokeCall[op.Lease] = op.Call
				}
			}
		}
	}
	sortedKeys := make([]string, 0, len(writtenKeys))
	for k := range writtenKeys {
		sortedKeys = append(sortedKeys, k)
	}
	sort.Strings(sortedKeys)

	// Count first: ranges make one observation per key they cover, and a
	// long history makes millions.
	nobs := 0
	for i := range ops {
		op := &ops[i]
		if op.Outcome != OutcomeOK || op.Opts != nil {
			continue
		}
		switch {
		case op.Kind == KindGet, op.Kind == KindCAS && !op.Resp.Succeeded,
			op.Kind == KindDelete && op.Resp.Deleted == 0:
			nobs++
		case op.Kind == KindRange:
			k, end := rangeCovers(op, sortedKeys)
			nobs += len(op.Resp.KVs) + end - k
		}
	}
	obs := make([]observation, 0, nobs)
	var side []KV // what reads inside txns saw
	for i := range ops {
		op := &ops[i]
		// A range with options is checked against a plain one
		// (checkRangeOptions).
		if op.Outcome != OutcomeOK || op.Opts != nil {
			continue
		}
		if op.Kind == KindTxn {
			var v *violation
			obs, side, v = txnObservations(op, int32(i), sortedKeys, obs, side)
			if v != nil {
				return v
			}
			continue
		}
		h := op.Resp.Revision
		if op.Rev != 0 {
			// A read at a past revision sees the keyspace at that revision:
			// checked against the replay of the writes like any read, at Rev.
			h = op.Rev
		}
		switch {
		case op.Kind == KindGet, op.Kind == KindCAS && !op.Resp.Succeeded:
			obs = append(obs, observation{op: int32(i), kvAt: -1, key: op.Key, found: op.Resp.Found, h: h})
		case op.Kind == KindDelete && op.Resp.Deleted == 0:
			obs = append(obs, observation{op: int32(i), kvAt: -1, key: op.Key, h: h})
		case op.Kind == KindRange:
			if v := checkPage(op); v != nil {
				return v
			}
			k, end := rangeCovers(op, sortedKeys)
			j := 0 // op.Resp.KVs is sorted: walk it alongside the written keys
			for ; j < len(op.Resp.KVs); j++ {
				kv := op.Resp.KVs[j]
				if !strings.HasPrefix(kv.Key, op.Prefix) || kv.Key < op.From || j > 0 && kv.Key <= op.Resp.KVs[j-1].Key {
					return &violation{
						reason: fmt.Sprintf("range #%d over prefix %q from %q returned key %q out of order or outside the range", op.ID, op.Prefix, op.From, kv.Key),
						ops:    []int64{op.ID}, keys: []string{kv.Key},
					}
				}
				obs = append(obs, observation{op: int32(i), kvAt: int32(j), key: kv.Key, found: true, h: h})
			}
			j = 0
			for ; k < end; k++ {
				for j < len(op.Resp.KVs) && op.Resp.KVs[j].Key < sortedKeys[k] {
					j++
				}
				if j == len(op.Resp.KVs) || op.Resp.KVs[j].Key != sortedKeys[k] {
					obs = append(obs, observation{op: int32(i), kvAt: -1, key: sortedKeys[k], h: h})
				}
			}
		}
	}

	// Pass A: every value seen was written, to that key, at that revision.
	observedRev := make(map[int]int64) // unknown write -> revision a read saw
	rf.observedRev = observedRev
	for oi := range obs {
		o := &obs[oi]
		if !o.found {
			continue
		}
		op := &ops[o.op]
		okv := o.kv(ops, side)
		w, ok := writer[okv.Value]
		bad := func(why string, more ...int) *violation {
			v := &violation{reason: fmt.Sprintf("#%d %s saw key %q = %s: %s", op.ID, Describe(op), o.key, describeKV(true, okv), why), ops: []int64{op.ID}, keys: []string{o.key}}
			for _, m := range more {
				v.ops = append(v.ops, ops[m].ID)
			}
			return v
		}
		if !ok {
			return bad("no operation wrote that value")
		}
		wop := &ops[w]
		switch {
		case writtenTo(w, okv.Value) != o.key:
			return bad(fmt.Sprintf("the value was written to key %q by #%d", writtenTo(w, okv.Value), wop.ID), w)
		case wop.Outcome == OutcomeFail:
			return bad(fmt.Sprintf("the value was written by #%d, which failed", wop.ID), w)
		case wop.Kind == KindCAS && wop.Outcome == OutcomeOK && !wop.Resp.Succeeded:
			return bad(fmt.Sprintf("the value was written by #%d, a cas that did not succeed", wop.ID), w)
		case wop.Kind == KindTxn && wop.Outcome == OutcomeOK && !txnWrote(wop, okv.Value):
			return bad(fmt.Sprintf("the value was written by #%d in a txn branch it did not take", wop.ID), w)
		case o.h != 0 && okv.ModRevision > o.h:
			return bad(fmt.Sprintf("mod_revision %d is above the header revision %d", okv.ModRevision, o.h))
		}
		if known[w] != 0 {
			if okv.ModRevision != known[w] {
				return bad(fmt.Sprintf("the write #%d has revision %d", wop.ID, known[w]), w)
			}
			continue
		}
		if r, ok := observedRev[w]; ok {
			if r != okv.ModRevision {
				return bad(fmt.Sprintf("another read saw the write #%d at revision %d", wop.ID, r), w)
			}
			continue
		}
		if j, taken := revOwner[okv.ModRevision]; taken {
			return bad(fmt.Sprintf("revision %d belongs to #%d %s", okv.ModRevision, ops[j].ID, Describe(&ops[j])), j)
		}
		observedRev[w] = okv.ModRevision
		revOwner[okv.ModRevision] = w
	}

	if v := checkRealTime(ops, known, observedRev); v != nil {
		return v
	}
	if v := checkCompactions(ops); v != nil {
		return v
	}
	if v := checkRangeOptions(ops); v != nil {
		return v
	}

	// Per key, the writes of known revision, sorted by revision.
	byKey := map[string][]revWrite{}
	for i := range ops {
		r := known[i]
		if r == 0 {
			r = observedRev[i]
		}
		switch {
		case r == 0:
		case ops[i].Kind == KindTxn:
			// The writes of a txn of unknown outcome that a read saw are
			// left out: which branch it took is not known.
			if ops[i].Outcome == OutcomeOK {
				for _, w := range txnWrites(&ops[i]) {
					byKey[w.key] = append(byKey[w.key], revWrite{rev: r, op: i, delete: w.delete})
				}
			}
		default:
			byKey[ops[i].Key] = append(byKey[ops[i].Key], revWrite{rev: r, op: i, delete: ops[i].Kind == KindDelete})
		}
	}
	for _, ws := range byKey {
		slices.SortFunc(ws, func(a, b revWrite) int { return cmp.Compare(a.rev, b.rev) })
	}
	revokes := map[int64][]revWrite{} // lease -> acknowledged revokes
	for i := range ops {
		if op := &ops[i]; op.Kind == KindLeaseRevoke && op.Outcome == OutcomeOK && op.Resp.Revision != 0 {
			revokes[op.Lease] = append(revokes[op.Lease], revWrite{rev: op.Resp.Revision, op: i, delete: true})
		}
	}
	for _, rs := range revokes {
		slices.SortFunc(rs, func(a, b revWrite) int { return cmp.Compare(a.rev, b.rev) })
	}
	// firstAfter returns the first entry of ws with revision above r.
	firstAfter := func(ws []revWrite, r int64) (revWrite, bool) {
		i := sort.Search(len(ws), func(i int) bool { return ws[i].rev > r })
		if i == len(ws) {
			return revWrite{}, false
		}
		return ws[i], true
	}

	// Pass B: nothing known happened to the key between what the read saw
	// and its header revision.
	for oi := range obs {
		o := &obs[oi]
		if o.h == 0 {
			continue
		}
		op := &ops[o.op]
		ws := byKey[o.key]
		if o.found {
			okv := o.kv(ops, side)
			m := okv.ModRevision
			if w, ok := firstAfter(ws, m); ok && w.rev <= o.h {
				return &violation{
					reason: fmt.Sprintf("stale read: #%d %s saw key %q = %s at revision %d, but #%d %s wrote it at revision %d", op.ID, Describe(op), o.key, describeKV(true, okv), o.h, ops[w.op].ID, Describe(&ops[w.op]), w.rev),
					ops:    []int64{op.ID, ops[w.op].ID}, keys: []string{o.key},
				}
			}
			if wop := &ops[writer[okv.Value]]; wop.Kind == KindPutLease {
				if rv, ok := firstAfter(revokes[wop.Lease], m); ok && rv.rev <= o.h {
					return &violation{
						reason: fmt.Sprintf("stale read: #%d %s saw key %q = %s at revision %d, but #%d revoked its lease %d at revision %d", op.ID, Describe(op), o.key, describeKV(true, okv), o.h, ops[rv.op].ID, wop.Lease, rv.rev),
						ops:    []int64{op.ID, ops[rv.op].ID, wop.ID}, keys: []string{o.key},
					}
				}
			}
			continue
		}
		i := sort.Search(len(ws), func(i int) bool { return ws[i].rev > o.h }) - 1
		if i >= 0 && !ws[i].delete {
			w := ws[i]
			// A delete of unknown revision called before the read returned
			// may have removed the key after w.
			if t, ok := unknownDeleteCall[o.key]; ok && t < op.Return {
				continue
			}
			// So may the revoke of a lease the key had after w: acknowledged
			// at a revision in (w, h], or of unknown revision and called
			// before the read returned. The key had w's lease, or that of a
			// leased put of unknown outcome called before the read returned.
			revokedSince := func(lease int64) bool {
				if rv, ok := firstAfter(revokes[lease], w.rev); ok && rv.rev <= o.h {
					return true
				}
				t, ok := unknownRevokeCall[lease]
				return ok && t < op.Return
			}
			if wop := &ops[w.op]; wop.Kind == KindPutLease && revokedSince(wop.Lease) {
				continue
			}
			if slices.ContainsFunc(unknownLeasedPuts[o.key], func(p leasedPut) bool {
				return p.call < op.Return && revokedSince(p.lease)
			}) {
				continue
			}
			return &violation{
				reason: fmt.Sprintf("#%d %s found key %q absent at revision %d, but #%d %s wrote it at revision %d and nothing deleted it", op.ID, Describe(op), o.key, o.h, ops[w.op].ID, Describe(&ops[w.op]), w.rev),
				ops:    []int64{op.ID, ops[w.op].ID}, keys: []string{o.key},
			}
		}
	}
	return nil
}

// point is an operation placed on the real-time line by its revision.
type point struct {
	op    int
	rev   int64
	write bool
	call  int64
	ret   int64
}

// checkRealTime checks rule 2 of checkRevisions with one sweep: walking
// operations by call time, it keeps the highest revision of the operations
// that returned strictly before the current call.
func checkRealTime(ops []Operation, known []int64, observedRev map[int]int64) *violation {
	var pts []point
	for i := range ops {
		op := &ops[i]
		switch {
		case known[i] != 0:
			pts = append(pts, point{op: i, rev: known[i], write: true, call: op.Call, ret: op.Return})
		case observedRev[i] != 0:
			// An unknown write seen by a read: it happened after its call,
			// but its return is unknown, so it follows others and precedes none.
			pts = append(pts, point{op: i, rev: observedRev[i], write: true, call: op.Call, ret: math.MaxInt64})
		case op.Outcome == OutcomeOK && !op.Serializable && op.Resp.Revision != 0:
			pts = append(pts, point{op: i, rev: op.Resp.Revision, call: op.Call, ret: op.Return})
		}
	}
	byCall := slices.Clone(pts)
	slices.SortStableFunc(byCall, func(a, b point) int { return cmp.Compare(a.call, b.call) })
	byRet := pts
	slices.SortStableFunc(byRet, func(a, b point) int { return cmp.Compare(a.ret, b.ret) })
	best := -1 // index into byRet of the highest revision returned so far
	j := 0
	for _, b := range byCall {
		for ; j < len(byRet) && byRet[j].ret < b.call; j++ {
			if best < 0 || byRet[j].rev > byRet[best].rev {
				best = j
			}
		}
		if best < 0 {
			continue
		}
		a := byRet[best]
		if b.rev > a.rev || !b.write && b.rev == a.rev {
			continue
		}
		what := "header revision"
		if b.write {
			what = "write revision"
		}
		return &violation{
			reason: fmt.Sprintf("revision went backwards: #%d %s returned at %d with revision %d, then #%d %s was called at %d and got %s %d",
				ops[a.op].ID, Describe(&ops[a.op]), a.ret, a.rev, ops[b.op].ID, Describe(&ops[b.op]), b.call, what, b.rev),
			ops:  []int64{ops[a.op].ID, ops[b.op].ID},
			keys: []string{ops[a.op].Key, ops[b.op].Key},
			at:   1,
		}
	}
	return nil
}

// rangeCovers returns the span [k, end) of sortedKeys a range op covers:
// the keys with its prefix from its From key on, and if the store said
// there were more (a page cut by Limit), only up to the last key returned.
func rangeCovers(op *Operation, sortedKeys []string) (k, end int) {
	k, _ = slices.BinarySearch(sortedKeys, max(op.Prefix, op.From))
	end = k
	last := ""
	if op.Resp.More && len(op.Resp.KVs) > 0 {
		last = op.Resp.KVs[len(op.Resp.KVs)-1].Key
	}
	for end < len(sortedKeys) && strings.HasPrefix(sortedKeys[end], op.Prefix) && (last == "" || sortedKeys[end] <= last) {
		end++
	}
	return k, end
}

// checkPage checks the shape of one page of a paginated list: no more keys
// than its limit, and "more" only on a full page.
func checkPage(op *Operation) *violation {
	n := int64(len(op.Resp.KVs))
	switch {
	case op.Limit > 0 && n > op.Limit:
		return &violation{reason: fmt.Sprintf("range #%d with limit %d returned %d keys", op.ID, op.Limit, n), ops: []int64{op.ID}, keys: []string{op.Prefix}}
	case op.Resp.More && (op.Limit == 0 || n < op.Limit):
		return &violation{reason: fmt.Sprintf("range #%d with limit %d returned %d keys and said there were more", op.ID, op.Limit, n), ops: []int64{op.ID}, keys: []string{op.Prefix}}
	}
	return nil
}
