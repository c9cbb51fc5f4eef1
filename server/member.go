package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/soheilhy/cmux"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/havoclab/havoc/store"
	"github.com/havoclab/havoc/store/membership"
	"github.com/havoclab/havoc/store/mvcc"
	"github.com/havoclab/havoc/vfs"
)

// Version is the etcd version havoc reports in Status (the API it speaks).
const Version = "3.7.3"

// Member is one running member: the node, its run goroutine, the peer transport
// and the client servers.
type Member struct {
	cfg       Config
	log       *slog.Logger
	id        uint64
	clusterID uint64

	// Owned by the run goroutine.
	node     *store.Node
	waiters  map[uint64]chan store.Response
	watchers map[int64]watchTarget
	ticks    int64
	initial  []membership.Member // the members known at start (a joining member's only view)

	inbox chan func()
	recvc chan *raftpb.Message
	// refused are messages sendEarly could not send, for dispatch to retry
	// and report.
	refused []*raftpb.Message
	tokens  atomic.Uint64
	gids    atomic.Int64

	// Published by the run goroutine for other goroutines.
	leader  atomic.Uint64
	term    atomic.Uint64
	status  atomic.Pointer[store.Status]
	members atomic.Pointer[[]membership.Member]

	// leadMu guards leadChanged, closed and replaced each time a new leader
	// (not none) is seen, and leadElected, when this member last became leader
	// (etcd's leaderChanged notifier and leadElectedTime).
	leadMu      sync.Mutex
	leadChanged chan struct{}
	leadElected time.Time
	// leaderWaits counts requests waiting for a leader (tests watch it).
	leaderWaits atomic.Int64

	tr        *transport
	grpc      *grpc.Server
	clientSrv *http.Server
	peerSrv   *http.Server
	metrics   *metrics

	fwdMu sync.Mutex
	fwd   map[string]*grpc.ClientConn

	readyc   chan struct{} // closed when the member serves clients (etcd's ReadyNotify)
	stopc    chan struct{}
	donec    chan struct{} // closed when the run goroutine has exited
	stopOnce sync.Once
	closeMu  sync.Mutex
	closed   bool
	err      error // why the run goroutine stopped (nil on Close)
}

// watchTarget is where the run goroutine delivers one watcher's events.
type watchTarget struct {
	ws *watchStream
	id int64 // the watch ID on its stream
}

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

// joinFile records, for a member that joined an existing cluster, the IDs it
// learned from its peers, so that it restarts without asking them again.
const joinFile = "havoc-join.json"

type joinInfo struct {
	MemberID  uint64 `json:"member_id"`
	ClusterID uint64 `json:"cluster_id"`
}

// Start validates cfg, opens (or recovers) the member in cfg.DataDir, starts
// listening on its peer and client URLs and returns. It serves peers at once
// and clients once it is ready (ReadyNotify), as etcd does. It fails
// with a wrapped store.ErrForeignDataDir or wal.ErrCorrupt for a data dir that
// is not this member's.
func Start(cfg Config) (*Member, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := cfg.LoadTLS(); err != nil {
		return nil, err
	}
	initial, err := membership.ParseInitialCluster(cfg.InitialCluster, cfg.InitialClusterToken)
	if err != nil {
		return nil, err
	}
	memberDir := filepath.Join(cfg.DataDir, "member")
	if err := os.MkdirAll(filepath.Join(memberDir, "snap"), 0o700); err != nil {
		return nil, fmt.Errorf("server: data dir: %w", err)
	}
	scfg := store.Config{
		Name: cfg.Name, InitialCluster: initial, Join: cfg.InitialClusterState == StateExisting,
		ClientURLs: cfg.AdvertiseClientURLs, FS: vfs.OS(), WALDir: filepath.Join(memberDir, "wal"),
		DBPath: filepath.Join(memberDir, "snap", "db"), DBInitialMmapSize: initialMmapSize, StreamSnapshots: true,
		Clock: wallClock{}, TickInterval: cfg.HeartbeatInterval,
		ElectionTicks: int(cfg.ElectionTimeout / cfg.HeartbeatInterval), SnapshotCount: cfg.SnapshotCount,
		CatchUpEntries:  cfg.SnapshotCatchUpEntries,
		MaxRequestBytes: cfg.MaxRequestBytes, QuotaBackendBytes: cfg.QuotaBackendBytes, Logger: cfg.Logger,
		AuthTokenTTL: cfg.AuthTokenTTL, AuthTokens: cfg.authTokens,
	}
	if scfg.Join {
		if err := resolveJoin(&cfg, &scfg, memberDir); err != nil {
			return nil, err
		}
	}
	var m *Member
	scfg.SendEarly = func(msgs []*raftpb.Message) { m.sendEarly(msgs) }
	node, err := store.Open(scfg)
	if err != nil {
		return nil, err
	}
	m = &Member{
		cfg: cfg, log: cfg.Logger.With("member", cfg.Name), id: node.ID(), clusterID: node.ClusterID(),
		node: node, initial: scfg.InitialCluster, waiters: map[uint64]chan store.Response{}, watchers: map[int64]watchTarget{},
		inbox: make(chan func(), 1024), recvc: make(chan *raftpb.Message, 4096),
		fwd: map[string]*grpc.ClientConn{}, stopc: make(chan struct{}), donec: make(chan struct{}),
		leadChanged: make(chan struct{}), readyc: make(chan struct{}),
	}
	m.metrics = newMetrics(m)
	maxFrame := uint64(64 << 20)
	if cfg.QuotaBackendBytes > 0 {
		maxFrame = max(maxFrame, uint64(cfg.QuotaBackendBytes)+(64<<20))
	} else {
		maxFrame = math.MaxInt64
	}
	m.tr = &transport{
		id: m.id, clusterID: m.clusterID, log: m.log, maxFrameBytes: maxFrame,
		recv:   m.deliver,
		report: m.reportLost,
		snapshotDone: func(id uint64, ok bool) {
			select {
			case m.inbox <- func() {
				if !ok {
					m.node.ReportUnreachable(id)
				}
				m.node.ReportSnapshot(id, ok)
			}:
			case <-m.stopc:
			}
		},
		members: m.Members,
		tls:     m.cfg.peerTLS.client,
	}
	m.publish()

	if err := m.listen(); err != nil {
		m.tr.Close()
		_ = node.Close()
		return nil, err
	}
	go m.run()
	go m.awaitReady()
	m.log.Info("member started", "id", fmt.Sprintf("%x", m.id), "cluster", fmt.Sprintf("%x", m.clusterID),
		"client", cfg.ListenClientURLs, "peer", cfg.ListenPeerURLs, "data-dir", cfg.DataDir)
	return m, nil
}

// resolveJoin finds the member's own ID and the cluster ID for a member joining
// an existing cluster: from the join file on restart, otherwise from the peers.
func resolveJoin(cfg *Config, scfg *store.Config, memberDir string) error {
	path := filepath.Join(memberDir, joinFile)
	if b, err := os.ReadFile(path); err == nil {
		var j joinInfo
		if err := json.Unmarshal(b, &j); err != nil {
			return fmt.Errorf("%w: %s: %w", store.ErrForeignDataDir, path, err)
		}
		scfg.ID, scfg.ClusterID = j.MemberID, j.ClusterID
		return nil
	}
	var urls []string
	for _, m := range scfg.InitialCluster {
		if m.Name != cfg.Name {
			urls = append(urls, m.PeerURLs...)
		}
	}
	// The peer asked may not have applied the MemberAdd yet: retry for a while.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		ms, cid, err := fetchMembers(urls, 2*time.Second, cfg.peerTLS.client)
		if err != nil {
			return err
		}
		for _, mem := range ms {
			if sameURLs(mem.PeerURLs, cfg.InitialAdvertisePeerURLs) {
				scfg.ID, scfg.ClusterID = mem.ID, cid
				scfg.InitialCluster = ms
				b, _ := json.Marshal(joinInfo{MemberID: mem.ID, ClusterID: cid})
				return os.WriteFile(path, b, 0o600)
			}
		}
		if time.Now().After(deadline) {
			break
		}
	}
	return fmt.Errorf("server: no member of the existing cluster has peer URLs %v (add it with `etcdctl member add` first)",
		cfg.InitialAdvertisePeerURLs)
}

// listen opens the peer and client listeners and starts serving them.
func (m *Member) listen() error {
	pl := m.cfg.PeerListener
	if pl == nil {
		var err error
		if pl, err = net.Listen("tcp", hostOf(m.cfg.ListenPeerURLs[0])); err != nil {
			return fmt.Errorf("server: listen on peer URL: %w", err)
		}
	}
	cl := m.cfg.ClientListener
	if cl == nil {
		var err error
		if cl, err = net.Listen("tcp", hostOf(m.cfg.ListenClientURLs[0])); err != nil {
			pl.Close()
			return fmt.Errorf("server: listen on client URL: %w", err)
		}
	}
	m.peerSrv = &http.Server{Handler: m.tr.Handler(), ReadHeaderTimeout: 10 * time.Second, TLSConfig: m.cfg.peerTLS.server}
	m.grpc = newGRPCServer(m)
	m.clientSrv = newClientServer(m)
	m.clientSrv.TLSConfig = m.cfg.clientTLS.server
	// Refused handshakes (a client without a valid certificate) are warnings
	// in the member's log, not lines on stderr.
	m.peerSrv.ErrorLog = slog.NewLogLogger(m.log.Handler(), slog.LevelWarn)
	m.clientSrv.ErrorLog = m.peerSrv.ErrorLog
	go func() { _ = serve(m.peerSrv, pl) }()
	go func() {
		// Connections wait in the listener's backlog until the member is ready.
		select {
		case <-m.readyc:
			if m.clientSrv.TLSConfig != nil {
				_ = serve(m.clientSrv, cl)
				break
			}
			go func() {
				<-m.stopc
				_ = cl.Close()
			}()
			_ = serveCleartext(m, cl)
		case <-m.stopc:
		}
		_ = cl.Close()
	}()
	return nil
}

// ReadyNotify is closed once the member serves clients: it has a leader, has
// applied everything the leader had committed when it asked (a linearizable
// read succeeded) and its name and client URLs are in the member list. etcd
// serves clients only after its publish proposal applied (its ReadyNotify), so a
// restarted member that cannot reach a quorum answers no client, where it would
// otherwise answer "no leader" or stale serializable reads.
func (m *Member) ReadyNotify() <-chan struct{} { return m.readyc }

// awaitReady closes readyc once the member is ready (see ReadyNotify).
func (m *Member) awaitReady() {
	for {
		ctx, cancel := context.WithTimeout(context.Background(), m.requestTimeout())
		_, err := m.do(ctx, store.Request{Range: &pb.RangeRequest{Key: []byte("health"), CountOnly: true}, Who: store.Identity{System: true}})
		cancel()
		if err == nil && m.published() {
			m.log.Info("ready to serve client requests")
			close(m.readyc)
			return
		}
		select {
		case <-m.stopc:
			return
		case <-time.After(m.cfg.HeartbeatInterval):
		}
	}
}

// published reports whether the member list has this member's name and client
// URLs (it was published through raft and applied here).
func (m *Member) published() bool {
	for _, mem := range m.Members() {
		if mem.ID == m.id {
			return mem.Name != "" && len(mem.ClientURLs) > 0
		}
	}
	return false
}

// ID returns the member's ID.
func (m *Member) ID() uint64 { return m.id }

// ClusterID returns the cluster's ID.
func (m *Member) ClusterID() uint64 { return m.clusterID }

// Leader returns the member's latest view of the leader (0: none).
func (m *Member) Leader() uint64 { return m.leader.Load() }

// Members returns the latest member list the member has applied.
func (m *Member) Members() []membership.Member {
	if p := m.members.Load(); p != nil {
		return *p
	}
	return nil
}

// Done is closed when the member has stopped, on Close or on its own (its log
// disk failed, or it was removed from the cluster); Err then says why.
func (m *Member) Done() <-chan struct{} { return m.donec }

// Err returns why the member stopped on its own (nil while running or after Close).
func (m *Member) Err() error {
	select {
	case <-m.donec:
		return m.err
	default:
		return nil
	}
}

// Close stops the client servers, the transport and the node, in that order.
func (m *Member) Close() error {
	m.closeMu.Lock()
	defer m.closeMu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	stopped := make(chan struct{})
	go func() {
		m.grpc.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(2 * time.Second):
		m.grpc.Stop()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = m.clientSrv.Shutdown(ctx)
	_ = m.clientSrv.Close()
	_ = m.peerSrv.Close()
	m.stop(nil)
	<-m.donec
	m.tr.Close()
	m.fwdMu.Lock()
	for _, c := range m.fwd {
		_ = c.Close()
	}
	m.fwdMu.Unlock()
	err := m.node.Close()
	m.log.Info("member stopped")
	return err
}

func (m *Member) stop(err error) {
	m.stopOnce.Do(func() {
		m.err = err
		close(m.stopc)
	})
}

// run is the only goroutine that touches the node.
func (m *Member) run() {
	defer close(m.donec)
	t := time.NewTicker(m.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-m.stopc:
			return
		case <-t.C:
			m.ticks++
			m.node.Tick()
			m.publish()
		case msg := <-m.recvc:
			m.step(msg)
			m.gather()
		case f := <-m.inbox:
			f()
			m.gather()
		}
		m.flush()
	}
}

// gatherLimit bounds the inputs run takes in one batch.
const gatherLimit = 256

// gather takes, without waiting, the peer messages and client requests
// already queued (up to gatherLimit) before run flushes: their entries share
// one Ready and so one fsync of the log, as etcd's raft node batches the
// proposals that arrive while its loop is busy. Taken one per flush, every
// proposal cost an fsync of its own.
func (m *Member) gather() {
	for range gatherLimit {
		select {
		case msg := <-m.recvc:
			m.step(msg)
		case f := <-m.inbox:
			f()
		default:
			return
		}
	}
}

// step hands a peer's message to the node.
func (m *Member) step(msg *raftpb.Message) {
	if err := m.node.Step(msg); err != nil {
		m.log.Debug("step failed", "type", msg.GetType(), "from", fmt.Sprintf("%x", msg.GetFrom()), "err", err)
	}
}

// flush drains the node and dispatches its output.
func (m *Member) flush() {
	for {
		out := m.node.Drain()
		m.dispatch(out)
		if out.Err != nil {
			m.log.Error("member halted", "err", out.Err)
			m.stop(out.Err)
			return
		}
		if len(out.Watch) < 1024 {
			break
		}
	}
	if lead := m.node.Leader(); lead != m.leader.Load() {
		m.leader.Store(lead)
		if lead != 0 {
			m.leadMu.Lock()
			close(m.leadChanged)
			m.leadChanged = make(chan struct{})
			if lead == m.id {
				m.leadElected = time.Now()
			}
			m.leadMu.Unlock()
		}
		m.metrics.leaderChanges.Inc()
		m.log.Info("leader changed", "leader", fmt.Sprintf("%x", lead))
		m.publish()
	}
	if m.node.Removed() {
		m.log.Warn("member was removed from the cluster; stopping")
		m.stop(store.ErrRemoved)
	}
}

// publish refreshes the state other goroutines read, and the transport's peers
// when membership changed.
func (m *Member) publish() {
	st := m.node.Status()
	m.status.Store(&st)
	m.term.Store(st.Term)
	ms := m.node.Members()
	if len(ms) == 0 {
		// A joining member has applied nothing yet: reach the cluster it was
		// told of, or it could never answer the leader.
		ms = m.initial
	}
	if old := m.members.Load(); old == nil || !membersEqual(*old, ms) {
		m.members.Store(&ms)
		if m.tr != nil {
			m.tr.SetPeers(ms)
		}
	}
}

func membersEqual(a, b []membership.Member) bool {
	return slices.EqualFunc(a, b, func(x, y membership.Member) bool {
		return x.ID == y.ID && x.Name == y.Name && x.IsLearner == y.IsLearner &&
			slices.Equal(x.PeerURLs, y.PeerURLs) && slices.Equal(x.ClientURLs, y.ClientURLs)
	})
}

// sendEarly sends a leader's messages before the node writes its log (see
// store.Config.SendEarly). It runs inside Drain, so it must not call the
// node: a message the transport refuses (an unknown or unreachable peer) is
// kept and goes through dispatch after Drain, which reports it.
func (m *Member) sendEarly(msgs []*raftpb.Message) {
	for _, msg := range msgs {
		if err := m.tr.Send(msg); err != nil {
			m.refused = append(m.refused, msg)
		}
	}
}

func (m *Member) dispatch(out store.Output) {
	if len(m.refused) > 0 {
		out.Messages = append(m.refused, out.Messages...)
		m.refused = nil
	}
	for _, msg := range out.Messages {
		var img *mvcc.Snapshot // the image of a MsgSnap, streamed by the transport
		send := m.tr.Send
		if msg.GetType() == raftpb.MsgSnap {
			for _, si := range out.Snapshots {
				if si.Message == msg {
					img = si.Image
				}
			}
			send = func(msg *raftpb.Message) error { return m.tr.SendSnapshot(msg, img) }
		}
		err := send(msg)
		if errors.Is(err, errUnknownPeer) {
			m.publish() // a member added since the last refresh
			err = send(msg)
		}
		if err != nil && img != nil {
			_ = img.Close()
		}
		if err != nil {
			m.node.ReportUnreachable(msg.GetTo())
			if msg.GetType() == raftpb.MsgSnap {
				m.node.ReportSnapshot(msg.GetTo(), false)
			}
		}
	}
	for _, r := range out.Responses {
		if ch, ok := m.waiters[r.Token]; ok {
			delete(m.waiters, r.Token)
			ch <- r
		}
	}
	for _, ev := range out.Watch {
		tgt, ok := m.watchers[ev.ID]
		if !ok {
			continue
		}
		resp := &pb.WatchResponse{Header: m.watchHeader(ev.Revision), WatchId: tgt.id, Events: ev.Events}
		if ev.Canceled {
			resp.Canceled = true
			resp.CompactRevision = ev.CompactRevision
			resp.CancelReason = mvcc.ErrCompacted.Error()
			delete(m.watchers, ev.ID)
			tgt.ws.forget(tgt.id)
		}
		if tgt.ws.push(resp) {
			tgt.ws.holdAll(true)
		}
	}
}

func (m *Member) watchHeader(rev int64) *pb.ResponseHeader {
	return &pb.ResponseHeader{ClusterId: m.clusterID, MemberId: m.id, Revision: rev, RaftTerm: m.term.Load()}
}

// deliver hands a peer's message to the run goroutine (transport goroutines).
func (m *Member) deliver(msg *raftpb.Message) {
	select {
	case m.recvc <- msg:
	case <-m.stopc:
	}
}

// reportLost tells raft a message to id was lost (transport goroutines; never
// blocks: if the inbox is full the report is dropped, raft notices anyway).
func (m *Member) reportLost(id uint64, snapshot bool) {
	select {
	case m.inbox <- func() {
		m.node.ReportUnreachable(id)
		if snapshot {
			m.node.ReportSnapshot(id, false)
		}
	}:
	default:
	}
}

// exec queues f to run on the run goroutine.
func (m *Member) exec(ctx context.Context, f func()) error {
	select {
	case m.inbox <- f:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-m.stopc:
		return store.ErrStopped
	}
}

// call runs f on the run goroutine and returns its result.
func call[T any](ctx context.Context, m *Member, f func(n *store.Node) T) (T, error) {
	ch := make(chan T, 1)
	var zero T
	if err := m.exec(ctx, func() { ch <- f(m.node) }); err != nil {
		return zero, err
	}
	var err error
	select {
	case v := <-ch:
		return v, nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-m.donec:
		err = store.ErrStopped
	}
	select {
	case v := <-ch: // f ran after all (the run goroutine sends before it stops)
		return v, nil
	default:
		return zero, err
	}
}

// callErr is call for a function that can fail: its error, or call's.
func callErr[T any](ctx context.Context, m *Member, f func(n *store.Node) (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	r, err := call(ctx, m, func(n *store.Node) result {
		v, err := f(n)
		return result{v, err}
	})
	if err != nil {
		return r.v, err
	}
	return r.v, r.err
}

// leaderChangedNotify returns a channel closed when the member next sees a new
// leader.
func (m *Member) leaderChangedNotify() <-chan struct{} {
	m.leadMu.Lock()
	defer m.leadMu.Unlock()
	return m.leadChanged
}

// requestTimeout is etcd's ReqTimeout: 5 s plus two election timeouts (the
// node's RequestTimeoutTicks).
func (m *Member) requestTimeout() time.Duration {
	return 5*time.Second + 2*m.cfg.ElectionTimeout
}

// do submits a request to the node and waits for its answer, failing as etcd
// fails in the same situation (server/etcdserver: v3_server.go, read/read.go):
//   - a linearizable read (Range, read-only Txn) finding no leader waits, as
//     etcd re-sends its ReadIndex, and fails with "leader changed" once a leader
//     is elected, or "request timed out" after the request timeout; a read still
//     waiting when a new leader is seen fails with "leader changed" too;
//   - a write finding no leader waits for one, as raft's Propose blocks, and is
//     then proposed; after the request timeout it fails with a deadline error;
//   - a proposed write that times out says why, as etcd's parseProposeCtxErr.
func (m *Member) do(ctx context.Context, req store.Request) (store.Response, error) {
	if req.Who == (store.Identity{}) {
		req.Who = m.identity(ctx)
	}
	start := time.Now()
	write := req.IsWrite() || req.MemberAdd != nil || req.MemberRemove != nil ||
		req.MemberPromote != nil || req.MemberUpdate != nil
	read := !write && (req.Range != nil && !req.Range.Serializable || req.Txn != nil)
	timer := time.NewTimer(m.requestTimeout())
	defer timer.Stop()
	for {
		changed := m.leaderChangedNotify()
		var abort <-chan struct{}
		if read {
			abort = changed
		}
		r, err := m.submit(ctx, req, abort)
		switch {
		case errors.Is(err, errLeaderChanged):
			return r, rpctypes.ErrGRPCLeaderChanged
		case errors.Is(err, store.ErrNoLeader) && (read || write):
			m.leaderWaits.Add(1)
			got := m.awaitLeader(ctx, changed, timer.C)
			m.leaderWaits.Add(-1)
			switch {
			case got == nil && read:
				return r, rpctypes.ErrGRPCLeaderChanged
			case got == nil:
				continue
			case errors.Is(got, store.ErrTimeout) && write:
				return r, context.DeadlineExceeded
			}
			return r, got
		case write && (errors.Is(err, store.ErrTimeout) || errors.Is(err, context.DeadlineExceeded)):
			return r, m.timeoutErr(start)
		}
		return r, err
	}
}

// awaitLeader waits until a new leader is seen (nil), the request times out
// (store.ErrTimeout), the context ends or the member stops.
func (m *Member) awaitLeader(ctx context.Context, changed <-chan struct{}, timeout <-chan time.Time) error {
	select {
	case <-changed:
		return nil
	case <-timeout:
		return store.ErrTimeout
	case <-ctx.Done():
		return ctx.Err()
	case <-m.donec:
		return store.ErrStopped
	}
}

// errLeaderChanged ends a read that was waiting when a new leader was seen.
var errLeaderChanged = errors.New("server: leader changed")

// submit hands one request to the node and waits for its answer, or for abort
// to close (errLeaderChanged).
func (m *Member) submit(ctx context.Context, req store.Request, abort <-chan struct{}) (store.Response, error) {
	token := m.tokens.Add(1)
	ch := make(chan store.Response, 1)
	err := m.exec(ctx, func() {
		m.waiters[token] = ch
		m.node.Submit(token, req)
	})
	if err != nil {
		return store.Response{}, err
	}
	select {
	case r := <-ch:
		return r, r.Err
	case <-abort:
		return store.Response{}, errLeaderChanged
	case <-ctx.Done():
		// The node answers the request later (at the latest when it times out);
		// dispatch then finds the buffered channel and nobody reads it.
		return store.Response{}, ctx.Err()
	case <-m.donec:
		return store.Response{}, store.ErrStopped
	}
}

// timeoutErr is etcd's parseProposeCtxErr for a proposal that timed out at
// start: the previous leader probably failed if this member became leader
// shortly after start; the connection was probably lost if this leader has not
// been connected to a quorum (or this follower to its leader) since start.
func (m *Member) timeoutErr(start time.Time) error {
	m.leadMu.Lock()
	elected := m.leadElected
	m.leadMu.Unlock()
	return timeoutCause(start, elected, 2*m.cfg.ElectionTimeout, m.id, m.leader.Load(), m.Members(), m.tr.ActiveSince)
}

// timeoutCause is timeoutErr's decision, on its inputs.
func timeoutCause(start, elected time.Time, twoElections time.Duration, self, lead uint64,
	members []membership.Member, activeSince func(uint64) time.Time) error {
	if start.After(elected.Add(-twoElections)) && start.Before(elected) {
		return rpctypes.ErrGRPCTimeoutDueToLeaderFail
	}
	connected := func(id uint64) bool {
		t := activeSince(id)
		return !t.IsZero() && t.Before(start)
	}
	switch lead {
	case 0:
	case self:
		n := 0
		for _, mem := range members {
			if mem.ID == self || connected(mem.ID) {
				n++
			}
		}
		if n < len(members)/2+1 {
			return rpctypes.ErrGRPCTimeoutDueToConnectionLost
		}
	default:
		if !connected(lead) {
			return rpctypes.ErrGRPCTimeoutDueToConnectionLost
		}
	}
	return rpctypes.ErrGRPCTimeout
}

// leaderClient returns a connection to the leader's client URL, for the lease
// RPCs only the leader answers.
func (m *Member) leaderClient() (*grpc.ClientConn, error) {
	lead := m.leader.Load()
	if lead == 0 {
		return nil, store.ErrNoLeader
	}
	var target string
	for _, mem := range m.Members() {
		if mem.ID == lead && len(mem.ClientURLs) > 0 {
			target = hostOf(mem.ClientURLs[0])
		}
	}
	if target == "" {
		return nil, store.ErrNoLeader
	}
	m.fwdMu.Lock()
	defer m.fwdMu.Unlock()
	if c, ok := m.fwd[target]; ok {
		return c, nil
	}
	creds := insecure.NewCredentials()
	if t := m.cfg.clientTLS.client; t != nil {
		creds = credentials.NewTLS(t.Clone())
	}
	c, err := grpc.NewClient(target, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, fmt.Errorf("server: connect to leader at %s: %w", target, err)
	}
	m.fwd[target] = c
	return c, nil
}

// serveCleartext serves a cleartext client listener as etcd does: HTTP/2
// connections (clientv3's, gRPC with prior knowledge) go to gRPC's own
// transport, everything else (HTTP/1.1 /health, /metrics, /version) to the
// HTTP server. gRPC's transport costs a fraction of what grpc.Server.ServeHTTP
// costs through net/http's HTTP/2 server, which a TLS listener still uses (as
// etcd's does) so that a request keeps its client certificate.
func serveCleartext(m *Member, l net.Listener) error {
	mux := cmux.New(l)
	grpcL := mux.Match(cmux.HTTP2())
	httpL := mux.Match(cmux.Any())
	go func() { _ = m.grpc.Serve(grpcL) }()
	go func() { _ = m.clientSrv.Serve(httpL) }()
	return mux.Serve()
}

// serve serves s on l, over TLS when s has a TLS config (an https URL).
func serve(s *http.Server, l net.Listener) error {
	if s.TLSConfig != nil {
		return s.ServeTLS(l, "", "")
	}
	return s.Serve(l)
}
