package server

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestEtcdctlTLS runs three `harness serve` processes with TLS and client
// certificate auth on client and peer links, and drives them with the real
// etcdctl: put, get and snapshot save with --cacert --cert --key; without a
// client certificate etcdctl is refused.
func TestEtcdctlTLS(t *testing.T) {
	harness, etcdctl := binaries(t)
	f := writeTLSFiles(t, 3)
	var peers, clients, parts []string
	for i := range 3 {
		peers = append(peers, fmt.Sprintf("https://127.0.0.1:%d", freePort(t)))
		clients = append(clients, fmt.Sprintf("https://127.0.0.1:%d", freePort(t)))
		parts = append(parts, fmt.Sprintf("p%d=%s", i, peers[i]))
	}
	dir := t.TempDir()
	for i := range 3 {
		info := f.memberInfo(i)
		cmd := exec.Command(harness, "serve", "--name", fmt.Sprintf("p%d", i), "--data-dir", filepath.Join(dir, fmt.Sprintf("p%d", i)),
			"--listen-client-urls", clients[i], "--advertise-client-urls", clients[i],
			"--listen-peer-urls", peers[i], "--initial-advertise-peer-urls", peers[i],
			"--initial-cluster", strings.Join(parts, ","), "--initial-cluster-token", "tls-proc-test",
			"--heartbeat-interval", "20", "--election-timeout", "200",
			"--cert-file", info.CertFile, "--key-file", info.KeyFile, "--trusted-ca-file", f.caFile, "--client-cert-auth",
			"--peer-cert-file", info.CertFile, "--peer-key-file", info.KeyFile, "--peer-trusted-ca-file", f.caFile, "--peer-client-cert-auth")
		var stderr bytes.Buffer
		cmd.Stderr = &lockedWriter{w: &stderr}
		require.NoError(t, cmd.Start())
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			if t.Failed() {
				t.Logf("stderr of p%d:\n%s", i, tail(stderr.String(), 3000))
			}
		})
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: clientTLS(t, f.ca, f.clientCert, f.clientKey)}}
	for _, c := range clients {
		require.Eventually(t, func() bool {
			resp, err := hc.Get(c + "/health")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		}, 15*time.Second, 50*time.Millisecond, "member at %s never became healthy", c)
	}

	secure := []string{"--cacert", f.caFile, "--cert", f.clientCert, "--key", f.clientKey}
	ctl := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, etcdctl, args...).CombinedOutput()
		return string(out), err
	}
	all := "--endpoints=" + strings.Join(clients, ",")
	out, err := ctl(append(secure, all, "put", "foo", "bar")...)
	require.NoError(t, err, out)
	require.Equal(t, "OK\n", out)
	out, err = ctl(append(secure, "--endpoints="+clients[2], "get", "foo")...)
	require.NoError(t, err, out)
	require.Equal(t, "foo\nbar\n", out)
	snap := filepath.Join(t.TempDir(), "snap.db")
	out, err = ctl(append(secure, "--endpoints="+clients[1], "snapshot", "save", snap)...)
	require.NoError(t, err, out)
	st, err := os.Stat(snap)
	require.NoError(t, err)
	require.Positive(t, st.Size())

	// Without a client certificate, or with one of another CA, etcdctl is refused.
	out, err = ctl("--cacert", f.caFile, "--dial-timeout", "2s", "--command-timeout", "3s", "--endpoints="+clients[0], "put", "no", "cert")
	require.Error(t, err, out)
	out, err = ctl("--cacert", f.caFile, "--cert", f.wrongCACert, "--key", f.wrongCAKey, "--dial-timeout", "2s",
		"--command-timeout", "3s", "--endpoints="+clients[0], "put", "wrong", "ca")
	require.Error(t, err, out)
	out, err = ctl(append(secure, all, "get", "", "--prefix", "--keys-only")...)
	require.NoError(t, err, out)
	require.Equal(t, "foo\n\n", out, "a refused etcdctl wrote")
}
