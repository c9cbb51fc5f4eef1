package certs

import (
	"crypto/x509"
	"encoding/pem"
	"testing"

	"github.com/stretchr/testify/require"
)

func parse(t *testing.T, p *Pair) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode(p.CertPEM)
	require.NotNil(t, b)
	c, err := x509.ParseCertificate(b.Bytes)
	require.NoError(t, err)
	return c
}

func TestCertificates(t *testing.T) {
	ca, err := NewCA("ca")
	require.NoError(t, err)
	other, err := NewCA("other")
	require.NoError(t, err)
	roots := x509.NewCertPool()
	roots.AddCert(parse(t, ca))
	verify := func(p *Pair, usage x509.ExtKeyUsage, host string) error {
		_, err := parse(t, p).Verify(x509.VerifyOptions{Roots: roots, DNSName: host, KeyUsages: []x509.ExtKeyUsage{usage}})
		return err
	}

	member, err := ca.Member("m0", "m0.example")
	require.NoError(t, err)
	for _, host := range []string{"127.0.0.1", "localhost", "m0.example"} {
		require.NoError(t, verify(member, x509.ExtKeyUsageServerAuth, host), host)
	}
	require.NoError(t, verify(member, x509.ExtKeyUsageClientAuth, ""))
	require.Error(t, verify(member, x509.ExtKeyUsageServerAuth, "10.0.0.1"), "a name not in the SANs")
	_, err = member.TLS()
	require.NoError(t, err, "the key matches the certificate")

	client, err := ca.Client("alice")
	require.NoError(t, err)
	require.NoError(t, verify(client, x509.ExtKeyUsageClientAuth, ""))
	require.Error(t, verify(client, x509.ExtKeyUsageServerAuth, ""), "a client certificate is not a server's")
	require.Equal(t, "alice", parse(t, client).Subject.CommonName)

	expired, err := ca.Expired("old")
	require.NoError(t, err)
	require.ErrorAs(t, verify(expired, x509.ExtKeyUsageClientAuth, ""), new(x509.CertificateInvalidError))

	wrong, err := other.Member("m0")
	require.NoError(t, err)
	require.ErrorAs(t, verify(wrong, x509.ExtKeyUsageServerAuth, "127.0.0.1"), new(x509.UnknownAuthorityError))

	self, err := SelfSigned([]string{"127.0.0.1"})
	require.NoError(t, err)
	require.ErrorAs(t, verify(self, x509.ExtKeyUsageServerAuth, "127.0.0.1"), new(x509.UnknownAuthorityError))

	_, err = member.Issue(Options{CommonName: "x"})
	require.Error(t, err, "only a CA signs")
}
