package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/havoclab/havoc/store/membership"
	"github.com/havoclab/havoc/store/mvcc"
)

// The peer protocol. Every connection a member opens to a peer is one HTTP/1.1
// request, so that a proxy between members (cluster/linkproxy) can tell who sent it
// from its first header block:
//
//	POST /raft/stream HTTP/1.1
//	X-Server-From: <sender member ID, lowercase hex>
//	X-Etcd-Cluster-ID: <cluster ID, lowercase hex>
//	Transfer-Encoding: chunked
//
// The chunked body is a sequence of frames, each an 8-byte big-endian length and
// then a proto-marshalled raftpb.Message. Messages flow only in the request
// direction: A's messages to B travel on a connection A opened to B. The
// receiver answers only to refuse (412 for another cluster's ID) or when the
// body ends.
//
// A MsgSnap, which carries the whole backend image in Snapshot.Data, does not
// wait on that stream behind (or hold up) heartbeats and appends: as etcd's
// snapshotSender, its own goroutine sends it as the one frame of a
// POST /raft/snapshot (same headers), which the receiver answers with 204 once
// the member took the message; the sender then reports the snapshot finished
// or failed (raft sends nothing else to the follower until it hears).
//
// GET /members (same headers optional) returns the member list as JSON with the
// cluster ID in X-Etcd-Cluster-ID, for a member joining an existing cluster.

const (
	streamPath   = "/raft/stream"
	snapshotPath = "/raft/snapshot"
	membersPath  = "/members"
	// peerQueueLen bounds the messages waiting for one peer; past it messages are
	// dropped and raft is told the peer is unreachable, as etcd's rafthttp does.
	peerQueueLen = 4096
	// frameHeaderLen is the length prefix of a frame.
	frameHeaderLen = 8
)

// ErrFrameTooLarge is returned by the frame decoder for a length above its limit.
var ErrFrameTooLarge = errors.New("server: peer frame too large")

// errClusterIDMismatch is the reason a peer connection from another cluster is
// refused (etcd's wording).
var errClusterIDMismatch = errors.New("cluster ID mismatch")

// appendFrame appends m as one frame.
func appendFrame(b []byte, m *raftpb.Message) ([]byte, error) {
	data, err := proto.Marshal(m)
	if err != nil {
		return b, fmt.Errorf("server: encode %s to %x: %w", m.GetType(), m.GetTo(), err)
	}
	b = binary.BigEndian.AppendUint64(b, uint64(len(data)))
	return append(b, data...), nil
}

// readFrame reads one frame. A length above maxBytes fails before anything is
// allocated; the payload buffer grows only as bytes arrive, so a lying length
// costs nothing but the wait for EOF. It never panics on any input.
func readFrame(r io.Reader, maxBytes uint64) (*raftpb.Message, error) {
	var hdr [frameHeaderLen]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint64(hdr[:])
	if n > maxBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, maxBytes)
	}
	var buf bytes.Buffer
	buf.Grow(int(min(n, 64<<10)))
	if _, err := io.CopyN(&buf, r, int64(n)); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	m := &raftpb.Message{}
	if err := proto.Unmarshal(buf.Bytes(), m); err != nil {
		return nil, fmt.Errorf("server: decode peer message: %w", err)
	}
	return m, nil
}

// transport sends raft messages to peers and receives theirs. Send is called
// only from the member's run goroutine and never blocks; everything else runs on
// the transport's own goroutines.
type transport struct {
	id, clusterID uint64
	log           *slog.Logger
	maxFrameBytes uint64
	// recv hands a received message to the member; it may block (backpressure on
	// the sender's connection) until the member stops.
	recv func(*raftpb.Message)
	// report tells the member that a message to id was lost (called from writer
	// goroutines; it must not block).
	report func(id uint64, snapshot bool)
	// snapshotDone tells the member whether a snapshot reached peer id (raft
	// waits for it; it may block until the member stops).
	snapshotDone func(id uint64, ok bool)
	// members lists the cluster for GET /members.
	members func() []membership.Member
	// tls, when set, dials peers over TLS (https peer URLs).
	tls *tls.Config

	mu     sync.Mutex
	peers  map[uint64]*peer
	closed bool
	wg     sync.WaitGroup
}

type peer struct {
	id    uint64
	mu    sync.Mutex
	urls  []string
	since time.Time // when the current stream to the peer opened (zero: none)
	q     chan *raftpb.Message
	stopc chan struct{}
}

func (p *peer) peerURLs() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.urls
}

func (p *peer) setActive(t time.Time) {
	p.mu.Lock()
	p.since = t
	p.mu.Unlock()
}

// ActiveSince returns since when a stream to peer id has been open (zero when
// none is), as etcd's rafthttp Transport.ActiveSince.
func (t *transport) ActiveSince(id uint64) time.Time {
	t.mu.Lock()
	p := t.peers[id]
	t.mu.Unlock()
	if p == nil {
		return time.Time{}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.since
}

// errUnknownPeer is returned by Send for a peer the transport has not been told of.
var errUnknownPeer = errors.New("server: unknown peer")

// errQueueFull is returned by Send when the peer's queue is full.
var errQueueFull = errors.New("server: peer queue full")

// Send queues m for its destination without blocking; a snapshot starts its
// own sender (SendSnapshot without an image).
func (t *transport) Send(m *raftpb.Message) error {
	if m.GetType() == raftpb.MsgSnap {
		return t.SendSnapshot(m, nil)
	}
	t.mu.Lock()
	p := t.peers[m.GetTo()]
	t.mu.Unlock()
	if p == nil {
		return errUnknownPeer
	}
	select {
	case p.q <- m:
		return nil
	default:
		return errQueueFull
	}
}

// SetPeers makes the transport's peers the given members (minus itself): new
// ones get a writer, removed ones are stopped, changed URLs apply on the next
// connection.
func (t *transport) SetPeers(ms []membership.Member) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	if t.peers == nil {
		t.peers = map[uint64]*peer{}
	}
	seen := map[uint64]bool{}
	for _, m := range ms {
		if m.ID == t.id {
			continue
		}
		seen[m.ID] = true
		if p, ok := t.peers[m.ID]; ok {
			p.mu.Lock()
			p.urls = m.PeerURLs
			p.mu.Unlock()
			continue
		}
		p := &peer{id: m.ID, urls: m.PeerURLs, q: make(chan *raftpb.Message, peerQueueLen), stopc: make(chan struct{})}
		t.peers[m.ID] = p
		t.wg.Go(func() { t.writer(p) })
	}
	for id, p := range t.peers {
		if !seen[id] {
			close(p.stopc)
			delete(t.peers, id)
		}
	}
}

// Close stops every writer and waits for them.
func (t *transport) Close() {
	t.mu.Lock()
	t.closed = true
	for id, p := range t.peers {
		close(p.stopc)
		delete(t.peers, id)
	}
	t.mu.Unlock()
	t.wg.Wait()
}

// writer keeps one connection to p and writes its queue in order. While no
// connection can be made, queued messages are dropped and reported (they are
// stale by the time a connection comes back; raft resends what matters).
// maxBackoff bounds the wait between connection attempts to a peer: short enough
// that a healed link carries heartbeats again well within an election timeout.
const maxBackoff = 400 * time.Millisecond

func (t *transport) writer(p *peer) {
	backoff := 50 * time.Millisecond
	attempt := 0
	for {
		select {
		case <-p.stopc:
			return
		default:
		}
		urls := p.peerURLs()
		if len(urls) == 0 {
			urls = []string{""}
		}
		u := urls[attempt%len(urls)]
		attempt++
		conn, err := t.dial(u)
		if err != nil {
			t.log.Debug("peer unreachable", "peer", fmt.Sprintf("%x", p.id), "url", u, "err", err)
			t.dropQueued(p)
			select {
			case <-p.stopc:
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		began := time.Now()
		p.setActive(began)
		t.stream(p, conn)
		p.setActive(time.Time{})
		// A stream that ends at once (a proxy or firewall resetting it, the peer
		// refusing it) must not turn into a tight reconnect loop: back off as for
		// a failed dial unless the stream lived for a while.
		if time.Since(began) > time.Second {
			backoff = 50 * time.Millisecond
			continue
		}
		select {
		case <-p.stopc:
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

func (t *transport) dropQueued(p *peer) {
	for {
		select {
		case m := <-p.q:
			t.report(p.id, m.GetType() == raftpb.MsgSnap)
		default:
			return
		}
	}
}

// dial opens a stream connection to a peer URL and writes the request header.
func (t *transport) dial(u string) (net.Conn, error) {
	if u == "" {
		return nil, errors.New("no peer URL")
	}
	host := hostOf(u)
	conn, err := dialPeer(u, t.tls)
	if err != nil {
		return nil, err
	}
	hdr := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nX-Server-From: %x\r\nX-Etcd-Cluster-ID: %x\r\n"+
		"Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n", streamPath, host, t.id, t.clusterID)
	_ = conn.SetWriteDeadline(time.Now().Add(time.Second))
	if _, err := io.WriteString(conn, hdr); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// stream writes p's queue to conn until a write fails or p stops. Any response
// from the receiver (a refusal, or the end of its handler) ends the connection.
func (t *transport) stream(p *peer, conn net.Conn) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			t.log.Warn("peer ended the stream", "peer", fmt.Sprintf("%x", p.id), "status", resp.Status,
				"reason", string(bytes.TrimSpace(body)))
		}
		conn.Close()
	}()
	defer func() {
		conn.Close()
		<-done
	}()
	bw := bufio.NewWriterSize(conn, 64<<10)
	cw := httputil.NewChunkedWriter(bw)
	var buf []byte
	for {
		var m *raftpb.Message
		select {
		case <-p.stopc:
			return
		case <-done:
			return
		case m = <-p.q:
		}
		// Batch whatever else is queued into one chunk and one flush.
		batch := []*raftpb.Message{m}
		for more := true; more && len(batch) < 256; {
			select {
			case m2 := <-p.q:
				batch = append(batch, m2)
			default:
				more = false
			}
		}
		buf = buf[:0]
		for _, m := range batch {
			var err error
			if buf, err = appendFrame(buf, m); err != nil {
				t.log.Error("dropping unencodable message", "err", err)
			}
		}
		_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		_, err := cw.Write(buf)
		if err == nil {
			err = bw.Flush()
		}
		if err != nil {
			t.log.Debug("peer stream broken", "peer", fmt.Sprintf("%x", p.id), "err", err)
			for range batch {
				t.report(p.id, false)
			}
			return
		}
		if cap(buf) > 4<<20 {
			buf = nil // do not pin a large batch's memory
		}
	}
}

// SendSnapshot starts a goroutine that sends MsgSnap m to its destination; img,
// when not nil, is the backend image that goes as m's Snapshot.Data, streamed
// from the store (store.Config.StreamSnapshots), and is closed once sent or
// failed. It fails, leaving img open, only for an unknown peer or a closed
// transport.
func (t *transport) SendSnapshot(m *raftpb.Message, img *mvcc.Snapshot) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.peers[m.GetTo()]
	switch {
	case p == nil:
		return errUnknownPeer
	case t.closed:
		return errTransportClosed
	}
	t.wg.Go(func() { t.sendSnapshot(p, m, img) })
	return nil
}

// errTransportClosed is returned by SendSnapshot after Close.
var errTransportClosed = errors.New("server: transport closed")

// snapshotFrame is the frame of MsgSnap m with img as its Snapshot.Data,
// without holding the image in memory: the message's other fields, then the
// snapshot field whose data bytes are streamed from img (protobuf allows the
// fields in any order). It returns the frame's reader, its length, and a
// function to call when done with the reader, which stops and waits for the
// image writer.
func snapshotFrame(m *raftpb.Message, img *mvcc.Snapshot) (io.Reader, int64, func(), error) {
	rest := proto.Clone(m).(*raftpb.Message)
	rest.Snapshot = nil
	head, err := proto.Marshal(rest)
	if err != nil {
		return nil, 0, nil, err
	}
	meta, err := proto.Marshal(&raftpb.Snapshot{Metadata: m.GetSnapshot().GetMetadata()})
	if err != nil {
		return nil, 0, nil, err
	}
	size := img.Size()
	data := protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.BytesType), uint64(size)) // Snapshot.data
	snapLen := int64(len(data)) + size + int64(len(meta))
	field := protowire.AppendVarint(protowire.AppendTag(nil, 9, protowire.BytesType), uint64(snapLen)) // Message.snapshot
	total := int64(len(head)+len(field)) + snapLen
	prefix := binary.BigEndian.AppendUint64(nil, uint64(total))
	prefix = append(append(append(prefix, head...), field...), data...)

	pr, pw := io.Pipe()
	written := make(chan struct{})
	go func() {
		defer close(written)
		n, err := img.WriteTo(pw)
		if err == nil && n != size {
			err = fmt.Errorf("server: snapshot image wrote %d bytes, expected %d", n, size)
		}
		pw.CloseWithError(err)
	}()
	done := func() {
		pr.Close()
		<-written
	}
	return io.MultiReader(bytes.NewReader(prefix), pr, bytes.NewReader(meta)), frameHeaderLen + total, done, nil
}

// sendSnapshot POSTs a MsgSnap to p on its own connection and reports how it
// went. It gives up when p is removed or the transport closes, or after 5 s
// plus 1 s per MiB.
func (t *transport) sendSnapshot(p *peer, m *raftpb.Message, img *mvcc.Snapshot) {
	var body io.Reader
	var size int64
	if img != nil {
		defer img.Close()
		r, n, done, err := snapshotFrame(m, img)
		if err != nil {
			t.log.Error("dropping unencodable snapshot", "err", err)
			t.snapshotDone(p.id, false)
			return
		}
		defer done()
		body, size = r, n
	} else {
		frame, err := appendFrame(nil, m)
		if err != nil {
			t.log.Error("dropping unencodable snapshot", "err", err)
			t.snapshotDone(p.id, false)
			return
		}
		body, size = bytes.NewReader(frame), int64(len(frame))
	}
	urls := p.peerURLs()
	if len(urls) == 0 {
		t.snapshotDone(p.id, false)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second+time.Duration(size>>20)*time.Second)
	defer cancel()
	go func() {
		select {
		case <-p.stopc:
			cancel()
		case <-ctx.Done():
		}
	}()
	began := time.Now()
	if err := t.postSnapshot(ctx, urls[0], body, size); err != nil {
		t.log.Warn("sending snapshot failed", "peer", fmt.Sprintf("%x", p.id), "bytes", size, "err", err)
		t.snapshotDone(p.id, false)
		return
	}
	t.log.Info("sent snapshot", "peer", fmt.Sprintf("%x", p.id), "bytes", size, "took", time.Since(began))
	t.snapshotDone(p.id, true)
}

func (t *transport) postSnapshot(ctx context.Context, u string, body io.Reader, size int64) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u+snapshotPath, io.NopCloser(body))
	if err != nil {
		return err
	}
	req.ContentLength = size
	req.Header.Set("X-Server-From", fmt.Sprintf("%x", t.id))
	req.Header.Set("X-Etcd-Cluster-ID", fmt.Sprintf("%x", t.clusterID))
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := peerHTTPClient(t.tls, 0).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("peer answered %s: %s", resp.Status, bytes.TrimSpace(body))
	}
	return nil
}

// peerHTTPClient sends snapshots and member-list requests: a fresh connection
// each (no keep-alive), so a proxy between members sees each as its own
// request; over TLS with cfg for https peer URLs.
func peerHTTPClient(cfg *tls.Config, timeout time.Duration) *http.Client {
	tr := &http.Transport{
		DialContext:       (&net.Dialer{Timeout: time.Second}).DialContext,
		DisableKeepAlives: true,
	}
	if cfg != nil {
		tr.TLSClientConfig = cfg.Clone()
	}
	return &http.Client{Transport: tr, Timeout: timeout}
}

// dialPeer opens a connection to a peer URL: TLS for https with cfg.
func dialPeer(u string, cfg *tls.Config) (net.Conn, error) {
	host := hostOf(u)
	if strings.HasPrefix(u, "https://") {
		if cfg == nil {
			return nil, fmt.Errorf("peer URL %s is https but this member has no peer TLS", u)
		}
		c := cfg.Clone()
		if h, _, err := net.SplitHostPort(host); err == nil && c.ServerName == "" {
			c.ServerName = h
		}
		return tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", host, c)
	}
	return net.DialTimeout("tcp", host, time.Second)
}

// Handler serves the peer protocol.
func (t *transport) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+streamPath, t.serveStream)
	mux.HandleFunc("POST "+snapshotPath, t.serveSnapshot)
	mux.HandleFunc("GET "+membersPath, t.serveMembers)
	return mux
}

// sameCluster refuses (412) a peer request from another cluster.
func (t *transport) sameCluster(w http.ResponseWriter, r *http.Request) bool {
	cid, err := strconv.ParseUint(r.Header.Get("X-Etcd-Cluster-ID"), 16, 64)
	if err == nil && cid == t.clusterID {
		return true
	}
	t.log.Warn("refusing peer request", "path", r.URL.Path, "from", r.Header.Get("X-Server-From"),
		"cluster", r.Header.Get("X-Etcd-Cluster-ID"), "local-cluster", fmt.Sprintf("%x", t.clusterID), "reason", errClusterIDMismatch)
	w.Header().Set("X-Etcd-Cluster-ID", fmt.Sprintf("%x", t.clusterID))
	http.Error(w, errClusterIDMismatch.Error(), http.StatusPreconditionFailed)
	return false
}

// serveSnapshot receives one MsgSnap and answers 204 once the member took it.
func (t *transport) serveSnapshot(w http.ResponseWriter, r *http.Request) {
	if !t.sameCluster(w, r) {
		return
	}
	m, err := readFrame(r.Body, t.maxFrameBytes)
	if err == nil && m.GetType() != raftpb.MsgSnap {
		err = fmt.Errorf("got %s on the snapshot path", m.GetType())
	}
	if err != nil {
		t.log.Warn("bad snapshot from peer", "from", r.Header.Get("X-Server-From"), "err", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	t.recv(m)
	w.WriteHeader(http.StatusNoContent)
}

func (t *transport) serveStream(w http.ResponseWriter, r *http.Request) {
	from := r.Header.Get("X-Server-From")
	if !t.sameCluster(w, r) {
		return
	}
	br := bufio.NewReaderSize(r.Body, 64<<10)
	for {
		m, err := readFrame(br, t.maxFrameBytes)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.log.Debug("peer stream ended", "from", from, "err", err)
			}
			return
		}
		t.recv(m)
	}
}

func (t *transport) serveMembers(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Etcd-Cluster-ID", fmt.Sprintf("%x", t.clusterID))
	_ = json.NewEncoder(w).Encode(t.members())
}

// fetchMembers asks the peers at urls for the member list and cluster ID (a
// member joining an existing cluster learns its own ID this way, as etcd does).
func fetchMembers(urls []string, timeout time.Duration, tlsCfg *tls.Config) ([]membership.Member, uint64, error) {
	c := peerHTTPClient(tlsCfg, timeout)
	var errs []error
	for _, u := range urls {
		resp, err := c.Get(u + membersPath)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var ms []membership.Member
		err = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&ms)
		resp.Body.Close()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", u, err))
			continue
		}
		cid, err := strconv.ParseUint(resp.Header.Get("X-Etcd-Cluster-ID"), 16, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: cluster ID: %w", u, err))
			continue
		}
		return ms, cid, nil
	}
	return nil, 0, fmt.Errorf("server: could not fetch the member list from %v: %w", urls, errors.Join(errs...))
}
