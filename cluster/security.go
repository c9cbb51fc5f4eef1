package cluster

// Security of a real cluster: TLS on client and peer links with certificates
// the harness generates, and etcd's auth with a root and a workload user.

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/havoclab/havoc/cluster/linkproxy"
	"github.com/havoclab/havoc/internal/certs"
)

// Security secures a real cluster the way kubeadm runs etcd. The zero value
// is a plain cluster (http, no auth).
type Security struct {
	// TLS puts client and peer links on TLS with client-certificate auth on
	// both (https URLs, etcd's --client-cert-auth and --peer-client-cert-auth).
	// The harness generates a CA, one server-and-peer certificate per member
	// (SANs 127.0.0.1 and localhost) and client certificates for RootUser and
	// WorkloadUser into <run dir>/tls. The link proxies terminate peer TLS
	// (see linkproxy.ListenTLS).
	TLS bool
	// Auth enables etcd's auth once the cluster is up: RootUser with the root
	// role, and WorkloadUser with a role that may read and write Prefixes.
	// Clients then authenticate: by their certificate's common name with TLS,
	// by user and password without.
	Auth bool
	// Prefixes are the key prefixes WorkloadUser may read and write (every key
	// when empty).
	Prefixes []string
}

// The users of a cluster with Security.Auth.
const (
	// RootUser holds the root role: the harness's own clients (leader lookup,
	// replica comparison) act as it.
	RootUser = "root"
	// WorkloadUser is the workload's clients' user; its role is WorkloadRole.
	WorkloadUser = "havoc-workload"
	// WorkloadRole may read and write Security.Prefixes.
	WorkloadRole = "havoc-workload"
)

// Identity is who a client of a secured cluster acts as.
type Identity int

// The identities.
const (
	// AsAdmin is RootUser (the harness's checks).
	AsAdmin Identity = iota
	// AsWorkload is WorkloadUser (the workload's clients).
	AsWorkload
)

// Dialer is a backend whose clients need more than an endpoint (TLS
// certificates, credentials).
type Dialer interface {
	// DialEndpoint returns a new client of endpoint (a member's client URL,
	// or a proxy in front of one) acting as id; the caller closes it.
	DialEndpoint(endpoint string, id Identity) (*clientv3.Client, error)
}

// Dial returns a new client bound to member's endpoint acting as id (see
// DialEndpoint).
func Dial(b Backend, member string, id Identity) (*clientv3.Client, error) {
	return DialEndpoint(b, b.ClientURL(member), id)
}

// DialEndpoint returns a new client of endpoint acting as id: the backend's
// own when it is a Dialer, else NewClient.
func DialEndpoint(b Backend, endpoint string, id Identity) (*clientv3.Client, error) {
	if d, ok := b.(Dialer); ok {
		return d.DialEndpoint(endpoint, id)
	}
	return NewClient(endpoint)
}

// secured holds a cluster's certificates and passwords.
type secured struct {
	sec      Security
	caFile   string
	pool     *x509.CertPool
	files    map[string][2]string // member -> cert, key file
	members  map[string]tls.Certificate
	root     tls.Certificate // client certificate CN=RootUser
	workload tls.Certificate // client certificate CN=WorkloadUser
	proxy    tls.Certificate // the link proxies' own, for anonymous connections
	rootPass string
	workPass string
}

// newSecured generates what sec needs for members names into dir/tls.
func newSecured(sec Security, dir string, names []string) (*secured, error) {
	s := &secured{sec: sec, files: map[string][2]string{}, members: map[string]tls.Certificate{},
		rootPass: randomPassword(), workPass: randomPassword()}
	if !sec.TLS {
		return s, nil
	}
	tdir := filepath.Join(dir, "tls")
	if err := os.MkdirAll(tdir, 0o700); err != nil {
		return nil, err
	}
	ca, err := certs.NewCA("havoc-run-ca")
	if err != nil {
		return nil, err
	}
	if s.caFile, _, err = ca.WriteFiles(tdir, "ca"); err != nil {
		return nil, err
	}
	s.pool = x509.NewCertPool()
	s.pool.AppendCertsFromPEM(ca.CertPEM)
	issue := func(p *certs.Pair, err error) (tls.Certificate, *certs.Pair, error) {
		if err != nil {
			return tls.Certificate{}, nil, err
		}
		c, err := p.TLS()
		return c, p, err
	}
	for _, name := range names {
		c, p, err := issue(ca.Member(name))
		if err != nil {
			return nil, err
		}
		cf, kf, err := p.WriteFiles(tdir, name)
		if err != nil {
			return nil, err
		}
		s.members[name], s.files[name] = c, [2]string{cf, kf}
	}
	for _, c := range []struct {
		cn  string
		dst *tls.Certificate
	}{{RootUser, &s.root}, {WorkloadUser, &s.workload}} {
		cert, p, err := issue(ca.Client(c.cn))
		if err != nil {
			return nil, err
		}
		if _, _, err := p.WriteFiles(tdir, c.cn); err != nil {
			return nil, err
		}
		*c.dst = cert
	}
	if s.proxy, _, err = issue(ca.Member("havoc-linkproxy")); err != nil {
		return nil, err
	}
	return s, nil
}

func randomPassword() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%x", b)
}

// scheme is the URL scheme of the members' client and peer URLs.
func (s *secured) scheme() string {
	if s != nil && s.sec.TLS {
		return "https"
	}
	return "http"
}

// memberArgs are member's TLS flags (etcd's names, which `harness serve`
// shares).
func (s *secured) memberArgs(member string) []string {
	if s == nil {
		return nil
	}
	var args []string
	if s.sec.Auth {
		// bcrypt's lowest cost: every workload client logs in at once when
		// the run starts, within its 2 s dial timeout.
		args = append(args, "--bcrypt-cost", "4")
	}
	if !s.sec.TLS {
		return args
	}
	f := s.files[member]
	return append(args,
		"--cert-file", f[0], "--key-file", f[1], "--trusted-ca-file", s.caFile, "--client-cert-auth",
		"--peer-cert-file", f[0], "--peer-key-file", f[1], "--peer-trusted-ca-file", s.caFile, "--peer-client-cert-auth",
	)
}

// proxyTLS is how dest's link proxy terminates peer TLS: it presents dest's
// certificate, requires a sender's signed by the run's CA, and dials dest
// with the sender's certificate (its own for anonymous connections).
func (s *secured) proxyTLS(dest string) linkproxy.TLS {
	return linkproxy.TLS{
		Server: &tls.Config{Certificates: []tls.Certificate{s.members[dest]}, ClientCAs: s.pool,
			ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12},
		Upstream: func(sender string) *tls.Config {
			c, ok := s.members[sender]
			if !ok {
				c = s.proxy
			}
			return &tls.Config{RootCAs: s.pool, Certificates: []tls.Certificate{c}, MinVersion: tls.VersionTLS12}
		},
	}
}

// clientTLS is the TLS config of a client acting as id (nil without TLS).
func (s *secured) clientTLS(id Identity) *tls.Config {
	if s == nil || !s.sec.TLS {
		return nil
	}
	c := s.root
	if id == AsWorkload {
		c = s.workload
	}
	return &tls.Config{RootCAs: s.pool, Certificates: []tls.Certificate{c}, MinVersion: tls.VersionTLS12}
}

// clientConfig is the clientv3 config of a client acting as id: with auth
// and without TLS it logs in with user and password; with TLS its
// certificate's common name is its user.
func (s *secured) clientConfig(endpoint string, id Identity) clientv3.Config {
	cfg := clientConfig(endpoint)
	cfg.TLS = s.clientTLS(id)
	if s != nil && s.sec.Auth && !s.sec.TLS {
		cfg.Username, cfg.Password = RootUser, s.rootPass
		if id == AsWorkload {
			cfg.Username, cfg.Password = WorkloadUser, s.workPass
		}
	}
	return cfg
}

// httpClient is the client for members' /health.
func (s *secured) httpClient() *http.Client {
	hc := &http.Client{Timeout: time.Second}
	if t := s.clientTLS(AsAdmin); t != nil {
		hc.Transport = &http.Transport{TLSClientConfig: t}
	}
	return hc
}

// enableAuth creates the root and workload users and roles and turns auth on,
// through cli (a client from before auth is on).
func (s *secured) enableAuth(ctx context.Context, cli *clientv3.Client) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	steps := []struct {
		what string
		do   func() error
	}{
		{"add user " + RootUser, func() error { _, err := cli.UserAdd(ctx, RootUser, s.rootPass); return err }},
		{"grant root to " + RootUser, func() error { _, err := cli.UserGrantRole(ctx, RootUser, "root"); return err }},
		{"add role " + WorkloadRole, func() error { _, err := cli.RoleAdd(ctx, WorkloadRole); return err }},
		{"grant " + WorkloadRole + " its keys", func() error {
			if len(s.sec.Prefixes) == 0 {
				_, err := cli.RoleGrantPermission(ctx, WorkloadRole, "\x00", "\x00", clientv3.PermissionType(clientv3.PermReadWrite))
				return err
			}
			for _, p := range s.sec.Prefixes {
				if _, err := cli.RoleGrantPermission(ctx, WorkloadRole, p, clientv3.GetPrefixRangeEnd(p), clientv3.PermissionType(clientv3.PermReadWrite)); err != nil {
					return err
				}
			}
			return nil
		}},
		{"add user " + WorkloadUser, func() error { _, err := cli.UserAdd(ctx, WorkloadUser, s.workPass); return err }},
		{"grant " + WorkloadRole + " to " + WorkloadUser, func() error { _, err := cli.UserGrantRole(ctx, WorkloadUser, WorkloadRole); return err }},
		{"enable auth", func() error { _, err := cli.AuthEnable(ctx); return err }},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			return fmt.Errorf("cluster: auth: %s: %w", st.what, err)
		}
	}
	return nil
}
