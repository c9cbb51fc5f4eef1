package server

import (
	"bytes"
	"context"
	"math"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/havoclab/havoc/store"
	"github.com/havoclab/havoc/store/mvcc"
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

// initialStreamChunkLimit is the key limit of RangeStream's first chunk (etcd's).
const initialStreamChunkLimit = 10

// RangeStream (etcd 3.7's `etcdctl get --stream`, clientv3 GetStream) answers
// a Range in chunks, as etcd's EtcdServer.RangeStream: the first chunk is read
// as the request asks (linearizable unless serializable) and pins the
// revision; the next ones are read locally at that revision, from the key after
// the last one sent, with a limit doubled or halved to keep each chunk near
// the request size limit. Only the last chunk has the header (revision = the
// pinned one), more and count; kvs concatenated give Range's kvs. Sorting
// other than by key ascending and revision filters are Unimplemented.
func (s kvServer) RangeStream(r *pb.RangeRequest, rs grpc.ServerStreamingServer[pb.RangeStreamResponse]) error {
	if err := mvcc.ValidateRange(r); err != nil {
		return toGRPC(err)
	}
	if r.SortOrder != pb.RangeRequest_NONE && (r.SortTarget != pb.RangeRequest_KEY || r.SortOrder != pb.RangeRequest_ASCEND) {
		return status.Errorf(codes.Unimplemented, "RangeStream does not support custom sort orders")
	}
	if r.MinModRevision != 0 || r.MaxModRevision != 0 || r.MinCreateRevision != 0 || r.MaxCreateRevision != 0 {
		return status.Errorf(codes.Unimplemented, "RangeStream does not support revision filters")
	}
	ctx := rs.Context()
	get := func(r *pb.RangeRequest) (*pb.RangeResponse, error) {
		resp, err := s.m.do(ctx, store.Request{Range: r})
		return resp.Range, toGRPC(err)
	}
	header := func(rev int64) *pb.ResponseHeader {
		return &pb.ResponseHeader{ClusterId: s.m.clusterID, MemberId: s.m.id, Revision: rev, RaftTerm: s.m.term.Load()}
	}
	r = proto.Clone(r).(*pb.RangeRequest)
	if r.CountOnly {
		resp, err := get(r)
		if err != nil {
			return err
		}
		return rs.Send(&pb.RangeStreamResponse{RangeResponse: &pb.RangeResponse{Header: header(resp.Header.GetRevision()), Count: resp.Count}})
	}
	totalLimit := r.Limit
	if totalLimit == 0 {
		totalLimit = math.MaxInt64
	}
	r.Limit = min(initialStreamChunkLimit, totalLimit)
	var count, headerRev int64
	for {
		resp, err := get(r)
		if err != nil {
			return err
		}
		if headerRev == 0 {
			headerRev = resp.Header.GetRevision()
			if r.Revision == 0 {
				r.Revision = headerRev
			}
			r.Serializable = true // the first chunk was the read barrier
		}
		count += int64(len(resp.Kvs))
		var nextKey []byte
		if resp.More {
			nextKey = append(bytes.Clone(resp.Kvs[len(resp.Kvs)-1].Key), 0)
		}
		out := &pb.RangeResponse{Kvs: resp.Kvs}
		done := !resp.More || count == totalLimit
		if done {
			out.Header, out.More, out.Count = header(headerRev), resp.More, count
			if resp.More {
				rest, err := get(&pb.RangeRequest{Key: nextKey, RangeEnd: r.RangeEnd, Revision: r.Revision, Serializable: true, CountOnly: true})
				if err != nil {
					return err
				}
				out.Count += rest.Count
			}
		}
		if err := rs.Send(&pb.RangeStreamResponse{RangeResponse: out}); err != nil {
			return err
		}
		if done {
			return nil
		}
		r.Key = nextKey
		r.Limit = min(adjustChunkLimit(r.Limit, proto.Size(resp), s.m.cfg.MaxRequestBytes), totalLimit-count)
	}
}

// adjustChunkLimit doubles the next chunk's limit when the last chunk was under
// half the target size and halves it when over twice (etcd's; at least 1).
func adjustChunkLimit(last int64, lastBytes, targetBytes int) int64 {
	switch {
	case lastBytes < targetBytes/2:
		last *= 2
	case lastBytes > targetBytes*2:
		last /= 2
	}
	return max(last, 1)
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
