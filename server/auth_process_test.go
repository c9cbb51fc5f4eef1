package server

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestEtcdctlAuth runs `harness serve` with TLS and client certificate auth and
// drives it with the real etcdctl as an operator would: users, roles, auth
// enable, put and get with --user, permissions granted and revoked, and a
// snapshot saved with --cacert --cert --key, by password and by the common
// name of the client certificate.
func TestEtcdctlAuth(t *testing.T) {
	harness, etcdctl := binaries(t)
	f := writeTLSFiles(t, 1)
	peer := "https://127.0.0.1:" + strconv.Itoa(freePort(t))
	client := "https://127.0.0.1:" + strconv.Itoa(freePort(t))
	info := f.memberInfo(0)
	cmd := exec.Command(harness, "serve", "--name", "a0", "--data-dir", filepath.Join(t.TempDir(), "a0"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", "a0="+peer,
		"--heartbeat-interval", "20", "--election-timeout", "200", "--bcrypt-cost", "4",
		"--cert-file", info.CertFile, "--key-file", info.KeyFile, "--trusted-ca-file", f.caFile, "--client-cert-auth",
		"--peer-cert-file", info.CertFile, "--peer-key-file", info.KeyFile, "--peer-trusted-ca-file", f.caFile)
	var stderr bytes.Buffer
	cmd.Stderr = &lockedWriter{w: &stderr}
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("stderr:\n%s", tail(stderr.String(), 3000))
		}
	})
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: clientTLS(t, f.ca, f.clientCert, f.clientKey)}}
	require.Eventually(t, func() bool {
		resp, err := hc.Get(client + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 15*time.Second, 50*time.Millisecond)

	ctl := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		all := append([]string{"--cacert", f.caFile, "--cert", f.clientCert, "--key", f.clientKey, "--endpoints=" + client,
			"--dial-timeout", "3s", "--command-timeout", "5s"}, args...)
		out, err := exec.CommandContext(ctx, etcdctl, all...).CombinedOutput()
		return string(out), err
	}
	ok := func(want string, args ...string) {
		t.Helper()
		out, err := ctl(args...)
		require.NoError(t, err, out)
		if want != "" {
			require.Equal(t, want, out)
		}
	}
	fails := func(want string, args ...string) {
		t.Helper()
		out, err := ctl(args...)
		require.Error(t, err, out)
		require.Contains(t, out, want)
	}

	fails("root user does not exist", "auth", "enable")
	ok("User root created\n", "user", "add", "root:rootpw")
	ok("User app created\n", "user", "add", "app:apppw")
	ok("Role app created\n", "role", "add", "app")
	ok("Role app updated\n", "role", "grant-permission", "app", "readwrite", "app/", "--prefix")
	ok("Role app is granted to user app\n", "user", "grant-role", "app", "app")
	fails("role name not found", "user", "grant-role", "app", "nope")
	// etcdctl answers "root user does not have root role" by adding the root
	// role, granting it to root and enabling again, as against etcd.
	out, err := ctl("auth", "enable")
	require.NoError(t, err, out)
	require.Contains(t, out, "Authentication Enabled\n")
	ok("Role root\nKV Read:\n\t[, <open ended>\nKV Write:\n\t[, <open ended>\n", "--user", "root:rootpw", "role", "get", "root")

	ok("OK\n", "--user", "root:rootpw", "put", "top", "secret")
	ok("OK\n", "--user", "app:apppw", "put", "app/k", "v")
	ok("app/k\nv\n", "--user", "app:apppw", "get", "app/k")
	fails("permission denied", "--user", "app:apppw", "put", "top", "overwritten")
	fails("permission denied", "--user", "app:apppw", "get", "top")
	fails("authentication failed, invalid user ID or password", "--user", "app:wrong", "get", "app/k")
	// The client certificate's common name ("client") is no user yet.
	fails("user name not found", "snapshot", "save", filepath.Join(t.TempDir(), "refused.db"))
	fails("permission denied", "get", "app/k")

	ok("", "--user", "root:rootpw", "role", "revoke-permission", "app", "app/", "--prefix")
	fails("permission denied", "--user", "app:apppw", "put", "app/k", "after revoke")
	ok("app/k\nv\n", "--user", "root:rootpw", "get", "app/k")
	ok("top\nsecret\n", "--user", "root:rootpw", "get", "top")

	snap := filepath.Join(t.TempDir(), "snap.db")
	out, err = ctl("--user", "root:rootpw", "snapshot", "save", snap)
	require.NoError(t, err, out)
	require.Contains(t, out, "Snapshot saved at "+snap)
	st, err := os.Stat(snap)
	require.NoError(t, err)
	require.Equal(t, int64(32), st.Size()%512)

	// kubeadm's way: the certificate's common name is a user with the root role.
	ok("", "--user", "root:rootpw", "user", "add", "client", "--no-password")
	ok("", "--user", "root:rootpw", "user", "grant-role", "client", "root")
	snap2 := filepath.Join(t.TempDir(), "snap2.db")
	out, err = ctl("snapshot", "save", snap2)
	require.NoError(t, err, out)
	ok("app/k\nv\n", "get", "app/k")
	ok("Authentication Disabled\n", "auth", "disable")
}
