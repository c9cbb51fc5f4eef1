package server

import (
	"cmp"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"

	"github.com/havoclab/havoc/store/auth"
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

// watchSendBufLen bounds the event responses waiting on one stream (etcd's
// chanBufLen, the watch stream's send channel).
const watchSendBufLen = 128

// watchStream is one Watch RPC. Its watchers are registered on the node under
// member-wide IDs; the run goroutine pushes their responses here without
// blocking, and the RPC goroutine sends them in order.
//
// The queue is bounded as etcd's send channel is: once watchSendBufLen event
// responses wait, the stream is held: its watchers' events stay in the node
// (store.Node.HoldWatch; past mvcc's own bound a watcher falls behind and later
// catches up from history, as etcd's victims do), so a client that reads
// slowly costs the member no memory and delays no other watcher, and loses no
// event. When the RPC goroutine has sent what it took, it releases the stream.
// The bound is soft by what one drain of the node brings: the responses of the
// entries applied together when it fills, and after a release what the node
// kept (at most mvcc's queue bound per watcher, or catch-up chunks).
type watchStream struct {
	m *Member

	mu     sync.Mutex
	queue  []*pb.WatchResponse
	events int             // responses with events in queue
	held   bool            // the node holds this stream's watchers
	ids    map[int64]int64 // stream watch ID -> node watcher ID
	nextID int64
	wake   chan struct{}
	// progress has the watchers created with progress_notify: true when the
	// watcher got no events since the last interval (etcd's sws.progress).
	progress map[int64]bool
	// startRevs has each watcher's requested start revision: etcd sends no
	// progress notification for a watcher whose start is still in the future.
	startRevs map[int64]int64
}

// push queues a response without blocking. Responses with events are pushed
// by the run goroutine only; it reports whether that filled the queue (the
// caller then holds the stream's watchers).
func (ws *watchStream) push(r *pb.WatchResponse) (filled bool) {
	ws.mu.Lock()
	ws.queue = append(ws.queue, r)
	if len(r.Events) > 0 {
		ws.events++
		if ws.events >= watchSendBufLen && !ws.held {
			ws.held, filled = true, true
		}
	}
	ws.mu.Unlock()
	select {
	case ws.wake <- struct{}{}:
	default:
	}
	return filled
}

// isHeld reports whether the stream's watchers are held.
func (ws *watchStream) isHeld() bool {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return ws.held
}

// holdAll holds every watcher of the stream on the node (run goroutine).
func (ws *watchStream) holdAll(hold bool) {
	ws.mu.Lock()
	gids := make([]int64, 0, len(ws.ids))
	for _, gid := range ws.ids {
		gids = append(gids, gid)
	}
	ws.mu.Unlock()
	slices.Sort(gids)
	for _, gid := range gids {
		ws.m.node.HoldWatch(gid, hold)
	}
}

// release lets the node deliver the stream's events again once its queue has
// room (the RPC goroutine calls it after sending what it took).
func (ws *watchStream) release(ctx context.Context) error {
	return ws.m.exec(ctx, func() {
		ws.mu.Lock()
		free := ws.held && ws.events < watchSendBufLen
		if free {
			ws.held = false
		}
		ws.mu.Unlock()
		if free {
			ws.holdAll(false)
		}
	})
}

// forget drops a stream watch ID whose watcher the node removed.
func (ws *watchStream) forget(id int64) {
	ws.mu.Lock()
	ws.forgetLocked(id)
	ws.mu.Unlock()
}

func (ws *watchStream) forgetLocked(id int64) {
	delete(ws.ids, id)
	delete(ws.progress, id)
	delete(ws.startRevs, id)
}

// sentEvents elides the next periodic progress notification of a watcher that
// was just sent events.
func (ws *watchStream) sentEvents(id int64) {
	ws.mu.Lock()
	if _, ok := ws.progress[id]; ok {
		ws.progress[id] = false
	}
	ws.mu.Unlock()
}

// progressTick asks for a progress notification for every progress_notify
// watcher that got no events since the last tick (etcd's sendLoop on its
// progress ticker); the node answers only for a synced watcher, with its ID
// and the current revision.
func (ws *watchStream) progressTick(ctx context.Context) error {
	ws.mu.Lock()
	if ws.held { // etcd sends none to a victim watcher
		ws.mu.Unlock()
		return nil
	}
	type target struct{ gid, startRev int64 }
	var due []target
	for id, idle := range ws.progress {
		if idle {
			due = append(due, target{ws.ids[id], ws.startRevs[id]})
		}
		ws.progress[id] = true
	}
	ws.mu.Unlock()
	if len(due) == 0 {
		return nil
	}
	slices.SortFunc(due, func(a, b target) int { return cmp.Compare(a.gid, b.gid) })
	m := ws.m
	return m.exec(ctx, func() {
		rev := m.node.Revision()
		for _, d := range due {
			if _, ok := m.watchers[d.gid]; ok && rev >= d.startRev {
				m.node.RequestProgress(d.gid)
			}
		}
	})
}

func (ws *watchStream) take() []*pb.WatchResponse {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	q := ws.queue
	ws.queue = nil
	ws.events = 0
	return q
}

// Watch serves one bidirectional watch stream: create, cancel and progress
// requests in, events out.
func (s watchServer) Watch(stream grpc.BidiStreamingServer[pb.WatchRequest, pb.WatchResponse]) error {
	ws := &watchStream{m: s.m, ids: map[int64]int64{}, wake: make(chan struct{}, 1),
		progress: map[int64]bool{}, startRevs: map[int64]int64{}}
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	recvErr := make(chan error, 1)
	go func() {
		recvErr <- ws.recvLoop(ctx, stream)
		cancel()
	}()
	defer ws.cancelAll()
	interval := s.m.cfg.WatchProgressNotifyInterval
	progressTicker := time.NewTicker(interval + rand.N(interval/10+1)) // etcd's jitter: watchers of many streams do not tick together
	defer progressTicker.Stop()
	for {
		for _, r := range ws.take() {
			if err := stream.Send(r); err != nil {
				return err
			}
			if len(r.Events) > 0 {
				ws.sentEvents(r.WatchId)
			}
		}
		if ws.isHeld() {
			if err := ws.release(ctx); err != nil {
				return toGRPC(err)
			}
		}
		select {
		case <-progressTicker.C:
			if err := ws.progressTick(ctx); err != nil {
				return toGRPC(err)
			}
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
			err = ws.requestProgress(ctx)
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
	ws.startRevs[id] = c.StartRevision
	if c.ProgressNotify {
		ws.progress[id] = true
	}
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
	who := m.identity(ctx)
	return m.exec(ctx, func() {
		// etcd checks read permission on the watched range at creation and
		// answers a refusal as a created-and-canceled watch with no ID.
		if err := m.node.CheckRead(who, c.Key, c.RangeEnd); err != nil {
			ws.forget(id)
			ws.push(&pb.WatchResponse{Header: m.watchHeader(m.node.Revision()), WatchId: clientv3InvalidWatchID, Created: true, Canceled: true,
				CancelReason: watchDenyReason(err)})
			return
		}
		// Runs before any event of this watcher is dispatched, so the created
		// response comes first.
		if err := m.node.Watch(gid, wr); err != nil {
			ws.forget(id)
			ws.push(&pb.WatchResponse{Header: m.watchHeader(m.node.Revision()), WatchId: id, Created: true, Canceled: true,
				CancelReason: err.Error()})
			return
		}
		m.watchers[gid] = watchTarget{ws: ws, id: id}
		if ws.isHeld() {
			m.node.HoldWatch(gid, true)
		}
		ws.push(&pb.WatchResponse{Header: m.watchHeader(m.node.Revision()), WatchId: id, Created: true})
	})
}

func (ws *watchStream) cancel(ctx context.Context, id int64) error {
	ws.mu.Lock()
	gid, ok := ws.ids[id]
	ws.forgetLocked(id)
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

// requestProgress answers a progress request once every event up to the
// current revision has been queued on the stream (the node is drained first,
// which leaves every watcher synced): one response with watch ID -1 that
// clientv3 hands to every watcher of the stream. As etcd's progressIfSync, it
// sends nothing for a stream without watchers or with a watcher whose start
// revision is still ahead.
func (ws *watchStream) requestProgress(ctx context.Context) error {
	m := ws.m
	return m.exec(ctx, func() {
		m.flush()
		rev := m.node.Revision()
		ws.mu.Lock()
		send := len(ws.ids) > 0 && !ws.held // a held watcher is not synced
		for _, start := range ws.startRevs {
			send = send && rev >= start
		}
		ws.mu.Unlock()
		if send {
			ws.push(&pb.WatchResponse{Header: m.watchHeader(rev), WatchId: progressWatchID})
		}
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

// clientv3InvalidWatchID is clientv3.InvalidWatchID, the ID of a refused watch.
const clientv3InvalidWatchID = -1

// watchDenyReason is etcd's cancel reason for a watch refused by auth.
func watchDenyReason(err error) string {
	switch {
	case errors.Is(err, auth.ErrInvalidAuthToken):
		return rpctypes.ErrGRPCInvalidAuthToken.Error()
	case errors.Is(err, auth.ErrAuthOldRevision):
		return rpctypes.ErrGRPCAuthOldRevision.Error()
	case errors.Is(err, auth.ErrUserEmpty):
		return rpctypes.ErrGRPCUserEmpty.Error()
	}
	return rpctypes.ErrGRPCPermissionDenied.Error()
}
