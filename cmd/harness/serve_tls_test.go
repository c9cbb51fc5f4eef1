package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/havoclab/havoc/internal/certs"
)

// TestServeRefusesBadTLS: bad TLS flags are one line and exit 2 (flag misuse)
// before anything is read; unreadable or mismatched files are one line and exit
// 1 before anything is bound or written.
func TestServeRefusesBadTLS(t *testing.T) {
	files := t.TempDir()
	ca, err := certs.NewCA("ca")
	require.NoError(t, err)
	member, err := ca.Member("default")
	require.NoError(t, err)
	client, err := ca.Client("client")
	require.NoError(t, err)
	cert, key, err := member.WriteFiles(files, "member")
	require.NoError(t, err)
	_, otherKey, err := client.WriteFiles(files, "client")
	require.NoError(t, err)
	notPEM := filepath.Join(files, "notpem")
	require.NoError(t, os.WriteFile(notPEM, []byte("hello"), 0o600))

	https := func(dir string, extra ...string) []string {
		peer, cl := freePort(t), freePort(t)
		return append([]string{"serve", "--data-dir", dir, "--log-level", "error",
			"--listen-peer-urls", "https://" + peer, "--initial-advertise-peer-urls", "https://" + peer,
			"--initial-cluster", "default=https://" + peer,
			"--listen-client-urls", "https://" + cl, "--advertise-client-urls", "https://" + cl,
			"--peer-auto-tls"}, extra...)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"https without a certificate", nil, 2, []string{"--cert-file, --key-file", "must be provided", "HTTPS"}},
		{"cert without key", []string{"--cert-file", cert}, 2, []string{"--cert-file, --key-file", "together"}},
		{"unknown TLS version", []string{"--auto-tls", "--tls-min-version", "TLS1.1"}, 2, []string{"--tls-min-version", "TLS1.1"}},
		{"unknown cipher suite", []string{"--auto-tls", "--cipher-suites", "TLS_RSA_WITH_RC4_128_SHA"}, 2, []string{"--cipher-suites", "TLS_RSA_WITH_RC4_128_SHA"}},
		{"cipher suites with TLS 1.3 only", []string{"--auto-tls", "--tls-min-version", "TLS1.3",
			"--cipher-suites", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"}, 2, []string{"--cipher-suites", "TLS1.3"}},
		{"missing certificate file", []string{"--cert-file", filepath.Join(files, "nope.crt"), "--key-file", key}, 1,
			[]string{"client TLS", "nope.crt", "no such file"}},
		{"key of another certificate", []string{"--cert-file", cert, "--key-file", otherKey}, 1,
			[]string{"client TLS", "private key does not match public key"}},
		{"trusted CA that is not PEM", []string{"--cert-file", cert, "--key-file", key, "--trusted-ca-file", notPEM}, 1,
			[]string{"client TLS", "notpem", "no PEM certificate"}},
		{"client cert auth without a CA", []string{"--cert-file", cert, "--key-file", key, "--client-cert-auth"}, 1,
			[]string{"client TLS", "trusted CA"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			out, code := runHarness(t, https(dir, tc.args...)...)
			require.Equal(t, tc.code, code, "exit code; output:\n%s", out)
			require.NotContains(t, out, "goroutine ")
			require.Len(t, strings.Split(strings.TrimRight(out, "\n"), "\n"), 1, "one line, got:\n%s", out)
			for _, w := range tc.want {
				require.Contains(t, out, w)
			}
			require.NoDirExists(t, dir, "nothing written")
		})
	}
}
