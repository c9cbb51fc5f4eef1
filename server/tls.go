package server

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/havoclab/havoc/internal/certs"
)

// TLSInfo is one side's TLS settings (clients or peers), as etcd's flags give
// them: --cert-file --key-file --trusted-ca-file --client-cert-auth --auto-tls,
// or their --peer- forms.
type TLSInfo struct {
	// CertFile and KeyFile are this member's certificate and key (PEM).
	CertFile, KeyFile string
	// TrustedCAFile verifies the other side's certificate (PEM bundle); as in
	// etcd, setting it requires a client certificate even without
	// ClientCertAuth.
	TrustedCAFile string
	// ClientCertAuth requires every connecting side to present a certificate
	// signed by TrustedCAFile.
	ClientCertAuth bool
	// AutoTLS makes a self-signed certificate when CertFile and KeyFile are
	// unset; a peer using one is not verified (etcd's InsecureSkipVerify).
	AutoTLS bool
}

// empty reports whether no certificate is configured.
func (i TLSInfo) empty() bool { return i.CertFile == "" && i.KeyFile == "" }

// tlsVersions maps --tls-min-version values to crypto/tls versions.
var tlsVersions = map[string]uint16{"TLS1.2": tls.VersionTLS12, "TLS1.3": tls.VersionTLS13}

// validateTLS checks the TLS flags against the URLs as etcd does: an https URL
// needs a certificate (or auto TLS), a certificate on an http-only side is
// ignored with a warning, and --cipher-suites needs TLS 1.2 allowed.
func (c *Config) validateTLS() []error {
	var errs []error
	for _, side := range []struct {
		name, flags string
		info        TLSInfo
		urls        []string
	}{
		{"client", "--cert-file, --key-file", c.ClientTLSInfo, c.ListenClientURLs},
		{"peer", "--peer-cert-file, --peer-key-file", c.PeerTLSInfo, c.ListenPeerURLs},
	} {
		if (side.info.CertFile == "") != (side.info.KeyFile == "") {
			errs = append(errs, fmt.Errorf("%s TLS: %s must be given together", side.name, side.flags))
		}
		for _, u := range side.urls {
			switch {
			case strings.HasPrefix(u, "https://") && side.info.empty() && !side.info.AutoTLS:
				errs = append(errs, fmt.Errorf("TLS key/cert (%s) must be provided for %s url %s with HTTPS scheme", side.flags, side.name, u))
			case strings.HasPrefix(u, "http://") && !side.info.empty():
				c.Logger.Warn("scheme is HTTP while key and cert files are present; ignoring key and cert files", side.name+"-url", u)
			}
			if strings.HasPrefix(u, "http://") && side.info.ClientCertAuth {
				c.Logger.Warn("scheme is HTTP while client cert auth is enabled; ignoring client cert auth for this URL", side.name+"-url", u)
			}
		}
	}
	if c.TLSMinVersion != "" {
		if _, ok := tlsVersions[c.TLSMinVersion]; !ok {
			errs = append(errs, fmt.Errorf("--tls-min-version: %q is neither TLS1.2 nor TLS1.3", c.TLSMinVersion))
		}
	}
	if _, err := cipherSuites(c.CipherSuites); err != nil {
		errs = append(errs, err)
	} else if len(c.CipherSuites) > 0 && c.TLSMinVersion == "TLS1.3" {
		errs = append(errs, errors.New("--cipher-suites: cipher suites cannot be configured when only TLS1.3 is enabled"))
	}
	return errs
}

// cipherSuites maps IANA names (as etcd's --cipher-suites takes) to IDs.
func cipherSuites(names []string) ([]uint16, error) {
	var ids []uint16
	for _, n := range names {
		i := slices.IndexFunc(tls.CipherSuites(), func(s *tls.CipherSuite) bool { return s.Name == n })
		if i < 0 {
			return nil, fmt.Errorf("--cipher-suites: unknown or insecure cipher suite %q", n)
		}
		ids = append(ids, tls.CipherSuites()[i].ID)
	}
	return ids, nil
}

// tlsConfigs are one side's server config (for its listener) and client config
// (for dialing that side of another member); both nil for plain HTTP.
type tlsConfigs struct {
	server, client *tls.Config
}

// LoadTLS reads the certificate files (or makes auto-TLS certificates) for
// every https side. Start calls it when the caller did not; calling it first
// reports a missing file or a key that does not match its certificate before
// anything is bound or written.
func (c *Config) LoadTLS() error {
	if c.tlsLoaded {
		return nil
	}
	var errs []error
	var err error
	if c.clientTLS, err = c.loadSide("client", c.ClientTLSInfo, c.ListenClientURLs, c.AdvertiseClientURLs); err != nil {
		errs = append(errs, err)
	}
	if c.peerTLS, err = c.loadSide("peer", c.PeerTLSInfo, c.ListenPeerURLs, c.InitialAdvertisePeerURLs); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	c.tlsLoaded = true
	return nil
}

func (c *Config) loadSide(side string, info TLSInfo, listen, advertise []string) (tlsConfigs, error) {
	if !slices.ContainsFunc(listen, func(u string) bool { return strings.HasPrefix(u, "https://") }) {
		return tlsConfigs{}, nil
	}
	var cert tls.Certificate
	self := false
	switch {
	case !info.empty():
		var err error
		if cert, err = tls.LoadX509KeyPair(info.CertFile, info.KeyFile); err != nil {
			return tlsConfigs{}, fmt.Errorf("%s TLS: load key pair %s, %s: %w", side, info.CertFile, info.KeyFile, err)
		}
	case info.AutoTLS:
		var hosts []string
		for _, u := range append(slices.Clone(listen), advertise...) {
			if p, err := url.Parse(u); err == nil {
				if h, _, err := net.SplitHostPort(p.Host); err == nil && !slices.Contains(hosts, h) {
					hosts = append(hosts, h)
				}
			}
		}
		pair, err := certs.SelfSigned(hosts)
		if err == nil {
			cert, err = pair.TLS()
		}
		if err != nil {
			return tlsConfigs{}, fmt.Errorf("%s TLS: auto TLS: %w", side, err)
		}
		self = true
	}
	var pool *x509.CertPool
	if info.TrustedCAFile != "" {
		b, err := os.ReadFile(info.TrustedCAFile)
		if err != nil {
			return tlsConfigs{}, fmt.Errorf("%s TLS: trusted CA: %w", side, err)
		}
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return tlsConfigs{}, fmt.Errorf("%s TLS: trusted CA %s holds no PEM certificate", side, info.TrustedCAFile)
		}
	}
	if info.ClientCertAuth && pool == nil && !self {
		return tlsConfigs{}, fmt.Errorf("%s TLS: client certificate auth needs a trusted CA file", side)
	}
	suites, _ := cipherSuites(c.CipherSuites)
	minV := uint16(tls.VersionTLS12)
	if v, ok := tlsVersions[c.TLSMinVersion]; ok {
		minV = v
	}
	srv := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: minV, CipherSuites: suites, ClientCAs: pool}
	// etcd (client/pkg/transport TLSInfo.ServerConfig): a trusted CA alone
	// already requires a verified client certificate.
	if info.ClientCertAuth || pool != nil {
		srv.ClientAuth = tls.RequireAndVerifyClientCert
		if self && pool == nil {
			// Auto TLS with client cert auth and no CA: havoc asks for a
			// certificate but cannot verify a self-signed one (etcd would check it
			// against the system roots and refuse it).
			srv.ClientAuth = tls.RequireAnyClientCert
		}
	}
	cli := &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: minV, CipherSuites: suites,
		InsecureSkipVerify: self} //nolint:gosec // etcd's auto TLS does not verify peers.
	return tlsConfigs{server: srv, client: cli}, nil
}
