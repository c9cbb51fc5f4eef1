package snapshot_test

import (
	"context"
	"io"
	"log/slog"
	"net"

	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/havoclab/havoc/server"
	"github.com/havoclab/havoc/store/snapshot"
)

// checkAuth asserts that the cluster at endpoint has etcd's auth state of
// setupAuth: nobody is refused, alice reads and writes app/ only, root all.
func checkAuth(t *testing.T, endpoint string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	anon, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	require.NoError(t, err)
	defer anon.Close()
	_, err = anon.Get(ctx, "app/k")
	require.ErrorIs(t, err, rpctypes.ErrUserEmpty, "auth is on")
	_, err = clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		Username: "alice", Password: "wrong"})
	require.ErrorIs(t, err, rpctypes.ErrAuthFailed)
	alice, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		Username: "alice", Password: "alicepw"})
	require.NoError(t, err)
	defer alice.Close()
	get, err := alice.Get(ctx, "app/k")
	require.NoError(t, err)
	require.Len(t, get.Kvs, 1)
	_, err = alice.Get(ctx, "top")
	require.ErrorIs(t, err, rpctypes.ErrPermissionDenied)
	_, err = alice.Put(ctx, "top", "no")
	require.ErrorIs(t, err, rpctypes.ErrPermissionDenied)
	root, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		Username: "root", Password: "rootpw"})
	require.NoError(t, err)
	defer root.Close()
	users, err := root.UserList(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"alice", "root"}, users.Users)
	get, err = root.Get(ctx, "top")
	require.NoError(t, err)
	require.Equal(t, "secret", string(get.Kvs[0].Value))
}

// TestAuthSnapshotBothWays: users, roles, permissions and the enabled flag set
// on a real etcd survive `etcdctl snapshot save` and havoc's restore, and
// havoc's snapshot of that member restored by the real etcdutl gives an etcd
// with the same auth state.
func TestAuthSnapshotBothWays(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real etcd")
	}
	dir := t.TempDir()
	e := startEtcd(t, filepath.Join(dir, "etcd.data"), "src", "")
	ctl := func(args ...string) string {
		return run(t, "etcdctl", append([]string{"--endpoints", e.client}, args...)...)
	}
	ctl("user", "add", "root:rootpw")
	ctl("user", "add", "alice:alicepw")
	ctl("role", "add", "app")
	ctl("role", "grant-permission", "app", "readwrite", "app/", "--prefix")
	ctl("user", "grant-role", "alice", "app")
	ctl("put", "top", "secret")
	ctl("put", "app/k", "v")
	ctl("auth", "enable")
	snap := filepath.Join(dir, "etcd.snap")
	ctl("--user", "root:rootpw", "snapshot", "save", snap)

	// etcd -> havoc.
	cl, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	pl, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	client, peer := "http://"+cl.Addr().String(), "http://"+pl.Addr().String()
	data := filepath.Join(dir, "havoc.etcd")
	require.NoError(t, snapshot.Restore(snapshot.RestoreOptions{SnapshotPath: snap, DataDir: data, Name: "h",
		InitialCluster: "h=" + peer, InitialClusterToken: "auth", InitialAdvertisePeerURLs: []string{peer}}))
	m, err := server.Start(server.Config{
		Name: "h", DataDir: data, ListenClientURLs: []string{client}, AdvertiseClientURLs: []string{client},
		ListenPeerURLs: []string{peer}, InitialAdvertisePeerURLs: []string{peer}, InitialCluster: "h=" + peer,
		InitialClusterToken: "auth", HeartbeatInterval: 10 * time.Millisecond, ElectionTimeout: 100 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), ClientListener: cl, PeerListener: pl,
	})
	require.NoError(t, err)
	defer m.Close()
	select {
	case <-m.ReadyNotify():
	case <-time.After(20 * time.Second):
		t.Fatal("the restored havoc member never became ready")
	}
	checkAuth(t, client)

	// havoc -> etcd.
	back := filepath.Join(dir, "havoc.snap")
	run(t, "etcdctl", "--endpoints", client, "--user", "root:rootpw", "snapshot", "save", back)
	require.NoError(t, snapshot.Verify(back))
	ePeer := "http://127.0.0.1:" + strconv.Itoa(freePort(t))
	eData := filepath.Join(dir, "back.etcd")
	run(t, "etcdutl", "snapshot", "restore", back, "--data-dir", eData, "--name", "r",
		"--initial-cluster", "r="+ePeer, "--initial-cluster-token", "tok", "--initial-advertise-peer-urls", ePeer)
	e2 := startEtcd(t, eData, "r", ePeer)
	checkAuth(t, e2.client)
}
