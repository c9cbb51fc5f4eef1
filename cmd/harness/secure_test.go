package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/havoclab/havoc/internal/certs"
	"github.com/havoclab/havoc/server"
)

// secureMember starts one in-process member with TLS, client certificate auth
// and etcd auth on (root:rootpw), and returns its client URL and the flags
// that reach it (without --user).
func secureMember(t *testing.T) (string, []string) {
	t.Helper()
	dir := t.TempDir()
	ca, err := certs.NewCA("ca")
	require.NoError(t, err)
	member, err := ca.Member("m")
	require.NoError(t, err)
	client, err := ca.Client("client")
	require.NoError(t, err)
	caFile, _, err := ca.WriteFiles(dir, "ca")
	require.NoError(t, err)
	mCert, mKey, err := member.WriteFiles(dir, "member")
	require.NoError(t, err)
	cCert, cKey, err := client.WriteFiles(dir, "client")
	require.NoError(t, err)
	cl, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	pl, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	curl, purl := "https://"+cl.Addr().String(), "http://"+pl.Addr().String()
	m, err := server.Start(server.Config{
		Name: "m", DataDir: filepath.Join(dir, "data"), ListenClientURLs: []string{curl}, AdvertiseClientURLs: []string{curl},
		ListenPeerURLs: []string{purl}, InitialAdvertisePeerURLs: []string{purl}, InitialCluster: "m=" + purl,
		HeartbeatInterval: 10 * time.Millisecond, ElectionTimeout: 100 * time.Millisecond, BcryptCost: 4,
		ClientTLSInfo:  server.TLSInfo{CertFile: mCert, KeyFile: mKey, TrustedCAFile: caFile, ClientCertAuth: true},
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
		ClientListener: cl, PeerListener: pl,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })
	select {
	case <-m.ReadyNotify():
	case <-time.After(10 * time.Second):
		t.Fatal("member never became ready")
	}
	flags := []string{"--cacert", caFile, "--cert", cCert, "--key", cKey}
	sec := clientSecurity{cacert: caFile, cert: cCert, key: cKey}
	tlsCfg, err := sec.tls()
	require.NoError(t, err)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{curl}, TLS: tlsCfg, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	require.NoError(t, err)
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = cli.UserAdd(ctx, "root", "rootpw")
	require.NoError(t, err)
	_, err = cli.UserGrantRole(ctx, "root", "root")
	require.NoError(t, err)
	_, err = cli.AuthEnable(ctx)
	require.NoError(t, err)
	return curl, flags
}

// TestSecureSnapshotAndBench: `harness snapshot save` and `harness bench
// --endpoints` reach a member with TLS, client certificates and auth through
// --cacert --cert --key --user --password; a wrong password, a missing user
// or missing certificates are one line and a non-zero exit, and leave no file.
func TestSecureSnapshotAndBench(t *testing.T) {
	ep, tlsFlags := secureMember(t)
	dir := t.TempDir()
	save := func(path string, extra ...string) (int, string, string) {
		return harness(t, append([]string{"snapshot", "save", path, "--endpoints", ep, "--command-timeout", "10s"}, extra...)...)
	}
	snap := filepath.Join(dir, "ok.db")
	code, out, errOut := save(snap, append(tlsFlags, "--user", "root:rootpw")...)
	require.Equal(t, exitOK, code, "stdout %s\nstderr %s", out, errOut)
	require.Contains(t, out, "Snapshot saved at "+snap)
	st, err := os.Stat(snap)
	require.NoError(t, err)
	require.Equal(t, int64(32), st.Size()%512)
	code, out, errOut = save(filepath.Join(dir, "ok2.db"), append(tlsFlags, "--user", "root", "--password", "rootpw")...)
	require.Equal(t, exitOK, code, "stdout %s\nstderr %s", out, errOut)

	for _, tc := range []struct {
		name string
		args []string
		says string
	}{
		{"wrong password", append(tlsFlags, "--user", "root:nope"), "authentication failed, invalid user ID or password"},
		{"no user: the certificate's name is no user", tlsFlags, "user name not found"},
		{"user without password", append(tlsFlags, "--user", "root"), "--user: give NAME:PASSWORD"},
		{"cert without key", []string{"--cacert", tlsFlags[1], "--cert", tlsFlags[3]}, "--cert and --key must be given together"},
		{"missing CA file", []string{"--cacert", filepath.Join(dir, "nope.pem")}, "--cacert"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".db")
			code, out, errOut := save(path, tc.args...)
			require.NotEqual(t, exitOK, code, "stdout %s", out)
			require.Contains(t, errOut, tc.says)
			require.Len(t, strings.Split(strings.TrimRight(errOut, "\n"), "\n"), 1, "one line, got:\n%s", errOut)
			require.NoFileExists(t, path)
		})
	}

	args := append([]string{"bench", "--endpoints", ep, "--duration", "500ms", "--warmup", "0s", "--clients", "2", "--user", "root:rootpw"}, tlsFlags...)
	code, out, errOut = harness(t, args...)
	require.Equal(t, exitOK, code, "stdout %s\nstderr %s", out, errOut)
	require.Contains(t, out, "endpoints")
	code, _, errOut = harness(t, append([]string{"bench", "--endpoints", ep, "--duration", "500ms", "--warmup", "0s", "--user", "root:nope"}, tlsFlags...)...)
	require.NotEqual(t, exitOK, code)
	require.Contains(t, errOut, "authentication failed", fmt.Sprintf("stderr %s", errOut))
}
