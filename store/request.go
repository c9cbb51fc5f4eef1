package store

import (
	"fmt"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"

	"github.com/havoclab/havoc/store/auth"
	"github.com/havoclab/havoc/store/membership"
)

// Request is one client request to a member; exactly one field is set. The types
// are etcd's own, so the gRPC server is a thin adapter.
type Request struct {
	Range           *pb.RangeRequest
	Put             *pb.PutRequest
	DeleteRange     *pb.DeleteRangeRequest
	Txn             *pb.TxnRequest
	Compaction      *pb.CompactionRequest
	LeaseGrant      *pb.LeaseGrantRequest
	LeaseRevoke     *pb.LeaseRevokeRequest
	LeaseKeepAlive  *pb.LeaseKeepAliveRequest
	LeaseTimeToLive *pb.LeaseTimeToLiveRequest
	LeaseLeases     *pb.LeaseLeasesRequest
	MemberAdd       *pb.MemberAddRequest
	MemberRemove    *pb.MemberRemoveRequest
	MemberPromote   *pb.MemberPromoteRequest
	MemberUpdate    *pb.MemberUpdateRequest
	MemberList      *pb.MemberListRequest
	Alarm           *pb.AlarmRequest
	HashKV          *pb.HashKVRequest
	// Auth is an auth RPC as etcd's raft request: exactly one of its Auth*,
	// Authenticate or AuthStatus fields is set (store/auth.IsRequest). Every
	// auth request goes through the log, as in etcd; passwords must already be
	// hashed (HashedPassword).
	Auth *pb.InternalRaftRequest

	// Who sent the request; the member checks its permissions when auth is on.
	Who Identity
}

// Response answers the Request submitted with Token; exactly one field is set, or Err.
type Response struct {
	Token           uint64
	Range           *pb.RangeResponse
	Put             *pb.PutResponse
	DeleteRange     *pb.DeleteRangeResponse
	Txn             *pb.TxnResponse
	Compaction      *pb.CompactionResponse
	LeaseGrant      *pb.LeaseGrantResponse
	LeaseRevoke     *pb.LeaseRevokeResponse
	LeaseKeepAlive  *pb.LeaseKeepAliveResponse
	LeaseTimeToLive *pb.LeaseTimeToLiveResponse
	LeaseLeases     *pb.LeaseLeasesResponse
	MemberAdd       *pb.MemberAddResponse
	MemberRemove    *pb.MemberRemoveResponse
	MemberPromote   *pb.MemberPromoteResponse
	MemberUpdate    *pb.MemberUpdateResponse
	MemberList      *pb.MemberListResponse
	Alarm           *pb.AlarmResponse
	HashKV          *pb.HashKVResponse
	// Auth answers an Auth request with the response type of its RPC
	// (*pb.AuthEnableResponse, *pb.AuthenticateResponse, ...).
	Auth proto.Message
	// Err is set when the request failed. Errors that prove the request did not take
	// effect (validation, ErrNoLeader before proposing) and errors that leave the
	// outcome unknown (ErrTimeout) are both possible: see Definite.
	Err error
	// Definite is true when Err proves the request had no effect.
	Definite bool
}

// IsWrite reports whether a request goes through the raft log as an
// InternalRaftRequest (a runtime treats its timeouts as etcd treats proposals').
func (r *Request) IsWrite() bool { return r.isWrite() }

// isWrite reports whether a request goes through the raft log as an
// InternalRaftRequest.
func (r *Request) isWrite() bool {
	switch {
	case r.Put != nil, r.DeleteRange != nil, r.Compaction != nil, r.LeaseGrant != nil, r.LeaseRevoke != nil, r.Alarm != nil,
		r.Auth != nil:
		return true
	case r.Txn != nil:
		return !isReadOnlyTxn(r.Txn)
	}
	return false
}

func isReadOnlyTxn(t *pb.TxnRequest) bool {
	for _, ops := range [][]*pb.RequestOp{t.GetSuccess(), t.GetFailure()} {
		for _, op := range ops {
			switch x := op.GetRequest().(type) {
			case *pb.RequestOp_RequestRange:
			case *pb.RequestOp_RequestTxn:
				if !isReadOnlyTxn(x.RequestTxn) {
					return false
				}
			default:
				return false
			}
		}
	}
	return true
}

// internal converts a write request into the raft log payload.
func (r *Request) internal(id uint64) *pb.InternalRaftRequest {
	ir := &pb.InternalRaftRequest{Header: &pb.RequestHeader{ID: id}, ID: id}
	switch {
	case r.Put != nil:
		ir.Put = r.Put
	case r.DeleteRange != nil:
		ir.DeleteRange = r.DeleteRange
	case r.Txn != nil:
		ir.Txn = r.Txn
	case r.Compaction != nil:
		ir.Compaction = r.Compaction
	case r.LeaseGrant != nil:
		ir.LeaseGrant = r.LeaseGrant
	case r.LeaseRevoke != nil:
		ir.LeaseRevoke = r.LeaseRevoke
	case r.Alarm != nil:
		ir.Alarm = r.Alarm
	case r.Auth != nil:
		proto.Merge(ir, r.Auth)
		ir.Header = &pb.RequestHeader{ID: id}
		ir.ID = id
	}
	return ir
}

// DecodeEntry decodes the data of a normal raft entry. It never panics: arbitrary
// bytes give either a request or an error wrapping ErrBadEntry.
func DecodeEntry(data []byte) (*pb.InternalRaftRequest, error) {
	var ir pb.InternalRaftRequest
	if err := proto.Unmarshal(data, &ir); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadEntry, err)
	}
	n := 0
	for _, set := range []bool{ir.Put != nil, ir.DeleteRange != nil, ir.Txn != nil, ir.Compaction != nil,
		ir.LeaseGrant != nil, ir.LeaseRevoke != nil, ir.Alarm != nil, ir.ClusterMemberAttrSet != nil, auth.IsRequest(&ir)} {
		if set {
			n++
		}
	}
	if n != 1 {
		return nil, fmt.Errorf("%w: %d operations in one entry", ErrBadEntry, n)
	}
	return &ir, nil
}

// confContext is the Context of a runtime ConfChangeV2: the member it adds or
// changes and the request that proposed it. Bootstrap entries carry the member JSON
// alone, as etcd's do.
type confContext struct {
	RequestID uint64            `json:"request_id"`
	Member    membership.Member `json:"member"`
}
