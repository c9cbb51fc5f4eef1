package scenarios

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

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
