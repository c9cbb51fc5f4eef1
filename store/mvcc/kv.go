package mvcc

import (
	"bytes"
	"fmt"
	"math"
	"sort"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"

	"github.com/havoclab/havoc/internal/mutant"
)

// writeTxn is one etcd write txn (go.etcd.io/etcd/server/v3/storage/mvcc storeTxnWrite): all its changes share
// main revision beginRev+1, with sub-revisions in order. A txn without changes does not
// bump the revision. A read-only operation is a writeTxn that makes no change.
type writeTxn struct {
	s        *Store
	beginRev int64
	changes  []*mvccpb.KeyValue
}

func (s *Store) newTxn() *writeTxn {
	if s.tx == nil {
		panic(ErrClosed)
	}
	return &writeTxn{s: s, beginRev: s.rev}
}

// rev is the revision reads inside the txn see: including the txn's own changes.
func (tw *writeTxn) rev() int64 {
	if len(tw.changes) > 0 {
		return tw.beginRev + 1
	}
	return tw.beginRev
}

// end bumps the revision if anything changed and hands the changes to the watchers.
func (tw *writeTxn) end() {
	if len(tw.changes) == 0 {
		return
	}
	tw.s.rev++
	tw.s.watch.notify(tw.s, tw.s.rev, tw.changes)
}

// rangeOpts mirror etcd's mvcc.RangeOptions.
type rangeOpts struct {
	limit        int64
	rev          int64
	countOnly    bool
	fastKeysOnly bool
}

type rangeResult struct {
	kvs   []*mvccpb.KeyValue
	count int
	rev   int64
}

// rangeKeys is etcd's storeTxnCommon.rangeKeys. end == nil means the single key; an
// empty non-nil end means every key >= key.
func (tw *writeTxn) rangeKeys(key, end []byte, ro rangeOpts) (*rangeResult, error) {
	s, curRev := tw.s, tw.rev()
	rev := ro.rev
	if rev > curRev {
		return nil, ErrFutureRev
	}
	if rev <= 0 {
		rev = curRev
	}
	if rev < s.compactRev {
		return nil, ErrCompacted
	}
	res := &rangeResult{rev: curRev}
	limit := int(ro.limit)
	if ro.limit > math.MaxInt32 || ro.limit < 0 {
		limit = 0
	}
	s.visit(key, end, rev, func(ki *keyIndex, mod, created revision, ver int64) {
		res.count++
		if ro.countOnly || (limit > 0 && len(res.kvs) >= limit) {
			return
		}
		if ro.fastKeysOnly {
			res.kvs = append(res.kvs, &mvccpb.KeyValue{Key: ki.key, ModRevision: mod.main,
				CreateRevision: created.main, Version: ver})
			return
		}
		res.kvs = append(res.kvs, s.fetch(mod))
	})
	return res, nil
}

// visit calls fn for every key in [key, end) visible at atRev, in key order.
func (s *Store) visit(key, end []byte, atRev int64, fn func(ki *keyIndex, mod, created revision, ver int64)) {
	if end == nil {
		if ki := s.idx.get(key); ki != nil {
			if mod, created, ver, ok := ki.get(atRev); ok {
				fn(ki, mod, created, ver)
			}
		}
		return
	}
	s.idx.ascend(key, end, func(ki *keyIndex) bool {
		if mod, created, ver, ok := ki.get(atRev); ok {
			fn(ki, mod, created, ver)
		}
		return true
	})
}

// fetch reads the KeyValue stored at a live revision. The caller owns the
// returned message (Range clears Value for keys_only) but must not write into
// its Key and Value bytes, which the cache shares.
func (s *Store) fetch(r revision) *mvccpb.KeyValue {
	if s.cache != nil {
		if slot := &s.cache[cacheSlot(r)]; slot.kv != nil && slot.rev == r {
			return copyKV(slot.kv)
		}
	}
	v := s.bucket(BucketKey).Get(revKey(r, false))
	if v == nil {
		panic(fmt.Sprintf("mvcc: index points at missing revision %v (current %d)", r, s.rev))
	}
	kv := &mvccpb.KeyValue{}
	if err := proto.Unmarshal(v, kv); err != nil {
		panic(fmt.Sprintf("mvcc: undecodable value at %v: %v", r, err))
	}
	s.remember(r, kv)
	return copyKV(kv)
}

// kvCacheSlots is the size of the cache of decoded KeyValues (a power of two).
const kvCacheSlots = 1 << 14

// kvSlot is one cache entry: the KeyValue at revision rev.
type kvSlot struct {
	rev revision
	kv  *mvccpb.KeyValue
}

// cacheSlot is where revision r lives in the cache: consecutive revisions
// take consecutive slots, so the cache holds about the latest kvCacheSlots
// writes.
func cacheSlot(r revision) int { return int((uint64(r.main)*4 + uint64(r.sub)) & (kvCacheSlots - 1)) }

// remember caches the KeyValue written at revision r (values at a revision
// never change, and most reads want recent ones), evicting whatever held its
// slot.
func (s *Store) remember(r revision, kv *mvccpb.KeyValue) {
	if s.cache == nil {
		s.cache = make([]kvSlot, kvCacheSlots)
	}
	s.cache[cacheSlot(r)] = kvSlot{r, kv}
}

func copyKV(kv *mvccpb.KeyValue) *mvccpb.KeyValue {
	return &mvccpb.KeyValue{Key: kv.Key, CreateRevision: kv.CreateRevision, ModRevision: kv.ModRevision,
		Version: kv.Version, Value: kv.Value, Lease: kv.Lease}
}

// put is etcd's storeTxnWrite.put.
func (tw *writeTxn) put(key, value []byte, lease int64) int64 {
	s := tw.s
	rev := tw.beginRev + 1
	created, ver, oldLease := rev, int64(0), int64(0)
	ki := s.idx.get(key)
	if ki != nil {
		if _, c, v, ok := ki.get(rev); ok {
			created, ver, oldLease = c.main, v, ki.lease
		}
	} else {
		ki = &keyIndex{key: bytes.Clone(key)}
		s.idx.insert(ki)
	}
	idxRev := revision{main: rev, sub: int64(len(tw.changes))}
	kv := &mvccpb.KeyValue{Key: ki.key, Value: value, CreateRevision: created, ModRevision: rev,
		Version: ver + 1, Lease: lease}
	d, err := proto.Marshal(kv)
	if err != nil {
		panic(fmt.Sprintf("mvcc: marshal KeyValue: %v", err))
	}
	s.put(BucketKey, revKey(idxRev, false), d)
	ki.put(idxRev.main, idxRev.sub)
	ki.lease = lease
	kv.Value = bytes.Clone(value)
	tw.changes = append(tw.changes, kv)
	s.remember(idxRev, copyKV(kv))
	if oldLease != lease && s.hooks != nil {
		if oldLease != 0 {
			s.hooks.Detach(oldLease, ki.key)
		}
		if lease != 0 {
			s.hooks.Attach(lease, ki.key)
		}
	}
	return rev
}

// deleteRange tombstones every key in [key, end) live at the txn's revision.
func (tw *writeTxn) deleteRange(key, end []byte) int64 {
	var keys []*keyIndex
	tw.s.visit(key, end, tw.rev(), func(ki *keyIndex, _, _ revision, _ int64) {
		keys = append(keys, ki)
	})
	for _, ki := range keys {
		tw.delete(ki)
	}
	return int64(len(keys))
}

// delete is etcd's storeTxnWrite.delete; ki must be live.
func (tw *writeTxn) delete(ki *keyIndex) {
	s := tw.s
	idxRev := revision{main: tw.beginRev + 1, sub: int64(len(tw.changes))}
	kv := &mvccpb.KeyValue{Key: ki.key}
	d, err := proto.Marshal(kv)
	if err != nil {
		panic(fmt.Sprintf("mvcc: marshal KeyValue: %v", err))
	}
	if !mutant.On(mutant.DeleteNoTombstone) {
		s.put(BucketKey, revKey(idxRev, true), d)
	}
	lease := ki.lease
	if !ki.tombstone(idxRev.main, idxRev.sub) {
		panic(fmt.Sprintf("mvcc: delete of key %q that is not live", ki.key))
	}
	tw.changes = append(tw.changes, kv)
	if lease != 0 && s.hooks != nil {
		s.hooks.Detach(lease, ki.key)
	}
}

// mkGteRange maps etcd's "\x00" range end (every key >= key) to an empty non-nil end.
func mkGteRange(rangeEnd []byte) []byte {
	if len(rangeEnd) == 1 && rangeEnd[0] == 0 {
		return []byte{}
	}
	if len(rangeEnd) == 0 {
		return nil
	}
	return rangeEnd
}

// Range answers a RangeRequest at the current revision, as etcd's v3 applier
// (go.etcd.io/etcd/server/v3/etcdserver/txn, range.go): filters and sorts after fetching, and fetches
// everything when sorting or filtering so that limit applies last.
func (s *Store) Range(r *pb.RangeRequest) (*pb.RangeResponse, error) {
	return s.newTxn().executeRange(r)
}

func (tw *writeTxn) executeRange(r *pb.RangeRequest) (*pb.RangeResponse, error) {
	limit := r.GetLimit()
	if !isDefaultOrdering(r.GetSortTarget(), r.GetSortOrder()) || hasRevisionFilters(r) {
		limit = 0
	}
	if limit > 0 && limit < math.MaxInt64 {
		limit++
	}
	rr, err := tw.rangeKeys(r.GetKey(), mkGteRange(r.GetRangeEnd()), rangeOpts{
		limit:        limit,
		rev:          r.GetRevision(),
		countOnly:    r.GetCountOnly(),
		fastKeysOnly: r.GetKeysOnly() && r.GetSortTarget() != pb.RangeRequest_VALUE,
	})
	if err != nil {
		return nil, err
	}
	filterRange(rr, r)
	sortRange(rr, r)
	resp := &pb.RangeResponse{Header: &pb.ResponseHeader{Revision: rr.rev}, Count: int64(rr.count)}
	if r.GetLimit() > 0 && int64(len(rr.kvs)) > r.GetLimit() {
		rr.kvs = rr.kvs[:r.GetLimit()]
		resp.More = !mutant.On(mutant.RangeMoreWrong)
	}
	if r.GetKeysOnly() {
		for _, kv := range rr.kvs {
			kv.Value = nil
		}
	}
	resp.Kvs = rr.kvs
	return resp, nil
}

func isDefaultOrdering(t pb.RangeRequest_SortTarget, o pb.RangeRequest_SortOrder) bool {
	return o == pb.RangeRequest_NONE || (t == pb.RangeRequest_KEY && o == pb.RangeRequest_ASCEND)
}

func hasRevisionFilters(r *pb.RangeRequest) bool {
	return r.GetMinModRevision() != 0 || r.GetMaxModRevision() != 0 ||
		r.GetMinCreateRevision() != 0 || r.GetMaxCreateRevision() != 0
}

func filterRange(rr *rangeResult, r *pb.RangeRequest) {
	prune := func(drop func(kv *mvccpb.KeyValue) bool) {
		j := 0
		for _, kv := range rr.kvs {
			if !drop(kv) {
				rr.kvs[j] = kv
				j++
			}
		}
		rr.kvs = rr.kvs[:j]
	}
	if m := r.GetMaxModRevision(); m != 0 {
		prune(func(kv *mvccpb.KeyValue) bool { return kv.ModRevision > m })
	}
	if m := r.GetMinModRevision(); m != 0 {
		prune(func(kv *mvccpb.KeyValue) bool { return kv.ModRevision < m })
	}
	if m := r.GetMaxCreateRevision(); m != 0 {
		prune(func(kv *mvccpb.KeyValue) bool { return kv.CreateRevision > m })
	}
	if m := r.GetMinCreateRevision(); m != 0 {
		prune(func(kv *mvccpb.KeyValue) bool { return kv.CreateRevision < m })
	}
}

// sortRange sorts like etcd's sortRangeResults, with sort.Sort (not stable) on the
// same key-ordered input, so that ties come out in etcd's order.
func sortRange(rr *rangeResult, r *pb.RangeRequest) {
	order, target := r.GetSortOrder(), r.GetSortTarget()
	if target != pb.RangeRequest_KEY && order == pb.RangeRequest_NONE {
		order = pb.RangeRequest_ASCEND
	}
	if isDefaultOrdering(target, order) {
		return
	}
	kvs := rr.kvs
	var less func(i, j int) bool
	switch target {
	case pb.RangeRequest_KEY:
		less = func(i, j int) bool { return bytes.Compare(kvs[i].Key, kvs[j].Key) < 0 }
	case pb.RangeRequest_VERSION:
		less = func(i, j int) bool { return kvs[i].Version-kvs[j].Version < 0 }
	case pb.RangeRequest_CREATE:
		less = func(i, j int) bool { return kvs[i].CreateRevision-kvs[j].CreateRevision < 0 }
	case pb.RangeRequest_MOD:
		less = func(i, j int) bool { return kvs[i].ModRevision-kvs[j].ModRevision < 0 }
	case pb.RangeRequest_VALUE:
		less = func(i, j int) bool { return bytes.Compare(kvs[i].Value, kvs[j].Value) < 0 }
	default:
		return // unknown targets are rejected by ValidateRange
	}
	switch order {
	case pb.RangeRequest_ASCEND:
		sort.Sort(kvSorter{kvs, less})
	case pb.RangeRequest_DESCEND:
		sort.Sort(sort.Reverse(kvSorter{kvs, less}))
	}
}

type kvSorter struct {
	kvs  []*mvccpb.KeyValue
	less func(i, j int) bool
}

func (k kvSorter) Len() int           { return len(k.kvs) }
func (k kvSorter) Swap(i, j int)      { k.kvs[i], k.kvs[j] = k.kvs[j], k.kvs[i] }
func (k kvSorter) Less(i, j int) bool { return k.less(i, j) }

// Put applies a PutRequest (go.etcd.io/etcd/server/v3/etcdserver/txn, put.go).
func (s *Store) Put(r *pb.PutRequest) (*pb.PutResponse, error) {
	if err := s.checkLease(r); err != nil {
		return nil, err
	}
	tw := s.newTxn()
	prev, err := tw.checkAndGetPrevKV(r)
	if err != nil {
		return nil, err
	}
	resp := tw.applyPut(r, prev)
	tw.end()
	return resp, s.maybeCommit()
}

func (s *Store) checkLease(r *pb.PutRequest) error {
	if id := r.GetLease(); id != 0 && (s.hooks == nil || !s.hooks.Exists(id)) {
		return ErrLeaseNotFound
	}
	return nil
}

// getPrevKV reads the key's current value when the put needs it.
func (tw *writeTxn) getPrevKV(r *pb.PutRequest) *mvccpb.KeyValue {
	if !r.GetIgnoreValue() && !r.GetIgnoreLease() && !r.GetPrevKv() {
		return nil
	}
	rr, err := tw.rangeKeys(r.GetKey(), nil, rangeOpts{})
	if err != nil {
		panic(fmt.Sprintf("mvcc: range at current revision failed: %v", err))
	}
	if len(rr.kvs) == 0 {
		return nil
	}
	return rr.kvs[0]
}

func (tw *writeTxn) checkAndGetPrevKV(r *pb.PutRequest) (*mvccpb.KeyValue, error) {
	prev := tw.getPrevKV(r)
	if (r.GetIgnoreValue() || r.GetIgnoreLease()) && prev == nil {
		return nil, ErrKeyNotFound
	}
	return prev, nil
}

func (tw *writeTxn) applyPut(r *pb.PutRequest, prev *mvccpb.KeyValue) *pb.PutResponse {
	val, lease := r.GetValue(), r.GetLease()
	if r.GetIgnoreValue() {
		val = prev.Value
	}
	if r.GetIgnoreLease() {
		lease = prev.Lease
	}
	resp := &pb.PutResponse{Header: &pb.ResponseHeader{}}
	if r.GetPrevKv() && prev != nil {
		resp.PrevKv = prev
	}
	resp.Header.Revision = tw.put(r.GetKey(), val, lease)
	return resp
}

// DeleteRange applies a DeleteRangeRequest (go.etcd.io/etcd/server/v3/etcdserver/txn, delete.go).
func (s *Store) DeleteRange(r *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	tw := s.newTxn()
	resp := tw.applyDeleteRange(r)
	tw.end()
	return resp, s.maybeCommit()
}

func (tw *writeTxn) applyDeleteRange(r *pb.DeleteRangeRequest) *pb.DeleteRangeResponse {
	resp := &pb.DeleteRangeResponse{Header: &pb.ResponseHeader{}}
	end := mkGteRange(r.GetRangeEnd())
	if r.GetPrevKv() {
		rr, err := tw.rangeKeys(r.GetKey(), end, rangeOpts{})
		if err != nil {
			panic(fmt.Sprintf("mvcc: range at current revision failed: %v", err))
		}
		resp.PrevKvs = rr.kvs
	}
	n := tw.deleteRange(r.GetKey(), end)
	resp.Deleted = n
	resp.Header.Revision = tw.beginRev
	if n != 0 || len(tw.changes) > 0 {
		resp.Header.Revision = tw.beginRev + 1
	}
	return resp
}

// DeleteKeys deletes exactly the given keys that are live, in one write txn (a lease
// revoke). It returns the revision after the txn, unchanged if nothing was deleted.
func (s *Store) DeleteKeys(keys [][]byte) (int64, error) {
	tw := s.newTxn()
	for _, k := range keys {
		if ki := s.idx.get(k); ki != nil && ki.live() {
			tw.delete(ki)
		}
	}
	tw.end()
	return s.rev, s.maybeCommit()
}
