package snapshot_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/havoclab/havoc/store/snapshot"
)

// Interop tests against the real etcd v3.7.3 binaries (built from the go.mod
// tools). They start processes on loopback and are skipped with -short.

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// etcdProc is a single-member etcd started on free loopback ports.
type etcdProc struct {
	cmd    *exec.Cmd
	client string
	cli    *clientv3.Client
}

// startEtcd starts etcd on dataDir (fresh, or restored by etcdutl with name and
// peer URL) and waits until it serves.
func startEtcd(t testing.TB, dataDir, name, peerURL string) *etcdProc {
	t.Helper()
	client := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	if peerURL == "" {
		peerURL = fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	}
	logf, err := os.Create(filepath.Join(t.TempDir(), "etcd.log"))
	require.NoError(t, err)
	cmd := exec.Command(etcdBin(t, "etcd"), "--name", name, "--data-dir", dataDir,
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", name+"="+peerURL, "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = logf, logf
	require.NoError(t, cmd.Start())
	p := &etcdProc{cmd: cmd, client: client}
	t.Cleanup(func() {
		if p.cli != nil {
			p.cli.Close()
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logf.Close()
	})
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{client}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	require.NoError(t, err)
	p.cli = cli
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := cli.Get(ctx, "health")
		cancel()
		if err == nil || errors.Is(err, rpctypes.ErrUserEmpty) { // auth on: serving, to users only
			return p
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logf.Name())
			t.Fatalf("etcd did not serve: %v\n%s", err, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (p *etcdProc) all(t testing.TB) ([]kvState, int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := p.cli.Get(ctx, "\x00", clientv3.WithFromKey())
	require.NoError(t, err)
	return kvsOf(r.Kvs), r.Header.Revision
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(etcdBin(t, name), args...).CombinedOutput()
	require.NoError(t, err, "%s %s:\n%s", name, strings.Join(args, " "), out)
	return string(out)
}

// etcdutlStatus runs `etcdutl snapshot status -w json`.
func etcdutlStatus(t testing.TB, path string) snapshot.DBStatus {
	t.Helper()
	out := run(t, "etcdutl", "snapshot", "status", "-w", "json", path)
	var st snapshot.DBStatus
	require.NoError(t, json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &st), out)
	return st
}

// TestEtcdSnapshotIntoHavoc: (a) a snapshot saved by etcdctl from a real etcd
// restores with snapshot.Restore into three havoc members that serve the same
// keys and revisions; (c) both status tools agree on the file.
func TestEtcdSnapshotIntoHavoc(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real etcd")
	}
	dir := t.TempDir()
	e := startEtcd(t, filepath.Join(dir, "etcd.data"), "src", "")
	ctx := context.Background()
	for i := range 300 {
		_, err := e.cli.Put(ctx, fmt.Sprintf("k/%04d", i), fmt.Sprintf("v%d", i))
		require.NoError(t, err)
	}
	for i := 0; i < 300; i += 5 {
		_, err := e.cli.Put(ctx, fmt.Sprintf("k/%04d", i), fmt.Sprintf("w%d", i))
		require.NoError(t, err)
	}
	for i := 1; i < 300; i += 9 {
		_, err := e.cli.Delete(ctx, fmt.Sprintf("k/%04d", i))
		require.NoError(t, err)
	}
	lease, err := e.cli.Grant(ctx, 3600)
	require.NoError(t, err)
	_, err = e.cli.Put(ctx, "leased", "x", clientv3.WithLease(lease.ID))
	require.NoError(t, err)
	want, wantRev := e.all(t)

	snap := filepath.Join(dir, "etcd.snap")
	run(t, "etcdctl", "--endpoints", e.client, "snapshot", "save", snap)
	require.NoError(t, snapshot.Verify(snap))

	ours, err := snapshot.Status(snap)
	require.NoError(t, err)
	theirs := etcdutlStatus(t, snap)
	require.Equal(t, theirs, ours, "etcdutl and havoc disagree on the status of etcd's snapshot")
	require.Equal(t, wantRev, ours.Revision)

	spec := "a=http://127.0.0.1:12380,b=http://127.0.0.1:22380,c=http://127.0.0.1:32380"
	dirs, ms := restoreAll(t, snap, filepath.Join(dir, "havoc"), spec, "restored")
	got, rev, sts := runRestored(t, dirs, ms)
	require.Equal(t, want, got)
	require.Equal(t, wantRev, rev)
	for _, st := range sts {
		require.Equal(t, wantRev, st.Revision)
	}
}

// TestHavocSnapshotIntoEtcd: (b) a snapshot of havoc's backend restores with the
// real `etcdutl snapshot restore` into an etcd that serves the same keys at the
// same revisions; (c) both status tools agree on the file.
func TestHavocSnapshotIntoEtcd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real etcd")
	}
	dir := t.TempDir()
	snap, rev, want := buildBackend(t, dir, 500, 20)

	ours, err := snapshot.Status(snap)
	require.NoError(t, err)
	require.Equal(t, etcdutlStatus(t, snap), ours, "etcdutl and havoc disagree on the status of havoc's snapshot")

	peer := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	data := filepath.Join(dir, "restored.etcd")
	run(t, "etcdutl", "snapshot", "restore", snap, "--data-dir", data, "--name", "r1",
		"--initial-cluster", "r1="+peer, "--initial-cluster-token", "tok", "--initial-advertise-peer-urls", peer)
	e := startEtcd(t, data, "r1", peer)
	got, gotRev := e.all(t)
	require.Equal(t, want, got)
	require.Equal(t, rev, gotRev)

	// And it keeps working: the next write gets the next revision.
	r, err := e.cli.Put(context.Background(), "after", "restore")
	require.NoError(t, err)
	require.Equal(t, rev+1, r.Header.Revision)
}

// TestRestoreMatchesEtcdutlRefusals: etcdutl refuses the same bad inputs.
func TestRestoreMatchesEtcdutlRefusals(t *testing.T) {
	if testing.Short() {
		t.Skip("runs etcdutl")
	}
	dir := t.TempDir()
	snap, _, _ := buildBackend(t, dir, 20, 5)
	good, err := os.ReadFile(snap)
	require.NoError(t, err)
	bare := filepath.Join(dir, "bare.db")
	require.NoError(t, os.WriteFile(bare, good[:len(good)-32], 0o600))
	flipped := filepath.Join(dir, "flipped.snap")
	bad := append([]byte(nil), good...)
	bad[len(bad)/2] ^= 1
	require.NoError(t, os.WriteFile(flipped, bad, 0o600))
	for _, c := range []struct {
		file string
		want error
	}{{bare, snapshot.ErrMissingHash}, {flipped, snapshot.ErrHashMismatch}} {
		out, err := exec.Command(etcdBin(t, "etcdutl"), "snapshot", "restore", c.file, "--data-dir", filepath.Join(t.TempDir(), "d")).CombinedOutput()
		require.Error(t, err, "etcdutl accepted %s:\n%s", c.file, out)
		require.ErrorIs(t, snapshot.Restore(snapshot.RestoreOptions{SnapshotPath: c.file, DataDir: filepath.Join(t.TempDir(), "d")}), c.want)
	}
}
