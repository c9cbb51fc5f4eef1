package linearizability

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

// txn records an acknowledged txn (or, with outcome set after, another).
func (b *h) txn(c int, t *Txn, call, ret, rev int64, succeeded bool, results ...TxnResult) *Operation {
	return b.add(Operation{Client: c, Kind: KindTxn, Txn: t, Call: call, Return: ret,
		Resp: Response{Revision: rev, Succeeded: succeeded, Results: results}})
}

func cmpNum(key string, target CompareTarget, res CompareResult, n int64) Compare {
	return Compare{Key: key, Target: target, Result: res, Num: n}
}

func tput(key, val string) TxnOp { return TxnOp{Kind: KindPut, Key: key, Value: val} }
func tget(key string) TxnOp      { return TxnOp{Kind: KindGet, Key: key} }
func tdel(key string) TxnOp      { return TxnOp{Kind: KindDelete, Key: key} }

func kvs(kv ...KV) TxnResult { return TxnResult{KVs: kv} }

// a put of "a" (rev 2) and one of "b" (rev 3), then a txn at 100.
func txnBase(b *h) {
	b.put(0, "a", "1", 0, 10, 2)
	b.put(0, "b", "2", 10, 20, 3)
}

func TestCheckTxn(t *testing.T) {
	// if version(a) = 1 && mod(b) = 3 then put(a, x), put(b, y), get(a) else get(a), get(b)
	both := &Txn{
		If:   []Compare{cmpNum("a", TargetVersion, ResultEqual, 1), cmpNum("b", TargetMod, ResultEqual, 3)},
		Then: []TxnOp{tput("a", "x"), tput("b", "y"), tget("a")},
		Else: []TxnOp{tget("a"), tget("b")},
	}
	tests := []struct {
		name   string
		build  func(b *h)
		want   Verdict
		reason string
	}{
		{"then branch taken", func(b *h) {
			txnBase(b)
			b.txn(1, both, 100, 110, 4, true, TxnResult{}, TxnResult{}, kvs(KV{Key: "a", Value: "x", ModRevision: 4, CreateRevision: 2, Version: 2}))
			b.get(2, "b", "y", 120, 130, 4, 4, 3, 2)
		}, VerdictOK, ""},
		{"else taken though the compares hold", func(b *h) {
			txnBase(b)
			b.txn(1, both, 100, 110, 3, false,
				kvs(KV{Key: "a", Value: "1", ModRevision: 2, CreateRevision: 2, Version: 1}),
				kvs(KV{Key: "b", Value: "2", ModRevision: 3, CreateRevision: 3, Version: 1}))
		}, VerdictIllegal, ""},
		{"version compare off by one (txn-compare-version)", func(b *h) {
			txnBase(b)
			t := &Txn{If: []Compare{cmpNum("a", TargetVersion, ResultGreater, 1)}, Then: []TxnOp{tput("a", "x")}, Else: []TxnOp{tget("a")}}
			b.txn(1, t, 100, 110, 4, true, TxnResult{})
		}, VerdictIllegal, ""},
		{"mod compare reads create (txn-compare-mod-create)", func(b *h) {
			txnBase(b)
			b.put(0, "a", "1b", 20, 30, 4) // a: create 2, mod 4
			t := &Txn{If: []Compare{cmpNum("a", TargetMod, ResultEqual, 2)}, Then: []TxnOp{tput("b", "x")}, Else: []TxnOp{tget("b")}}
			b.txn(1, t, 100, 110, 5, true, TxnResult{})
		}, VerdictIllegal, ""},
		{"a missing key compares as zero, a value compare on it fails", func(b *h) {
			t := &Txn{If: []Compare{cmpNum("z", TargetCreate, ResultEqual, 0), {Key: "z", Target: TargetValue, Result: ResultNotEqual, Value: "q"}},
				Then: []TxnOp{tput("z", "x")}, Else: []TxnOp{tput("z", "y")}}
			b.txn(1, t, 0, 10, 2, false, TxnResult{})
			b.get(2, "z", "y", 20, 30, 2, 2, 2, 1)
		}, VerdictOK, ""},
		{"nested txn sees the keyspace before the outer txn", func(b *h) {
			txnBase(b)
			inner := &Txn{If: []Compare{cmpNum("a", TargetVersion, ResultEqual, 1)}, Then: []TxnOp{tput("b", "in")}, Else: []TxnOp{tget("b")}}
			outer := &Txn{If: []Compare{{Key: "a", Target: TargetValue, Result: ResultEqual, Value: "1"}},
				Then: []TxnOp{tput("a", "out"), {Kind: KindTxn, Txn: inner}}}
			b.txn(1, outer, 100, 110, 4, true, TxnResult{}, TxnResult{Succeeded: true, Results: []TxnResult{{}}})
			b.get(2, "b", "in", 120, 130, 4, 4, 3, 2)
		}, VerdictOK, ""},
		{"nested txn branch wrong", func(b *h) {
			txnBase(b)
			inner := &Txn{If: []Compare{cmpNum("a", TargetVersion, ResultEqual, 1)}, Then: []TxnOp{tput("b", "in")}, Else: []TxnOp{tget("b")}}
			outer := &Txn{If: []Compare{{Key: "a", Target: TargetValue, Result: ResultEqual, Value: "1"}},
				Then: []TxnOp{tput("a", "out"), {Kind: KindTxn, Txn: inner}}}
			b.txn(1, outer, 100, 110, 4, true, TxnResult{}, TxnResult{Succeeded: false,
				Results: []TxnResult{kvs(KV{Key: "b", Value: "2", ModRevision: 3, CreateRevision: 3, Version: 1})}})
		}, VerdictIllegal, ""},
		{"delete in a txn, then absent", func(b *h) {
			txnBase(b)
			t := &Txn{If: []Compare{cmpNum("a", TargetLease, ResultEqual, 0)}, Then: []TxnOp{tdel("a"), tget("a")}}
			b.txn(1, t, 100, 110, 4, true, TxnResult{Deleted: 1}, kvs())
			b.get(2, "a", "", 120, 130, 4, 0, 0, 0)
		}, VerdictOK, ""},
		{"stale get inside a txn", func(b *h) {
			txnBase(b)
			b.put(0, "b", "2b", 20, 30, 4)
			t := &Txn{If: []Compare{cmpNum("a", TargetVersion, ResultEqual, 1)}, Then: []TxnOp{tget("b")}}
			b.txn(1, t, 100, 110, 4, true, kvs(KV{Key: "b", Value: "2", ModRevision: 3, CreateRevision: 3, Version: 1}))
		}, VerdictIllegal, "stale read"},
		{"range at a past revision inside a txn", func(b *h) {
			txnBase(b)
			b.put(0, "b", "2b", 20, 30, 4)
			t := &Txn{Then: []TxnOp{{Kind: KindRange, Key: "a", End: "c", Rev: 3}}}
			b.txn(1, t, 100, 110, 4, true, kvs(KV{Key: "a", Value: "1", ModRevision: 2, CreateRevision: 2, Version: 1},
				KV{Key: "b", Value: "2", ModRevision: 3, CreateRevision: 3, Version: 1}))
		}, VerdictOK, ""},
		{"range at a past revision misses a key", func(b *h) {
			txnBase(b)
			t := &Txn{Then: []TxnOp{{Kind: KindRange, Key: "a", End: "c", Rev: 3}}}
			b.txn(1, t, 100, 110, 3, true, kvs(KV{Key: "a", Value: "1", ModRevision: 2, CreateRevision: 2, Version: 1}))
		}, VerdictIllegal, "absent"},
		{"unknown txn seen by a later read", func(b *h) {
			txnBase(b)
			t := &Txn{If: []Compare{cmpNum("a", TargetVersion, ResultLess, 2)}, Then: []TxnOp{tput("a", "x"), tdel("b")}, Else: []TxnOp{tput("b", "e")}}
			b.txn(1, t, 100, 110, 0, false).Outcome = OutcomeUnknown
			b.get(2, "a", "x", 200, 210, 4, 4, 2, 2)
			b.get(2, "b", "", 220, 230, 4, 0, 0, 0)
		}, VerdictOK, ""},
		{"unknown txn took its else branch but a read saw the then branch", func(b *h) {
			txnBase(b)
			t := &Txn{If: []Compare{cmpNum("a", TargetVersion, ResultGreater, 1)}, Then: []TxnOp{tput("a", "x")}, Else: []TxnOp{tget("a")}}
			b.txn(1, t, 100, 110, 0, false).Outcome = OutcomeUnknown
			b.get(2, "a", "x", 200, 210, 4, 4, 2, 2)
		}, VerdictIllegal, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := &h{}
			tc.build(b)
			require.NoError(t, Validate(b.ops))
			res, err := Check(b.ops, Options{})
			require.NoError(t, err)
			require.Equal(t, tc.want, res.Verdict, res.Reason)
			require.Contains(t, res.Reason, tc.reason)
		})
	}
}

func TestTxnHistoryRoundTrip(t *testing.T) {
	b := &h{}
	txnBase(b)
	inner := &Txn{If: []Compare{cmpNum("a", TargetVersion, ResultEqual, 1)}, Then: []TxnOp{tput("b", "in")}}
	b.txn(1, &Txn{Then: []TxnOp{{Kind: KindTxn, Txn: inner}, {Kind: KindRange, Key: "a", End: "c", Rev: 2}}}, 100, 110, 4, true,
		TxnResult{Succeeded: true, Results: []TxnResult{{}}}, kvs(KV{Key: "a", Value: "1", ModRevision: 2, CreateRevision: 2, Version: 1}))
	var buf bytes.Buffer
	require.NoError(t, WriteHistory(&buf, b.ops))
	back, err := ReadHistory(&buf)
	require.NoError(t, err)
	require.Equal(t, b.ops, back)
	require.Contains(t, Describe(&back[2]), `txn(if  then txn(if version("a") = 1 then put("b", "in") else ), range("a", "c") at rev 2`)
}

func TestTxnMalformed(t *testing.T) {
	for name, op := range map[string]Operation{
		"txn without txn":         {Kind: KindTxn, Outcome: OutcomeOK},
		"bad compare":             {Kind: KindTxn, Outcome: OutcomeOK, Txn: &Txn{If: []Compare{{Key: "a", Target: "size", Result: ResultEqual}}}},
		"results do not fit":      {Kind: KindTxn, Outcome: OutcomeOK, Txn: &Txn{Then: []TxnOp{tget("a")}}, Resp: Response{Succeeded: true}},
		"put without a value":     {Kind: KindTxn, Outcome: OutcomeUnknown, Txn: &Txn{Then: []TxnOp{{Kind: KindPut, Key: "a"}}}},
		"nested op without a txn": {Kind: KindTxn, Outcome: OutcomeUnknown, Txn: &Txn{Then: []TxnOp{{Kind: KindTxn}}}},
	} {
		t.Run(name, func(t *testing.T) {
			require.ErrorIs(t, Validate([]Operation{op}), ErrMalformed)
		})
	}
	dup := []Operation{
		{ID: 1, Kind: KindPut, Key: "a", Value: "v", Outcome: OutcomeOK},
		{ID: 2, Kind: KindTxn, Outcome: OutcomeUnknown, Txn: &Txn{Then: []TxnOp{tput("b", "v")}}},
	}
	require.ErrorIs(t, Validate(dup), ErrMalformed, "a txn's values must be unique too")
}

func TestCheckWatchTxn(t *testing.T) {
	ops := []Operation{
		{ID: 1, Kind: KindTxn, Outcome: OutcomeOK, Txn: &Txn{Then: []TxnOp{tput("k/a", "x"), tput("k/b", "y")}},
			Resp: Response{Revision: 2, Succeeded: true, Results: []TxnResult{{}, {}}}},
		{ID: 2, Kind: KindTxn, Outcome: OutcomeOK, Txn: &Txn{Then: []TxnOp{tput("k/c", "n")}, Else: []TxnOp{tdel("k/a")}},
			Resp: Response{Revision: 3, Results: []TxnResult{{Deleted: 1}}}},
	}
	good := []WatchEvent{
		{Watcher: 1, Type: "put", Key: "k/a", Value: "x", Revision: 2, Response: 1, Create: true},
		{Watcher: 1, Type: "put", Key: "k/b", Value: "y", Revision: 2, Response: 1, Create: true},
		{Watcher: 1, Type: "delete", Key: "k/a", Revision: 3, Response: 2},
	}
	opt := WatchOptions{Prefix: "k/", Reached: map[int]int64{1: 3}}
	require.NoError(t, CheckWatch(ops, good, opt))
	for name, tc := range map[string]struct {
		mutate func([]WatchEvent) []WatchEvent
		want   string
	}{
		"split":         {func(e []WatchEvent) []WatchEvent { e[1].Response = 2; e[2].Response = 3; return e }, "atomic"},
		"missing write": {func(e []WatchEvent) []WatchEvent { return append(e[:1:1], e[2:]...) }, "never got the write"},
		"branch not taken": {func(e []WatchEvent) []WatchEvent {
			return append(e, WatchEvent{Watcher: 1, Type: "put", Key: "k/c", Value: "n", Revision: 4, Response: 3})
		}, "did not take effect"},
	} {
		t.Run(name, func(t *testing.T) {
			evs := tc.mutate(append([]WatchEvent(nil), good...))
			err := CheckWatch(ops, evs, opt)
			require.ErrorIs(t, err, ErrWatch)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestCheckTxnRefusals(t *testing.T) {
	past := &Txn{Then: []TxnOp{{Kind: KindRange, Key: "a", End: "c", Rev: 2}}}
	tests := []struct {
		name  string
		build func(b *h)
		want  Verdict
	}{
		{"refused as compacted after a compaction", func(b *h) {
			txnBase(b)
			b.add(Operation{Client: 3, Kind: KindCompact, Rev: 3, Call: 30, Return: 40, Resp: Response{Revision: 3}})
			b.add(Operation{Client: 1, Kind: KindTxn, Txn: past, Call: 50, Return: 60, Outcome: OutcomeFail, Error: ErrTextCompacted})
		}, VerdictOK},
		{"refused as compacted with no compaction", func(b *h) {
			txnBase(b)
			b.add(Operation{Client: 1, Kind: KindTxn, Txn: past, Call: 50, Return: 60, Outcome: OutcomeFail, Error: ErrTextCompacted})
		}, VerdictIllegal},
		{"refused as future though revision 3 was returned", func(b *h) {
			txnBase(b)
			b.add(Operation{Client: 1, Kind: KindTxn, Txn: past, Call: 50, Return: 60, Outcome: OutcomeFail, Error: ErrTextFutureRev})
		}, VerdictIllegal},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := &h{}
			tc.build(b)
			res, err := Check(b.ops, Options{})
			require.NoError(t, err)
			require.Equal(t, tc.want, res.Verdict, res.Reason)
		})
	}
}
