// Package linkproxy is a TCP proxy that puts harness-controlled links between
// the members of a real cluster: partitions of every shape, latency and loss,
// each per direction.
//
// Every member advertises a peer URL that points at its proxy, so all peer
// traffic to member B passes B's Proxy. A TCP connection carries bytes both
// ways, so the proxy must know who is at the other end: it peeks the first HTTP
// request of every connection for the header X-Server-From (the sender's
// member ID in hex, which etcd's rafthttp and havoc's transport send on every
// peer request). Bytes from the client to the server then travel on the link
// sender->B and bytes back on the link B->sender. That matters because etcd's
// streams carry raft messages in responses: member A dials B's stream and B's
// messages to A flow back on A's connection.
//
// What TCP can and cannot express:
//   - A cut link resets (RST) a connection as soon as a byte would cross it, and
//     a new connection whose request direction is cut is closed at once.
//   - Latency delays each chunk by a draw in [LatencyMin, LatencyMax], keeping
//     the order of the bytes (a stream cannot reorder).
//   - Loss is random connection resets: with probability Loss a chunk resets
//     its connection instead of crossing. TCP retransmits single lost segments,
//     so dropping one message is not expressible; a reset loses whatever the
//     sender had in flight, which is what the member sees on a lossy network.
//   - Duplication and reordering are not expressible on a byte stream.
//
// A link can also stall: the proxy stops reading what crosses it, as a
// receiver that stops reading would, so the sender's socket buffers and (on
// HTTP/2) its flow-control window fill and its writes block, until the stall
// ends. Nothing is lost.
//
// A proxy made by ListenFixed serves one client session: every connection
// through it is on the link session -> member (and back), with no header to
// peek. That is how the harness puts client sessions behind links of their own.
//
// A connection whose sender is unknown (no X-Server-From: etcd's version
// checks, lease forwarding and probes) is anonymous: it crosses only while no
// link touching its destination is cut, and is reset when one is.
//
// Peer TLS hides X-Server-From, so a proxy made by ListenTLS terminates TLS:
// it presents a certificate for the destination's name (signed by the CA the
// members trust, which the harness holds), reads X-Server-From from the
// decrypted stream, and dials the destination over TLS presenting the
// sender's own certificate. Members see a normal TLS peer on either side, so
// this works for havoc and etcd alike.
//
// The proxy is a runtime, not a deterministic core: it uses goroutines and the
// wall clock. Its random draws come from the seeded source given to NewNetwork.
package linkproxy

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/textproto"
	"sync"
	"time"
)

// ErrClosed is returned by Listen on a closed Network.
var ErrClosed = errors.New("linkproxy: network closed")

// LinkState is the state of one direction of a link. The zero value is a
// healthy link.
type LinkState struct {
	// Cut drops every byte: the connection carrying it is reset.
	Cut bool
	// LatencyMin and LatencyMax bound the delay added to each chunk (none when
	// both are zero).
	LatencyMin, LatencyMax time.Duration
	// Loss is the probability that a chunk resets its connection.
	Loss float64
	// Stall stops the proxy reading from the sender (and delivering what it
	// read): the sender's writes block once the buffers are full.
	Stall bool
}

func (s LinkState) healthy() bool { return s == LinkState{} }

type link struct{ from, to string }

// Network holds the state of every directed link between named members and
// the proxies that enforce it. It is safe for concurrent use.
type Network struct {
	mu      sync.Mutex
	rnd     *rand.Rand
	links   map[link]LinkState
	conns   map[*conn]struct{}
	proxies map[*Proxy]struct{}
	closed  bool
	// accepted counts connections by link (sender -> destination); the
	// sender is "" for anonymous connections.
	accepted map[link]int
}

// NewNetwork returns a network with every link healthy, drawing latencies and
// losses from a PCG seeded with seed.
func NewNetwork(seed uint64) *Network {
	return &Network{
		rnd:      rand.New(rand.NewPCG(seed, 0x11b4)),
		links:    map[link]LinkState{},
		conns:    map[*conn]struct{}{},
		proxies:  map[*Proxy]struct{}{},
		accepted: map[link]int{},
	}
}

// Accepted returns how many connections each proxy has identified, keyed
// "sender->dest" ("->dest" for anonymous ones). It shows that the members
// really send X-Server-From.
func (n *Network) Accepted() map[string]int {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make(map[string]int, len(n.accepted))
	for l, k := range n.accepted {
		out[l.from+"->"+l.to] = k
	}
	return out
}

// SetLink sets the state of the direction from -> to.
func (n *Network) SetLink(from, to string, s LinkState) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if s.healthy() {
		delete(n.links, link{from, to})
	} else {
		n.links[link{from, to}] = s
	}
	if s.Cut {
		n.resetAnonymousLocked(from, to)
	}
}

// Cut cuts the direction from -> to.
func (n *Network) Cut(from, to string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := n.links[link{from, to}]
	s.Cut = true
	n.links[link{from, to}] = s
	n.resetAnonymousLocked(from, to)
}

// Link returns the state of the direction from -> to.
func (n *Network) Link(from, to string) LinkState {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.links[link{from, to}]
}

// Heal makes every link healthy. Connections reset by a cut stay closed; the
// members reconnect.
func (n *Network) Heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	clear(n.links)
}

// Close closes every proxy and connection of the network.
func (n *Network) Close() error {
	n.mu.Lock()
	n.closed = true
	ps := make([]*Proxy, 0, len(n.proxies))
	for p := range n.proxies {
		ps = append(ps, p)
	}
	n.mu.Unlock()
	var errs []error
	for _, p := range ps {
		errs = append(errs, p.Close())
	}
	return errors.Join(errs...)
}

// resetAnonymousLocked resets the anonymous connections to either end of a
// newly cut link: their sender is unknown, so any cut touching their
// destination may be theirs.
func (n *Network) resetAnonymousLocked(from, to string) {
	for c := range n.conns {
		if c.sender == "" && (c.dest == from || c.dest == to) {
			go c.reset()
		}
	}
}

// anonymousBlockedLocked reports whether some link touching dest is cut.
func (n *Network) anonymousBlockedLocked(dest string) bool {
	for l, s := range n.links {
		if s.Cut && (l.from == dest || l.to == dest) {
			return true
		}
	}
	return false
}

// cross decides the fate of a chunk about to travel from -> to: its delay, or
// false if the connection must be reset.
func (n *Network) cross(c *conn, from, to string) (time.Duration, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if c.sender == "" {
		return 0, !n.anonymousBlockedLocked(c.dest)
	}
	s := n.links[link{from, to}]
	if s.Cut {
		return 0, false
	}
	if s.Loss > 0 && n.rnd.Float64() < s.Loss {
		return 0, false
	}
	d := s.LatencyMin
	if s.LatencyMax > s.LatencyMin {
		d += time.Duration(n.rnd.Int64N(int64(s.LatencyMax-s.LatencyMin) + 1))
	}
	return d, true
}

// stallPoll is how often a stalled direction looks whether its stall ended.
const stallPoll = 10 * time.Millisecond

// waitStall blocks while the direction from -> to is stalled and c is open.
func (n *Network) waitStall(c *conn, from, to string) {
	for {
		n.mu.Lock()
		stalled := c.sender != "" && n.links[link{from, to}].Stall
		n.mu.Unlock()
		if !stalled || c.isClosed() {
			return
		}
		time.Sleep(stallPoll)
	}
}

// cutNow reports whether a chunk already accepted from -> to may no longer be
// delivered (the link was cut while the chunk waited out its latency).
func (n *Network) cutNow(c *conn, from, to string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if c.sender == "" {
		return n.anonymousBlockedLocked(c.dest)
	}
	return n.links[link{from, to}].Cut
}

// TLS makes a proxy terminate peer TLS (see the package comment).
type TLS struct {
	// Server is the proxy's side towards the sender: the destination's
	// certificate and, for peer client-certificate auth, the CA that checks
	// the sender's.
	Server *tls.Config
	// Upstream returns the config the proxy dials the destination with for
	// a connection from sender ("" when anonymous): the CA that checks the
	// destination and the certificate to present. A config without
	// ServerName gets the target's host.
	Upstream func(sender string) *tls.Config
}

// Proxy forwards the connections to one member's peer listener.
type Proxy struct {
	net     *Network
	ln      net.Listener
	target  string
	dest    string
	resolve func(string) (string, bool)
	// from is the sender of every connection of a ListenFixed proxy.
	from string
	tls  *TLS
	wg   sync.WaitGroup
	once sync.Once
}

// Listen starts a proxy on listenAddr ("127.0.0.1:0" picks a free port) that
// forwards to targetAddr, the real peer listener of member dest. resolve maps
// the X-Server-From header of a connection's first request to the sending
// member's name; a connection it does not resolve is anonymous.
func (n *Network) Listen(listenAddr, targetAddr, dest string, resolve func(serverFromHex string) (member string, ok bool)) (*Proxy, error) {
	return n.listen(listenAddr, targetAddr, dest, &Proxy{resolve: resolve})
}

// ListenTLS is Listen for members whose peer links use TLS: the proxy
// terminates TLS on both sides as t says.
func (n *Network) ListenTLS(listenAddr, targetAddr, dest string, resolve func(serverFromHex string) (member string, ok bool), t TLS) (*Proxy, error) {
	if t.Server == nil || t.Upstream == nil {
		return nil, errors.New("linkproxy: TLS needs Server and Upstream")
	}
	return n.listen(listenAddr, targetAddr, dest, &Proxy{resolve: resolve, tls: &t})
}

// ListenFixed starts a proxy on listenAddr that forwards to targetAddr (any
// TCP service of member dest, e.g. its client port): every connection through
// it travels on the link from -> dest, and its replies on dest -> from. It
// peeks nothing, so it carries any protocol (gRPC, TLS).
func (n *Network) ListenFixed(listenAddr, targetAddr, from, dest string) (*Proxy, error) {
	if from == "" {
		return nil, errors.New("linkproxy: ListenFixed needs a sender name")
	}
	return n.listen(listenAddr, targetAddr, dest, &Proxy{from: from})
}

func (n *Network) listen(listenAddr, targetAddr, dest string, p *Proxy) (*Proxy, error) {
	n.mu.Lock()
	closed := n.closed
	n.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	ln, err := net.Listen("tcp", listenAddr)
	if err != nil {
		return nil, fmt.Errorf("linkproxy: listen for %s: %w", dest, err)
	}
	p.net, p.ln, p.target, p.dest = n, ln, targetAddr, dest
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		_ = ln.Close()
		return nil, ErrClosed
	}
	n.proxies[p] = struct{}{}
	n.mu.Unlock()
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// Addr is the proxy's listening address (host:port).
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Close stops accepting, resets every connection through the proxy and waits
// for its goroutines. It is safe to call more than once.
func (p *Proxy) Close() error {
	var err error
	p.once.Do(func() {
		err = p.ln.Close()
		n := p.net
		n.mu.Lock()
		delete(n.proxies, p)
		var cs []*conn
		for c := range n.conns {
			if c.proxy == p {
				cs = append(cs, c)
			}
		}
		n.mu.Unlock()
		for _, c := range cs {
			c.reset()
		}
		p.wg.Wait()
	})
	return err
}

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		cl, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go p.handle(cl)
	}
}

// maxHeader bounds how much of a connection is peeked for its first request.
const maxHeader = 64 << 10

// identify peeks the first request's header block and returns X-Server-From.
// It reads no further than the bytes the sender has sent: each round asks for
// one byte more than is buffered, which makes bufio read what is available.
func identify(br *bufio.Reader) (string, error) {
	for {
		b, _ := br.Peek(br.Buffered())
		if i := bytes.Index(b, []byte("\r\n\r\n")); i >= 0 {
			tr := textproto.NewReader(bufio.NewReader(bytes.NewReader(b[:i+4])))
			if _, err := tr.ReadLine(); err != nil { // request line
				return "", err
			}
			h, err := tr.ReadMIMEHeader()
			if err != nil {
				return "", err
			}
			return h.Get("X-Server-From"), nil
		}
		if len(b) >= maxHeader {
			return "", errors.New("linkproxy: request header too large")
		}
		if _, err := br.Peek(len(b) + 1); err != nil {
			return "", err
		}
	}
}

func (p *Proxy) handle(cl net.Conn) {
	defer p.wg.Done()
	c := &conn{proxy: p, dest: p.dest, client: cl}
	n := p.net
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		resetConn(cl)
		return
	}
	n.conns[c] = struct{}{}
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		delete(n.conns, c)
		n.mu.Unlock()
		c.reset()
	}()

	var front net.Conn = cl // the sender's side, decrypted with TLS
	name := p.from
	if name == "" {
		// The sender's first request must arrive promptly; peek it.
		_ = cl.SetReadDeadline(time.Now().Add(10 * time.Second))
		if p.tls != nil {
			tc := tls.Server(cl, p.tls.Server)
			if err := tc.Handshake(); err != nil {
				return
			}
			front = tc
		}
	}
	br := bufio.NewReaderSize(front, maxHeader)
	if name == "" {
		from, err := identify(br)
		if err != nil {
			return
		}
		_ = cl.SetReadDeadline(time.Time{})
		if from != "" && p.resolve != nil {
			name, _ = p.resolve(from)
		}
	}
	n.mu.Lock()
	c.sender = name
	n.accepted[link{name, p.dest}]++
	n.mu.Unlock()
	// The request direction must be open for the connection to exist at all.
	if _, ok := n.cross(c, c.sender, p.dest); !ok {
		return
	}
	raw, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		return
	}
	c.mu.Lock()
	c.upstream = raw
	closed := c.closed
	c.mu.Unlock()
	if closed {
		resetConn(raw)
		return
	}
	up := raw
	if p.tls != nil {
		cfg := p.tls.Upstream(c.sender)
		if cfg == nil {
			return
		}
		if cfg.ServerName == "" {
			cfg = cfg.Clone()
			cfg.ServerName, _, _ = net.SplitHostPort(p.target)
		}
		tc := tls.Client(raw, cfg)
		_ = raw.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.Handshake(); err != nil {
			return
		}
		_ = raw.SetDeadline(time.Time{})
		up = tc
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); c.pump(br, up, c.sender, p.dest) }()
	go func() { defer wg.Done(); c.pump(up, front, p.dest, c.sender) }()
	wg.Wait()
}

// conn is one proxied connection: client is the sender's side, upstream the
// destination member's peer listener (both the raw TCP connections, under
// TLS when the proxy terminates it).
type conn struct {
	proxy    *Proxy
	dest     string
	sender   string // "" when anonymous; guarded by Network.mu after identify
	mu       sync.Mutex
	client   net.Conn
	upstream net.Conn
	closed   bool
}

func (c *conn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// reset closes both sides with RST, as a network failure would look to the
// members (and not as an orderly FIN, which a member would take as a goodbye).
func (c *conn) reset() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	cl, up := c.client, c.upstream
	c.mu.Unlock()
	resetConn(cl)
	if up != nil {
		resetConn(up)
	}
}

func resetConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

type chunk struct {
	b  []byte
	at time.Time
}

// pump copies src to dst over the link from -> to: each chunk is judged when
// read (cut or lost: reset), delayed, and judged again when delivered. A queue
// between reader and writer keeps the order while chunks wait their latency.
func (c *conn) pump(src io.Reader, dst net.Conn, from, to string) {
	q := make(chan chunk, 1024)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ch := range q {
			if d := time.Until(ch.at); d > 0 {
				time.Sleep(d)
			}
			c.proxy.net.waitStall(c, from, to)
			if c.proxy.net.cutNow(c, from, to) {
				c.reset()
				return
			}
			if _, err := dst.Write(ch.b); err != nil {
				c.reset()
				return
			}
		}
		// Orderly end of this direction: pass the half-close on (a TLS
		// connection sends close_notify).
		if hc, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = hc.CloseWrite()
		}
	}()
	last := time.Time{}
	buf := make([]byte, 32<<10)
	for {
		c.proxy.net.waitStall(c, from, to)
		k, err := src.Read(buf)
		if k > 0 {
			delay, ok := c.proxy.net.cross(c, from, to)
			if !ok {
				c.reset()
				break
			}
			at := time.Now().Add(delay)
			if at.Before(last) {
				at = last
			}
			last = at
			select {
			case q <- chunk{b: bytes.Clone(buf[:k]), at: at}:
			case <-done:
				close(q)
				return
			}
		}
		if err != nil {
			break
		}
	}
	close(q)
	<-done
}
