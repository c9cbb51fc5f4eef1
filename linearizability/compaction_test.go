package linearizability

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func (b *h) compact(c int, rev, call, ret, hdr int64) *Operation {
	return b.add(Operation{Client: c, Kind: KindCompact, Rev: rev, Call: call, Return: ret, Resp: Response{Revision: hdr}})
}

// refuse turns op into a failed request refused with the store's text.
func refuse(op *Operation, text string) {
	op.Outcome, op.Resp, op.Error = OutcomeFail, Response{}, "etcdserver: mvcc: "+text
}

// getAt records a read at revision at that found val (val "" = absent).
func (b *h) getAt(c int, key, val string, at, call, ret, hdr, mod, create, ver int64) *Operation {
	op := b.get(c, key, val, call, ret, hdr, mod, create, ver)
	op.Rev = at
	return op
}

func TestCheckCompactionAndPastReads(t *testing.T) {
	// Writes a=1@2, a=2@3, b=1@4, then (for most cases) a compaction to 3.
	base := func(b *h) {
		b.put(0, "a", "1", 0, 10, 2)
		b.put(0, "a", "2", 20, 30, 3)
		b.put(0, "b", "x", 40, 50, 4)
	}
	tests := []struct {
		name   string
		build  func(b *h)
		want   Verdict
		reason string
	}{
		{"past get sees the value at its revision", func(b *h) {
			base(b)
			b.getAt(1, "a", "1", 2, 60, 70, 4, 2, 2, 1)
			b.getAt(1, "b", "", 3, 80, 90, 4, 0, 0, 0)
		}, VerdictOK, ""},
		{"past get sees a later value", func(b *h) {
			base(b)
			b.getAt(1, "a", "2", 2, 60, 70, 4, 3, 2, 2)
		}, VerdictIllegal, "above the header revision"},
		{"past get sees an overwritten value", func(b *h) {
			base(b)
			b.getAt(1, "a", "1", 3, 60, 70, 4, 2, 2, 1)
		}, VerdictIllegal, "stale read"},
		{"past get misses a key written before its revision", func(b *h) {
			base(b)
			b.getAt(1, "b", "", 4, 60, 70, 4, 0, 0, 0)
		}, VerdictIllegal, "found key \"b\" absent"},
		{"past range sees the keyspace at its revision", func(b *h) {
			base(b)
			op := b.rng(1, "", 60, 70, 4, KV{Key: "a", Value: "2", ModRevision: 3, CreateRevision: 2, Version: 2})
			op.Rev = 3
		}, VerdictOK, ""},
		{"past range sees a key written after its revision", func(b *h) {
			base(b)
			op := b.rng(1, "", 60, 70, 4, KV{Key: "a", Value: "2", ModRevision: 3, CreateRevision: 2, Version: 2},
				KV{Key: "b", Value: "x", ModRevision: 4, CreateRevision: 4, Version: 1})
			op.Rev = 3
		}, VerdictIllegal, "above the header revision"},
		{"read at the compact revision succeeds, below it is refused", func(b *h) {
			base(b)
			b.compact(1, 3, 60, 70, 4)
			b.getAt(1, "a", "2", 3, 80, 90, 4, 3, 2, 2)
			refuse(b.getAt(1, "a", "", 2, 100, 110, 0, 0, 0, 0), ErrTextCompacted)
		}, VerdictOK, ""},
		{"read below an acknowledged compaction succeeds", func(b *h) {
			base(b)
			b.compact(1, 3, 60, 70, 4)
			b.getAt(1, "a", "1", 2, 80, 90, 4, 2, 2, 1)
		}, VerdictIllegal, "had compacted to revision 3"},
		{"read below a concurrent compaction succeeds", func(b *h) {
			base(b)
			b.compact(1, 3, 60, 90, 4)
			b.getAt(2, "a", "1", 2, 80, 100, 4, 2, 2, 1)
		}, VerdictOK, ""},
		{"serializable read below an acknowledged compaction may succeed on a lagging member", func(b *h) {
			base(b)
			b.compact(1, 3, 60, 70, 4)
			b.getAt(1, "a", "1", 2, 80, 90, 4, 2, 2, 1).Serializable = true
		}, VerdictOK, ""},
		{"read refused as compacted without a compaction", func(b *h) {
			base(b)
			refuse(b.getAt(1, "a", "", 2, 80, 90, 0, 0, 0, 0), ErrTextCompacted)
		}, VerdictIllegal, "no compaction above revision 2"},
		{"read at the compact revision refused as compacted", func(b *h) {
			base(b)
			b.compact(1, 3, 60, 70, 4)
			refuse(b.getAt(1, "a", "", 3, 80, 90, 0, 0, 0, 0), ErrTextCompacted)
		}, VerdictIllegal, "no compaction above revision 3"},
		{"read refused by a compaction of unknown outcome", func(b *h) {
			base(b)
			b.compact(1, 4, 60, 70, 0).Outcome = OutcomeUnknown
			refuse(b.getAt(2, "a", "", 3, 80, 90, 0, 0, 0, 0), ErrTextCompacted)
		}, VerdictOK, ""},
		{"read refused by a compaction called after it returned", func(b *h) {
			base(b)
			refuse(b.getAt(2, "a", "", 3, 60, 70, 0, 0, 0, 0), ErrTextCompacted)
			b.compact(1, 4, 80, 90, 4)
		}, VerdictIllegal, "no compaction above revision 3"},
		{"compaction to the compacted revision is refused", func(b *h) {
			base(b)
			b.compact(1, 3, 60, 70, 4)
			refuse(b.compact(1, 3, 80, 90, 0), ErrTextCompacted)
			refuse(b.compact(1, 2, 100, 110, 0), ErrTextCompacted)
		}, VerdictOK, ""},
		{"compaction to the compacted revision succeeds", func(b *h) {
			base(b)
			b.compact(1, 3, 60, 70, 4)
			b.compact(1, 3, 80, 90, 4)
		}, VerdictIllegal, "had compacted to revision 3"},
		{"compaction refused as compacted without one above", func(b *h) {
			base(b)
			b.compact(1, 2, 60, 70, 4)
			refuse(b.compact(1, 3, 80, 90, 0), ErrTextCompacted)
		}, VerdictIllegal, "no compaction above revision 2"},
		{"future revision refused", func(b *h) {
			base(b)
			refuse(b.getAt(1, "a", "", 9, 60, 70, 0, 0, 0, 0), ErrTextFutureRev)
			refuse(b.compact(1, 9, 80, 90, 0), ErrTextFutureRev)
		}, VerdictOK, ""},
		{"existing revision refused as future", func(b *h) {
			base(b)
			refuse(b.getAt(1, "a", "", 4, 60, 70, 0, 0, 0, 0), ErrTextFutureRev)
		}, VerdictIllegal, "refused as a future revision, but #2"},
		{"compaction to an existing revision refused as future", func(b *h) {
			base(b)
			refuse(b.compact(1, 3, 60, 70, 0), ErrTextFutureRev)
		}, VerdictIllegal, "refused as a future revision"},
		{"existing revision refused as future on a lagging member", func(b *h) {
			base(b)
			op := b.getAt(1, "a", "", 4, 60, 70, 0, 0, 0, 0)
			refuse(op, ErrTextFutureRev)
			op.Serializable = true
		}, VerdictOK, ""},
		{"read at a revision above its header", func(b *h) {
			base(b)
			b.getAt(1, "b", "x", 5, 60, 70, 4, 4, 4, 1)
		}, VerdictIllegal, "above its header revision"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b h
			tt.build(&b)
			res, err := Check(b.ops, Options{})
			require.NoError(t, err)
			require.Equal(t, tt.want, res.Verdict, res.Reason)
			require.Contains(t, res.Reason, tt.reason)
		})
	}
}

func TestValidateRevisionFields(t *testing.T) {
	bad := []Operation{
		{Kind: KindCompact, Outcome: OutcomeOK},
		{Kind: KindPut, Key: "a", Value: "1", Rev: 3, Outcome: OutcomeOK},
		{Kind: KindGet, Key: "a", Rev: -1, Outcome: OutcomeOK},
	}
	for _, op := range bad {
		require.ErrorIs(t, Validate([]Operation{op}), ErrMalformed, "%+v", op)
	}
}

func TestCheckPaginatedList(t *testing.T) {
	kv := func(k, v string, rev int64) KV {
		return KV{Key: k, Value: v, ModRevision: rev, CreateRevision: rev, Version: 1}
	}
	// Writes p/a@2, p/b@3, p/c@4, then p/d@6 after the list's revision 5
	// (q@5 is outside the prefix).
	base := func(b *h) {
		b.put(0, "p/a", "a1", 0, 10, 2)
		b.put(0, "p/b", "b1", 20, 30, 3)
		b.put(0, "p/c", "c1", 40, 50, 4)
		b.put(0, "q", "q1", 60, 70, 5)
	}
	page := func(b *h, from string, at, call int64, more bool, kvs ...KV) *Operation {
		op := b.rng(1, "p/", call, call+5, 6, kvs...)
		op.From, op.Limit, op.Rev, op.Resp.More = from, 2, at, more
		return op
	}
	tests := []struct {
		name   string
		build  func(b *h)
		want   Verdict
		reason string
	}{
		{"two pages at the first page's revision", func(b *h) {
			base(b)
			first := page(b, "", 0, 80, true, kv("p/a", "a1", 2), kv("p/b", "b1", 3))
			first.Resp.Revision = 5
			b.put(0, "p/d", "d1", 90, 95, 6)
			page(b, "p/b\x00", 5, 100, false, kv("p/c", "c1", 4))
		}, VerdictOK, ""},
		{"a later page sees a key written after the list's revision", func(b *h) {
			base(b)
			page(b, "", 5, 80, true, kv("p/a", "a1", 2), kv("p/b", "b1", 3))
			b.put(0, "p/d", "d1", 90, 95, 6)
			page(b, "p/b\x00", 5, 100, true, kv("p/c", "c1", 4), kv("p/d", "d1", 6))
		}, VerdictIllegal, "above the header revision"},
		{"the last page misses a key", func(b *h) {
			base(b)
			page(b, "", 5, 80, true, kv("p/a", "a1", 2), kv("p/b", "b1", 3))
			page(b, "p/b\x00", 5, 100, false)
		}, VerdictIllegal, "found key \"p/c\" absent"},
		{"a page returns more keys than its limit", func(b *h) {
			base(b)
			page(b, "", 5, 80, false, kv("p/a", "a1", 2), kv("p/b", "b1", 3), kv("p/c", "c1", 4))
		}, VerdictIllegal, "with limit 2 returned 3 keys"},
		{"a short page says there are more", func(b *h) {
			base(b)
			page(b, "", 5, 80, true, kv("p/a", "a1", 2))
		}, VerdictIllegal, "said there were more"},
		{"a page returns a key before its start", func(b *h) {
			base(b)
			page(b, "p/b\x00", 5, 80, false, kv("p/a", "a1", 2), kv("p/c", "c1", 4))
		}, VerdictIllegal, "outside the range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b h
			tt.build(&b)
			res, err := Check(b.ops, Options{})
			require.NoError(t, err)
			require.Equal(t, tt.want, res.Verdict, res.Reason)
			require.Contains(t, res.Reason, tt.reason)
		})
	}
}
