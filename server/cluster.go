package server

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/havoclab/havoc/store"
)

// clusterServer is etcd's Cluster service.
type clusterServer struct {
	pb.UnimplementedClusterServer
	m *Member
}

// MemberAdd adds a member (voter or learner) through raft.
func (s clusterServer) MemberAdd(ctx context.Context, r *pb.MemberAddRequest) (*pb.MemberAddResponse, error) {
	resp, err := s.m.do(ctx, store.Request{MemberAdd: r})
	return resp.MemberAdd, toGRPC(err)
}

// MemberRemove removes a member through raft.
func (s clusterServer) MemberRemove(ctx context.Context, r *pb.MemberRemoveRequest) (*pb.MemberRemoveResponse, error) {
	resp, err := s.m.do(ctx, store.Request{MemberRemove: r})
	return resp.MemberRemove, toGRPC(err)
}

// MemberUpdate changes a member's peer URLs through raft.
func (s clusterServer) MemberUpdate(ctx context.Context, r *pb.MemberUpdateRequest) (*pb.MemberUpdateResponse, error) {
	resp, err := s.m.do(ctx, store.Request{MemberUpdate: r})
	return resp.MemberUpdate, toGRPC(err)
}

// MemberList lists the members this member has applied; a linearizable request
// (clientv3's default) is answered after a ReadIndex barrier, as etcd's is.
func (s clusterServer) MemberList(ctx context.Context, r *pb.MemberListRequest) (*pb.MemberListResponse, error) {
	resp, err := s.m.do(ctx, store.Request{MemberList: r})
	return resp.MemberList, toGRPC(err)
}

// MemberPromote turns a learner into a voter.
func (s clusterServer) MemberPromote(ctx context.Context, r *pb.MemberPromoteRequest) (*pb.MemberPromoteResponse, error) {
	resp, err := s.m.do(ctx, store.Request{MemberPromote: r})
	return resp.MemberPromote, toGRPC(err)
}
