package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"slices"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"

	"github.com/havoclab/havoc/store"
	"github.com/havoclab/havoc/store/mvcc"
)

// snapshotChunk is the largest blob of a Snapshot response (etcd's 32 KiB).
const snapshotChunk = 32 << 10

// initialMmapSize is how much of the backend a member maps up front, as
// etcd's default 10 GiB: the file can then grow while a snapshot is being
// streamed without waiting for it. It is address space, not memory.
const initialMmapSize = 10 << 30

// maintenanceServer is etcd's Maintenance service.
type maintenanceServer struct {
	pb.UnimplementedMaintenanceServer
	m *Member
}

// Status reports the member's state with every field etcdctl prints.
func (s maintenanceServer) Status(ctx context.Context, _ *pb.StatusRequest) (*pb.StatusResponse, error) {
	if err := s.m.checkAuthenticated(ctx); err != nil {
		return nil, err
	}
	st, err := call(ctx, s.m, func(n *store.Node) store.Status { return n.Status() })
	if err != nil {
		return nil, toGRPC(err)
	}
	return s.m.statusResponse(st), nil
}

func (m *Member) statusResponse(st store.Status) *pb.StatusResponse {
	size := st.DBSize
	if size <= 0 {
		// etcdctl divides by dbSize; the file is never empty once opened.
		if fi, err := os.Stat(filepath.Join(m.cfg.DataDir, "member", "snap", "db")); err == nil {
			size = fi.Size()
		}
		size = max(size, 1)
	}
	resp := &pb.StatusResponse{
		Header:  &pb.ResponseHeader{ClusterId: st.ClusterID, MemberId: st.ID, Revision: st.Revision, RaftTerm: st.Term},
		Version: Version, DbSize: size, Leader: st.Leader, RaftIndex: st.Committed, RaftTerm: st.Term,
		RaftAppliedIndex: st.Applied, DbSizeInUse: min(max(st.DBSizeInUse, 0), size), IsLearner: st.IsLearner,
		StorageVersion: mvcc.StorageVersion, DbSizeQuota: max(st.QuotaBackendBytes, 0),
		DowngradeInfo: &pb.DowngradeInfo{},
	}
	if st.Leader == 0 {
		resp.Errors = append(resp.Errors, rpctypes.ErrNoLeader.Error())
	}
	for _, a := range st.Alarms {
		resp.Errors = append(resp.Errors, a.String())
	}
	if st.Halted != nil {
		resp.Errors = append(resp.Errors, st.Halted.Error())
	}
	return resp
}

// Alarm lists (GET, served locally) or activates/deactivates alarms (through raft).
func (s maintenanceServer) Alarm(ctx context.Context, r *pb.AlarmRequest) (*pb.AlarmResponse, error) {
	if r.Action == pb.AlarmRequest_GET {
		if err := s.m.checkAuthenticated(ctx); err != nil {
			return nil, err
		}
		st, err := call(ctx, s.m, func(n *store.Node) store.Status { return n.Status() })
		if err != nil {
			return nil, toGRPC(err)
		}
		var alarms []*pb.AlarmMember
		for _, a := range st.Alarms {
			if (r.MemberID == 0 || a.MemberID == r.MemberID) && (r.Alarm == pb.AlarmType_NONE || a.Alarm == r.Alarm) {
				alarms = append(alarms, a)
			}
		}
		return &pb.AlarmResponse{Header: s.m.header(st), Alarms: alarms}, nil
	}
	resp, err := s.m.do(ctx, store.Request{Alarm: r})
	return resp.Alarm, toGRPC(err)
}

func (m *Member) header(st store.Status) *pb.ResponseHeader {
	return &pb.ResponseHeader{ClusterId: st.ClusterID, MemberId: st.ID, Revision: st.Revision, RaftTerm: st.Term}
}

// Defragment rewrites this member's backend file without its free pages, as
// etcd's defrag does (DbSize drops to about DbSizeInUse).
func (s maintenanceServer) Defragment(ctx context.Context, _ *pb.DefragmentRequest) (*pb.DefragmentResponse, error) {
	if err := s.m.checkAdmin(ctx); err != nil {
		return nil, err
	}
	if _, err := callErr(ctx, s.m, func(n *store.Node) (struct{}, error) { return struct{}{}, n.Defragment() }); err != nil {
		return nil, toGRPC(err)
	}
	return &pb.DefragmentResponse{}, nil
}

// Hash returns the hash of this member's whole backend (etcd's Hash RPC).
func (s maintenanceServer) Hash(ctx context.Context, _ *pb.HashRequest) (*pb.HashResponse, error) {
	if err := s.m.checkAdmin(ctx); err != nil {
		return nil, err
	}
	var st store.Status
	h, err := callErr(ctx, s.m, func(n *store.Node) (uint32, error) {
		st = n.Status()
		return n.Hash()
	})
	if err != nil {
		return nil, toGRPC(err)
	}
	return &pb.HashResponse{Header: s.m.header(st), Hash: h}, nil
}

// HashKV returns etcd's HashKV of the keyspace at a revision.
func (s maintenanceServer) HashKV(ctx context.Context, r *pb.HashKVRequest) (*pb.HashKVResponse, error) {
	resp, err := s.m.do(ctx, store.Request{HashKV: r})
	return resp.HashKV, toGRPC(err)
}

// Snapshot streams the backend image in etcd's format: blobs of at most 32 KiB
// with the bytes remaining after each, then one blob holding the sha256 of all
// the image bytes.
//
// The image is taken at one commit on the member's goroutine and streamed
// from this one, so the member goes on serving (and its raft heartbeats go
// on) while a large snapshot is sent, as in etcd.
func (s maintenanceServer) Snapshot(_ *pb.SnapshotRequest, stream grpc.ServerStreamingServer[pb.SnapshotResponse]) error {
	if err := s.m.checkAdmin(stream.Context()); err != nil {
		return err
	}
	// Not the stream's context: once the member has opened the snapshot this
	// handler must get it back to close it, even if the client has gone.
	snap, err := callErr(context.Background(), s.m, func(n *store.Node) (*mvcc.Snapshot, error) { return n.OpenSnapshot() })
	if err != nil {
		return toGRPC(err)
	}
	defer snap.Close()
	w := &snapshotSender{stream: stream, hash: sha256.New(), remaining: snap.Size(), buf: make([]byte, 0, snapshotChunk)}
	if _, err := snap.WriteTo(w); err != nil {
		return err
	}
	if err := w.flush(); err != nil {
		return err
	}
	return stream.Send(&pb.SnapshotResponse{Blob: w.hash.Sum(nil), Version: mvcc.StorageVersion})
}

// snapshotSender cuts the image into blobs of snapshotChunk bytes, each with
// the bytes remaining after it, and hashes what it sends.
type snapshotSender struct {
	stream    grpc.ServerStreamingServer[pb.SnapshotResponse]
	hash      hash.Hash
	remaining int64
	buf       []byte
}

func (w *snapshotSender) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := min(len(p), snapshotChunk-len(w.buf))
		w.buf = append(w.buf, p[:k]...)
		p = p[k:]
		if len(w.buf) == snapshotChunk {
			if err := w.flush(); err != nil {
				return n - len(p), err
			}
		}
	}
	return n, nil
}

func (w *snapshotSender) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	w.hash.Write(w.buf)
	w.remaining -= int64(len(w.buf))
	if w.remaining < 0 {
		return fmt.Errorf("server: snapshot: image longer than its size")
	}
	// Send may keep the blob until it is serialized: give it its own bytes.
	err := w.stream.Send(&pb.SnapshotResponse{RemainingBytes: uint64(w.remaining), Blob: bytes.Clone(w.buf), Version: mvcc.StorageVersion})
	w.buf = w.buf[:0]
	return err
}

// MoveLeader hands leadership to another voter; only the leader can.
func (s maintenanceServer) MoveLeader(ctx context.Context, r *pb.MoveLeaderRequest) (*pb.MoveLeaderResponse, error) {
	if err := s.m.checkAdmin(ctx); err != nil {
		return nil, err
	}
	st, err := call(ctx, s.m, func(n *store.Node) store.Status {
		st := n.Status()
		if st.IsLeader && slices.Contains(st.Voters, r.TargetID) && r.TargetID != st.ID {
			n.TransferLeader(r.TargetID)
		}
		return st
	})
	if err != nil {
		return nil, toGRPC(err)
	}
	switch {
	case !st.IsLeader:
		return nil, rpctypes.ErrGRPCNotLeader
	case r.TargetID == st.ID:
		return &pb.MoveLeaderResponse{Header: s.m.header(st)}, nil
	case !slices.Contains(st.Voters, r.TargetID):
		return nil, rpctypes.ErrGRPCBadLeaderTransferee
	}
	deadline := time.After(time.Duration(3*len(st.Voters)) * s.m.cfg.ElectionTimeout)
	for {
		if s.m.leader.Load() == r.TargetID {
			cur := s.m.status.Load()
			return &pb.MoveLeaderResponse{Header: s.m.header(*cur)}, nil
		}
		select {
		case <-ctx.Done():
			return nil, toGRPC(ctx.Err())
		case <-deadline:
			return nil, rpctypes.ErrGRPCTimeoutDueToLeaderFail
		case <-time.After(s.m.cfg.HeartbeatInterval / 2):
		}
	}
}

// Downgrade is not offered.
func (s maintenanceServer) Downgrade(context.Context, *pb.DowngradeRequest) (*pb.DowngradeResponse, error) {
	return nil, unimplemented("Downgrade")
}
