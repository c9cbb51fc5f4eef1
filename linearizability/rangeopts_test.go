package linearizability

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCheckRangeOptions(t *testing.T) {
	a := KV{Key: "k/a", Value: "3", ModRevision: 4, CreateRevision: 2, Version: 2}
	b := KV{Key: "k/b", Value: "2", ModRevision: 3, CreateRevision: 3, Version: 1}
	base := func(bh *h) {
		bh.put(0, "k/a", "1", 0, 10, 2)
		bh.put(0, "k/b", "2", 10, 20, 3)
		bh.put(0, "k/a", "3", 20, 30, 4)
		bh.rng(1, "k/", 40, 50, 4, a, b)
	}
	opts := func(bh *h, o RangeOptions, count int64, kvs ...KV) {
		op := bh.rng(2, "k/", 60, 70, 5, kvs...)
		op.Rev, op.Opts, op.Resp.Count = 4, &o, count
	}
	noValue := func(kv KV) KV { kv.Value = ""; return kv }
	tests := []struct {
		name  string
		build func(bh *h)
		want  Verdict
	}{
		{"sort by mod descending", func(bh *h) { opts(bh, RangeOptions{SortOrder: SortDescend, SortTarget: SortByMod}, 2, a, b) }, VerdictOK},
		{"sort by version (ascending by default)", func(bh *h) { opts(bh, RangeOptions{SortTarget: SortByVersion}, 2, b, a) }, VerdictOK},
		{"sorted the wrong way", func(bh *h) { opts(bh, RangeOptions{SortTarget: SortByVersion}, 2, a, b) }, VerdictIllegal},
		{"descending keys", func(bh *h) { opts(bh, RangeOptions{SortOrder: SortDescend}, 2, b, a) }, VerdictOK},
		{"keys only", func(bh *h) { opts(bh, RangeOptions{KeysOnly: true}, 2, noValue(a), noValue(b)) }, VerdictOK},
		{"keys only with a value", func(bh *h) { opts(bh, RangeOptions{KeysOnly: true}, 2, a, noValue(b)) }, VerdictIllegal},
		{"count only", func(bh *h) { opts(bh, RangeOptions{CountOnly: true}, 2) }, VerdictOK},
		{"count only miscounts", func(bh *h) { opts(bh, RangeOptions{CountOnly: true}, 1) }, VerdictIllegal},
		{"min mod filter (count unfiltered)", func(bh *h) { opts(bh, RangeOptions{MinMod: 4}, 2, a) }, VerdictOK},
		{"max create filter", func(bh *h) { opts(bh, RangeOptions{MaxCreate: 2}, 2, a) }, VerdictOK},
		{"filter let a key through", func(bh *h) { opts(bh, RangeOptions{MaxMod: 3}, 2, a, b) }, VerdictIllegal},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bh := &h{}
			base(bh)
			tc.build(bh)
			require.NoError(t, Validate(bh.ops))
			res, err := Check(bh.ops, Options{})
			require.NoError(t, err)
			require.Equal(t, tc.want, res.Verdict, res.Reason)
		})
	}
}
