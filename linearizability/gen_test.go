package linearizability

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The generator runs a sequential reference store (a map with revisions,
// written here without looking at the model) and wraps each operation in a
// random call/return window around its linearization point, so every
// history it produces is linearizable by construction.

type genConfig struct {
	seed       uint64
	ops        int
	clients    int
	keys       int // keys come in groups of 4 sharing a range prefix and leases
	unknownPct int // percent of requests whose outcome the client loses
}

type refKV struct {
	value                   string
	mod, create, ver, lease int64
}

type refVersion struct {
	rev     int64
	present bool
	kv      refKV
}

type refStore struct {
	rev     int64
	kvs     map[string]refKV
	hist    map[string][]refVersion // per key, every version by revision
	leases  map[int64]bool
	granted map[int][]int64 // per group, every lease ever granted
}

func (s *refStore) at(key string, rev int64) (refKV, bool) {
	vs := s.hist[key]
	i := sort.Search(len(vs), func(i int) bool { return vs[i].rev > rev }) - 1
	if i < 0 {
		return refKV{}, false
	}
	return vs[i].kv, vs[i].present
}

func (s *refStore) record(key string) {
	kv, ok := s.kvs[key]
	s.hist[key] = append(s.hist[key], refVersion{rev: s.rev, present: ok, kv: kv})
}

func (s *refStore) put(key, value string, lease int64) {
	s.rev++
	old, ok := s.kvs[key]
	kv := refKV{value: value, mod: s.rev, create: s.rev, ver: 1, lease: lease}
	if ok {
		kv.create, kv.ver = old.create, old.ver+1
	}
	s.kvs[key] = kv
	s.record(key)
}

func resp(kv refKV, ok bool, rev int64) Response {
	if !ok {
		return Response{Revision: rev}
	}
	return Response{Revision: rev, Found: true, Value: kv.value, ModRevision: kv.mod, CreateRevision: kv.create, Version: kv.ver, Lease: kv.lease}
}

// apply executes op on the store, fills its response and outcome, and
// reports whether it had any effect.
func (s *refStore) apply(op *Operation, rnd *rand.Rand) {
	op.Outcome = OutcomeOK
	switch op.Kind {
	case KindGet:
		if op.Serializable {
			h := max(1, s.rev-rnd.Int64N(20))
			kv, ok := s.at(op.Key, h)
			op.Resp = resp(kv, ok, h)
			return
		}
		kv, ok := s.kvs[op.Key]
		op.Resp = resp(kv, ok, s.rev)
	case KindRange:
		var keys []string
		for k := range s.kvs {
			if strings.HasPrefix(k, op.Prefix) {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		op.Resp = Response{Revision: s.rev}
		for _, k := range keys {
			kv := s.kvs[k]
			op.Resp.KVs = append(op.Resp.KVs, KV{Key: k, Value: kv.value, ModRevision: kv.mod, CreateRevision: kv.create, Version: kv.ver, Lease: kv.lease})
		}
	case KindPut:
		s.put(op.Key, op.Value, 0)
		op.Resp = Response{Revision: s.rev}
	case KindPutLease:
		if !s.leases[op.Lease] {
			op.Outcome, op.Error = OutcomeFail, "etcdserver: requested lease not found"
			return
		}
		s.put(op.Key, op.Value, op.Lease)
		op.Resp = Response{Revision: s.rev}
	case KindDelete:
		if _, ok := s.kvs[op.Key]; !ok {
			op.Resp = Response{Revision: s.rev}
			return
		}
		s.rev++
		delete(s.kvs, op.Key)
		s.record(op.Key)
		op.Resp = Response{Revision: s.rev, Deleted: 1}
	case KindCAS:
		kv, ok := s.kvs[op.Key]
		if op.ExpectAbsent && !ok || !op.ExpectAbsent && ok && kv.value == op.Expect {
			s.put(op.Key, op.Value, 0)
			op.Resp = Response{Revision: s.rev, Succeeded: true}
			return
		}
		op.Resp = resp(kv, ok, s.rev)
	case KindLeaseGrant:
		s.leases[op.Lease] = true
		op.Resp = Response{Revision: s.rev, LeaseID: op.Lease}
	case KindLeaseRevoke:
		if !s.leases[op.Lease] {
			op.Outcome, op.Error = OutcomeFail, "etcdserver: requested lease not found"
			return
		}
		delete(s.leases, op.Lease)
		var doomed []string
		for k, kv := range s.kvs {
			if kv.lease == op.Lease {
				doomed = append(doomed, k)
			}
		}
		sort.Strings(doomed)
		if len(doomed) > 0 {
			s.rev++
			for _, k := range doomed {
				delete(s.kvs, k)
				s.record(k)
			}
		}
		op.Resp = Response{Revision: s.rev}
	default:
		panic(op.Kind)
	}
}

func genKey(group, i int) string { return fmt.Sprintf("g%03d/k%d", group, i) }

// generate returns a linearizable history per cfg.
func generate(t testing.TB, cfg genConfig) []Operation {
	rnd := rand.New(rand.NewPCG(cfg.seed, 0x5eed))
	s := &refStore{rev: 1, kvs: map[string]refKV{}, hist: map[string][]refVersion{}, leases: map[int64]bool{}, granted: map[int][]int64{}}
	groups := max(1, cfg.keys/4)
	free := make([]int64, cfg.clients) // when each client's last op returned
	var ops []Operation
	var now int64 = 1000
	for len(ops) < cfg.ops {
		now += 1 + rnd.Int64N(20)
		c := rnd.IntN(cfg.clients)
		if free[c] >= now {
			continue
		}
		g := rnd.IntN(groups)
		key := genKey(g, rnd.IntN(4))
		id := int64(len(ops))
		op := Operation{ID: id, Client: c, Member: fmt.Sprintf("m%d", c%3), Key: key}
		val := fmt.Sprintf("v%d", id)
		switch x := rnd.IntN(100); {
		case x < 30:
			op.Kind = KindGet
		case x < 37:
			op.Kind, op.Serializable = KindGet, true
		case x < 57:
			op.Kind, op.Value = KindPut, val
		case x < 67:
			op.Kind, op.Value = KindCAS, val
			switch cur, ok := s.kvs[key]; {
			case rnd.IntN(4) == 0:
				op.ExpectAbsent = true
			case ok && rnd.IntN(3) > 0:
				op.Expect = cur.value
			default:
				op.Expect = fmt.Sprintf("v%d", rnd.IntN(len(ops)+1))
			}
		case x < 72:
			op.Kind = KindDelete
		case x < 80:
			op.Kind, op.Key, op.Prefix = KindRange, "", fmt.Sprintf("g%03d/", g)
			op.Serializable = rnd.IntN(5) == 0
			if op.Serializable {
				op.Kind, op.Prefix, op.Key = KindGet, "", key // serializable ranges are not generated
			}
		case x < 83:
			op.Kind, op.Key, op.TTL = KindLeaseGrant, "", 60
			op.Lease = int64(g*10000 + len(s.granted[g]) + 1)
			s.granted[g] = append(s.granted[g], op.Lease)
		case x < 95:
			if len(s.granted[g]) == 0 {
				continue
			}
			op.Kind, op.Value = KindPutLease, val
			op.Lease = s.granted[g][rnd.IntN(len(s.granted[g]))]
		default:
			if len(s.granted[g]) == 0 {
				continue
			}
			op.Kind, op.Key = KindLeaseRevoke, ""
			op.Lease = s.granted[g][rnd.IntN(len(s.granted[g]))]
		}
		op.Call = free[c] + 1 + rnd.Int64N(now-free[c])
		op.Return = now + rnd.Int64N(200)
		free[c] = op.Return
		if rnd.IntN(100) < cfg.unknownPct {
			// The client gives up; the request took effect at now or never.
			if rnd.IntN(2) == 0 {
				s.apply(&op, rnd)
			}
			op.Outcome, op.Resp, op.Error = OutcomeUnknown, Response{}, "context deadline exceeded"
		} else {
			s.apply(&op, rnd)
		}
		ops = append(ops, op)
	}
	sortOps(ops)
	require.NoError(t, Validate(ops))
	return ops
}

// suiteConfig is the configuration of TestGeneratedHistoriesAreLinearizable's
// history of seed.
func suiteConfig(seed uint64) genConfig {
	return genConfig{seed: seed, ops: 300 + int(seed)*20, clients: 2 + int(seed%8), keys: 4 + int(seed%3)*4, unknownPct: int(seed % 7)}
}

// mutationConfig is the configuration of the history TestMutatedHistoriesAreNot
// mutates for seed.
func mutationConfig(seed uint64) genConfig {
	return genConfig{seed: seed, ops: 400, clients: 5, keys: 8, unknownPct: int(seed % 6)}
}

func TestGeneratedHistoriesAreLinearizable(t *testing.T) {
	n := 30
	if testing.Short() {
		n = 8
	}
	for seed := range uint64(n) {
		ops := generate(t, suiteConfig(seed))
		res, err := Check(ops, Options{})
		require.NoError(t, err)
		require.Equal(t, VerdictOK, res.Verdict, "seed %d: %s", seed, res.Reason)
	}
}

// TestLeaseTiedPartition checks the history that once ran out of a 60 s
// budget: seed 27 of TestGeneratedHistoriesAreLinearizable, whose 4 keys
// and 19 leases form one partition of 625 operations. Its unknown lease
// revokes could be placed anywhere after their calls, and Porcupine tried
// them before every later put with the lease (over 16 million steps);
// placing them after the lease's last use makes it under 100,000, and
// splitting the keys of leases whose revokes all have revisions about
// 45,000.
func TestLeaseTiedPartition(t *testing.T) {
	ops := generate(t, suiteConfig(27))
	res, err := Check(ops, Options{})
	require.NoError(t, err)
	require.Equal(t, VerdictOK, res.Verdict, res.Reason)
	require.Less(t, res.Steps, int64(500_000))
}

// mutation breaks one rule in a linearizable history, in a way that no
// linearization can explain; it returns false if the history gives it
// nothing to work on.
type mutation struct {
	name  string
	apply func(ops []Operation, rnd *rand.Rand) bool
}

// unsafeKeys are keys whose absence a lease or unknown write may explain.
func unsafeKeys(ops []Operation) map[string]bool {
	bad := map[string]bool{}
	for _, op := range ops {
		if op.Kind == KindPutLease || op.Outcome == OutcomeUnknown && op.Kind.isWrite() {
			bad[op.Key] = true
		}
	}
	return bad
}

func pick(rnd *rand.Rand, n int, ok func(i int) bool) int {
	var cands []int
	for i := range n {
		if ok(i) {
			cands = append(cands, i)
		}
	}
	if len(cands) == 0 {
		return -1
	}
	return cands[rnd.IntN(len(cands))]
}

var mutations = []mutation{
	{"stale read", func(ops []Operation, rnd *rand.Rand) bool {
		// A get that saw a value written by an acknowledged write now sees an
		// earlier acknowledged value of the same key: the write in between
		// has a known revision at most the get's header.
		writer := map[string]*Operation{}
		for i := range ops {
			if ops[i].Kind.writesValue() {
				writer[ops[i].Value] = &ops[i]
			}
		}
		g := pick(rnd, len(ops), func(i int) bool {
			op := &ops[i]
			if op.Kind != KindGet || op.Outcome != OutcomeOK || !op.Resp.Found {
				return false
			}
			w := writer[op.Resp.Value]
			return w.Outcome == OutcomeOK && w.Resp.Revision > 0
		})
		if g < 0 {
			return false
		}
		get := &ops[g]
		w := pick(rnd, len(ops), func(i int) bool {
			op := &ops[i]
			return op.Key == get.Key && (op.Kind == KindPut || op.Kind == KindCAS && op.Resp.Succeeded) &&
				op.Outcome == OutcomeOK && op.Resp.Revision < get.Resp.ModRevision
		})
		if w < 0 {
			return false
		}
		get.Resp.Value, get.Resp.ModRevision = ops[w].Value, ops[w].Resp.Revision
		return true
	}},
	{"duplicate revision", func(ops []Operation, rnd *rand.Rand) bool {
		isPut := func(i int) bool { return ops[i].Kind == KindPut && ops[i].Outcome == OutcomeOK }
		a := pick(rnd, len(ops), isPut)
		b := pick(rnd, len(ops), func(i int) bool { return isPut(i) && i != a })
		if a < 0 || b < 0 {
			return false
		}
		ops[b].Resp.Revision = ops[a].Resp.Revision
		return true
	}},
	{"revisions swapped", func(ops []Operation, rnd *rand.Rand) bool {
		isPut := func(i int) bool { return ops[i].Kind == KindPut && ops[i].Outcome == OutcomeOK }
		a := pick(rnd, len(ops), isPut)
		if a < 0 {
			return false
		}
		b := pick(rnd, len(ops), func(i int) bool { return isPut(i) && ops[i].Call > ops[a].Return })
		if b < 0 {
			return false
		}
		ops[a].Resp.Revision, ops[b].Resp.Revision = ops[b].Resp.Revision, ops[a].Resp.Revision
		return true
	}},
	{"lost write", func(ops []Operation, rnd *rand.Rand) bool {
		bad := unsafeKeys(ops)
		g := pick(rnd, len(ops), func(i int) bool {
			op := &ops[i]
			return op.Kind == KindGet && op.Outcome == OutcomeOK && op.Resp.Found && !bad[op.Key]
		})
		if g < 0 {
			return false
		}
		ops[g].Resp = Response{Revision: ops[g].Resp.Revision}
		return true
	}},
	{"wrong version", func(ops []Operation, rnd *rand.Rand) bool {
		bad := unsafeKeys(ops)
		g := pick(rnd, len(ops), func(i int) bool {
			op := &ops[i]
			return op.Kind == KindGet && !op.Serializable && op.Outcome == OutcomeOK && op.Resp.Found && !bad[op.Key]
		})
		if g < 0 {
			return false
		}
		ops[g].Resp.Version++
		return true
	}},
	{"range drops a key", func(ops []Operation, rnd *rand.Rand) bool {
		bad := unsafeKeys(ops)
		r := pick(rnd, len(ops), func(i int) bool {
			op := &ops[i]
			return op.Kind == KindRange && op.Outcome == OutcomeOK && slices.ContainsFunc(op.Resp.KVs, func(kv KV) bool { return !bad[kv.Key] })
		})
		if r < 0 {
			return false
		}
		kvs := ops[r].Resp.KVs
		j := slices.IndexFunc(kvs, func(kv KV) bool { return !bad[kv.Key] })
		ops[r].Resp.KVs = slices.Delete(slices.Clone(kvs), j, j+1)
		return true
	}},
}

func TestMutatedHistoriesAreNot(t *testing.T) {
	n := 12
	if testing.Short() {
		n = 4
	}
	for _, m := range mutations {
		t.Run(m.name, func(t *testing.T) {
			applied := 0
			for seed := range uint64(n) {
				ops := generate(t, mutationConfig(seed))
				rnd := rand.New(rand.NewPCG(seed, 99))
				if !m.apply(ops, rnd) {
					continue
				}
				applied++
				res, err := Check(ops, Options{})
				require.NoError(t, err)
				require.Equal(t, VerdictIllegal, res.Verdict, "seed %d", seed)
				require.NotEmpty(t, res.OpIDs, res.Reason)
			}
			require.Positive(t, applied, "the mutation never applied")
		})
	}
}

// long100k is the configuration of the 100,000-operation benchmark history.
var long100k = genConfig{seed: 42, ops: 100000, clients: 16, keys: 200, unknownPct: 2}

// TestGeneratedLongHistory checks the benchmark's history as a test, so that
// CI sees it: it once caught a false "illegal" (an unknown leased put whose
// lease was then revoked).
func TestGeneratedLongHistory(t *testing.T) {
	if testing.Short() {
		t.Skip("100,000 operations; run without -short")
	}
	res, err := Check(generate(t, long100k), Options{})
	require.NoError(t, err)
	require.Equal(t, VerdictOK, res.Verdict, res.Reason)
}

// TestLeaseShortcutsKeepVerdicts checks that the two shortcuts for leases,
// narrowing the windows of unknown grants and revokes and splitting the
// keys of anchored leases into partitions of their own, never change a
// verdict: on small histories full of leases and unknown outcomes, some of
// them damaged so that they are no longer linearizable, the verdict with
// either or both is the one with neither.
func TestLeaseShortcutsKeepVerdicts(t *testing.T) {
	n := 1000
	if testing.Short() {
		n = 200
	}
	count := map[Verdict]int{}
	split := 0
	for seed := range uint64(n) {
		ops := generate(t, genConfig{seed: seed, ops: 60, clients: 4, keys: 4, unknownPct: 25})
		rnd := rand.New(rand.NewPCG(seed, 7))
		var leases []int64
		for _, op := range ops {
			if op.Kind == KindLeaseGrant {
				leases = append(leases, op.Lease)
			}
		}
		for range rnd.IntN(3) {
			i := rnd.IntN(len(ops))
			op := &ops[i]
			if op.Outcome != OutcomeOK {
				continue
			}
			switch {
			case op.Kind == KindPutLease && len(leases) > 1:
				op.Lease = leases[rnd.IntN(len(leases))]
			case op.Kind == KindGet && op.Resp.Found && len(leases) > 0:
				op.Resp.Lease = leases[rnd.IntN(len(leases))]
			case op.Kind == KindGet && op.Resp.Found:
				op.Resp = Response{Revision: op.Resp.Revision}
			case op.Kind == KindLeaseRevoke || op.Kind == KindLeaseGrant:
				op.Outcome, op.Resp = OutcomeUnknown, Response{}
			}
		}
		want, err := Check(ops, Options{wholeLeaseWindows: true, tiedLeases: true})
		require.NoError(t, err)
		if want.Verdict == VerdictInconclusive {
			count[VerdictInconclusive]++
			continue
		}
		for _, opt := range []Options{{}, {wholeLeaseWindows: true}, {tiedLeases: true}} {
			got, err := Check(ops, opt)
			require.NoError(t, err)
			require.Equal(t, want.Verdict, got.Verdict, "seed %d, %+v: %s / %s", seed, opt, got.Reason, want.Reason)
			if !opt.wholeLeaseWindows && !opt.tiedLeases && got.Partitions > want.Partitions {
				split++
			}
		}
		count[want.Verdict]++
	}
	t.Logf("verdicts: %v; anchored leases split %d histories", count, split)
	require.Greater(t, split, n/10)
	require.Greater(t, count[VerdictOK], n/10)
	require.Greater(t, count[VerdictIllegal], n/10)
}
