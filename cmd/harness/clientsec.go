package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"
)

// clientSecurity is etcdctl's way to reach a secured cluster: --cacert,
// --cert and --key for TLS, --user and --password for auth.
type clientSecurity struct {
	cacert, cert, key string
	user, password    string
}

func (s *clientSecurity) register(fl *pflag.FlagSet) {
	fl.StringVar(&s.cacert, "cacert", "", "verify the members' certificates with this CA bundle (PEM)")
	fl.StringVar(&s.cert, "cert", "", "client certificate (PEM) for members that check client certificates")
	fl.StringVar(&s.key, "key", "", "key of --cert (PEM)")
	fl.StringVar(&s.user, "user", "", "username[:password] of an etcd auth user")
	fl.StringVar(&s.password, "password", "", "password of --user (when it has no :password)")
}

// tls is the client TLS config of the flags: nil when none is given (https
// endpoints then verify with the system's roots).
func (s *clientSecurity) tls() (*tls.Config, error) {
	if s.cacert == "" && s.cert == "" && s.key == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if s.cacert != "" {
		pem, err := os.ReadFile(s.cacert)
		if err != nil {
			return nil, fmt.Errorf("--cacert: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--cacert: %s holds no PEM certificate", s.cacert)
		}
	}
	if (s.cert == "") != (s.key == "") {
		return nil, errors.New("--cert and --key must be given together")
	}
	if s.cert != "" {
		c, err := tls.LoadX509KeyPair(s.cert, s.key)
		if err != nil {
			return nil, fmt.Errorf("--cert/--key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	return cfg, nil
}

// credentials are the user and password of the flags (both empty: none), as
// etcdctl reads them: --user NAME:PASSWORD, or --user NAME --password PASSWORD.
func (s *clientSecurity) credentials() (user, password string, err error) {
	if s.user == "" {
		if s.password != "" {
			return "", "", errors.New("--password needs --user")
		}
		return "", "", nil
	}
	if s.password != "" {
		return s.user, s.password, nil
	}
	user, password, ok := strings.Cut(s.user, ":")
	if !ok || user == "" {
		return "", "", errors.New("--user: give NAME:PASSWORD, or NAME with --password")
	}
	return user, password, nil
}
