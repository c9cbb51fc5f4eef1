package mvcc

import (
	"bytes"
	"cmp"
	"fmt"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/havoclab/havoc/internal/mutant"
)

// Txn applies a TxnRequest as etcd's applier does (go.etcd.io/etcd/server/v3/etcdserver/txn, txn.go):
//  1. evaluate the compares of the whole tree of nested txns against the current
//     revision, giving the path of branches taken;
//  2. check the chosen requests (range revisions, leases, ignore_* on missing keys)
//     against that same view, failing the whole txn before any write;
//  3. execute the chosen requests in order in one write txn; reads see earlier writes.
func (s *Store) Txn(r *pb.TxnRequest) (*pb.TxnResponse, error) {
	tw := s.newTxn()
	path := tw.compareToPath(r)
	if _, err := tw.checkTxn(r, path); err != nil {
		return nil, err
	}
	resp, _ := newTxnResp(r, path)
	if _, err := tw.executeTxn(r, path, resp); err != nil {
		panic(fmt.Sprintf("mvcc: txn failed after its checks passed: %v", err))
	}
	resp.Header.Revision = tw.rev()
	tw.end()
	return resp, s.maybeCommit()
}

func branch(r *pb.TxnRequest, succeeded bool) []*pb.RequestOp {
	if succeeded {
		return r.GetSuccess()
	}
	return r.GetFailure()
}

func newTxnResp(r *pb.TxnRequest, path []bool) (*pb.TxnResponse, int) {
	reqs := branch(r, path[0])
	resps := make([]*pb.ResponseOp, len(reqs))
	resp := &pb.TxnResponse{Responses: resps, Succeeded: path[0], Header: &pb.ResponseHeader{}}
	count := 0
	for i, req := range reqs {
		switch tv := req.GetRequest().(type) {
		case *pb.RequestOp_RequestRange:
			resps[i] = &pb.ResponseOp{Response: &pb.ResponseOp_ResponseRange{}}
		case *pb.RequestOp_RequestPut:
			resps[i] = &pb.ResponseOp{Response: &pb.ResponseOp_ResponsePut{}}
		case *pb.RequestOp_RequestDeleteRange:
			resps[i] = &pb.ResponseOp{Response: &pb.ResponseOp_ResponseDeleteRange{}}
		case *pb.RequestOp_RequestTxn:
			sub, n := newTxnResp(tv.RequestTxn, path[1:])
			resps[i] = &pb.ResponseOp{Response: &pb.ResponseOp_ResponseTxn{ResponseTxn: sub}}
			path = path[1+n:]
			count += n + 1
		default:
			// A RequestOp without a request: ValidateTxn rejects it; etcd leaves a nil
			// response, havoc an empty one so the response still marshals.
			resps[i] = &pb.ResponseOp{}
		}
	}
	return resp, count
}

func (tw *writeTxn) executeTxn(r *pb.TxnRequest, path []bool, resp *pb.TxnResponse) (int, error) {
	reqs := branch(r, path[0])
	txns := 0
	for i, req := range reqs {
		out := resp.Responses[i].Response
		switch tv := req.GetRequest().(type) {
		case *pb.RequestOp_RequestRange:
			rr, err := tw.executeRange(tv.RequestRange)
			if err != nil {
				return 0, fmt.Errorf("applyTxn: failed Range: %w", err)
			}
			out.(*pb.ResponseOp_ResponseRange).ResponseRange = rr
		case *pb.RequestOp_RequestPut:
			prev := tw.getPrevKV(tv.RequestPut)
			if (tv.RequestPut.GetIgnoreValue() || tv.RequestPut.GetIgnoreLease()) && prev == nil {
				// The key was live when checked but an earlier op of this txn deleted
				// it: a from-key ("\x00") delete slips through etcd's duplicate check,
				// and etcd then crashes on prevKV.KVs[0]. havoc puts an empty value
				// and no lease instead, so such a txn cannot take the cluster down.
				prev = &mvccpb.KeyValue{}
			}
			out.(*pb.ResponseOp_ResponsePut).ResponsePut = tw.applyPut(tv.RequestPut, prev)
		case *pb.RequestOp_RequestDeleteRange:
			out.(*pb.ResponseOp_ResponseDeleteRange).ResponseDeleteRange = tw.applyDeleteRange(tv.RequestDeleteRange)
		case *pb.RequestOp_RequestTxn:
			sub := out.(*pb.ResponseOp_ResponseTxn).ResponseTxn
			n, err := tw.executeTxn(tv.RequestTxn, path[1:], sub)
			if err != nil {
				return 0, err
			}
			txns += n + 1
			path = path[n+1:]
		}
	}
	return txns, nil
}

// checkTxn runs etcd's pre-execution checks on the chosen branches, against the view
// before the txn's writes.
func (tw *writeTxn) checkTxn(r *pb.TxnRequest, path []bool) (int, error) {
	count := 0
	for _, req := range branch(r, path[0]) {
		var err error
		switch tv := req.GetRequest().(type) {
		case *pb.RequestOp_RequestRange:
			switch rev := tv.RequestRange.GetRevision(); {
			case rev == 0:
			case rev > tw.rev():
				err = ErrFutureRev
			case rev < tw.s.compactRev:
				err = ErrCompacted
			}
		case *pb.RequestOp_RequestPut:
			if err = tw.s.checkLease(tv.RequestPut); err == nil {
				_, err = tw.checkAndGetPrevKV(tv.RequestPut)
			}
		case *pb.RequestOp_RequestTxn:
			var n int
			n, err = tw.checkTxn(tv.RequestTxn, path[1:])
			count += n + 1
			path = path[n+1:]
		}
		if err != nil {
			return 0, err
		}
	}
	return count, nil
}

func (tw *writeTxn) compareToPath(r *pb.TxnRequest) []bool {
	path := []bool{tw.applyCompares(r.GetCompare())}
	for _, op := range branch(r, path[0]) {
		if tv, ok := op.GetRequest().(*pb.RequestOp_RequestTxn); ok {
			path = append(path, tw.compareToPath(tv.RequestTxn)...)
		}
	}
	return path
}

func (tw *writeTxn) applyCompares(cmps []*pb.Compare) bool {
	for _, c := range cmps {
		if !tw.applyCompare(c) {
			return false
		}
	}
	return true
}

// applyCompare: every key in the compare's range must satisfy it; a missing key is
// compared as an empty KeyValue, except that VALUE compares on it are false.
func (tw *writeTxn) applyCompare(c *pb.Compare) bool {
	rr, err := tw.rangeKeys(c.GetKey(), mkGteRange(c.GetRangeEnd()), rangeOpts{})
	if err != nil {
		return false
	}
	if len(rr.kvs) == 0 {
		if c.GetTarget() == pb.Compare_VALUE {
			return false
		}
		return compareKV(c, &mvccpb.KeyValue{})
	}
	for _, kv := range rr.kvs {
		if !compareKV(c, kv) {
			return false
		}
	}
	return true
}

func compareKV(c *pb.Compare, kv *mvccpb.KeyValue) bool {
	var result int
	switch c.GetTarget() {
	case pb.Compare_VALUE:
		result = bytes.Compare(kv.Value, c.GetValue())
	case pb.Compare_CREATE:
		result = cmp.Compare(kv.CreateRevision, c.GetCreateRevision())
	case pb.Compare_MOD:
		result = cmp.Compare(kv.ModRevision, c.GetModRevision())
		if mutant.On(mutant.TxnCompareModCreate) {
			result = cmp.Compare(kv.CreateRevision, c.GetModRevision())
		}
	case pb.Compare_VERSION:
		result = cmp.Compare(kv.Version, c.GetVersion())
		if mutant.On(mutant.TxnCompareVersion) {
			result = cmp.Compare(kv.Version+1, c.GetVersion())
		}
	case pb.Compare_LEASE:
		result = cmp.Compare(kv.Lease, c.GetLease())
	}
	switch c.GetResult() {
	case pb.Compare_EQUAL:
		return result == 0
	case pb.Compare_NOT_EQUAL:
		return result != 0
	case pb.Compare_GREATER:
		return result > 0
	case pb.Compare_LESS:
		return result < 0
	}
	return true
}
