package mvcc

import (
	"bytes"
	"sort"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"
)

// oracle is a deliberately naive model of etcd's keyspace for the property test: the
// full history of every key in a map, never physically compacted, scanned linearly.
type oracle struct {
	rev, compactRev int64
	hist            map[string][]oEntry
	leases          map[int64]bool
	events          []oEvent
}

type oEntry struct {
	rev  int64
	kv   *mvccpb.KeyValue // nil: tombstone
	tomb bool
}

// oEvent is one event in the global log, with the previous value for prev_kv.
type oEvent struct {
	rev  int64
	ev   *mvccpb.Event
	prev *mvccpb.KeyValue
}

func newOracle(leases ...int64) *oracle {
	o := &oracle{rev: 1, compactRev: -1, hist: map[string][]oEntry{}, leases: map[int64]bool{}}
	for _, l := range leases {
		o.leases[l] = true
	}
	return o
}

func (o *oracle) clone() *oracle {
	c := &oracle{rev: o.rev, compactRev: o.compactRev, hist: map[string][]oEntry{}, leases: o.leases}
	for k, h := range o.hist {
		c.hist[k] = append([]oEntry(nil), h...)
	}
	c.events = append([]oEvent(nil), o.events...)
	return c
}

// at returns the value of key at rev, nil if absent.
func (o *oracle) at(key string, rev int64) *mvccpb.KeyValue {
	var cur *mvccpb.KeyValue
	for _, e := range o.hist[key] {
		if e.rev > rev {
			break
		}
		cur = e.kv
	}
	return cur
}

func inRange(k string, key, end []byte) bool {
	if len(end) == 0 {
		return k == string(key)
	}
	if len(end) == 1 && end[0] == 0 {
		return k >= string(key)
	}
	return k >= string(key) && k < string(end)
}

// kvsAt returns clones of the values in range at rev, in key order.
func (o *oracle) kvsAt(key, end []byte, rev int64) []*mvccpb.KeyValue {
	var keys []string
	for k := range o.hist {
		if inRange(k, key, end) && o.at(k, rev) != nil {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	out := make([]*mvccpb.KeyValue, len(keys))
	for i, k := range keys {
		out[i] = proto.Clone(o.at(k, rev)).(*mvccpb.KeyValue)
	}
	return out
}

// otx is one oracle write txn.
type otx struct {
	o       *oracle
	begin   int64
	changes int
	evs     []oEvent
}

func (o *oracle) txn() *otx { return &otx{o: o, begin: o.rev} }

func (t *otx) readRev() int64 {
	if t.changes > 0 {
		return t.begin + 1
	}
	return t.begin
}

func (t *otx) end() {
	if t.changes > 0 {
		t.o.rev++
		t.o.events = append(t.o.events, t.evs...)
	}
}

func (t *otx) put(key, val []byte, lease int64) int64 {
	rev := t.begin + 1
	prev := t.o.at(string(key), rev)
	kv := &mvccpb.KeyValue{Key: bytes.Clone(key), Value: bytes.Clone(val), CreateRevision: rev, ModRevision: rev, Version: 1, Lease: lease}
	if prev != nil {
		kv.CreateRevision, kv.Version = prev.CreateRevision, prev.Version+1
	}
	t.o.hist[string(key)] = append(t.o.hist[string(key)], oEntry{rev: rev, kv: kv})
	t.changes++
	ev := oEvent{rev: rev, ev: &mvccpb.Event{Type: mvccpb.Event_PUT, Kv: kv}}
	if kv.Version > 1 {
		ev.prev = t.o.at(string(key), rev-1)
	}
	t.evs = append(t.evs, ev)
	return rev
}

func (t *otx) del(key string) {
	rev := t.begin + 1
	t.evs = append(t.evs, oEvent{rev: rev, ev: &mvccpb.Event{Type: mvccpb.Event_DELETE,
		Kv: &mvccpb.KeyValue{Key: []byte(key), ModRevision: rev}}, prev: t.o.at(key, rev-1)})
	t.o.hist[key] = append(t.o.hist[key], oEntry{rev: rev, tomb: true})
	t.changes++
}

func (t *otx) rangeReq(r *pb.RangeRequest) (*pb.RangeResponse, error) {
	cur := t.readRev()
	rev := r.Revision
	if rev > cur {
		return nil, ErrFutureRev
	}
	if rev <= 0 {
		rev = cur
	}
	if rev < t.o.compactRev {
		return nil, ErrCompacted
	}
	kvs := t.o.kvsAt(r.Key, r.RangeEnd, rev)
	resp := &pb.RangeResponse{Header: &pb.ResponseHeader{Revision: cur}, Count: int64(len(kvs))}
	if r.CountOnly {
		return resp, nil
	}
	if r.KeysOnly && r.SortTarget != pb.RangeRequest_VALUE {
		for _, kv := range kvs {
			kv.Lease, kv.Value = 0, nil
		}
	}
	keep := kvs[:0]
	for _, kv := range kvs {
		if (r.MaxModRevision != 0 && kv.ModRevision > r.MaxModRevision) ||
			(r.MinModRevision != 0 && kv.ModRevision < r.MinModRevision) ||
			(r.MaxCreateRevision != 0 && kv.CreateRevision > r.MaxCreateRevision) ||
			(r.MinCreateRevision != 0 && kv.CreateRevision < r.MinCreateRevision) {
			continue
		}
		keep = append(keep, kv)
	}
	kvs = keep
	hasFilters := r.MaxModRevision != 0 || r.MinModRevision != 0 || r.MaxCreateRevision != 0 || r.MinCreateRevision != 0
	if r.SortOrder == pb.RangeRequest_NONE && !hasFilters && r.Limit > 0 && int64(len(kvs)) > r.Limit+1 {
		// etcd quirk (go.etcd.io/etcd/server/v3/etcdserver/txn rangeLimit): a sort target with order NONE counts
		// as default ordering when choosing the fetch limit, so only the first
		// limit+1 keys are fetched and then sorted.
		kvs = kvs[:r.Limit+1]
	}
	order := r.SortOrder
	if r.SortTarget != pb.RangeRequest_KEY && order == pb.RangeRequest_NONE {
		order = pb.RangeRequest_ASCEND
	}
	if order != pb.RangeRequest_NONE {
		field := func(kv *mvccpb.KeyValue) int64 {
			switch r.SortTarget {
			case pb.RangeRequest_VERSION:
				return kv.Version
			case pb.RangeRequest_CREATE:
				return kv.CreateRevision
			case pb.RangeRequest_MOD:
				return kv.ModRevision
			}
			return 0
		}
		less := func(i, j int) bool {
			switch r.SortTarget {
			case pb.RangeRequest_KEY:
				return bytes.Compare(kvs[i].Key, kvs[j].Key) < 0
			case pb.RangeRequest_VALUE:
				return bytes.Compare(kvs[i].Value, kvs[j].Value) < 0
			}
			return field(kvs[i]) < field(kvs[j])
		}
		if order == pb.RangeRequest_DESCEND {
			sort.Sort(sort.Reverse(kvSorter{kvs, less}))
		} else if r.SortTarget != pb.RangeRequest_KEY {
			sort.Sort(kvSorter{kvs, less})
		}
	}
	if r.Limit > 0 && int64(len(kvs)) > r.Limit {
		kvs = kvs[:r.Limit]
		resp.More = true
	}
	if r.KeysOnly {
		for _, kv := range kvs {
			kv.Value = nil
		}
	}
	resp.Kvs = kvs
	return resp, nil
}

func (t *otx) checkPut(r *pb.PutRequest) error {
	if r.Lease != 0 && !t.o.leases[r.Lease] {
		return ErrLeaseNotFound
	}
	if (r.IgnoreValue || r.IgnoreLease) && t.o.at(string(r.Key), t.readRev()) == nil {
		return ErrKeyNotFound
	}
	return nil
}

func (t *otx) putReq(r *pb.PutRequest) *pb.PutResponse {
	prev := t.o.at(string(r.Key), t.readRev())
	val, lease := r.Value, r.Lease
	if prev == nil && (r.IgnoreValue || r.IgnoreLease) {
		prev = &mvccpb.KeyValue{} // deleted earlier in the txn (see Store.Txn)
	}
	if r.IgnoreValue {
		val = prev.Value
	}
	if r.IgnoreLease {
		lease = prev.Lease
	}
	resp := &pb.PutResponse{Header: &pb.ResponseHeader{}}
	if r.PrevKv && prev != nil {
		resp.PrevKv = proto.Clone(prev).(*mvccpb.KeyValue)
	}
	resp.Header.Revision = t.put(r.Key, val, lease)
	return resp
}

func (t *otx) deleteReq(r *pb.DeleteRangeRequest) *pb.DeleteRangeResponse {
	kvs := t.o.kvsAt(r.Key, r.RangeEnd, t.readRev())
	resp := &pb.DeleteRangeResponse{Header: &pb.ResponseHeader{}, Deleted: int64(len(kvs))}
	if r.PrevKv {
		resp.PrevKvs = kvs
	}
	for _, kv := range kvs {
		t.del(string(kv.Key))
	}
	resp.Header.Revision = t.readRev()
	return resp
}

func (t *otx) compare(c *pb.Compare) bool {
	kvs := t.o.kvsAt(c.Key, c.RangeEnd, t.readRev())
	if len(kvs) == 0 {
		if c.Target == pb.Compare_VALUE {
			return false
		}
		kvs = []*mvccpb.KeyValue{{}}
	}
	for _, kv := range kvs {
		var a, b int64
		switch c.Target {
		case pb.Compare_VALUE:
			a, b = int64(bytes.Compare(kv.Value, c.GetValue())), 0
		case pb.Compare_CREATE:
			a, b = kv.CreateRevision, c.GetCreateRevision()
		case pb.Compare_MOD:
			a, b = kv.ModRevision, c.GetModRevision()
		case pb.Compare_VERSION:
			a, b = kv.Version, c.GetVersion()
		case pb.Compare_LEASE:
			a, b = kv.Lease, c.GetLease()
		}
		ok := map[pb.Compare_CompareResult]bool{
			pb.Compare_EQUAL: a == b, pb.Compare_NOT_EQUAL: a != b,
			pb.Compare_GREATER: a > b, pb.Compare_LESS: a < b,
		}[c.Result]
		if !ok {
			return false
		}
	}
	return true
}

// txnCheck evaluates compares and checks the chosen ops of r against the state before
// any write of the txn; it returns the decisions in evaluation order.
func (t *otx) txnCheck(r *pb.TxnRequest) ([]bool, error) {
	ok := true
	for _, c := range r.Compare {
		if !t.compare(c) {
			ok = false
			break
		}
	}
	path := []bool{ok}
	for _, op := range branch(r, ok) {
		switch tv := op.Request.(type) {
		case *pb.RequestOp_RequestRange:
			rev := tv.RequestRange.Revision
			if rev > t.readRev() {
				return nil, ErrFutureRev
			}
			if rev != 0 && rev < t.o.compactRev {
				return nil, ErrCompacted
			}
		case *pb.RequestOp_RequestPut:
			if err := t.checkPut(tv.RequestPut); err != nil {
				return nil, err
			}
		case *pb.RequestOp_RequestTxn:
			sub, err := t.txnCheck(tv.RequestTxn)
			if err != nil {
				return nil, err
			}
			path = append(path, sub...)
		}
	}
	return path, nil
}

func (t *otx) txnExec(r *pb.TxnRequest, path *[]bool) *pb.TxnResponse {
	ok := (*path)[0]
	*path = (*path)[1:]
	resp := &pb.TxnResponse{Succeeded: ok, Header: &pb.ResponseHeader{}}
	for _, op := range branch(r, ok) {
		var out *pb.ResponseOp
		switch tv := op.Request.(type) {
		case *pb.RequestOp_RequestRange:
			rr, err := t.rangeReq(tv.RequestRange)
			if err != nil {
				panic(err)
			}
			out = &pb.ResponseOp{Response: &pb.ResponseOp_ResponseRange{ResponseRange: rr}}
		case *pb.RequestOp_RequestPut:
			out = &pb.ResponseOp{Response: &pb.ResponseOp_ResponsePut{ResponsePut: t.putReq(tv.RequestPut)}}
		case *pb.RequestOp_RequestDeleteRange:
			out = &pb.ResponseOp{Response: &pb.ResponseOp_ResponseDeleteRange{ResponseDeleteRange: t.deleteReq(tv.RequestDeleteRange)}}
		case *pb.RequestOp_RequestTxn:
			out = &pb.ResponseOp{Response: &pb.ResponseOp_ResponseTxn{ResponseTxn: t.txnExec(tv.RequestTxn, path)}}
		}
		resp.Responses = append(resp.Responses, out)
	}
	return resp
}

// Top-level operations.

func (o *oracle) Range(r *pb.RangeRequest) (*pb.RangeResponse, error) { return o.txn().rangeReq(r) }

func (o *oracle) Put(r *pb.PutRequest) (*pb.PutResponse, error) {
	t := o.txn()
	if err := t.checkPut(r); err != nil {
		return nil, err
	}
	resp := t.putReq(r)
	t.end()
	return resp, nil
}

func (o *oracle) DeleteRange(r *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	t := o.txn()
	resp := t.deleteReq(r)
	t.end()
	return resp, nil
}

func (o *oracle) Txn(r *pb.TxnRequest) (*pb.TxnResponse, error) {
	t := o.txn()
	path, err := t.txnCheck(r)
	if err != nil {
		return nil, err
	}
	resp := t.txnExec(r, &path)
	resp.Header.Revision = t.readRev()
	t.end()
	return resp, nil
}

func (o *oracle) DeleteKeys(keys [][]byte) int64 {
	t := o.txn()
	for _, k := range keys {
		if o.at(string(k), t.readRev()) != nil {
			t.del(string(k))
		}
	}
	t.end()
	return o.rev
}

func (o *oracle) Compact(rev int64) (*pb.CompactionResponse, error) {
	if rev <= o.compactRev {
		return nil, ErrCompacted
	}
	if rev > o.rev {
		return nil, ErrFutureRev
	}
	o.compactRev = rev
	return &pb.CompactionResponse{Header: &pb.ResponseHeader{Revision: o.rev}}, nil
}

// attachments returns lease -> live keys, for comparing with the LeaseHooks.
func (o *oracle) attachments() map[int64]map[string]bool {
	out := map[int64]map[string]bool{}
	for k := range o.hist {
		if kv := o.at(k, o.rev); kv != nil && kv.Lease != 0 {
			if out[kv.Lease] == nil {
				out[kv.Lease] = map[string]bool{}
			}
			out[kv.Lease][k] = true
		}
	}
	return out
}
