package server

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"

	"github.com/havoclab/havoc/store"
)

// kvServer is etcd's KV service over the member's node.
type kvServer struct {
	pb.UnimplementedKVServer
	m *Member
}

// Range reads keys (linearizable through ReadIndex unless serializable).
func (s kvServer) Range(ctx context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	resp, err := s.m.do(ctx, store.Request{Range: r})
	return resp.Range, toGRPC(err)
}

// RangeStream (etcd 3.7's `get --stream`) is not offered.
func (s kvServer) RangeStream(*pb.RangeRequest, grpc.ServerStreamingServer[pb.RangeStreamResponse]) error {
	return unimplemented("RangeStream")
}

// Put writes a key.
func (s kvServer) Put(ctx context.Context, r *pb.PutRequest) (*pb.PutResponse, error) {
	resp, err := s.m.do(ctx, store.Request{Put: r})
	return resp.Put, toGRPC(err)
}

// DeleteRange deletes keys.
func (s kvServer) DeleteRange(ctx context.Context, r *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	resp, err := s.m.do(ctx, store.Request{DeleteRange: r})
	return resp.DeleteRange, toGRPC(err)
}

// Txn runs a transaction.
func (s kvServer) Txn(ctx context.Context, r *pb.TxnRequest) (*pb.TxnResponse, error) {
	resp, err := s.m.do(ctx, store.Request{Txn: r})
	return resp.Txn, toGRPC(err)
}

// Compact compacts the keyspace history.
func (s kvServer) Compact(ctx context.Context, r *pb.CompactionRequest) (*pb.CompactionResponse, error) {
	resp, err := s.m.do(ctx, store.Request{Compaction: r})
	return resp.Compaction, toGRPC(err)
}
