package linkproxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fakeMember is member "b"'s peer listener: it counts requests per sender and
// answers with the sender it saw.
type fakeMember struct {
	srv  *httptest.Server
	hits atomic.Int64
}

func newFakeMember(t *testing.T) *fakeMember {
	f := &fakeMember{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.hits.Add(1)
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "from=%s body=%s", r.Header.Get("X-Server-From"), body)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

var ids = map[string]string{"a1": "a", "c3": "c"}

func resolve(h string) (string, bool) { m, ok := ids[h]; return m, ok }

func setup(t *testing.T) (*Network, *Proxy, *fakeMember) {
	n := NewNetwork(1)
	f := newFakeMember(t)
	p, err := n.Listen("127.0.0.1:0", strings.TrimPrefix(f.srv.URL, "http://"), "b", resolve)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, n.Close()) })
	return n, p, f
}

// post sends one request from sender (hex id, "" for none) on a new connection.
func post(p *Proxy, from, body string) (string, error) {
	c, err := net.DialTimeout("tcp", p.Addr(), time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	req, _ := http.NewRequest(http.MethodPost, "http://"+p.Addr()+"/raft", strings.NewReader(body))
	if from != "" {
		req.Header.Set("X-Server-From", from)
	}
	if err := req.Write(c); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func TestForwardsAndIdentifiesSender(t *testing.T) {
	n, p, f := setup(t)
	got, err := post(p, "a1", "hello")
	require.NoError(t, err)
	require.Equal(t, "from=a1 body=hello", got)
	got, err = post(p, "", "anon")
	require.NoError(t, err)
	require.Equal(t, "from= body=anon", got)
	require.EqualValues(t, 2, f.hits.Load())
	_, err = post(p, "ff", "unknown id")
	require.NoError(t, err)
	require.Equal(t, map[string]int{"a->b": 1, "->b": 2}, n.Accepted())
}

func TestCutIsPerDirection(t *testing.T) {
	cases := []struct {
		name      string
		cut       [2]string
		reached   bool // the request reaches b
		answered  bool // the answer reaches the sender
		otherFine bool // sender c is unaffected
	}{
		{"request direction a->b", [2]string{"a", "b"}, false, false, true},
		{"response direction b->a", [2]string{"b", "a"}, true, false, true},
		{"unrelated c->b", [2]string{"c", "b"}, true, true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n, p, f := setup(t)
			n.Cut(tc.cut[0], tc.cut[1])
			got, err := post(p, "a1", "x")
			if tc.answered {
				require.NoError(t, err)
				require.Equal(t, "from=a1 body=x", got)
			} else {
				require.Error(t, err)
			}
			require.Eventually(t, func() bool { return (f.hits.Load() == 1) == tc.reached }, time.Second, 10*time.Millisecond)
			_, err = post(p, "c3", "y")
			require.Equal(t, tc.otherFine, err == nil, "sender c: %v", err)
			// An anonymous connection to b is refused while any link of b is cut.
			_, err = post(p, "", "z")
			require.Error(t, err)

			n.Heal()
			got, err = post(p, "a1", "after")
			require.NoError(t, err)
			require.Equal(t, "from=a1 body=after", got)
		})
	}
}

func TestCutResetsOpenConnection(t *testing.T) {
	n, p, _ := setup(t)
	c, err := net.Dial("tcp", p.Addr())
	require.NoError(t, err)
	defer c.Close()
	br := bufio.NewReader(c)
	send := func() error {
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		req, _ := http.NewRequest(http.MethodPost, "http://x/raft", strings.NewReader("k"))
		req.Header.Set("X-Server-From", "a1")
		if err := req.Write(c); err != nil {
			return err
		}
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			return err
		}
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		return err
	}
	require.NoError(t, send())
	require.NoError(t, send(), "keep-alive connection is reused")
	n.Cut("b", "a")
	require.Error(t, send(), "the answer would cross the cut link")
}

func TestLatencyDelaysAndKeepsOrder(t *testing.T) {
	n, p, _ := setup(t)
	start := time.Now()
	_, err := post(p, "a1", "warm")
	require.NoError(t, err)
	base := time.Since(start)

	n.SetLink("a", "b", LinkState{LatencyMin: 150 * time.Millisecond, LatencyMax: 200 * time.Millisecond})
	n.SetLink("b", "a", LinkState{LatencyMin: 100 * time.Millisecond, LatencyMax: 100 * time.Millisecond})
	start = time.Now()
	body := strings.Repeat("0123456789", 20000) // many chunks, each with its own draw
	got, err := post(p, "a1", body)
	require.NoError(t, err)
	took := time.Since(start)
	require.Equal(t, "from=a1 body="+body, got, "bytes arrive whole and in order")
	require.GreaterOrEqual(t, took, 250*time.Millisecond+base/2)
	require.Less(t, took, 3*time.Second)
}

func TestLossResetsConnections(t *testing.T) {
	n, p, _ := setup(t)
	n.SetLink("a", "b", LinkState{Loss: 1})
	_, err := post(p, "a1", "x")
	require.Error(t, err)
	n.SetLink("a", "b", LinkState{})
	_, err = post(p, "a1", "x")
	require.NoError(t, err)
}

func TestCloseFreesPort(t *testing.T) {
	n := NewNetwork(1)
	f := newFakeMember(t)
	p, err := n.Listen("127.0.0.1:0", strings.TrimPrefix(f.srv.URL, "http://"), "b", resolve)
	require.NoError(t, err)
	addr := p.Addr()
	// An open, idle connection must not keep Close waiting.
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, n.Close())
	require.NoError(t, p.Close(), "second close is harmless")
	ln, err := net.Listen("tcp", addr)
	require.NoError(t, err, "the port is free again")
	ln.Close()
	_, err = n.Listen("127.0.0.1:0", addr, "b", resolve)
	require.ErrorIs(t, err, ErrClosed)
}

func TestIdentify(t *testing.T) {
	cases := map[string]string{
		"GET /raftstream/message/a1 HTTP/1.1\r\nHost: x\r\nX-Server-From: 8e9e05c52164694d\r\n\r\n": "8e9e05c52164694d",
		"POST /raft HTTP/1.1\r\nx-server-from: ab\r\nContent-Length: 0\r\n\r\nbody":                 "ab",
		"GET /version HTTP/1.1\r\nHost: x\r\n\r\n":                                                  "",
	}
	for in, want := range cases {
		got, err := identify(bufio.NewReaderSize(strings.NewReader(in), maxHeader))
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	_, err := identify(bufio.NewReaderSize(strings.NewReader("GET / HTTP/1.1\r\nHost: x\r\n"), maxHeader))
	require.Error(t, err, "truncated header")
}

// FuzzIdentify feeds arbitrary first bytes of a connection to the header peek.
func FuzzIdentify(f *testing.F) {
	f.Add([]byte("POST /raft HTTP/1.1\r\nX-Server-From: 1\r\n\r\n"))
	f.Add([]byte("\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = identify(bufio.NewReaderSize(strings.NewReader(string(b)), maxHeader))
	})
}

// BenchmarkThroughput measures one proxied connection streaming 1 MiB
// requests through healthy links.
func BenchmarkThroughput(b *testing.B) {
	n := NewNetwork(1)
	defer n.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer srv.Close()
	p, err := n.Listen("127.0.0.1:0", strings.TrimPrefix(srv.URL, "http://"), "b", resolve)
	require.NoError(b, err)
	c, err := net.Dial("tcp", p.Addr())
	require.NoError(b, err)
	defer c.Close()
	br := bufio.NewReader(c)
	body := strings.Repeat("x", 1<<20)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		req, _ := http.NewRequest(http.MethodPost, "http://x/raft", strings.NewReader(body))
		req.Header.Set("X-Server-From", "a1")
		require.NoError(b, req.Write(c))
		resp, err := http.ReadResponse(br, req)
		require.NoError(b, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// TestFixedProxyStall: a ListenFixed proxy carries any bytes (no header) on
// the link from its session to its member; stalling the way back stops the
// proxy reading from the member, whose writes then block, and the heal
// delivers every byte in order.
func TestFixedProxyStall(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	const total = 32 << 20
	var written atomic.Int64
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 64<<10)
		for i := range buf {
			buf[i] = byte(i)
		}
		for written.Load() < total {
			k, err := c.Write(buf)
			written.Add(int64(k))
			if err != nil {
				return
			}
		}
	}()
	n := NewNetwork(1)
	defer n.Close()
	p, err := n.ListenFixed("127.0.0.1:0", ln.Addr().String(), "c01", "m1")
	require.NoError(t, err)
	n.SetLink("m1", "c01", LinkState{Stall: true})
	c, err := net.Dial("tcp", p.Addr())
	require.NoError(t, err)
	defer c.Close()
	// Without a request line the connection is still the session's.
	require.Eventually(t, func() bool { return n.Accepted()["c01->m1"] == 1 }, 2*time.Second, 10*time.Millisecond)
	var stuck int64
	require.Eventually(t, func() bool {
		w := written.Load()
		time.Sleep(200 * time.Millisecond)
		stuck = written.Load()
		return w == stuck
	}, 10*time.Second, time.Millisecond, "the member's writes block")
	require.Less(t, stuck, int64(total), "the member could not write everything")
	_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	_, err = c.Read(make([]byte, 1))
	require.Error(t, err, "nothing crosses a stalled link")

	n.SetLink("m1", "c01", LinkState{})
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	chunk := make([]byte, 64<<10)
	for off := 0; off < total; off += len(chunk) {
		_, err := io.ReadFull(c, chunk)
		require.NoError(t, err, "at byte %d", off)
		for i, b := range chunk {
			if b != byte(i) {
				require.Equal(t, byte(i), b, "byte %d", off+i)
			}
		}
	}
}
