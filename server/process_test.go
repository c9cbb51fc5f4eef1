package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// These tests run `harness serve` as OS processes and drive them with the real
// etcdctl (pinned as a tool in go.mod). Building etcdctl takes about a minute
// the first time, so they are skipped under -short.

var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

// binaries builds harness and etcdctl once per test process.
func binaries(t *testing.T) (harness, etcdctl string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds harness and etcdctl; skipped with -short")
	}
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "havoc-server-bin")
		if binErr != nil {
			return
		}
		for _, b := range [][]string{
			{"-o", filepath.Join(binDir, "harness"), "./cmd/harness"},
			{"-o", filepath.Join(binDir, "etcdctl"), "go.etcd.io/etcd/etcdctl/v3"},
		} {
			cmd := exec.Command("go", append([]string{"build"}, b...)...)
			cmd.Dir = ".." // the module root
			if out, err := cmd.CombinedOutput(); err != nil {
				binErr = fmt.Errorf("go build %v: %v\n%s", b, err, out)
				return
			}
		}
	})
	require.NoError(t, binErr)
	return filepath.Join(binDir, "harness"), filepath.Join(binDir, "etcdctl")
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

type proc struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	client string
	done   chan error
}

// startProcs starts n members of one cluster as `harness serve` processes.
func startProcs(t *testing.T, harness string, n int) []*proc {
	var peers, clients, parts []string
	for i := range n {
		peers = append(peers, fmt.Sprintf("http://127.0.0.1:%d", freePort(t)))
		clients = append(clients, fmt.Sprintf("http://127.0.0.1:%d", freePort(t)))
		parts = append(parts, fmt.Sprintf("p%d=%s", i, peers[i]))
	}
	dir := t.TempDir()
	var ps []*proc
	for i := range n {
		cmd := exec.Command(harness, "serve", "--name", fmt.Sprintf("p%d", i), "--data-dir", filepath.Join(dir, fmt.Sprintf("p%d", i)),
			"--listen-client-urls", clients[i], "--advertise-client-urls", clients[i],
			"--listen-peer-urls", peers[i], "--initial-advertise-peer-urls", peers[i],
			"--initial-cluster", strings.Join(parts, ","), "--initial-cluster-token", "proc-test",
			"--heartbeat-interval", "20", "--election-timeout", "200")
		p := &proc{cmd: cmd, stderr: &bytes.Buffer{}, client: clients[i], done: make(chan error, 1)}
		cmd.Stderr = &lockedWriter{w: p.stderr}
		require.NoError(t, cmd.Start())
		go func() { p.done <- cmd.Wait() }()
		ps = append(ps, p)
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			if t.Failed() {
				t.Logf("stderr of p%d:\n%s", i, tail(p.stderr.String(), 3000))
			}
		})
	}
	for _, p := range ps {
		require.Eventually(t, func() bool {
			resp, err := http.Get(p.client + "/health")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		}, 15*time.Second, 50*time.Millisecond, "member at %s never became healthy", p.client)
	}
	return ps
}

type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func TestEtcdctl(t *testing.T) {
	harness, etcdctl := binaries(t)
	ps := startProcs(t, harness, 3)
	var eps []string
	for _, p := range ps {
		eps = append(eps, strings.TrimPrefix(p.client, "http://"))
	}
	all := "--endpoints=" + strings.Join(eps, ",")
	ctl := func(stdin string, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, etcdctl, args...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "etcdctl %v: %s", args, out)
		return string(out)
	}

	assert.Equal(t, "OK\n", ctl("", all, "put", "foo", "bar"))
	assert.Equal(t, "foo\nbar\n", ctl("", "--endpoints="+eps[2], "get", "foo"))
	ctl("", all, "put", "foo2", "baz")
	assert.Equal(t, "foo\n\nfoo2\n\n", ctl("", all, "get", "foo", "--prefix", "--keys-only"))
	assert.Equal(t, "foo\nbar\nfoo2\nbaz\n", ctl("", all, "get", "foo", "--prefix", "--stream")) // RangeStream
	assert.Equal(t, "1\n", ctl("", all, "del", "foo2"))
	txn := ctl("value(\"foo\") = \"bar\"\n\nput t yes\n\nput t no\n\n", all, "txn", "-i")
	assert.Contains(t, txn, "SUCCESS")
	assert.Equal(t, "t\nyes\n", ctl("", all, "get", "t"))

	// watch in the background while a put happens
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	watch := exec.CommandContext(wctx, etcdctl, "--endpoints="+eps[1], "watch", "w")
	var wout lockedWriter
	wout.w = &bytes.Buffer{}
	watch.Stdout = &wout
	require.NoError(t, watch.Start())
	require.Eventually(t, func() bool {
		ctl("", all, "put", "w", "seen")
		wout.mu.Lock()
		defer wout.mu.Unlock()
		return strings.Contains(wout.w.String(), "PUT\nw\nseen\n")
	}, 8*time.Second, 300*time.Millisecond)
	wcancel()
	_ = watch.Wait()

	grant := ctl("", all, "lease", "grant", "30")
	var leaseID string
	_, err := fmt.Sscanf(grant, "lease %s granted with TTL(30s)", &leaseID)
	require.NoError(t, err, grant)
	ctl("", all, "put", "--lease="+leaseID, "leased", "v")
	for _, ep := range eps { // followers forward keep-alives to the leader
		assert.Contains(t, ctl("", "--endpoints="+ep, "lease", "keep-alive", "--once", leaseID), "keepalived with TTL(30)")
	}
	assert.Contains(t, ctl("", all, "lease", "revoke", leaseID), "revoked")
	assert.Equal(t, "", ctl("", all, "get", "leased"))

	list := ctl("", all, "member", "list")
	assert.Len(t, strings.Split(strings.TrimSpace(list), "\n"), 3)
	for i, p := range ps {
		assert.Contains(t, list, fmt.Sprintf(", started, p%d, ", i))
		assert.Contains(t, list, p.client)
	}
	add := ctl("", all, "member", "add", "p3", "--peer-urls=http://127.0.0.1:1")
	var newID string
	_, err = fmt.Sscanf(add, "Member %s added to cluster", &newID)
	require.NoError(t, err, add)
	assert.Contains(t, ctl("", all, "member", "list"), newID+", unstarted, , http://127.0.0.1:1, , false")
	assert.Contains(t, ctl("", all, "member", "remove", newID), "removed from cluster")

	health := ctl("", all, "endpoint", "health", "--cluster")
	assert.Equal(t, 3, strings.Count(health, "is healthy: successfully committed proposal"), health)

	var statuses []struct {
		Endpoint string
		Status   struct {
			Header struct {
				MemberID uint64 `json:"member_id"`
			} `json:"header"`
			Version string `json:"version"`
			DbSize  int64  `json:"dbSize"`
			Leader  uint64 `json:"leader"`
		}
	}
	require.NoError(t, json.Unmarshal([]byte(ctl("", all, "endpoint", "status", "-w", "json")), &statuses))
	require.Len(t, statuses, 3)
	leaders := 0
	for _, s := range statuses {
		assert.Equal(t, Version, s.Status.Version)
		assert.Positive(t, s.Status.DbSize)
		if s.Status.Leader == s.Status.Header.MemberID {
			leaders++
		}
	}
	assert.Equal(t, 1, leaders)
	assert.Contains(t, ctl("", all, "endpoint", "status", "-w", "table"), "IS LEADER")

	defrag := ctl("", all, "defrag", "--cluster")
	assert.Equal(t, 3, strings.Count(defrag, "Finished defragmenting etcd member["), defrag)
	assert.Equal(t, "t\nyes\n", ctl("", all, "get", "t"), "defragment keeps the data")

	snap := filepath.Join(t.TempDir(), "snap.db")
	assert.Contains(t, ctl("", "--endpoints="+eps[0], "snapshot", "save", snap), "Snapshot saved at "+snap)
	data, err := os.ReadFile(snap)
	require.NoError(t, err)
	require.Equal(t, 32, len(data)%512)
	sum := sha256.Sum256(data[:len(data)-32])
	assert.Equal(t, sum[:], data[len(data)-32:])

	// SIGTERM stops every member cleanly with exit status 0.
	for _, p := range ps {
		require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	}
	for i, p := range ps {
		select {
		case err := <-p.done:
			assert.NoError(t, err, "p%d", i)
		case <-time.After(10 * time.Second):
			t.Fatalf("p%d did not stop on SIGTERM", i)
		}
	}
}

func TestServeRefuses(t *testing.T) {
	harness, _ := binaries(t)
	dir := t.TempDir()

	// A member's data dir, then the same dir under another member's name.
	peer := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	client := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	first := exec.Command(harness, "serve", "--name", "a", "--data-dir", filepath.Join(dir, "a"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", "a="+peer)
	require.NoError(t, first.Start())
	require.Eventually(t, func() bool {
		resp, err := http.Get(client + "/health")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusOK
	}, 10*time.Second, 50*time.Millisecond)
	require.NoError(t, first.Process.Signal(syscall.SIGTERM))
	require.NoError(t, first.Wait())

	// An etcd-style WAL segment (etcd's 8-byte length words and walpb records).
	etcdDir := filepath.Join(dir, "etcd", "member", "wal")
	require.NoError(t, os.MkdirAll(etcdDir, 0o700))
	rec := binary.LittleEndian.AppendUint64(nil, 0x8600000000000006) // padded crc record, etcd framing
	rec = append(rec, 0x08, 0x04, 0x10, 0x00, 0x00, 0x00, 0, 0)
	require.NoError(t, os.WriteFile(filepath.Join(etcdDir, "0000000000000000-0000000000000000.wal"), rec, 0o600))

	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"bad url", []string{"--listen-client-urls", "::nope"}, 2, "--listen-client-urls"},
		{"name not in cluster", []string{"--name", "x", "--initial-cluster", "y=http://127.0.0.1:2380"}, 2, `member "x" (--name) is not in`},
		{"election too short", []string{"--heartbeat-interval", "100", "--election-timeout", "300"}, 2, "at least 5 times"},
		{"bad state", []string{"--initial-cluster-state", "maybe"}, 2, "--initial-cluster-state"},
		{"unknown flag", []string{"--no-such-flag"}, 2, "unknown flag"},
		{"another member's data dir", []string{"--name", "b", "--data-dir", filepath.Join(dir, "a"),
			"--initial-advertise-peer-urls", "http://127.0.0.1:1", "--initial-cluster", "b=http://127.0.0.1:1",
			"--listen-client-urls", "http://127.0.0.1:0", "--listen-peer-urls", "http://127.0.0.1:0"}, 1, "refusing data dir"},
		{"etcd's data dir", []string{"--name", "e", "--data-dir", filepath.Join(dir, "etcd"),
			"--initial-advertise-peer-urls", "http://127.0.0.1:1", "--initial-cluster", "e=http://127.0.0.1:1",
			"--listen-client-urls", "http://127.0.0.1:0", "--listen-peer-urls", "http://127.0.0.1:0"}, 1, "refusing data dir"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, harness, append([]string{"serve", "--data-dir", filepath.Join(t.TempDir(), "d")}, tt.args...)...)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			require.True(t, errors.As(err, &ee), "exit: %v\n%s", err, out)
			assert.Equal(t, tt.code, ee.ExitCode(), "%s", out)
			assert.Contains(t, string(out), tt.want)
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			assert.Contains(t, lines[len(lines)-1], tt.want, "the reason is the last line")
		})
	}
}
