package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/metadata"
)

// userClient connects to eps as user with password.
func userClient(t *testing.T, eps []string, user, password string) (*clientv3.Client, error) {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 2 * time.Second, Logger: zap.NewNop(),
		Username: user, Password: password})
	if err == nil {
		t.Cleanup(func() { _ = cli.Close() })
	}
	return cli, err
}

// enableAuth adds root (password "rootpw", root role) and alice (password
// "alicepw", role "app": readwrite on [app/, app0), read on "cfg"), then turns
// auth on.
func enableAuth(t *testing.T, cli *clientv3.Client) {
	t.Helper()
	ctx := ctxT(t)
	_, err := cli.AuthEnable(ctx)
	require.ErrorIs(t, err, rpctypes.ErrRootUserNotExist)
	_, err = cli.UserAdd(ctx, "root", "rootpw")
	require.NoError(t, err)
	_, err = cli.AuthEnable(ctx)
	require.ErrorIs(t, err, rpctypes.ErrRootRoleNotExist)
	_, err = cli.RoleAdd(ctx, "root")
	require.NoError(t, err)
	_, err = cli.UserGrantRole(ctx, "root", "root")
	require.NoError(t, err)
	_, err = cli.UserAdd(ctx, "alice", "alicepw")
	require.NoError(t, err)
	_, err = cli.RoleAdd(ctx, "app")
	require.NoError(t, err)
	_, err = cli.RoleGrantPermission(ctx, "app", "app/", clientv3.GetPrefixRangeEnd("app/"), clientv3.PermissionType(clientv3.PermReadWrite))
	require.NoError(t, err)
	_, err = cli.RoleGrantPermission(ctx, "app", "cfg", "", clientv3.PermissionType(clientv3.PermRead))
	require.NoError(t, err)
	_, err = cli.UserGrantRole(ctx, "alice", "app")
	require.NoError(t, err)
	_, err = cli.Put(ctx, "cfg", "v1") // before auth: anyone writes
	require.NoError(t, err)
	_, err = cli.AuthEnable(ctx)
	require.NoError(t, err)
}

func TestAuth(t *testing.T) {
	c := startCluster(t, 3)
	enableAuth(t, c.client(0))
	ctx := ctxT(t)

	// Nobody: every KV, lease and maintenance RPC is refused.
	anon := c.client(1)
	_, err := anon.Get(ctx, "cfg")
	require.ErrorIs(t, err, rpctypes.ErrUserEmpty)
	_, err = anon.Put(ctx, "app/x", "v")
	require.ErrorIs(t, err, rpctypes.ErrUserEmpty)
	_, err = anon.Status(ctx, c.endpoints()[1])
	require.ErrorIs(t, err, rpctypes.ErrUserEmpty)
	_, err = anon.Grant(ctx, 60)
	require.ErrorIs(t, err, rpctypes.ErrUserEmpty)
	_, err = anon.AlarmList(ctx)
	require.ErrorIs(t, err, rpctypes.ErrUserEmpty)
	st, err := anon.AuthStatus(ctx)
	require.NoError(t, err, "AuthStatus needs no user")
	require.True(t, st.Enabled)

	_, err = userClient(t, c.endpoints(), "alice", "wrong")
	require.ErrorIs(t, err, rpctypes.ErrAuthFailed)
	_, err = userClient(t, c.endpoints(), "nobody", "x")
	require.ErrorIs(t, err, rpctypes.ErrAuthFailed)

	alice, err := userClient(t, c.endpoints()[1:2], "alice", "alicepw")
	require.NoError(t, err)
	_, err = alice.Put(ctx, "app/a", "1")
	require.NoError(t, err)
	get, err := alice.Get(ctx, "app/", clientv3.WithPrefix())
	require.NoError(t, err)
	require.Len(t, get.Kvs, 1)
	get, err = alice.Get(ctx, "cfg")
	require.NoError(t, err)
	require.Equal(t, "v1", string(get.Kvs[0].Value))
	_, err = alice.Put(ctx, "cfg", "v2")
	require.ErrorIs(t, err, rpctypes.ErrPermissionDenied, "read-only key")
	_, err = alice.Put(ctx, "other", "x")
	require.ErrorIs(t, err, rpctypes.ErrPermissionDenied)
	_, err = alice.Get(ctx, "", clientv3.WithPrefix())
	require.ErrorIs(t, err, rpctypes.ErrPermissionDenied, "a range wider than the permission")
	_, err = alice.Delete(ctx, "cfg")
	require.ErrorIs(t, err, rpctypes.ErrPermissionDenied)
	_, err = alice.Txn(ctx).If(clientv3.Compare(clientv3.Value("cfg"), "=", "v1")).Then(clientv3.OpPut("app/t", "1")).Commit()
	require.NoError(t, err)
	_, err = alice.Txn(ctx).Then(clientv3.OpPut("app/t", "2"), clientv3.OpPut("other", "2")).Commit()
	require.ErrorIs(t, err, rpctypes.ErrPermissionDenied, "one denied op denies the txn")
	_, err = alice.Txn(ctx).If(clientv3.Compare(clientv3.Value("secret"), "=", "x")).Commit()
	require.ErrorIs(t, err, rpctypes.ErrPermissionDenied, "a read-only txn is checked too")
	_, err = alice.UserAdd(ctx, "mallory", "x")
	require.ErrorIs(t, err, rpctypes.ErrPermissionDenied)
	_, err = alice.Snapshot(ctx)
	if err == nil {
		// clientv3 reports a stream's error on its first read.
		rc, _ := alice.Snapshot(ctx)
		_, err = rc.Read(make([]byte, 1))
	}
	require.ErrorContains(t, err, "permission denied")
	_, err = alice.Defragment(ctx, c.endpoints()[1])
	require.ErrorIs(t, err, rpctypes.ErrPermissionDenied)
	_, err = alice.MemberList(ctx)
	require.NoError(t, err)
	_, err = alice.MemberAdd(ctx, []string{"http://127.0.0.1:1"})
	require.ErrorIs(t, err, rpctypes.ErrPermissionDenied)
	ug, err := alice.UserGet(ctx, "alice")
	require.NoError(t, err, "a user reads itself")
	require.Equal(t, []string{"app"}, ug.Roles)

	// Watch: a refused watch is canceled at once.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wr := <-alice.Watch(wctx, "secret")
	require.True(t, wr.Canceled)
	require.ErrorContains(t, wr.Err(), "permission denied")
	wch := alice.Watch(wctx, "app/", clientv3.WithPrefix())
	_, err = alice.Put(ctx, "app/w", "1")
	require.NoError(t, err)
	wr = <-wch
	require.NoError(t, wr.Err())
	require.Len(t, wr.Events, 1)

	// Leases: alice may not revoke a lease holding a key she cannot write.
	root, err := userClient(t, c.endpoints()[0:1], "root", "rootpw")
	require.NoError(t, err)
	lg, err := root.Grant(ctx, 60)
	require.NoError(t, err)
	_, err = root.Put(ctx, "secret", "s", clientv3.WithLease(lg.ID))
	require.NoError(t, err)
	_, err = alice.Revoke(ctx, lg.ID)
	require.ErrorIs(t, err, rpctypes.ErrPermissionDenied)
	_, err = alice.TimeToLive(ctx, lg.ID, clientv3.WithAttachedKeys())
	require.ErrorIs(t, err, rpctypes.ErrPermissionDenied)
	_, err = alice.Leases(ctx)
	require.ErrorIs(t, err, rpctypes.ErrPermissionDenied)
	_, err = root.Revoke(ctx, lg.ID)
	require.NoError(t, err)

	// Root bypasses permissions and manages auth.
	_, err = root.Put(ctx, "anything", "x")
	require.NoError(t, err)
	users, err := root.UserList(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"alice", "root"}, users.Users)
	roles, err := root.RoleList(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"app", "root"}, roles.Roles)
	rg, err := root.RoleGet(ctx, "app")
	require.NoError(t, err)
	require.Len(t, rg.Perm, 2)
	_, err = root.UserDelete(ctx, "root")
	require.ErrorIs(t, err, rpctypes.ErrInvalidAuthMgmt)
	_, err = root.UserRevokeRole(ctx, "alice", "nope")
	require.ErrorIs(t, err, rpctypes.ErrRoleNotGranted)
	_, err = root.RoleRevokePermission(ctx, "app", "nope", "")
	require.ErrorIs(t, err, rpctypes.ErrPermissionNotGranted)
	_, err = root.UserAdd(ctx, "alice", "x")
	require.ErrorIs(t, err, rpctypes.ErrUserAlreadyExist)

	// A revoked permission denies at once; clientv3 refreshes its token on
	// "auth store is old" and gets the real answer.
	_, err = root.RoleRevokePermission(ctx, "app", "app/", clientv3.GetPrefixRangeEnd("app/"))
	require.NoError(t, err)
	_, err = alice.Put(ctx, "app/b", "2")
	require.ErrorIs(t, err, rpctypes.ErrPermissionDenied)
	get, err = root.Get(ctx, "app/b")
	require.NoError(t, err)
	require.Empty(t, get.Kvs, "a denied put wrote")

	// A changed password invalidates the user's tokens and the old password.
	_, err = root.UserChangePassword(ctx, "alice", "newpw")
	require.NoError(t, err)
	_, err = userClient(t, c.endpoints(), "alice", "alicepw")
	require.ErrorIs(t, err, rpctypes.ErrAuthFailed)
	alice2, err := userClient(t, c.endpoints(), "alice", "newpw")
	require.NoError(t, err)
	_, err = alice2.Get(ctx, "cfg")
	require.NoError(t, err)

	// Every member decides the same: auth state is replicated.
	for i := range c.members {
		cli, err := userClient(t, c.endpoints()[i:i+1], "alice", "newpw")
		require.NoError(t, err)
		_, err = cli.Get(ctx, "cfg", clientv3.WithSerializable())
		require.NoError(t, err)
		_, err = cli.Put(ctx, "cfg", "no")
		require.ErrorIs(t, err, rpctypes.ErrPermissionDenied)
	}

	// Deleting a role revokes it from its users; revoking and deleting work.
	_, err = root.RoleAdd(ctx, "tmp")
	require.NoError(t, err)
	_, err = root.UserGrantRole(ctx, "alice", "tmp")
	require.NoError(t, err)
	_, err = root.RoleDelete(ctx, "tmp")
	require.NoError(t, err)
	ug, err = root.UserGet(ctx, "alice")
	require.NoError(t, err)
	require.Equal(t, []string{"app"}, ug.Roles)
	_, err = root.RoleGet(ctx, "tmp")
	require.ErrorIs(t, err, rpctypes.ErrRoleNotFound)
	_, err = root.UserRevokeRole(ctx, "alice", "app")
	require.NoError(t, err)
	_, err = alice2.Get(ctx, "cfg")
	require.ErrorIs(t, err, rpctypes.ErrPermissionDenied, "no role, no read")
	_, err = root.UserDelete(ctx, "alice")
	require.NoError(t, err)
	_, err = root.UserGet(ctx, "alice")
	require.ErrorIs(t, err, rpctypes.ErrUserNotFound)
	_, err = alice2.Get(ctx, "cfg")
	require.Error(t, err, "a deleted user's token is void and its password too")

	_, err = root.AuthDisable(ctx)
	require.NoError(t, err)
	_, err = anon.Put(ctx, "other", "open again")
	require.NoError(t, err)
	_, err = anon.Authenticate(ctx, "root", "rootpw")
	require.ErrorIs(t, err, rpctypes.ErrAuthNotEnabled)
}

// TestAuthSurvivesRestartAndSnapshot: users, roles and the enabled flag are in
// the backend, so a restarted member enforces them, and a snapshot saved by a
// root user carries them.
func TestAuthSurvivesRestartAndSnapshot(t *testing.T) {
	c := startCluster(t, 1)
	enableAuth(t, c.client(0))
	ctx := ctxT(t)
	root, err := userClient(t, c.endpoints(), "root", "rootpw")
	require.NoError(t, err)
	rc, err := root.Snapshot(ctx)
	require.NoError(t, err)
	snap := filepath.Join(t.TempDir(), "snap.db")
	f, err := os.Create(snap)
	require.NoError(t, err)
	_, err = f.ReadFrom(rc)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	root.Close()

	require.NoError(t, c.members[0].Close())
	cfg := c.cfgs[0]
	cfg.ClientListener, cfg.PeerListener = nil, nil
	m, err := Start(cfg)
	require.NoError(t, err)
	c.members[0] = m
	c.waitLeader()
	<-m.ReadyNotify()
	_, err = c.client(0).Get(ctx, "cfg")
	require.ErrorIs(t, err, rpctypes.ErrUserEmpty, "auth is still on after a restart")
	alice, err := userClient(t, c.endpoints(), "alice", "alicepw")
	require.NoError(t, err)
	_, err = alice.Put(ctx, "cfg", "x")
	require.ErrorIs(t, err, rpctypes.ErrPermissionDenied)
	_, err = alice.Put(ctx, "app/y", "x")
	require.NoError(t, err)
	st, err := os.Stat(snap)
	require.NoError(t, err)
	require.Equal(t, int64(32), st.Size()%512, "a snapshot with its sha256 trailer")
}

// writeJWTKeys writes an ECDSA P-256 key pair as PEM files and returns their paths.
func writeJWTKeys(t *testing.T) (pub, priv string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalECPrivateKey(k)
	require.NoError(t, err)
	pubDER, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	require.NoError(t, err)
	dir := t.TempDir()
	priv, pub = filepath.Join(dir, "jwt.key"), filepath.Join(dir, "jwt.pub")
	require.NoError(t, os.WriteFile(priv, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(pub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o600))
	return pub, priv
}

// TestAuthJWT: with --auth-token jwt every member verifies a token another
// signed; a token made before an auth change is refused as old, and clientv3
// authenticates again by itself.
func TestAuthJWT(t *testing.T) {
	pub, priv := writeJWTKeys(t)
	old := configHook
	configHook = func(c *Config) {
		c.AuthToken = "jwt,sign-method=ES256,pub-key=" + pub + ",priv-key=" + priv + ",ttl=1m"
	}
	defer func() { configHook = old }()
	c := startCluster(t, 3)
	enableAuth(t, c.client(0))
	ctx := ctxT(t)

	anon := c.client(0)
	resp, err := anon.Authenticate(ctx, "alice", "alicepw")
	require.NoError(t, err)
	require.Equal(t, 2, strings.Count(resp.Token, "."), "a JWT: header.claims.signature")
	other := c.client(2)
	withToken := metadata.AppendToOutgoingContext(ctx, rpctypes.TokenFieldNameGRPC, resp.Token)
	get, err := other.Get(withToken, "cfg")
	require.NoError(t, err, "member 2 verifies member 0's token")
	require.Equal(t, "v1", string(get.Kvs[0].Value))
	_, err = other.Put(withToken, "cfg", "x")
	require.ErrorIs(t, err, rpctypes.ErrPermissionDenied)
	_, err = other.Get(metadata.AppendToOutgoingContext(ctx, rpctypes.TokenFieldNameGRPC, resp.Token+"x"), "cfg")
	require.ErrorIs(t, err, rpctypes.ErrInvalidAuthToken, "a forged signature")

	alice, err := userClient(t, c.endpoints(), "alice", "alicepw")
	require.NoError(t, err)
	root, err := userClient(t, c.endpoints(), "root", "rootpw")
	require.NoError(t, err)
	_, err = root.RoleGrantPermission(ctx, "app", "cfg", "", clientv3.PermissionType(clientv3.PermReadWrite))
	require.NoError(t, err)
	_, err = other.Put(withToken, "app/x", "x")
	require.ErrorIs(t, err, rpctypes.ErrAuthOldRevision, "the token predates the grant")
	_, err = alice.Put(ctx, "cfg", "v2")
	require.NoError(t, err, "clientv3 re-authenticates on an old revision")
}

func TestAuthTokenFlag(t *testing.T) {
	pub, priv := writeJWTKeys(t)
	for _, tc := range []struct{ spec, says string }{
		{"oauth", `unknown token type "oauth"`},
		{"simple,ttl=1m", "simple takes no options"},
		{"jwt,sign-method=XX256,priv-key=" + priv, `sign-method "XX256"`},
		{"jwt,sign-method=ES256", "missing key data"},
		{"jwt,sign-method=ES256,priv-key=/nonexistent", "no such file"},
		{"jwt,sign-method=RS256,priv-key=" + priv, "priv-key"},
		{"jwt,sign-method=ES256,priv-key=" + priv + ",colour=red", `unknown jwt option "colour"`},
		{"jwt,sign-method=ES256,priv-key", "not key=value"},
	} {
		_, err := parseAuthToken(tc.spec)
		require.ErrorContains(t, err, tc.says, tc.spec)
	}
	tok, err := parseAuthToken("jwt,sign-method=ES256,pub-key=" + pub)
	require.NoError(t, err)
	_, err = tok.Assign("alice", 2)
	require.ErrorIs(t, err, errVerifyOnly)
}
