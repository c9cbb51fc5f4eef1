package server

import (
	"context"
	"errors"
	"io"
	"sync"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"

	"github.com/havoclab/havoc/store/mvcc"
)

// progressWatchID is the watch ID of a progress notification for the whole
// stream (clientv3's InvalidWatchID: delivered to every watcher).
const progressWatchID = -1

// watchServer is etcd's Watch service.
type watchServer struct {
	pb.UnimplementedWatchServer
	m *Member
}

// watchStream is one Watch RPC. Its watchers are registered on the node under
// member-wide IDs; the run goroutine pushes their responses here without
// blocking, and the RPC goroutine sends them in order.
type watchStream struct {
	m *Member

	mu     sync.Mutex
	queue  []*pb.WatchResponse
	ids    map[int64]int64 // stream watch ID -> node watcher ID
	nextID int64
	wake   chan struct{}
}

// push queues a response (run goroutine; never blocks).
func (ws *watchStream) push(r *pb.WatchResponse) {
	ws.mu.Lock()
	ws.queue = append(ws.queue, r)
	ws.mu.Unlock()
	select {
	case ws.wake <- struct{}{}:
	default:
	}
}

// forget drops a stream watch ID whose watcher the node removed.
func (ws *watchStream) forget(id int64) {
	ws.mu.Lock()
	delete(ws.ids, id)
	ws.mu.Unlock()
}

func (ws *watchStream) take() []*pb.WatchResponse {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	q := ws.queue
	ws.queue = nil
	return q
}

// Watch serves one bidirectional watch stream: create, cancel and progress
// requests in, events out.
func (s watchServer) Watch(stream grpc.BidiStreamingServer[pb.WatchRequest, pb.WatchResponse]) error {
	ws := &watchStream{m: s.m, ids: map[int64]int64{}, wake: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	recvErr := make(chan error, 1)
	go func() {
		recvErr <- ws.recvLoop(ctx, stream)
		cancel()
	}()
	defer ws.cancelAll()
	for {
		for _, r := range ws.take() {
			if err := stream.Send(r); err != nil {
				return err
			}
		}
		select {
		case <-ws.wake:
		case <-ctx.Done():
			select {
			case err := <-recvErr:
				return err
			default:
				return toGRPC(ctx.Err())
			}
		case <-s.m.donec:
			return toGRPC(s.m.Err())
		}
	}
}

func (ws *watchStream) recvLoop(ctx context.Context, stream grpc.BidiStreamingServer[pb.WatchRequest, pb.WatchResponse]) error {
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		switch {
		case req.GetCreateRequest() != nil:
			err = ws.create(ctx, req.GetCreateRequest())
		case req.GetCancelRequest() != nil:
			err = ws.cancel(ctx, req.GetCancelRequest().WatchId)
		case req.GetProgressRequest() != nil:
			err = ws.progress(ctx)
		}
		if err != nil {
			return toGRPC(err)
		}
	}
}

func (ws *watchStream) create(ctx context.Context, c *pb.WatchCreateRequest) error {
	ws.mu.Lock()
	id := c.WatchId
	if id == 0 { // clientv3.AutoWatchID: the stream picks the next free ID
		for ; ; ws.nextID++ {
			if _, used := ws.ids[ws.nextID]; !used {
				break
			}
		}
		id = ws.nextID
		ws.nextID++
	} else if _, used := ws.ids[id]; used {
		ws.mu.Unlock()
		ws.push(&pb.WatchResponse{Header: ws.m.watchHeader(0), WatchId: id, Created: true, Canceled: true,
			CancelReason: mvcc.ErrWatchIDExists.Error()})
		return nil
	}
	gid := ws.m.gids.Add(1)
	ws.ids[id] = gid
	ws.mu.Unlock()

	wr := mvcc.WatchRequest{Key: c.Key, End: c.RangeEnd, StartRev: c.StartRevision, PrevKV: c.PrevKv, Fragment: c.Fragment}
	if len(wr.End) == 0 {
		wr.End = nil
	}
	for _, f := range c.Filters {
		switch f {
		case pb.WatchCreateRequest_NOPUT:
			wr.NoPut = true
		case pb.WatchCreateRequest_NODELETE:
			wr.NoDelete = true
		}
	}
	m := ws.m
	return m.exec(ctx, func() {
		// Runs before any event of this watcher is dispatched, so the created
		// response comes first.
		if err := m.node.Watch(gid, wr); err != nil {
			ws.forget(id)
			ws.push(&pb.WatchResponse{Header: m.watchHeader(m.node.Revision()), WatchId: id, Created: true, Canceled: true,
				CancelReason: err.Error()})
			return
		}
		m.watchers[gid] = watchTarget{ws: ws, id: id}
		ws.push(&pb.WatchResponse{Header: m.watchHeader(m.node.Revision()), WatchId: id, Created: true})
	})
}

func (ws *watchStream) cancel(ctx context.Context, id int64) error {
	ws.mu.Lock()
	gid, ok := ws.ids[id]
	delete(ws.ids, id)
	ws.mu.Unlock()
	if !ok {
		return nil
	}
	m := ws.m
	return m.exec(ctx, func() {
		delete(m.watchers, gid)
		if m.node.CancelWatch(gid) {
			ws.push(&pb.WatchResponse{Header: m.watchHeader(m.node.Revision()), WatchId: id, Canceled: true})
		}
	})
}

// progress answers a progress request once every event up to the current
// revision has been queued on the stream (the node is drained first).
func (ws *watchStream) progress(ctx context.Context) error {
	m := ws.m
	return m.exec(ctx, func() {
		m.flush()
		ws.push(&pb.WatchResponse{Header: m.watchHeader(m.node.Revision()), WatchId: progressWatchID})
	})
}

// cancelAll removes the stream's watchers from the node when the RPC ends.
func (ws *watchStream) cancelAll() {
	ws.mu.Lock()
	gids := make([]int64, 0, len(ws.ids))
	for _, gid := range ws.ids {
		gids = append(gids, gid)
	}
	ws.ids = map[int64]int64{}
	ws.mu.Unlock()
	if len(gids) == 0 {
		return
	}
	m := ws.m
	select {
	case m.inbox <- func() {
		for _, gid := range gids {
			delete(m.watchers, gid)
			m.node.CancelWatch(gid)
		}
	}:
	case <-m.stopc:
	}
}
