package scenarios

import (
	"errors"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/havoclab/havoc/linearizability"
	"github.com/havoclab/havoc/store"
)

// prefixEnd is etcd's range end for a prefix.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return []byte{0}
}

// ToRequest converts a history operation into the store request that performs it.
func ToRequest(op linearizability.Operation) store.Request {
	key := []byte(op.Key)
	switch op.Kind {
	case linearizability.KindGet:
		return store.Request{Range: &pb.RangeRequest{Key: key, Serializable: op.Serializable, Revision: op.Rev}}
	case linearizability.KindPut:
		return store.Request{Put: &pb.PutRequest{Key: key, Value: []byte(op.Value)}}
	case linearizability.KindPutLease:
		return store.Request{Put: &pb.PutRequest{Key: key, Value: []byte(op.Value), Lease: op.Lease}}
	case linearizability.KindDelete:
		return store.Request{DeleteRange: &pb.DeleteRangeRequest{Key: key}}
	case linearizability.KindRange:
		p := []byte(op.Prefix)
		from := p
		if op.From != "" {
			from = []byte(op.From)
		}
		return store.Request{Range: &pb.RangeRequest{Key: from, RangeEnd: prefixEnd(p), Serializable: op.Serializable, Revision: op.Rev, Limit: op.Limit}}
	case linearizability.KindCompact:
		return store.Request{Compaction: &pb.CompactionRequest{Revision: op.Rev}}
	case linearizability.KindCAS:
		cmp := &pb.Compare{Key: key, Target: pb.Compare_VALUE, Result: pb.Compare_EQUAL, TargetUnion: &pb.Compare_Value{Value: []byte(op.Expect)}}
		switch {
		case op.ByMod:
			cmp = &pb.Compare{Key: key, Target: pb.Compare_MOD, Result: pb.Compare_EQUAL, TargetUnion: &pb.Compare_ModRevision{ModRevision: op.ExpectMod}}
		case op.ExpectAbsent:
			cmp = &pb.Compare{Key: key, Target: pb.Compare_CREATE, Result: pb.Compare_EQUAL, TargetUnion: &pb.Compare_CreateRevision{CreateRevision: 0}}
		}
		return store.Request{Txn: &pb.TxnRequest{
			Compare: []*pb.Compare{cmp},
			Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: key, Value: []byte(op.Value)}}}},
			Failure: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: key}}}},
		}}
	case linearizability.KindLeaseGrant:
		return store.Request{LeaseGrant: &pb.LeaseGrantRequest{TTL: op.TTL, ID: op.Lease}}
	case linearizability.KindLeaseRevoke:
		return store.Request{LeaseRevoke: &pb.LeaseRevokeRequest{ID: op.Lease}}
	}
	return store.Request{}
}

// isRead reports whether an operation cannot change the keyspace (nor its
// history): a failed or timed-out one had no effect to account for.
func isRead(k linearizability.Kind) bool {
	return k == linearizability.KindGet || k == linearizability.KindRange || k == linearizability.KindDefrag
}

// FromResponse converts a store response into the outcome and response a history
// records. Reads that fail have no effect; writes fail definitely only when the
// member says so (Definite), otherwise their outcome is unknown.
func FromResponse(op linearizability.Operation, r store.Response) (linearizability.Outcome, linearizability.Response, string) {
	if r.Err != nil {
		if r.Definite || isRead(op.Kind) || errors.Is(r.Err, store.ErrNoLeader) {
			return linearizability.OutcomeFail, linearizability.Response{}, r.Err.Error()
		}
		return linearizability.OutcomeUnknown, linearizability.Response{}, r.Err.Error()
	}
	var out linearizability.Response
	switch {
	case r.Range != nil:
		out.Revision = r.Range.GetHeader().GetRevision()
		if op.Kind == linearizability.KindRange {
			out.More = r.Range.More
			for _, kv := range r.Range.Kvs {
				out.KVs = append(out.KVs, toKV(kv))
			}
		} else {
			fillGet(&out, r.Range.Kvs)
		}
	case r.Put != nil:
		out.Revision = r.Put.GetHeader().GetRevision()
	case r.DeleteRange != nil:
		out.Revision = r.DeleteRange.GetHeader().GetRevision()
		out.Deleted = r.DeleteRange.Deleted
	case r.Txn != nil:
		out.Revision = r.Txn.GetHeader().GetRevision()
		out.Succeeded = r.Txn.Succeeded
		if !r.Txn.Succeeded && len(r.Txn.Responses) == 1 {
			fillGet(&out, r.Txn.Responses[0].GetResponseRange().GetKvs())
		}
	case r.LeaseGrant != nil:
		out.Revision = r.LeaseGrant.GetHeader().GetRevision()
		out.LeaseID = r.LeaseGrant.ID
	case r.LeaseRevoke != nil:
		out.Revision = r.LeaseRevoke.GetHeader().GetRevision()
	case r.Compaction != nil:
		out.Revision = r.Compaction.GetHeader().GetRevision()
	}
	return linearizability.OutcomeOK, out, ""
}

func fillGet(out *linearizability.Response, kvs []*mvccpb.KeyValue) {
	if len(kvs) == 0 {
		return
	}
	kv := kvs[0]
	out.Found, out.Value = true, string(kv.Value)
	out.ModRevision, out.CreateRevision, out.Version, out.Lease = kv.ModRevision, kv.CreateRevision, kv.Version, kv.Lease
}

func toKV(kv *mvccpb.KeyValue) linearizability.KV {
	return linearizability.KV{Key: string(kv.Key), Value: string(kv.Value), ModRevision: kv.ModRevision,
		CreateRevision: kv.CreateRevision, Version: kv.Version, Lease: kv.Lease}
}
