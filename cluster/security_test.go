package cluster

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSecuredCertificates: a TLS run dir holds a CA, a certificate per member
// valid for 127.0.0.1 as server and client, and client certificates whose
// common names are the auth users; the members get etcd's TLS flags.
func TestSecuredCertificates(t *testing.T) {
	dir := t.TempDir()
	s, err := newSecured(Security{TLS: true, Auth: true}, dir, []string{"m1", "m2"})
	require.NoError(t, err)
	require.Equal(t, "https", s.scheme())
	caPEM, err := os.ReadFile(filepath.Join(dir, "tls", "ca.crt"))
	require.NoError(t, err)
	roots := x509.NewCertPool()
	require.True(t, roots.AppendCertsFromPEM(caPEM))
	parse := func(name string) *x509.Certificate {
		b, err := os.ReadFile(filepath.Join(dir, "tls", name+".crt"))
		require.NoError(t, err)
		blk, _ := pem.Decode(b)
		require.NotNil(t, blk)
		c, err := x509.ParseCertificate(blk.Bytes)
		require.NoError(t, err)
		return c
	}
	for _, m := range []string{"m1", "m2"} {
		c := parse(m)
		_, err := c.Verify(x509.VerifyOptions{Roots: roots, DNSName: "127.0.0.1", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
		require.NoError(t, err, "%s as a server", m)
		_, err = c.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
		require.NoError(t, err, "%s as a peer client", m)
	}
	for _, user := range []string{RootUser, WorkloadUser} {
		c := parse(user)
		require.Equal(t, user, c.Subject.CommonName)
		_, err := c.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
		require.NoError(t, err)
	}
	args := s.memberArgs("m2")
	require.Subset(t, args, []string{"--client-cert-auth", "--peer-client-cert-auth", "--bcrypt-cost",
		filepath.Join(dir, "tls", "m2.crt"), filepath.Join(dir, "tls", "m2.key"), filepath.Join(dir, "tls", "ca.crt")})

	// With TLS a client's user is its certificate's common name; without,
	// it logs in by password.
	cfg := s.clientConfig("https://127.0.0.1:1", AsWorkload)
	require.NotNil(t, cfg.TLS)
	require.Empty(t, cfg.Username)
	plain, err := newSecured(Security{Auth: true}, t.TempDir(), []string{"m1"})
	require.NoError(t, err)
	require.Equal(t, "http", plain.scheme())
	require.NotContains(t, plain.memberArgs("m1"), "--client-cert-auth")
	cfg = plain.clientConfig("http://127.0.0.1:1", AsWorkload)
	require.Nil(t, cfg.TLS)
	require.Equal(t, WorkloadUser, cfg.Username)
	require.NotEmpty(t, cfg.Password)
	require.Equal(t, RootUser, plain.clientConfig("http://127.0.0.1:1", AsAdmin).Username)
	var none *secured
	require.Equal(t, "http", none.scheme())
	require.Empty(t, none.memberArgs("m1"))
}
