package linearizability

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// h builds hand-made histories: each helper appends one operation with the
// next ID and returns it for tweaking.
type h struct{ ops []Operation }

func (b *h) add(op Operation) *Operation {
	op.ID = int64(len(b.ops))
	if op.Outcome == "" {
		op.Outcome = OutcomeOK
	}
	b.ops = append(b.ops, op)
	return &b.ops[len(b.ops)-1]
}

func (b *h) put(c int, key, val string, call, ret, rev int64) *Operation {
	return b.add(Operation{Client: c, Kind: KindPut, Key: key, Value: val, Call: call, Return: ret, Resp: Response{Revision: rev}})
}

func (b *h) putUnknown(c int, key, val string, call, ret int64) *Operation {
	return b.add(Operation{Client: c, Kind: KindPut, Key: key, Value: val, Call: call, Return: ret, Outcome: OutcomeUnknown})
}

// get records a read that found val with the given revisions (val "" = absent).
func (b *h) get(c int, key, val string, call, ret, rev, mod, create, ver int64) *Operation {
	return b.add(Operation{Client: c, Kind: KindGet, Key: key, Call: call, Return: ret,
		Resp: Response{Revision: rev, Found: val != "", Value: val, ModRevision: mod, CreateRevision: create, Version: ver}})
}

func (b *h) del(c int, key string, call, ret, rev, deleted int64) *Operation {
	return b.add(Operation{Client: c, Kind: KindDelete, Key: key, Call: call, Return: ret, Resp: Response{Revision: rev, Deleted: deleted}})
}

func (b *h) cas(c int, key, expect, val string, call, ret int64, resp Response) *Operation {
	return b.add(Operation{Client: c, Kind: KindCAS, Key: key, Expect: expect, ExpectAbsent: expect == "", Value: val, Call: call, Return: ret, Resp: resp})
}

func (b *h) rng(c int, prefix string, call, ret, rev int64, kvs ...KV) *Operation {
	return b.add(Operation{Client: c, Kind: KindRange, Prefix: prefix, Call: call, Return: ret, Resp: Response{Revision: rev, KVs: kvs}})
}

func (b *h) grant(c int, lease int64, call, ret, rev int64) *Operation {
	return b.add(Operation{Client: c, Kind: KindLeaseGrant, Lease: lease, TTL: 60, Call: call, Return: ret, Resp: Response{Revision: rev, LeaseID: lease}})
}

func (b *h) putLease(c int, key, val string, lease, call, ret, rev int64) *Operation {
	return b.add(Operation{Client: c, Kind: KindPutLease, Key: key, Value: val, Lease: lease, Call: call, Return: ret, Resp: Response{Revision: rev}})
}

func (b *h) revoke(c int, lease, call, ret, rev int64) *Operation {
	return b.add(Operation{Client: c, Kind: KindLeaseRevoke, Lease: lease, Call: call, Return: ret, Resp: Response{Revision: rev}})
}

func TestCheckHandMade(t *testing.T) {
	tests := []struct {
		name  string
		build func(b *h)
		want  Verdict
		// reason, if set, must appear in the Reason of an illegal verdict.
		reason string
	}{
		{"empty", func(b *h) {}, VerdictOK, ""},
		{"put then get", func(b *h) {
			b.put(0, "a", "1", 0, 10, 2)
			b.get(1, "a", "1", 20, 30, 2, 2, 2, 1)
		}, VerdictOK, ""},
		{"get of a missing key", func(b *h) {
			b.get(0, "a", "", 0, 10, 1, 0, 0, 0)
		}, VerdictOK, ""},
		{"concurrent read sees old or new", func(b *h) {
			b.put(0, "a", "1", 0, 10, 2)
			b.put(0, "a", "2", 20, 40, 3)
			b.get(1, "a", "1", 15, 35, 2, 2, 2, 1)
			b.get(2, "a", "2", 15, 35, 3, 3, 2, 2)
		}, VerdictOK, ""},
		{"stale read", func(b *h) {
			b.put(0, "a", "1", 0, 10, 2)
			b.put(0, "a", "2", 20, 30, 3)
			b.get(1, "a", "1", 40, 50, 3, 2, 2, 1)
		}, VerdictIllegal, "stale read"},
		{"stale read with a consistent stale header", func(b *h) {
			b.put(0, "a", "1", 0, 10, 2)
			b.put(0, "a", "2", 20, 30, 3)
			b.get(1, "a", "1", 40, 50, 2, 2, 2, 1)
		}, VerdictIllegal, "revision went backwards"},
		{"stale serializable read is fine", func(b *h) {
			b.put(0, "a", "1", 0, 10, 2)
			b.put(0, "a", "2", 20, 30, 3)
			b.get(1, "a", "1", 40, 50, 2, 2, 2, 1).Serializable = true
		}, VerdictOK, ""},
		{"serializable read inconsistent with its revision", func(b *h) {
			b.put(0, "a", "1", 0, 10, 2)
			b.put(0, "a", "2", 20, 30, 3)
			b.get(1, "a", "1", 40, 50, 3, 2, 2, 1).Serializable = true
		}, VerdictIllegal, "stale read"},
		{"lost write", func(b *h) {
			b.put(0, "a", "1", 0, 10, 2)
			b.get(1, "a", "", 20, 30, 2, 0, 0, 0)
		}, VerdictIllegal, "absent"},
		{"lost write seen by porcupine only", func(b *h) {
			b.put(0, "a", "1", 0, 10, 0) // revision not recorded
			b.get(1, "a", "", 20, 30, 0, 0, 0, 0)
		}, VerdictIllegal, "no linearization"},
		{"revision going backwards", func(b *h) {
			b.put(0, "a", "1", 0, 10, 3)
			b.put(1, "b", "2", 20, 30, 2)
		}, VerdictIllegal, "revision went backwards"},
		{"read header below a returned write", func(b *h) {
			b.put(0, "a", "1", 0, 10, 3)
			b.get(1, "b", "", 20, 30, 2, 0, 0, 0)
		}, VerdictIllegal, "revision went backwards"},
		{"duplicate revision", func(b *h) {
			b.put(0, "a", "1", 0, 10, 2)
			b.put(1, "b", "2", 0, 10, 2)
		}, VerdictIllegal, "duplicate revision"},
		{"wrong mod revision", func(b *h) {
			b.put(0, "a", "1", 0, 10, 2)
			b.get(1, "a", "1", 20, 30, 2, 3, 3, 1)
		}, VerdictIllegal, "revision"},
		{"wrong version", func(b *h) {
			b.put(0, "a", "1", 0, 10, 2)
			b.put(0, "a", "2", 20, 30, 3)
			b.get(1, "a", "2", 40, 50, 3, 3, 2, 1)
		}, VerdictIllegal, "no linearization"},
		{"value never written", func(b *h) {
			b.get(1, "a", "x", 0, 10, 2, 2, 2, 1)
		}, VerdictIllegal, "no operation wrote"},
		{"value of a failed write", func(b *h) {
			b.put(0, "a", "1", 0, 10, 0).Outcome = OutcomeFail
			b.get(1, "a", "1", 20, 30, 2, 2, 2, 1)
		}, VerdictIllegal, "failed"},
		{"unknown write observed later is fine", func(b *h) {
			b.put(0, "a", "1", 0, 10, 2)
			b.putUnknown(1, "a", "2", 5, 15)
			b.get(2, "a", "1", 20, 30, 2, 2, 2, 1)
			b.get(2, "a", "2", 40, 50, 3, 3, 2, 2)
			b.get(2, "a", "2", 60, 70, 3, 3, 2, 2)
		}, VerdictOK, ""},
		{"unknown write never observed is fine", func(b *h) {
			b.put(0, "a", "1", 0, 10, 2)
			b.putUnknown(1, "a", "2", 5, 15)
			b.get(2, "a", "1", 20, 30, 2, 2, 2, 1)
			b.get(2, "a", "1", 40, 50, 2, 2, 2, 1)
		}, VerdictOK, ""},
		{"unknown write observed then unobserved", func(b *h) {
			b.put(0, "a", "1", 0, 10, 2)
			b.putUnknown(1, "a", "2", 5, 15)
			b.get(2, "a", "2", 20, 30, 3, 3, 2, 2)
			b.get(2, "a", "1", 40, 50, 3, 2, 2, 1)
		}, VerdictIllegal, ""},
		{"unknown write observed at two revisions", func(b *h) {
			b.putUnknown(1, "a", "2", 5, 15)
			b.get(2, "a", "2", 20, 30, 3, 3, 3, 1)
			b.get(2, "a", "2", 40, 50, 4, 4, 4, 1)
		}, VerdictIllegal, "another read saw"},
		{"unknown write observed before its call", func(b *h) {
			b.get(2, "a", "2", 0, 10, 2, 2, 2, 1)
			b.putUnknown(1, "a", "2", 20, 30)
		}, VerdictIllegal, ""},
		{"cas succeeds and fails", func(b *h) {
			b.cas(0, "a", "", "1", 0, 10, Response{Revision: 2, Succeeded: true})
			b.cas(1, "a", "", "x", 20, 30, Response{Revision: 2, Found: true, Value: "1", ModRevision: 2, CreateRevision: 2, Version: 1})
			b.cas(0, "a", "1", "2", 40, 50, Response{Revision: 3, Succeeded: true})
			b.cas(1, "a", "1", "y", 60, 70, Response{Revision: 3, Found: true, Value: "2", ModRevision: 3, CreateRevision: 2, Version: 2})
		}, VerdictOK, ""},
		{"cas succeeds on a wrong value", func(b *h) {
			b.put(0, "a", "1", 0, 10, 2)
			b.cas(1, "a", "0", "2", 20, 30, Response{Revision: 3, Succeeded: true})
		}, VerdictIllegal, "no linearization"},
		{"cas fails on the right value", func(b *h) {
			b.put(0, "a", "1", 0, 10, 2)
			b.cas(1, "a", "1", "2", 20, 30, Response{Revision: 2, Found: true, Value: "1", ModRevision: 2, CreateRevision: 2, Version: 1})
		}, VerdictIllegal, "no linearization"},
		{"unknown cas may or may not apply", func(b *h) {
			b.put(0, "a", "1", 0, 10, 2)
			b.cas(1, "a", "1", "2", 20, 30, Response{}).Outcome = OutcomeUnknown
			b.get(0, "a", "1", 40, 50, 2, 2, 2, 1)
			b.get(0, "a", "2", 60, 70, 3, 3, 2, 2)
		}, VerdictOK, ""},
		{"delete", func(b *h) {
			b.put(0, "a", "1", 0, 10, 2)
			b.del(0, "a", 20, 30, 3, 1)
			b.del(0, "a", 40, 50, 3, 0)
			b.get(1, "a", "", 60, 70, 3, 0, 0, 0)
			b.put(0, "a", "2", 80, 90, 4)
			b.get(1, "a", "2", 100, 110, 4, 4, 4, 1)
		}, VerdictOK, ""},
		{"delete of a missing key that claims a deletion", func(b *h) {
			b.del(0, "a", 0, 10, 2, 1)
		}, VerdictIllegal, "no linearization"},
		{"range consistent", func(b *h) {
			b.put(0, "p/a", "1", 0, 10, 2)
			b.put(0, "p/b", "2", 20, 30, 3)
			b.put(0, "q", "3", 40, 50, 4)
			b.rng(1, "p/", 60, 70, 4, KV{Key: "p/a", Value: "1", ModRevision: 2, CreateRevision: 2, Version: 1},
				KV{Key: "p/b", Value: "2", ModRevision: 3, CreateRevision: 3, Version: 1})
		}, VerdictOK, ""},
		{"range missing a key", func(b *h) {
			b.put(0, "p/a", "1", 0, 10, 2)
			b.put(0, "p/b", "2", 20, 30, 3)
			b.rng(1, "p/", 60, 70, 3, KV{Key: "p/b", Value: "2", ModRevision: 3, CreateRevision: 3, Version: 1})
		}, VerdictIllegal, "absent"},
		{"range inconsistent with writes at its revision", func(b *h) {
			b.put(0, "p/a", "1", 0, 10, 2)
			b.put(1, "p/b", "2", 0, 10, 3)
			// serializable: only the revision reconstruction can see it.
			b.rng(2, "p/", 20, 30, 2, KV{Key: "p/a", Value: "1", ModRevision: 2, CreateRevision: 2, Version: 1},
				KV{Key: "p/b", Value: "2", ModRevision: 3, CreateRevision: 3, Version: 1}).Serializable = true
		}, VerdictIllegal, "above the header"},
		{"range out of order", func(b *h) {
			b.put(0, "p/a", "1", 0, 10, 2)
			b.put(0, "p/b", "2", 20, 30, 3)
			b.rng(1, "p/", 60, 70, 3, KV{Key: "p/b", Value: "2", ModRevision: 3, CreateRevision: 3, Version: 1},
				KV{Key: "p/a", Value: "1", ModRevision: 2, CreateRevision: 2, Version: 1})
		}, VerdictIllegal, "out of order"},
		{"lease revoke deletes its keys", func(b *h) {
			b.grant(0, 7, 0, 10, 1)
			b.putLease(0, "a", "1", 7, 20, 30, 2)
			b.putLease(0, "b", "2", 7, 40, 50, 3)
			b.put(0, "c", "3", 60, 70, 4)
			b.revoke(0, 7, 80, 90, 5)
			b.get(1, "a", "", 100, 110, 5, 0, 0, 0)
			b.get(3, "b", "", 100, 110, 5, 0, 0, 0)
			b.get(2, "c", "3", 100, 110, 5, 4, 4, 1)
		}, VerdictOK, ""},
		{"lease revoke that left a key", func(b *h) {
			b.grant(0, 7, 0, 10, 1)
			b.putLease(0, "a", "1", 7, 20, 30, 2)
			b.revoke(0, 7, 80, 90, 3)
			b.add(Operation{Client: 1, Kind: KindGet, Key: "a", Call: 100, Return: 110,
				Resp: Response{Revision: 3, Found: true, Value: "1", ModRevision: 2, CreateRevision: 2, Version: 1, Lease: 7}})
		}, VerdictIllegal, "revoked its lease"},
		{"put to a revoked lease", func(b *h) {
			b.grant(0, 7, 0, 10, 1)
			b.revoke(0, 7, 20, 30, 1)
			b.putLease(0, "a", "1", 7, 40, 50, 2)
		}, VerdictIllegal, "no linearization"},
		{"unknown leased put then revoke deletes the key", func(b *h) {
			// Found by BenchmarkCheck100k's generated history: the unknown put
			// took effect, its lease was revoked, and the key is gone.
			b.put(0, "a", "1", 0, 10, 2)
			b.grant(1, 7, 0, 10, 1)
			b.putLease(2, "a", "2", 7, 20, 30, 0).Outcome = OutcomeUnknown
			b.revoke(1, 7, 40, 50, 4)
			b.get(3, "a", "", 60, 70, 4, 0, 0, 0)
		}, VerdictOK, ""},
		{"unknown leased put with its lease revoked after the read", func(b *h) {
			b.put(0, "a", "1", 0, 10, 2)
			b.grant(1, 7, 0, 10, 1)
			b.putLease(2, "a", "2", 7, 20, 30, 0).Outcome = OutcomeUnknown
			b.get(3, "a", "", 40, 50, 3, 0, 0, 0)
			b.revoke(1, 7, 60, 70, 4)
		}, VerdictIllegal, "absent"},
		{"unknown leased put called after the read", func(b *h) {
			b.put(0, "a", "1", 0, 10, 2)
			b.grant(1, 7, 0, 10, 1)
			b.get(3, "a", "", 20, 30, 3, 0, 0, 0)
			b.putLease(2, "a", "2", 7, 40, 50, 0).Outcome = OutcomeUnknown
			b.revoke(1, 7, 60, 70, 4)
		}, VerdictIllegal, "absent"},
		{"unknown revoke after the last use of its lease", func(b *h) {
			b.grant(0, 7, 0, 10, 1)
			b.putLease(0, "a", "1", 7, 20, 30, 2)
			b.revoke(1, 7, 35, 45, 0).Outcome = OutcomeUnknown
			b.putLease(0, "b", "2", 7, 40, 50, 3)
			b.get(2, "a", "", 60, 70, 4, 0, 0, 0)
			b.get(2, "b", "", 80, 90, 4, 0, 0, 0)
		}, VerdictOK, ""},
		{"unknown revoke seen to happen, then its lease used", func(b *h) {
			// The read shows that the revoke took effect before it; the
			// put with the lease after the read cannot have found it.
			b.grant(0, 7, 0, 10, 1)
			b.putLease(0, "a", "1", 7, 20, 30, 2)
			b.revoke(1, 7, 35, 45, 0).Outcome = OutcomeUnknown
			b.get(2, "a", "", 50, 60, 3, 0, 0, 0)
			b.putLease(0, "b", "2", 7, 70, 80, 4)
		}, VerdictIllegal, ""},
		{"unknown revoke seen by one key and not by another", func(b *h) {
			// The revoke deleted "a" before the first read returned, so it
			// deleted "b" too: the revoke's lease must tie the two keys,
			// since its revision is unknown.
			b.grant(0, 7, 0, 10, 1)
			b.putLease(0, "a", "1", 7, 10, 20, 2)
			b.putLease(0, "b", "2", 7, 20, 30, 3)
			b.revoke(1, 7, 40, 50, 0).Outcome = OutcomeUnknown
			b.get(2, "a", "", 60, 70, 4, 0, 0, 0)
			b.get(2, "b", "2", 80, 90, 4, 3, 3, 1).Resp.Lease = 7
		}, VerdictIllegal, "no linearization"},
		{"revoke with a revision splits its keys", func(b *h) {
			b.grant(0, 7, 0, 10, 1)
			b.putLease(0, "a", "1", 7, 10, 20, 2)
			b.putLease(0, "b", "2", 7, 20, 30, 3)
			b.revoke(1, 7, 40, 50, 4)
			b.get(2, "a", "", 60, 70, 4, 0, 0, 0)
			b.get(2, "b", "", 80, 90, 4, 0, 0, 0)
		}, VerdictOK, ""},
		{"unknown grant used later", func(b *h) {
			b.add(Operation{Client: 1, Kind: KindLeaseGrant, Lease: 7, TTL: 60, Call: 0, Return: 10, Outcome: OutcomeUnknown})
			b.putLease(0, "a", "1", 7, 20, 30, 2)
			b.get(2, "a", "1", 40, 50, 2, 2, 2, 1).Resp.Lease = 7
		}, VerdictOK, ""},
		{"unknown grant used before its call", func(b *h) {
			b.putLease(0, "a", "1", 7, 0, 10, 2)
			b.add(Operation{Client: 1, Kind: KindLeaseGrant, Lease: 7, TTL: 60, Call: 20, Return: 30, Outcome: OutcomeUnknown})
		}, VerdictIllegal, ""},
		{"put detaches the lease", func(b *h) {
			b.grant(0, 7, 0, 10, 1)
			b.putLease(0, "a", "1", 7, 20, 30, 2)
			b.put(0, "a", "2", 40, 50, 3)
			b.revoke(0, 7, 60, 70, 3)
			b.get(1, "a", "2", 80, 90, 3, 3, 2, 2)
		}, VerdictOK, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b h
			tc.build(&b)
			// With the lease shortcuts (the default), and with either or
			// both of them off: each must keep every verdict on its own.
			for _, opt := range []Options{{}, {wholeLeaseWindows: true}, {tiedLeases: true}, {wholeLeaseWindows: true, tiedLeases: true}} {
				res, err := Check(b.ops, opt)
				require.NoError(t, err)
				require.Equal(t, tc.want, res.Verdict, "%+v: %s", opt, res.Reason)
				require.Equal(t, len(b.ops), res.Operations)
				if tc.want == VerdictIllegal {
					require.NotEmpty(t, res.Reason)
					require.Contains(t, res.Reason, tc.reason)
				}
			}
		})
	}
}

func TestCheckMalformed(t *testing.T) {
	for name, ops := range map[string][]Operation{
		"bad kind":           {{ID: 1, Kind: "frob", Outcome: OutcomeOK}},
		"bad outcome":        {{ID: 1, Kind: KindGet, Outcome: "maybe"}},
		"return before call": {{ID: 1, Kind: KindGet, Outcome: OutcomeOK, Call: 5, Return: 4}},
		"duplicate id":       {{ID: 1, Kind: KindGet, Outcome: OutcomeOK}, {ID: 1, Kind: KindGet, Outcome: OutcomeOK, Client: 1}},
		"duplicate value": {
			{ID: 1, Kind: KindPut, Key: "a", Value: "v", Outcome: OutcomeOK},
			{ID: 2, Kind: KindPut, Key: "a", Value: "v", Outcome: OutcomeOK, Client: 1},
		},
		"client overlap": {
			{ID: 1, Kind: KindGet, Outcome: OutcomeOK, Call: 0, Return: 10},
			{ID: 2, Kind: KindGet, Outcome: OutcomeOK, Call: 5, Return: 15},
		},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Check(ops, Options{})
			require.ErrorIs(t, err, ErrMalformed)
		})
	}
}

func TestCheckVisualizes(t *testing.T) {
	var b h
	b.put(0, "a", "1", 0, 10, 0)
	b.put(0, "a", "2", 20, 30, 0)
	b.get(1, "a", "1", 40, 50, 0, 0, 0, 1)
	path := filepath.Join(t.TempDir(), "viz.html")
	res, err := Check(b.ops, Options{VisualizePath: path})
	require.NoError(t, err)
	require.Equal(t, VerdictIllegal, res.Verdict)
	require.Contains(t, res.Reason, `"a"`)
	require.Contains(t, res.Reason, "cannot take effect")
	require.Equal(t, path, res.Visualization)
	html, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Contains(t, string(html), `get(\"a\")`)
	require.Contains(t, string(html), "op 2 by c", "each operation names its client")
	require.Contains(t, string(html), "on member", "and its member")
}

// TestCheckBudgetIsWork checks that the budget counts work, not time: a
// history that exhausts it gets the same inconclusive verdict, with the
// same reason, on one core, with CPU hogs competing for the machine, and
// on every repeat.
// TestCheckVisualizesTheFailingOperation checks that the HTML written for
// a violation of the revision checks is that of the partition holding the
// operation that broke the rule, or for an operation Porcupine does not
// check (a range), of the keys it read with the operation added.
func TestCheckVisualizesTheFailingOperation(t *testing.T) {
	tests := []struct {
		name   string
		build  func(b *h) (failing int64)
		reason string
	}{
		{"revision went backwards after a lease grant", func(b *h) int64 {
			b.grant(0, 7, 0, 10, 5)
			b.put(1, "a", "1", 0, 5, 2)
			return b.get(2, "a", "1", 20, 30, 3, 2, 2, 1).ID
		}, "revision went backwards"},
		{"range missing a key", func(b *h) int64 {
			b.grant(0, 7, 0, 10, 1)
			b.putLease(0, "l", "x", 7, 10, 15, 2)
			b.put(0, "p/a", "1", 20, 30, 3)
			b.put(0, "p/b", "2", 40, 50, 4)
			return b.rng(1, "p/", 60, 70, 4, KV{Key: "p/b", Value: "2", ModRevision: 4, CreateRevision: 4, Version: 1}).ID
		}, "absent"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b h
			failing := tc.build(&b)
			path := filepath.Join(t.TempDir(), "viz.html")
			res, err := Check(b.ops, Options{VisualizePath: path})
			require.NoError(t, err)
			require.Equal(t, VerdictIllegal, res.Verdict)
			require.Contains(t, res.Reason, tc.reason)
			require.Contains(t, res.OpIDs, failing)
			require.Equal(t, path, res.Visualization)
			html, err := os.ReadFile(path)
			require.NoError(t, err)
			require.Contains(t, string(html), fmt.Sprintf("op %d by c", failing), "the failing operation is shown")
		})
	}
}

func TestCheckBudgetIsWork(t *testing.T) {
	ops := generate(t, genConfig{seed: 1, ops: 20000, clients: 16, keys: 4, unknownPct: 20})
	opt := Options{Budget: 20_000}
	want, err := Check(ops, opt)
	require.NoError(t, err)
	require.Equal(t, VerdictInconclusive, want.Verdict)
	require.Contains(t, want.Reason, "budget of 20000 steps exhausted in partition")
	require.NotEmpty(t, want.Keys)
	same := func(t *testing.T) {
		t.Helper()
		got, err := Check(ops, opt)
		require.NoError(t, err)
		require.Equal(t, want.Verdict, got.Verdict)
		require.Equal(t, want.Reason, got.Reason)
		require.Equal(t, want.Keys, got.Keys)
		require.Equal(t, want.Steps, got.Steps)
	}
	hog := func() (stop func()) {
		done := make(chan struct{})
		var wg sync.WaitGroup
		for range 2 * runtime.NumCPU() {
			wg.Go(func() {
				x := 0
				for {
					select {
					case <-done:
						return
					default:
						for i := range 1 << 16 {
							x += i
						}
					}
				}
			})
		}
		return func() { close(done); wg.Wait() }
	}

	t.Run("repeated", func(t *testing.T) {
		for range 3 {
			same(t)
		}
	})
	t.Run("GOMAXPROCS=1", func(t *testing.T) {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
		same(t)
	})
	t.Run("CPU hogs", func(t *testing.T) {
		defer hog()()
		same(t)
	})
	t.Run("GOMAXPROCS=1 and CPU hogs", func(t *testing.T) {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
		defer hog()()
		same(t)
	})
	t.Run("enough budget decides", func(t *testing.T) {
		small := generate(t, genConfig{seed: 1, ops: 2000, clients: 16, keys: 4, unknownPct: 2})
		a, err := Check(small, Options{})
		require.NoError(t, err)
		require.Equal(t, VerdictOK, a.Verdict, a.Reason)
		require.Positive(t, a.Steps)
		// Every partition took at most a.Steps, so that budget is enough.
		b, err := Check(small, Options{Budget: a.Steps})
		require.NoError(t, err)
		require.Equal(t, a, withElapsed(b, a.Elapsed))
	})
}

func withElapsed(r Result, d time.Duration) Result {
	r.Elapsed = d
	return r
}

func TestHistoryRoundTrip(t *testing.T) {
	ops := generate(t, genConfig{seed: 3, ops: 500, clients: 4, keys: 5, unknownPct: 10})
	var buf bytes.Buffer
	require.NoError(t, WriteHistory(&buf, ops))
	back, err := ReadHistory(&buf)
	require.NoError(t, err)
	require.Equal(t, ops, back)

	_, err = ReadHistory(bytes.NewReader([]byte("{\"id\":1,\"kind\":\"get\",\"outcome\":\"ok\"}\n\n{oops\n")))
	require.ErrorIs(t, err, ErrMalformed)
	require.Contains(t, err.Error(), "line 3")
	_, err = ReadHistory(bytes.NewReader([]byte(`{"id":1,"kind":"nope","outcome":"ok"}`)))
	require.ErrorIs(t, err, ErrMalformed)
	require.Contains(t, err.Error(), "line 1")
}

func TestCheckFileJSON(t *testing.T) {
	ops := generate(t, genConfig{seed: 4, ops: 300, clients: 4, keys: 3, unknownPct: 5})
	path := filepath.Join(t.TempDir(), "history.jsonl")
	var buf bytes.Buffer
	require.NoError(t, WriteHistory(&buf, ops))
	require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o644))
	res, err := CheckFile(path, Options{})
	require.NoError(t, err)
	require.Equal(t, VerdictOK, res.Verdict, res.Reason)
	require.Equal(t, len(ops), res.Operations)
}

func TestRecorder(t *testing.T) {
	var r Recorder
	a := r.Begin(0, "m1", Operation{Kind: KindPut, Key: "k", Value: "v"}, 10)
	b := r.Begin(1, "m2", Operation{Kind: KindGet, Key: "k"}, 5)
	c := r.Begin(2, "m3", Operation{Kind: KindPut, Key: "k", Value: "w"}, 12)
	r.End(a, OutcomeOK, Response{Revision: 2}, "", 20)
	r.End(b, OutcomeOK, Response{Revision: 1}, "", 8)
	ops := r.Operations()
	require.Len(t, ops, 3)
	require.Equal(t, []int64{b, a, c}, []int64{ops[0].ID, ops[1].ID, ops[2].ID})
	require.Equal(t, OutcomeUnknown, ops[2].Outcome, "an op never ended is unknown")
	require.Equal(t, int64(20), ops[2].Return, "given up at the latest time seen")
	require.Equal(t, "m1", ops[1].Member)
	require.Panics(t, func() { r.End(a, OutcomeOK, Response{}, "", 30) })
	res, err := Check(ops, Options{})
	require.NoError(t, err)
	require.Equal(t, VerdictOK, res.Verdict, res.Reason)
}

func FuzzReadHistory(f *testing.F) {
	f.Add([]byte(`{"id":1,"client":0,"member":"m1","kind":"put","key":"a","value":"1","call":0,"return":5,"outcome":"ok","resp":{"rev":2}}`))
	f.Add([]byte(`{"id":2,"kind":"range","prefix":"p","call":1,"return":2,"outcome":"ok","resp":{"rev":3,"kvs":[{"key":"p1","value":"x","mod_rev":2,"create_rev":2,"version":1}]}}` + "\n\n"))
	f.Add([]byte("{\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ops, err := ReadHistory(bytes.NewReader(data))
		if err != nil {
			require.ErrorIs(t, err, ErrMalformed)
			return
		}
		var buf bytes.Buffer
		require.NoError(t, WriteHistory(&buf, ops))
		first := buf.String()
		back, err := ReadHistory(&buf)
		require.NoError(t, err)
		require.Equal(t, len(ops), len(back))
		var buf2 bytes.Buffer
		require.NoError(t, WriteHistory(&buf2, back))
		require.Equal(t, first, buf2.String())
		// Check must never panic on a well-formed decode.
		_, _ = Check(ops, Options{Budget: 100_000})
	})
}
