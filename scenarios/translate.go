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
		r := &pb.RangeRequest{Key: from, RangeEnd: prefixEnd(p), Serializable: op.Serializable, Revision: op.Rev, Limit: op.Limit}
		if o := op.Opts; o != nil {
			r.CountOnly, r.KeysOnly = o.CountOnly, o.KeysOnly
			r.SortOrder = map[linearizability.SortOrder]pb.RangeRequest_SortOrder{
				linearizability.SortAscend: pb.RangeRequest_ASCEND, linearizability.SortDescend: pb.RangeRequest_DESCEND}[o.SortOrder]
			r.SortTarget = map[linearizability.SortTarget]pb.RangeRequest_SortTarget{
				linearizability.SortByVersion: pb.RangeRequest_VERSION, linearizability.SortByCreate: pb.RangeRequest_CREATE,
				linearizability.SortByMod: pb.RangeRequest_MOD, linearizability.SortByValue: pb.RangeRequest_VALUE}[o.SortTarget]
			r.MinModRevision, r.MaxModRevision = o.MinMod, o.MaxMod
			r.MinCreateRevision, r.MaxCreateRevision = o.MinCreate, o.MaxCreate
		}
		return store.Request{Range: r}
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
	case linearizability.KindTxn:
		return store.Request{Txn: toTxn(op.Txn)}
	case linearizability.KindLeaseGrant:
		return store.Request{LeaseGrant: &pb.LeaseGrantRequest{TTL: op.TTL, ID: op.Lease}}
	case linearizability.KindLeaseRevoke:
		return store.Request{LeaseRevoke: &pb.LeaseRevokeRequest{ID: op.Lease}}
	}
	return store.Request{}
}

// toTxn converts a history txn into etcd's TxnRequest.
func toTxn(t *linearizability.Txn) *pb.TxnRequest {
	r := &pb.TxnRequest{}
	for _, c := range t.If {
		pc := &pb.Compare{Key: []byte(c.Key)}
		switch c.Target {
		case linearizability.TargetValue:
			pc.Target, pc.TargetUnion = pb.Compare_VALUE, &pb.Compare_Value{Value: []byte(c.Value)}
		case linearizability.TargetVersion:
			pc.Target, pc.TargetUnion = pb.Compare_VERSION, &pb.Compare_Version{Version: c.Num}
		case linearizability.TargetCreate:
			pc.Target, pc.TargetUnion = pb.Compare_CREATE, &pb.Compare_CreateRevision{CreateRevision: c.Num}
		case linearizability.TargetMod:
			pc.Target, pc.TargetUnion = pb.Compare_MOD, &pb.Compare_ModRevision{ModRevision: c.Num}
		case linearizability.TargetLease:
			pc.Target, pc.TargetUnion = pb.Compare_LEASE, &pb.Compare_Lease{Lease: c.Num}
		}
		switch c.Result {
		case linearizability.ResultEqual:
			pc.Result = pb.Compare_EQUAL
		case linearizability.ResultNotEqual:
			pc.Result = pb.Compare_NOT_EQUAL
		case linearizability.ResultGreater:
			pc.Result = pb.Compare_GREATER
		case linearizability.ResultLess:
			pc.Result = pb.Compare_LESS
		}
		r.Compare = append(r.Compare, pc)
	}
	branch := func(ops []linearizability.TxnOp) []*pb.RequestOp {
		out := make([]*pb.RequestOp, 0, len(ops))
		for _, o := range ops {
			key := []byte(o.Key)
			var ro *pb.RequestOp
			switch o.Kind {
			case linearizability.KindGet:
				ro = &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: key}}}
			case linearizability.KindRange:
				ro = &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: key, RangeEnd: []byte(o.End), Revision: o.Rev}}}
			case linearizability.KindPut:
				ro = &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: key, Value: []byte(o.Value)}}}
			case linearizability.KindDelete:
				ro = &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: key}}}
			case linearizability.KindTxn:
				ro = &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: toTxn(o.Txn)}}
			}
			out = append(out, ro)
		}
		return out
	}
	r.Success, r.Failure = branch(t.Then), branch(t.Else)
	return r
}

// fromTxn converts the responses of the branch of t a txn took.
func fromTxn(t *linearizability.Txn, r *pb.TxnResponse) []linearizability.TxnResult {
	ops := t.Else
	if r.Succeeded {
		ops = t.Then
	}
	out := make([]linearizability.TxnResult, len(r.Responses))
	for i, ro := range r.Responses {
		res := &out[i]
		switch {
		case ro.GetResponseRange() != nil:
			for _, kv := range ro.GetResponseRange().Kvs {
				res.KVs = append(res.KVs, toKV(kv))
			}
		case ro.GetResponseDeleteRange() != nil:
			res.Deleted = ro.GetResponseDeleteRange().Deleted
		case ro.GetResponseTxn() != nil && i < len(ops) && ops[i].Txn != nil:
			sub := ro.GetResponseTxn()
			res.Succeeded = sub.Succeeded
			res.Results = fromTxn(ops[i].Txn, sub)
		}
	}
	return out
}

// isRead reports whether an operation cannot change the keyspace (nor its
// history): a failed or timed-out one had no effect to account for.
func isRead(k linearizability.Kind) bool {
	return k == linearizability.KindGet || k == linearizability.KindRange || k == linearizability.KindDefrag
}

// readOnly reports whether op cannot change the keyspace: a read, or a txn
// without a put or delete in any branch.
func readOnly(op linearizability.Operation) bool {
	if op.Kind == linearizability.KindTxn {
		return !op.Txn.Writes()
	}
	return isRead(op.Kind)
}

// FromResponse converts a store response into the outcome and response a history
// records. Reads that fail have no effect; writes fail definitely only when the
// member says so (Definite), otherwise their outcome is unknown.
func FromResponse(op linearizability.Operation, r store.Response) (linearizability.Outcome, linearizability.Response, string) {
	if r.Err != nil {
		if r.Definite || readOnly(op) || errors.Is(r.Err, store.ErrNoLeader) {
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
			if op.Opts != nil {
				out.Count = r.Range.Count
			}
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
		if op.Kind == linearizability.KindTxn {
			out.Results = fromTxn(op.Txn, r.Txn)
		} else if !r.Txn.Succeeded && len(r.Txn.Responses) == 1 {
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
