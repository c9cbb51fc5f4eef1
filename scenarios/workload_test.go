package scenarios

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/havoclab/havoc/linearizability"
)

// session returns a session whose mix is the one weight given.
func session(t *testing.T, wt Weight) *Session {
	w := Workload{Mix: []Weight{wt}}
	require.NoError(t, w.Validate())
	return NewSession(&w, 1, rand.New(rand.NewPCG(1, 2)))
}

func TestSessionAPIServerCompaction(t *testing.T) {
	s := session(t, Weight{Kind: linearizability.KindCompact, Variant: VariantAPIServer, Weight: 1})
	ok := linearizability.OutcomeOK

	// First period: the election cas, no compaction yet.
	op := s.Next()
	require.Equal(t, linearizability.KindCAS, op.Kind)
	require.Equal(t, compactRevKey, op.Key)
	require.True(t, op.ExpectAbsent)
	s.Observe(op, ok, linearizability.Response{Revision: 100, Succeeded: true}, "")

	// Second period: a cas from the value written, then a compaction to
	// the revision seen one period earlier.
	op2 := s.Next()
	require.Equal(t, linearizability.KindCAS, op2.Kind)
	require.Equal(t, op.Value, op2.Expect)
	s.Observe(op2, ok, linearizability.Response{Revision: 250, Succeeded: true}, "")
	c := s.Next()
	require.Equal(t, linearizability.KindCompact, c.Kind)
	require.EqualValues(t, 100, c.Rev)

	// A lost election compacts nothing and learns the winner's value.
	op3 := s.Next()
	s.Observe(op3, ok, linearizability.Response{Revision: 300, Found: true, Value: "c02-7"}, "")
	op4 := s.Next()
	require.Equal(t, linearizability.KindCAS, op4.Kind)
	require.Equal(t, "c02-7", op4.Expect)
}

func TestSessionPagedList(t *testing.T) {
	s := session(t, Weight{Kind: linearizability.KindRange, Variant: VariantPaged, Weight: 1})
	ok := linearizability.OutcomeOK
	first := s.Next()
	require.Positive(t, first.Limit)
	require.Zero(t, first.Rev)
	kvs := make([]linearizability.KV, first.Limit)
	for i := range kvs {
		kvs[i].Key = keyPrefix + string(rune('a'+i))
	}
	s.Observe(first, ok, linearizability.Response{Revision: 42, KVs: kvs, More: true}, "")
	next := s.Next()
	require.Equal(t, kvs[len(kvs)-1].Key+"\x00", next.From)
	require.EqualValues(t, 42, next.Rev, "later pages are pinned to the first page's revision")
	require.Equal(t, first.Limit, next.Limit)
	s.Observe(next, ok, linearizability.Response{Revision: 50, KVs: kvs[:1]}, "")
	require.Empty(t, s.Next().From, "the list ended: a new one starts")
}

func TestSessionRevisions(t *testing.T) {
	s := session(t, Weight{Kind: linearizability.KindGet, Variant: VariantPast, Weight: 1})
	s.Observe(linearizability.Operation{Kind: linearizability.KindPut}, linearizability.OutcomeOK, linearizability.Response{Revision: 1000}, "")
	var future, past int
	for range 200 {
		op := s.Next()
		require.Positive(t, op.Rev)
		if op.Rev > 1000 {
			future++
		} else {
			past++
		}
	}
	require.Positive(t, future)
	require.Positive(t, past)
	s.w.PastFloor = 990
	for range 50 {
		require.GreaterOrEqual(t, s.Next().Rev, int64(990))
	}
}

func TestProfiles(t *testing.T) {
	for _, name := range ProfileNames() {
		w := Workload{Profile: name}
		require.NoError(t, w.Validate(), name)
		require.Equal(t, Profiles[name], w.Mix)
	}
	w := Workload{Profile: "no-such"}
	require.ErrorContains(t, w.Validate(), `unknown profile "no-such"`)

	// The kubernetes profile's keys and cas: /registry/<resource>/<ns>/<name>,
	// creates compare mod_revision == 0, updates the mod_revision last seen.
	k := Workload{Profile: ProfileKubernetes, Mix: []Weight{{Kind: linearizability.KindCAS, Variant: VariantByMod, Weight: 1}}, Keys: 1}
	require.NoError(t, k.Validate())
	s := NewSession(&k, 1, rand.New(rand.NewPCG(1, 2)))
	create := s.Next()
	require.Equal(t, "/registry/pods/ns-0/obj-000", create.Key)
	require.True(t, create.ByMod)
	require.True(t, create.ExpectAbsent)
	require.Zero(t, create.ExpectMod)
	s.Observe(create, linearizability.OutcomeOK, linearizability.Response{Revision: 7, Succeeded: true}, "")
	update := s.Next()
	require.True(t, update.ByMod)
	require.Equal(t, create.Value, update.Expect)
	require.EqualValues(t, 7, update.ExpectMod)
	req := ToRequest(update).Txn
	require.EqualValues(t, 7, req.Compare[0].GetModRevision())
}

// TestSessionTxn: a drawn txn stays in one group of four keys, writes no key
// twice in a branch (nested txn included), and round-trips through the store
// request; a session learns versions and revisions from the txn's results.
func TestSessionTxn(t *testing.T) {
	s := session(t, Weight{Kind: linearizability.KindTxn, Weight: 1})
	for range 200 {
		op := s.Next()
		require.Equal(t, linearizability.KindTxn, op.Kind)
		req := ToRequest(op).Txn
		require.NotEmpty(t, req.Compare)
		var keys []string
		for _, c := range req.Compare {
			keys = append(keys, string(c.Key))
		}
		var branch func(r []*pb.RequestOp, written map[string]bool)
		branch = func(r []*pb.RequestOp, written map[string]bool) {
			for _, o := range r {
				var k string
				switch {
				case o.GetRequestPut() != nil:
					k = string(o.GetRequestPut().Key)
				case o.GetRequestDeleteRange() != nil:
					k = string(o.GetRequestDeleteRange().Key)
				case o.GetRequestTxn() != nil:
					branch(o.GetRequestTxn().Success, written)
					branch(o.GetRequestTxn().Failure, written)
					continue
				default:
					keys = append(keys, string(o.GetRequestRange().Key))
					continue
				}
				require.False(t, written[k], "key %s written twice in a branch of %s", k, linearizability.Describe(&op))
				written[k] = true
				keys = append(keys, k)
			}
		}
		branch(req.Success, map[string]bool{})
		branch(req.Failure, map[string]bool{})
		for _, k := range keys {
			var i int
			_, err := fmt.Sscanf(k, "k/%03d", &i)
			require.NoError(t, err)
			var j int
			_, err = fmt.Sscanf(keys[0], "k/%03d", &j)
			require.NoError(t, err)
			require.Equal(t, j/txnGroup, i/txnGroup, "txn keys %v span groups", keys)
		}
	}
	// Learning: a get of a key in a taken branch sets what compares use.
	op := linearizability.Operation{Kind: linearizability.KindTxn, Txn: &linearizability.Txn{
		Then: []linearizability.TxnOp{{Kind: linearizability.KindGet, Key: "k/001"}, {Kind: linearizability.KindPut, Key: "k/002", Value: "v"}}}}
	s.Observe(op, linearizability.OutcomeOK, linearizability.Response{Revision: 9, Succeeded: true, Results: []linearizability.TxnResult{
		{KVs: []linearizability.KV{{Key: "k/001", Value: "x", ModRevision: 5, CreateRevision: 3, Version: 2}}}, {}}}, "")
	require.EqualValues(t, 2, s.lastVer["k/001"])
	require.EqualValues(t, 3, s.lastCreate["k/001"])
	require.EqualValues(t, 5, s.lastMod["k/001"])
	require.EqualValues(t, 9, s.lastMod["k/002"])
}

// TestSessionRangeOptions: a range of the options variant is followed by the
// same range pinned to its revision, with options.
func TestSessionRangeOptions(t *testing.T) {
	s := session(t, Weight{Kind: linearizability.KindRange, Variant: VariantOptions, Weight: 1})
	first := s.Next()
	require.Nil(t, first.Opts)
	s.Observe(first, linearizability.OutcomeOK, linearizability.Response{Revision: 12, KVs: []linearizability.KV{{Key: "k/001", ModRevision: 4, CreateRevision: 2}}}, "")
	second := s.Next()
	require.NotNil(t, second.Opts)
	require.EqualValues(t, 12, second.Rev)
	require.Equal(t, first.Prefix, second.Prefix)
	third := s.Next()
	require.Nil(t, third.Opts, "one options range per plain range")
}

func TestWatchHeavyWatchers(t *testing.T) {
	c := Config{Workload: Workload{Profile: ProfileWatchHeavy}}
	require.NoError(t, c.Validate())
	require.Equal(t, watchHeavyWatchers, c.Watchers)
	d := Config{}
	require.NoError(t, d.Validate())
	require.Equal(t, 2, d.Watchers)
}
