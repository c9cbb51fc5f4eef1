package mvcc

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"
)

var propKeys = []string{"a", "ab", "abc", "b", "ba", "c", "d", "e"}

// gen draws random requests over a small key space so that keys collide often.
type gen struct {
	rnd *rand.Rand
	n   int
}

func (g *gen) key() []byte { return []byte(propKeys[g.rnd.IntN(len(propKeys))]) }

func (g *gen) end(key []byte) []byte {
	switch g.rnd.IntN(5) {
	case 0, 1:
		return nil
	case 2:
		return []byte{0}
	case 3:
		return append(append([]byte(nil), key...), 0xff) // prefix-ish
	}
	return g.key()
}

func (g *gen) value() []byte {
	g.n++
	return []byte(fmt.Sprintf("v%d", g.n))
}

func (g *gen) rev(o *oracle) int64 {
	if g.rnd.IntN(2) == 0 {
		return 0
	}
	return o.compactRev - 1 + g.rnd.Int64N(o.rev-o.compactRev+3)
}

func (g *gen) rangeReq(o *oracle, inTxn bool) *pb.RangeRequest {
	k := g.key()
	r := &pb.RangeRequest{Key: k, RangeEnd: g.end(k)}
	if g.rnd.IntN(3) == 0 {
		r.Limit = g.rnd.Int64N(4)
	}
	if !inTxn || g.rnd.IntN(3) == 0 {
		r.Revision = g.rev(o)
	}
	r.KeysOnly = g.rnd.IntN(5) == 0
	r.CountOnly = g.rnd.IntN(8) == 0
	if g.rnd.IntN(3) == 0 {
		r.SortOrder = pb.RangeRequest_SortOrder(g.rnd.IntN(3))
		r.SortTarget = pb.RangeRequest_SortTarget(g.rnd.IntN(5))
	}
	if g.rnd.IntN(6) == 0 {
		r.MinModRevision = g.rnd.Int64N(o.rev + 1)
		r.MaxCreateRevision = g.rnd.Int64N(o.rev + 2)
	}
	if g.rnd.IntN(6) == 0 {
		r.MaxModRevision = g.rnd.Int64N(o.rev + 1)
		r.MinCreateRevision = g.rnd.Int64N(o.rev + 2)
	}
	return r
}

func (g *gen) putReq() *pb.PutRequest {
	r := &pb.PutRequest{Key: g.key(), Value: g.value(), PrevKv: g.rnd.IntN(2) == 0}
	if g.rnd.IntN(3) == 0 {
		r.Lease = g.rnd.Int64N(5) // lease 4 does not exist
	}
	if g.rnd.IntN(8) == 0 {
		r.IgnoreValue, r.Value = true, nil
	}
	if g.rnd.IntN(8) == 0 {
		r.IgnoreLease, r.Lease = true, 0
	}
	return r
}

func (g *gen) deleteReq() *pb.DeleteRangeRequest {
	k := g.key()
	return &pb.DeleteRangeRequest{Key: k, RangeEnd: g.end(k), PrevKv: g.rnd.IntN(2) == 0}
}

func (g *gen) compare() *pb.Compare {
	k := g.key()
	c := &pb.Compare{Key: k, Result: pb.Compare_CompareResult(g.rnd.IntN(4)), Target: pb.Compare_CompareTarget(g.rnd.IntN(5))}
	if g.rnd.IntN(4) == 0 {
		c.RangeEnd = g.end(k)
	}
	switch c.Target {
	case pb.Compare_VERSION:
		c.TargetUnion = &pb.Compare_Version{Version: g.rnd.Int64N(4)}
	case pb.Compare_CREATE:
		c.TargetUnion = &pb.Compare_CreateRevision{CreateRevision: g.rnd.Int64N(20)}
	case pb.Compare_MOD:
		c.TargetUnion = &pb.Compare_ModRevision{ModRevision: g.rnd.Int64N(20)}
	case pb.Compare_VALUE:
		c.TargetUnion = &pb.Compare_Value{Value: []byte(fmt.Sprintf("v%d", g.rnd.IntN(g.n+1)))}
	case pb.Compare_LEASE:
		c.TargetUnion = &pb.Compare_Lease{Lease: g.rnd.Int64N(4)}
	}
	return c
}

func (g *gen) ops(o *oracle, depth int) []*pb.RequestOp {
	var out []*pb.RequestOp
	for range g.rnd.IntN(4) {
		switch n := g.rnd.IntN(10); {
		case n < 3:
			out = append(out, &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: g.rangeReq(o, true)}})
		case n < 6:
			out = append(out, &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: g.putReq()}})
		case n < 8:
			out = append(out, &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: g.deleteReq()}})
		default:
			if depth < 2 {
				out = append(out, &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: g.txnReq(o, depth+1)}})
			}
		}
	}
	return out
}

func (g *gen) txnReq(o *oracle, depth int) *pb.TxnRequest {
	r := &pb.TxnRequest{}
	for range g.rnd.IntN(3) {
		r.Compare = append(r.Compare, g.compare())
	}
	r.Success, r.Failure = g.ops(o, depth), g.ops(o, depth)
	return r
}

// propWatch is a watcher of the property test with everything it has received.
type propWatch struct {
	req      WatchRequest
	got      []*mvccpb.Event
	lastRev  int64
	canceled bool
}

// checkEquiv compares a store response with the oracle's, errors included.
func checkEquiv(t *testing.T, step int, what string, got proto.Message, gotErr error, want proto.Message, wantErr error) {
	t.Helper()
	if wantErr != nil || gotErr != nil {
		require.ErrorIs(t, gotErr, wantErr, "step %d %s", step, what)
		return
	}
	if !proto.Equal(got, want) {
		t.Fatalf("step %d %s:\n got  %v\n want %v", step, what, got, want)
	}
}

func runProperty(t *testing.T, seed uint64, steps int) {
	rnd := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	g := &gen{rnd: rnd}
	path := filepath.Join(t.TempDir(), "db")
	opts := Options{NoSync: true, BatchLimit: 1 << 30}
	s, err := Open(path, opts)
	require.NoError(t, err)
	defer func() { _ = s.Close() }()
	hooks := newTestLeases(1, 2, 3)
	s.SetLeaseHooks(hooks)
	chunk := 1 + rnd.IntN(5)
	s.watchChunk = chunk
	o := newOracle(1, 2, 3)
	committed := o.clone()
	watches := map[int64]*propWatch{}
	nextWatch := int64(1)

	checkWatches := func(step int) {
		for id, w := range watches {
			var want []oEvent
			for _, e := range o.events {
				if e.rev >= w.req.StartRev && inRange(string(e.ev.Kv.Key), w.req.Key, w.req.End) &&
					!(w.req.NoPut && e.ev.Type == mvccpb.Event_PUT) && !(w.req.NoDelete && e.ev.Type == mvccpb.Event_DELETE) {
					want = append(want, e)
				}
			}
			if w.canceled {
				require.LessOrEqual(t, len(w.got), len(want), "step %d watch %d", step, id)
			} else {
				require.Len(t, w.got, len(want), "step %d watch %d %+v: %v", step, id, w.req, w.got)
			}
			for i, ev := range w.got {
				e := want[i]
				require.Equal(t, e.ev.Type, ev.Type, "step %d watch %d event %d", step, id, i)
				require.True(t, proto.Equal(e.ev.Kv, ev.Kv), "step %d watch %d event %d: %v vs %v", step, id, i, ev.Kv, e.ev.Kv)
				if !w.req.PrevKV || (e.ev.Type == mvccpb.Event_PUT && e.ev.Kv.Version == 1) {
					require.Nil(t, ev.PrevKv, "step %d watch %d event %d", step, id, i)
				} else if ev.PrevKv != nil || e.rev-1 >= s.CompactRev() {
					require.True(t, proto.Equal(e.prev, ev.PrevKv), "step %d watch %d event %d prev: %v vs %v", step, id, i, ev.PrevKv, e.prev)
				}
			}
		}
	}
	drain := func(step int, max int) {
		for {
			evs := s.DrainWatch(max)
			if len(evs) == 0 {
				return
			}
			for _, we := range evs {
				w := watches[we.ID]
				require.NotNil(t, w, "step %d: response for unknown watch %d", step, we.ID)
				require.False(t, w.canceled)
				if we.Canceled {
					require.Equal(t, s.CompactRev(), we.CompactRevision)
					w.canceled = true
					continue
				}
				require.Greater(t, we.Revision, w.lastRev, "step %d watch %d: revision went back", step, we.ID)
				require.LessOrEqual(t, we.Revision, s.Rev())
				w.lastRev = we.Revision
				for _, ev := range we.Events {
					require.LessOrEqual(t, ev.Kv.ModRevision, we.Revision)
				}
				w.got = append(w.got, we.Events...)
			}
			if max <= 0 || rnd.IntN(4) == 0 {
				return // leave the rest for later, interleaved with writes
			}
		}
	}

	verbose := os.Getenv("MVCC_PROP_VERBOSE") != ""
	logf := func(format string, args ...any) {
		if verbose {
			t.Logf(format, args...)
		}
	}
	for step := range steps {
		logf("step %d rev %d compact %d", step, s.Rev(), s.CompactRev())
		switch n := rnd.IntN(100); {
		case n < 25:
			r := g.putReq()
			if ValidatePut(r) != nil {
				continue
			}
			logf("put %v", r)
			got, gerr := s.Put(r)
			want, werr := o.Put(r)
			checkEquiv(t, step, "put", got, gerr, want, werr)
		case n < 45:
			r := g.rangeReq(o, false)
			got, gerr := s.Range(r)
			want, werr := o.Range(r)
			checkEquiv(t, step, "range", got, gerr, want, werr)
		case n < 55:
			r := g.deleteReq()
			logf("delete %v", r)
			got, gerr := s.DeleteRange(r)
			want, werr := o.DeleteRange(r)
			checkEquiv(t, step, "delete", got, gerr, want, werr)
		case n < 72:
			r := g.txnReq(o, 0)
			if ValidateTxn(r, 0) != nil {
				continue
			}
			logf("txn %v", r)
			if verbose {
				all := &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}}
				a, _ := s.Range(all)
				b, _ := o.Range(all)
				logf("store %v\noracle %v", a, b)
			}
			got, gerr := s.Txn(r)
			want, werr := o.Txn(r)
			checkEquiv(t, step, fmt.Sprintf("txn %v", r), got, gerr, want, werr)
		case n < 75:
			keys := [][]byte{g.key(), g.key()}
			logf("deletekeys %q", keys)
			got, err := s.DeleteKeys(keys)
			require.NoError(t, err)
			require.Equal(t, o.DeleteKeys(keys), got, "step %d deletekeys", step)
		case n < 79:
			rev := o.compactRev - 1 + rnd.Int64N(o.rev-o.compactRev+3)
			logf("compact %d", rev)
			got, gerr := s.Compact(rev)
			want, werr := o.Compact(rev)
			checkEquiv(t, step, "compact", got, gerr, want, werr)
		case n < 84:
			req := WatchRequest{StartRev: g.rev(o), PrevKV: rnd.IntN(2) == 0, NoPut: rnd.IntN(8) == 0, NoDelete: rnd.IntN(8) == 0}
			req.Key = g.key()
			req.End = g.end(req.Key)
			require.NoError(t, s.Watch(nextWatch, req))
			if req.StartRev == 0 {
				req.StartRev = o.rev + 1
			}
			watches[nextWatch] = &propWatch{req: req}
			nextWatch++
		case n < 86:
			if len(watches) > 0 {
				id := int64(-1)
				for i := range watches {
					if id < 0 || i < id {
						id = i
					}
				}
				require.Equal(t, !watches[id].canceled, s.CancelWatch(id), "step %d cancel %d", step, id)
				delete(watches, id)
			}
		case n < 90:
			require.NoError(t, s.Commit())
			committed = o.clone()
		case n < 92:
			// Close/Open keeps everything; Abort/Open loses the uncommitted batch.
			drain(step, 0)
			checkWatches(step)
			logf("reopen")
			if rnd.IntN(2) == 0 {
				require.NoError(t, s.Close())
			} else {
				require.NoError(t, s.Abort())
				o = committed.clone()
			}
			s, err = Open(path, opts)
			require.NoError(t, err)
			s.watchChunk = chunk
			hooks = newTestLeases(1, 2, 3)
			s.SetLeaseHooks(hooks)
			watches = map[int64]*propWatch{}
			require.Equal(t, o.rev, s.Rev(), "step %d reopen rev", step)
			require.Equal(t, max(o.compactRev, -1), s.CompactRev(), "step %d reopen compact rev", step)
			committed = o.clone()
		default:
			drain(step, 1+rnd.IntN(3))
		}
		require.Equal(t, o.rev, s.Rev(), "step %d rev", step)
		require.Equal(t, o.attachments(), nonEmpty(hooks.attached), "step %d leases", step)
		if rnd.IntN(3) == 0 {
			drain(step, 0)
			checkWatches(step)
		}
	}
	drain(steps, 0)
	checkWatches(steps)
	// Every revision from the compaction on reads the same as in the oracle.
	for rev := max(o.compactRev, 1); rev <= o.rev; rev++ {
		r := &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, Revision: rev}
		got, gerr := s.Range(r)
		want, werr := o.Range(r)
		checkEquiv(t, steps, fmt.Sprintf("final range at %d", rev), got, gerr, want, werr)
	}
}

func nonEmpty(m map[int64]map[string]bool) map[int64]map[string]bool {
	out := map[int64]map[string]bool{}
	for k, v := range m {
		if len(v) > 0 {
			out[k] = v
		}
	}
	return out
}

func TestPropertyAgainstOracle(t *testing.T) {
	seeds, steps := 300, 300
	if testing.Short() {
		seeds, steps = 40, 200
	}
	for seed := range uint64(seeds) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { runProperty(t, seed, steps) })
	}
}
