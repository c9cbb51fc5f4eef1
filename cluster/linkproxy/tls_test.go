package linkproxy

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/havoclab/havoc/internal/certs"
)

// TestTLSTerminatesAndIdentifiesSender: with peer TLS the proxy reads
// X-Server-From from the decrypted stream, the destination sees the sender's
// own certificate, and a cut still resets the sender's connections.
func TestTLSTerminatesAndIdentifiesSender(t *testing.T) {
	ca, err := certs.NewCA("test-ca")
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(ca.CertPEM))
	pair := func(name string) tls.Certificate {
		p, err := ca.Member(name)
		require.NoError(t, err)
		c, err := p.TLS()
		require.NoError(t, err)
		return c
	}
	a, b := pair("a"), pair("b")
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "from=%s cn=%s body=%s", r.Header.Get("X-Server-From"), r.TLS.PeerCertificates[0].Subject.CommonName, body)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{b}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}
	srv.StartTLS()
	t.Cleanup(srv.Close)

	n := NewNetwork(1)
	t.Cleanup(func() { require.NoError(t, n.Close()) })
	byName := map[string]tls.Certificate{"a": a, "c": pair("c"), "": pair("proxy")}
	p, err := n.ListenTLS("127.0.0.1:0", strings.TrimPrefix(srv.URL, "https://"), "b", resolve, TLS{
		Server: &tls.Config{Certificates: []tls.Certificate{b}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert},
		Upstream: func(sender string) *tls.Config {
			return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{byName[sender]}}
		},
	})
	require.NoError(t, err)

	postTLS := func(from string) (string, error) {
		raw, err := net.DialTimeout("tcp", p.Addr(), time.Second)
		if err != nil {
			return "", err
		}
		defer raw.Close()
		_ = raw.SetDeadline(time.Now().Add(3 * time.Second))
		c := tls.Client(raw, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", Certificates: []tls.Certificate{a}})
		req, _ := http.NewRequest(http.MethodPost, "https://"+p.Addr()+"/raft", strings.NewReader("hi"))
		if from != "" {
			req.Header.Set("X-Server-From", from)
		}
		if err := req.Write(c); err != nil {
			return "", err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return string(body), err
	}
	got, err := postTLS("a1")
	require.NoError(t, err)
	require.Equal(t, "from=a1 cn=a body=hi", got)
	got, err = postTLS("")
	require.NoError(t, err)
	require.Equal(t, "from= cn=proxy body=hi", got, "an anonymous connection presents the proxy's own certificate")
	require.Equal(t, 1, n.Accepted()["a->b"])

	n.Cut("a", "b")
	_, err = postTLS("a1")
	require.Error(t, err, "a cut link must reset the sender's connection under TLS too")
	got, err = postTLS("c3")
	require.NoError(t, err)
	require.Equal(t, "from=c3 cn=c body=hi", got)

	// A sender without a certificate the proxy trusts gets no connection.
	other, err := certs.NewCA("other")
	require.NoError(t, err)
	bad, err := other.Member("a")
	require.NoError(t, err)
	badTLS, err := bad.TLS()
	require.NoError(t, err)
	raw, err := net.DialTimeout("tcp", p.Addr(), time.Second)
	require.NoError(t, err)
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(3 * time.Second))
	c := tls.Client(raw, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", Certificates: []tls.Certificate{badTLS}})
	_, err = io.WriteString(c, "POST /raft HTTP/1.1\r\nHost: x\r\nX-Server-From: a1\r\n\r\n")
	if err == nil {
		_, err = c.Read(make([]byte, 1))
	}
	require.Error(t, err)
}
