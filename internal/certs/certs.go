// Package certs generates the X.509 certificates a TLS cluster needs, with
// crypto/x509 only: a CA, member certificates (server and client usage, as etcd's
// peer certificates must be), client certificates, and the bad ones tests need
// (expired, signed by another CA). It also makes the self-signed pair behind
// etcd's --auto-tls and --peer-auto-tls.
package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Pair is a certificate and its private key, both PEM-encoded.
type Pair struct {
	// CertPEM is the certificate.
	CertPEM []byte
	// KeyPEM is the private key (PKCS#8).
	KeyPEM []byte
	cert   *x509.Certificate
	key    *ecdsa.PrivateKey
}

// TLS returns the pair as a tls.Certificate.
func (p *Pair) TLS() (tls.Certificate, error) { return tls.X509KeyPair(p.CertPEM, p.KeyPEM) }

// WriteFiles writes the certificate to dir/name.crt and the key to
// dir/name.key (0600) and returns both paths.
func (p *Pair) WriteFiles(dir, name string) (certFile, keyFile string, err error) {
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(certFile, p.CertPEM, 0o644); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(keyFile, p.KeyPEM, 0o600); err != nil {
		return "", "", err
	}
	return certFile, keyFile, nil
}

// Options shape one leaf certificate.
type Options struct {
	// CommonName is the subject's CN (etcd uses it as the user only with auth).
	CommonName string
	// Hosts are the DNS names and IP addresses in the SANs.
	Hosts []string
	// Server and Client set the extended key usages.
	Server, Client bool
	// NotBefore and NotAfter bound validity (default: an hour ago to a year on).
	NotBefore, NotAfter time.Time
}

// NewCA makes a self-signed certificate authority.
func NewCA(commonName string) (*Pair, error) {
	now := time.Now()
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"havoc"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	return create(tmpl, nil)
}

// Issue signs a leaf certificate with ca.
func (ca *Pair) Issue(o Options) (*Pair, error) {
	if ca.cert == nil || !ca.cert.IsCA {
		return nil, fmt.Errorf("certs: the signer is not a CA made by NewCA")
	}
	return create(leafTemplate(o), ca)
}

// Member issues a member certificate: server and client usage, SANs
// 127.0.0.1 and localhost plus hosts.
func (ca *Pair) Member(name string, hosts ...string) (*Pair, error) {
	return ca.Issue(Options{CommonName: name, Hosts: append([]string{"127.0.0.1", "localhost"}, hosts...), Server: true, Client: true})
}

// Client issues a client certificate for commonName.
func (ca *Pair) Client(commonName string) (*Pair, error) {
	return ca.Issue(Options{CommonName: commonName, Client: true})
}

// Expired issues a member certificate (server and client usage) whose validity
// ended an hour ago.
func (ca *Pair) Expired(name string) (*Pair, error) {
	now := time.Now()
	return ca.Issue(Options{CommonName: name, Hosts: []string{"127.0.0.1", "localhost"}, Server: true, Client: true,
		NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-time.Hour)})
}

// SelfSigned makes the self-signed server-and-client pair of etcd's
// --auto-tls: valid for a year, for hosts (IPs or DNS names).
func SelfSigned(hosts []string) (*Pair, error) {
	tmpl := leafTemplate(Options{CommonName: "etcd", Hosts: hosts, Server: true, Client: true})
	tmpl.Subject.Organization = []string{"etcd"}
	return create(tmpl, nil)
}

func leafTemplate(o Options) *x509.Certificate {
	now := time.Now()
	if o.NotBefore.IsZero() {
		o.NotBefore = now.Add(-time.Hour)
	}
	if o.NotAfter.IsZero() {
		o.NotAfter = now.Add(365 * 24 * time.Hour)
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: o.CommonName, Organization: []string{"havoc"}},
		NotBefore:             o.NotBefore,
		NotAfter:              o.NotAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
	}
	if o.Server {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	if o.Client {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	for _, h := range o.Hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return tmpl
}

// create signs tmpl with parent (self-signed when parent is nil).
func create(tmpl *x509.Certificate, parent *Pair) (*Pair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("certs: generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("certs: serial: %w", err)
	}
	tmpl.SerialNumber = serial
	signer, signerCert := key, tmpl
	if parent != nil {
		signer, signerCert = parent.key, parent.cert
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signerCert, &key.PublicKey, signer)
	if err != nil {
		return nil, fmt.Errorf("certs: sign %q: %w", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &Pair{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		cert:    cert,
		key:     key,
	}, nil
}
