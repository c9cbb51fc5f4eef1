package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/havoclab/havoc/internal/certs"
)

// tlsFiles are the certificates of a TLS test cluster, written to a temp dir.
type tlsFiles struct {
	dir    string
	ca     *certs.Pair
	caFile string
	clientCert, clientKey,
	expiredCert, expiredKey,
	wrongCACert, wrongCAKey string
}

func writeTLSFiles(t testing.TB, members int) *tlsFiles {
	t.Helper()
	dir := t.TempDir()
	ca, err := certs.NewCA("havoc test CA")
	require.NoError(t, err)
	other, err := certs.NewCA("some other CA")
	require.NoError(t, err)
	f := &tlsFiles{dir: dir, ca: ca}
	write := func(p *certs.Pair, err error, name string) (string, string) {
		require.NoError(t, err)
		c, k, err := p.WriteFiles(dir, name)
		require.NoError(t, err)
		return c, k
	}
	f.caFile, _ = write(ca, nil, "ca")
	for i := range members {
		p, err := ca.Member(fmt.Sprintf("m%d", i))
		write(p, err, fmt.Sprintf("member%d", i))
	}
	p, err := ca.Client("client")
	f.clientCert, f.clientKey = write(p, err, "client")
	p, err = ca.Expired("expired")
	f.expiredCert, f.expiredKey = write(p, err, "expired")
	p, err = other.Member("wrong-ca")
	f.wrongCACert, f.wrongCAKey = write(p, err, "wrongca")
	return f
}

// TestTrustedCAAloneRequiresClientCert: as in etcd, --trusted-ca-file without
// --client-cert-auth still requires a client certificate signed by that CA.
func TestTrustedCAAloneRequiresClientCert(t *testing.T) {
	f := writeTLSFiles(t, 1)
	info := f.memberInfo(0)
	info.ClientCertAuth = false
	cfg := Config{ListenClientURLs: []string{"https://127.0.0.1:1"}, ListenPeerURLs: []string{"http://127.0.0.1:2"},
		ClientTLSInfo: info, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	require.NoError(t, cfg.LoadTLS())
	require.Equal(t, tls.RequireAndVerifyClientCert, cfg.clientTLS.server.ClientAuth)
	info.TrustedCAFile = ""
	cfg = Config{ListenClientURLs: []string{"https://127.0.0.1:1"}, ClientTLSInfo: info}
	require.NoError(t, cfg.LoadTLS())
	require.Equal(t, tls.NoClientCert, cfg.clientTLS.server.ClientAuth)
}

func (f *tlsFiles) memberInfo(i int) TLSInfo {
	return TLSInfo{CertFile: fmt.Sprintf("%s/member%d.crt", f.dir, i), KeyFile: fmt.Sprintf("%s/member%d.key", f.dir, i),
		TrustedCAFile: f.caFile, ClientCertAuth: true}
}

// clientTLS is a client config trusting roots and presenting certFile/keyFile
// (none when empty).
func clientTLS(t testing.TB, roots *certs.Pair, certFile, keyFile string) *tls.Config {
	cfg := &tls.Config{RootCAs: x509.NewCertPool()}
	cfg.RootCAs.AppendCertsFromPEM(roots.CertPEM)
	if certFile != "" {
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		require.NoError(t, err)
		cfg.Certificates = []tls.Certificate{c}
	}
	return cfg
}

// startTLSCluster starts n members with TLS and client cert auth on client
// and peer links, and returns their client URLs.
func startTLSCluster(t *testing.T, f *tlsFiles, n int) []string {
	var parts, clients []string
	cls, pls := make([]string, n), make([]string, n)
	var cl, pl []net.Listener
	for i := range n {
		cl, pl = append(cl, listen(t)), append(pl, listen(t))
		cls[i], pls[i] = "https://"+cl[i].Addr().String(), "https://"+pl[i].Addr().String()
		parts = append(parts, fmt.Sprintf("m%d=%s", i, pls[i]))
	}
	var ms []*Member
	for i := range n {
		cfg := Config{
			Name: fmt.Sprintf("m%d", i), DataDir: t.TempDir(),
			ListenClientURLs: []string{cls[i]}, AdvertiseClientURLs: []string{cls[i]},
			ListenPeerURLs: []string{pls[i]}, InitialAdvertisePeerURLs: []string{pls[i]},
			InitialCluster: strings.Join(parts, ","), InitialClusterToken: "tls-test",
			HeartbeatInterval: 10 * time.Millisecond, ElectionTimeout: 100 * time.Millisecond,
			Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
			ClientTLSInfo: f.memberInfo(i), PeerTLSInfo: f.memberInfo(i),
			ClientListener: cl[i], PeerListener: pl[i],
		}
		m, err := Start(cfg)
		require.NoError(t, err)
		ms = append(ms, m)
		clients = append(clients, cls[i])
	}
	t.Cleanup(func() {
		for _, m := range ms {
			_ = m.Close()
		}
	})
	for _, m := range ms {
		select {
		case <-m.ReadyNotify():
		case <-time.After(10 * time.Second):
			t.Fatal("a TLS member never became ready")
		}
	}
	return clients
}

func tlsClient(t testing.TB, eps []string, cfg *tls.Config) *clientv3.Client {
	c, err := clientv3.New(clientv3.Config{Endpoints: eps, TLS: cfg, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestTLSCluster(t *testing.T) {
	f := writeTLSFiles(t, 3)
	eps := startTLSCluster(t, f, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// Put on one member, read on another: the write crossed the peer TLS links.
	good := tlsClient(t, eps[:1], clientTLS(t, f.ca, f.clientCert, f.clientKey))
	_, err := good.Put(ctx, "k", "v")
	require.NoError(t, err)
	other := tlsClient(t, eps[2:], clientTLS(t, f.ca, f.clientCert, f.clientKey))
	resp, err := other.Get(ctx, "k")
	require.NoError(t, err)
	require.Len(t, resp.Kvs, 1)
	require.Equal(t, "v", string(resp.Kvs[0].Value))
	// A lease granted on every member: followers forward to the leader over TLS.
	for _, ep := range eps {
		c := tlsClient(t, []string{ep}, clientTLS(t, f.ca, f.clientCert, f.clientKey))
		_, err := c.Grant(ctx, 10)
		require.NoError(t, err, ep)
	}

	for name, cfg := range map[string]*tls.Config{
		"no client certificate":          clientTLS(t, f.ca, "", ""),
		"expired client certificate":     clientTLS(t, f.ca, f.expiredCert, f.expiredKey),
		"client certificate of other CA": clientTLS(t, f.ca, f.wrongCACert, f.wrongCAKey),
	} {
		t.Run(name, func(t *testing.T) {
			c := tlsClient(t, eps[:1], cfg)
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_, err := c.Put(ctx, "refused", "x")
			require.Error(t, err)
		})
	}
	t.Run("server not trusted by the client", func(t *testing.T) {
		other, err := certs.NewCA("untrusting")
		require.NoError(t, err)
		c := tlsClient(t, eps[:1], clientTLS(t, other, f.clientCert, f.clientKey))
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err = c.Put(ctx, "refused", "x")
		require.Error(t, err)
	})
	resp, err = good.Get(ctx, "refused")
	require.NoError(t, err)
	require.Empty(t, resp.Kvs, "a refused client wrote")
}

// TestAutoTLS: --auto-tls and --peer-auto-tls serve with self-signed
// certificates; a client that skips verification (etcdctl --insecure-skip-tls-verify)
// reads and writes, one that verifies is refused.
func TestAutoTLS(t *testing.T) {
	cl, pl := listen(t), listen(t)
	cu, pu := "https://"+cl.Addr().String(), "https://"+pl.Addr().String()
	m, err := Start(Config{
		Name: "auto", DataDir: t.TempDir(), ListenClientURLs: []string{cu}, AdvertiseClientURLs: []string{cu},
		ListenPeerURLs: []string{pu}, InitialAdvertisePeerURLs: []string{pu},
		HeartbeatInterval: 10 * time.Millisecond, ElectionTimeout: 100 * time.Millisecond,
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		ClientTLSInfo: TLSInfo{AutoTLS: true}, PeerTLSInfo: TLSInfo{AutoTLS: true},
		ClientListener: cl, PeerListener: pl,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })
	<-m.ReadyNotify()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c := tlsClient(t, []string{cu}, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // the server's certificate is self-signed.
	_, err = c.Put(ctx, "k", "v")
	require.NoError(t, err)
	verifying := tlsClient(t, []string{cu}, &tls.Config{})
	vctx, vcancel := context.WithTimeout(context.Background(), time.Second)
	defer vcancel()
	_, err = verifying.Get(vctx, "k")
	require.Error(t, err)
}
