package linearizability

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
)

// revAt is one operation placed in time with a revision: a compaction
// (rev is the revision it compacted to) or a header revision.
type revAt struct {
	t   int64 // the call or return time the rule needs
	rev int64
	op  int
}

// timeline answers "the highest revision among the entries before time t"
// in O(log n): entries sorted by t, with the running maximum.
type timeline struct {
	at   []revAt
	best []int // index into at of the running maximum
}

func newTimeline(at []revAt) timeline {
	slices.SortStableFunc(at, func(a, b revAt) int { return cmp.Compare(a.t, b.t) })
	best := make([]int, len(at))
	for i := range at {
		best[i] = i
		if i > 0 && at[best[i-1]].rev >= at[i].rev {
			best[i] = best[i-1]
		}
	}
	return timeline{at: at, best: best}
}

// before returns the entry of highest revision with t strictly before t,
// or false if there is none.
func (tl *timeline) before(t int64) (revAt, bool) {
	i := sort.Search(len(tl.at), func(i int) bool { return tl.at[i].t >= t })
	if i == 0 {
		return revAt{}, false
	}
	return tl.at[tl.best[i-1]], true
}

// checkCompactions checks the revisions reads and compactions name against
// the compactions of the history, as etcd's MVCC store defines them (a
// compaction to C refuses reads below C with ErrCompacted and a compaction
// to C or below with ErrCompacted; a revision above the current one is
// refused with ErrFutureRev), in O(n log n):
//  1. a read at R refused as compacted was preceded by the call of a
//     compaction above R that may have taken effect; a compaction to C
//     refused as compacted, by one to C or above;
//  2. a linearizable read at R that succeeded was not preceded (in real
//     time) by an acknowledged compaction above R; a compaction to C that
//     succeeded, by none to C or above;
//  3. a linearizable read at R or a compaction to C refused as a future
//     revision was not preceded by an operation whose header revision is R
//     (C) or more;
//  4. a read at R or compaction to C that succeeded has a header revision
//     of at least R (C).
//
// Serializable reads may be served by a member that has not applied an
// acknowledged compaction, or is behind: only rules 1 and 4 apply to them.
func checkCompactions(ops []Operation) *violation {
	var requested, acked, headers []revAt
	named := false
	for i := range ops {
		op := &ops[i]
		if op.Rev != 0 || op.Kind == KindTxn {
			named = true
		}
		if op.Kind == KindCompact {
			switch op.Outcome {
			case OutcomeOK:
				acked = append(acked, revAt{t: op.Return, rev: op.Rev, op: i})
				requested = append(requested, revAt{t: op.Call, rev: op.Rev, op: i})
			case OutcomeUnknown:
				requested = append(requested, revAt{t: op.Call, rev: op.Rev, op: i})
			}
		}
		if op.Outcome == OutcomeOK && !op.Serializable && op.Resp.Revision != 0 {
			headers = append(headers, revAt{t: op.Return, rev: op.Resp.Revision, op: i})
		}
	}
	if !named {
		return nil
	}
	reqTL, ackTL, hdrTL := newTimeline(requested), newTimeline(acked), newTimeline(headers)
	for i := range ops {
		op := &ops[i]
		if op.Kind == KindTxn {
			if v := checkTxnRefusal(op, &reqTL, &hdrTL); v != nil {
				return v
			}
			continue
		}
		if op.Rev == 0 {
			continue
		}
		what := fmt.Sprintf("#%d %s", op.ID, Describe(op))
		// A compaction to C removes the revisions below C; one to C again
		// is refused too.
		above := op.Rev
		if op.Kind == KindCompact {
			above = op.Rev - 1
		}
		bad := func(reason string, other int) *violation {
			v := &violation{reason: what + ": " + reason, ops: []int64{op.ID}, keys: []string{op.Key}}
			if other >= 0 {
				v.ops, v.at = []int64{ops[other].ID, op.ID}, 1
			}
			return v
		}
		switch {
		case op.refused(ErrTextCompacted):
			c, ok := reqTL.before(op.Return)
			if !ok || c.rev <= above {
				return bad(fmt.Sprintf("refused as compacted, but no compaction above revision %d was requested before it returned", above), -1)
			}
		case op.refused(ErrTextFutureRev):
			if op.Serializable {
				continue
			}
			if h, ok := hdrTL.before(op.Call); ok && h.rev >= op.Rev {
				return bad(fmt.Sprintf("refused as a future revision, but #%d had returned revision %d before it was called", ops[h.op].ID, h.rev), h.op)
			}
		case op.Outcome == OutcomeOK:
			if op.Resp.Revision != 0 && op.Rev > op.Resp.Revision {
				return bad(fmt.Sprintf("succeeded at revision %d above its header revision %d", op.Rev, op.Resp.Revision), -1)
			}
			if op.Serializable {
				continue
			}
			if c, ok := ackTL.before(op.Call); ok && c.rev > above {
				return bad(fmt.Sprintf("succeeded, but #%d had compacted to revision %d before it was called", ops[c.op].ID, c.rev), c.op)
			}
		}
	}
	return nil
}

// checkTxnRefusal holds a txn refused because of a revision its ranges
// name to rules 1 and 3 of checkCompactions: refused as compacted, one of
// its ranges (of either branch: which one it took is unknown) names a
// revision below a compaction requested before it returned; refused as a
// future revision, one of them names a revision above every header
// revision returned before it was called.
func checkTxnRefusal(op *Operation, reqTL, hdrTL *timeline) *violation {
	compacted, future := op.refused(ErrTextCompacted), op.refused(ErrTextFutureRev)
	if !compacted && !future {
		return nil
	}
	var revs []int64
	op.Txn.each(func(o *TxnOp) {
		if o.Kind == KindRange && o.Rev != 0 {
			revs = append(revs, o.Rev)
		}
	})
	bad := func(reason string) *violation {
		return &violation{reason: fmt.Sprintf("#%d %s: %s", op.ID, Describe(op), reason), ops: []int64{op.ID}}
	}
	if len(revs) == 0 {
		return bad("refused for a revision, but none of its ranges names one")
	}
	if compacted {
		c, ok := reqTL.before(op.Return)
		if !ok || c.rev <= slices.Min(revs) {
			return bad(fmt.Sprintf("refused as compacted, but no compaction above revision %d was requested before it returned", slices.Min(revs)))
		}
		return nil
	}
	if h, ok := hdrTL.before(op.Call); ok && h.rev >= slices.Max(revs) {
		return bad(fmt.Sprintf("refused as a future revision, but revision %d had been returned before it was called", h.rev))
	}
	return nil
}
