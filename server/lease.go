package server

import (
	"context"
	"errors"
	"io"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"

	"github.com/havoclab/havoc/store"
)

// leaseServer is etcd's Lease service. Grant and Revoke go through raft on any
// member; KeepAlive and TimeToLive need the leader's lessor, so a follower
// forwards them to the leader's client URL, as etcd does.
type leaseServer struct {
	pb.UnimplementedLeaseServer
	m *Member
}

// LeaseGrant creates a lease.
func (s leaseServer) LeaseGrant(ctx context.Context, r *pb.LeaseGrantRequest) (*pb.LeaseGrantResponse, error) {
	resp, err := s.m.do(ctx, store.Request{LeaseGrant: r})
	return resp.LeaseGrant, toGRPC(err)
}

// LeaseRevoke deletes a lease and its keys.
func (s leaseServer) LeaseRevoke(ctx context.Context, r *pb.LeaseRevokeRequest) (*pb.LeaseRevokeResponse, error) {
	resp, err := s.m.do(ctx, store.Request{LeaseRevoke: r})
	return resp.LeaseRevoke, toGRPC(err)
}

// LeaseLeases lists the leases.
func (s leaseServer) LeaseLeases(ctx context.Context, r *pb.LeaseLeasesRequest) (*pb.LeaseLeasesResponse, error) {
	resp, err := s.m.do(ctx, store.Request{LeaseLeases: r})
	return resp.LeaseLeases, toGRPC(err)
}

// LeaseTimeToLive reports a lease's remaining TTL (from the leader).
func (s leaseServer) LeaseTimeToLive(ctx context.Context, r *pb.LeaseTimeToLiveRequest) (*pb.LeaseTimeToLiveResponse, error) {
	return onLeader(ctx, s.m,
		func(resp store.Response) *pb.LeaseTimeToLiveResponse { return resp.LeaseTimeToLive },
		store.Request{LeaseTimeToLive: r},
		func(ctx context.Context, c *grpc.ClientConn) (*pb.LeaseTimeToLiveResponse, error) {
			return pb.NewLeaseClient(c).LeaseTimeToLive(ctx, r)
		})
}

// LeaseKeepAlive renews leases, one answer per request, in order.
func (s leaseServer) LeaseKeepAlive(stream grpc.BidiStreamingServer[pb.LeaseKeepAliveRequest, pb.LeaseKeepAliveResponse]) error {
	ctx := stream.Context()
	for {
		r, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		resp, err := onLeader(ctx, s.m,
			func(resp store.Response) *pb.LeaseKeepAliveResponse { return resp.LeaseKeepAlive },
			store.Request{LeaseKeepAlive: r},
			func(ctx context.Context, c *grpc.ClientConn) (*pb.LeaseKeepAliveResponse, error) {
				return forwardKeepAlive(ctx, c, r)
			})
		if err != nil {
			return err
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}

func forwardKeepAlive(ctx context.Context, c *grpc.ClientConn, r *pb.LeaseKeepAliveRequest) (*pb.LeaseKeepAliveResponse, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := pb.NewLeaseClient(c).LeaseKeepAlive(ctx)
	if err != nil {
		return nil, err
	}
	if err := st.Send(r); err != nil {
		return nil, err
	}
	resp, err := st.Recv()
	_ = st.CloseSend()
	return resp, err
}

// onLeader submits req locally and, when this member is not the leader, calls
// forward on the leader instead; leadership moving in between is retried until
// ctx ends (at most 5 s).
func onLeader[T any](ctx context.Context, m *Member, pick func(store.Response) *T, req store.Request,
	forward func(context.Context, *grpc.ClientConn) (*T, error)) (*T, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for {
		resp, err := m.do(ctx, req)
		if err == nil {
			return pick(resp), nil
		}
		if !errors.Is(err, store.ErrNotLeader) {
			return nil, toGRPC(err)
		}
		if c, cerr := m.leaderClient(); cerr == nil && m.leader.Load() != m.id {
			out, ferr := forward(forwardToken(ctx, ctx), c)
			if ferr == nil {
				return out, nil
			}
			if !errors.Is(ferr, rpctypes.ErrGRPCNotLeader) && ferr.Error() != rpctypes.ErrGRPCNotLeader.Error() {
				return nil, toGRPC(ferr)
			}
		}
		select {
		case <-ctx.Done():
			if m.leader.Load() == 0 {
				return nil, rpctypes.ErrGRPCNoLeader
			}
			return nil, toGRPC(ctx.Err())
		case <-time.After(m.cfg.HeartbeatInterval):
		}
	}
}
