// Package server is the real-process runtime around havoc's deterministic member
// core (store.Node): one goroutine owns the node and feeds it ticks, peer messages
// and client requests; a TCP transport carries raft messages between members; and
// etcd's v3 gRPC API (KV, Watch, Lease, Cluster, Maintenance), /health and /metrics
// are served on the client URLs, so that clientv3 and etcdctl talk to havoc as to
// etcd.
//
// Contract: the node is touched only by the member's run goroutine (every other
// goroutine hands it a closure); the run goroutine never blocks on the network or
// on a client (peer queues drop, a full watch queue holds its watchers in the
// node, response channels are buffered). Errors that reach a client are etcd's gRPC statuses (rpctypes), so
// clientv3 recognises them.
package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/havoclab/havoc/store/auth"
	"github.com/havoclab/havoc/store/membership"
)

// minWatchProgressInterval is the shortest WatchProgressNotifyInterval.
const minWatchProgressInterval = 100 * time.Millisecond

// Cluster states of --initial-cluster-state.
const (
	StateNew      = "new"
	StateExisting = "existing"
)

// Config configures one member. The zero value of each field takes etcd's default
// where one is noted; Validate fills them in.
type Config struct {
	// Name is the member's name (etcd --name, "default" when empty).
	Name string
	// DataDir holds member/wal and member/snap/db ("<Name>.etcd" when empty).
	DataDir string
	// ListenClientURLs are where gRPC and HTTP are served (http://localhost:2379).
	ListenClientURLs []string
	// AdvertiseClientURLs are published in the member list (http://localhost:2379).
	AdvertiseClientURLs []string
	// ListenPeerURLs are where peers connect (http://localhost:2380).
	ListenPeerURLs []string
	// InitialAdvertisePeerURLs are this member's peer URLs in InitialCluster
	// (http://localhost:2380).
	InitialAdvertisePeerURLs []string
	// InitialCluster is "name=peerURL,..." (when empty: this member alone,
	// "<Name>=<InitialAdvertisePeerURLs>", as etcd does when the flag is unset).
	InitialCluster string
	// InitialClusterState is StateNew (default) or StateExisting.
	InitialClusterState string
	// InitialClusterToken salts the member IDs ("etcd-cluster").
	InitialClusterToken string
	// SnapshotCount is the number of applied entries between raft snapshots (10000).
	SnapshotCount uint64
	// SnapshotCatchUpEntries is how many entries stay in the log after a
	// snapshot for slow followers (etcd --snapshot-catchup-entries, 5000).
	SnapshotCatchUpEntries uint64
	// HeartbeatInterval is one tick (100ms).
	HeartbeatInterval time.Duration
	// ElectionTimeout is at least 5 heartbeats and at most 50 s (1000ms).
	ElectionTimeout time.Duration
	// MaxRequestBytes bounds an encoded request (1.5 MiB).
	MaxRequestBytes int
	// QuotaBackendBytes is the NOSPACE threshold (0 = 2 GiB, negative = none).
	QuotaBackendBytes int64
	// WatchProgressNotifyInterval is how often a watcher created with
	// progress_notify that got no events gets a progress notification (etcd
	// --watch-progress-notify-interval; 10m, at least 100ms).
	WatchProgressNotifyInterval time.Duration
	// BcryptCost is the bcrypt cost of stored passwords (etcd --bcrypt-cost;
	// bcrypt.DefaultCost, 10, when zero; 4 to 31).
	BcryptCost int
	// AuthTokenTTL is how long an unused simple token lives (etcd
	// --auth-token-ttl; 300s when zero).
	AuthTokenTTL time.Duration
	// AuthToken is etcd's --auth-token: "simple" (when empty) or
	// "jwt,sign-method=RS256,pub-key=FILE,priv-key=FILE[,ttl=5m]".
	AuthToken  string
	authTokens auth.Tokens
	// Logger receives the member's logs (slog.Default when nil).
	Logger *slog.Logger

	// ClientTLSInfo secures the client URLs that are https:// (etcd --cert-file,
	// --key-file, --trusted-ca-file, --client-cert-auth, --auto-tls).
	ClientTLSInfo TLSInfo
	// PeerTLSInfo secures the peer URLs that are https:// (etcd's --peer-* forms).
	PeerTLSInfo TLSInfo
	// CipherSuites are the allowed TLS 1.2 cipher suites by IANA name (all of
	// Go's secure ones when empty).
	CipherSuites []string
	// TLSMinVersion is "TLS1.2" (default) or "TLS1.3".
	TLSMinVersion string

	clientTLS, peerTLS tlsConfigs
	tlsLoaded          bool

	// ClientListener and PeerListener, when set, are used instead of listening on
	// the first listen URL (tests bind port 0 first to learn their addresses).
	ClientListener, PeerListener net.Listener
}

// Validate checks the configuration, fills defaults, and returns every problem
// found, each on one line.
func (c *Config) Validate() error {
	if c.Name == "" {
		c.Name = "default"
	}
	if c.DataDir == "" {
		c.DataDir = c.Name + ".etcd"
	}
	def := func(v *[]string, d string) {
		if len(*v) == 0 {
			*v = []string{d}
		}
	}
	def(&c.ListenClientURLs, "http://localhost:2379")
	def(&c.AdvertiseClientURLs, "http://localhost:2379")
	def(&c.ListenPeerURLs, "http://localhost:2380")
	def(&c.InitialAdvertisePeerURLs, "http://localhost:2380")
	if c.InitialCluster == "" {
		// etcd: the default cluster is this member alone, under its name.
		parts := make([]string, len(c.InitialAdvertisePeerURLs))
		for i, u := range c.InitialAdvertisePeerURLs {
			parts[i] = c.Name + "=" + u
		}
		c.InitialCluster = strings.Join(parts, ",")
	}
	if c.InitialClusterState == "" {
		c.InitialClusterState = StateNew
	}
	if c.InitialClusterToken == "" {
		c.InitialClusterToken = "etcd-cluster"
	}
	if c.SnapshotCount == 0 {
		c.SnapshotCount = 10000
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = 100 * time.Millisecond
	}
	if c.ElectionTimeout == 0 {
		c.ElectionTimeout = 1000 * time.Millisecond
	}
	if c.MaxRequestBytes == 0 {
		c.MaxRequestBytes = 1536 * 1024
	}
	if c.QuotaBackendBytes == 0 {
		c.QuotaBackendBytes = 2 << 30
	}
	if c.WatchProgressNotifyInterval == 0 {
		c.WatchProgressNotifyInterval = 10 * time.Minute
	}
	// etcd raises a shorter interval to its minimum (v3rpc/watch.go).
	c.WatchProgressNotifyInterval = max(c.WatchProgressNotifyInterval, minWatchProgressInterval)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}

	var errs []error
	for _, set := range []struct {
		flag string
		urls []string
	}{
		{"--listen-client-urls", c.ListenClientURLs}, {"--advertise-client-urls", c.AdvertiseClientURLs},
		{"--listen-peer-urls", c.ListenPeerURLs}, {"--initial-advertise-peer-urls", c.InitialAdvertisePeerURLs},
	} {
		for _, u := range set.urls {
			if err := checkURL(u); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", set.flag, err))
			}
		}
	}
	errs = append(errs, c.validateTLS()...)
	switch c.InitialClusterState {
	case StateNew, StateExisting:
	default:
		errs = append(errs, fmt.Errorf("--initial-cluster-state: %q is neither %q nor %q", c.InitialClusterState, StateNew, StateExisting))
	}
	if c.HeartbeatInterval <= 0 {
		errs = append(errs, fmt.Errorf("--heartbeat-interval: %v must be positive", c.HeartbeatInterval))
	} else if c.ElectionTimeout < 5*c.HeartbeatInterval {
		errs = append(errs, fmt.Errorf("--election-timeout: %v must be at least 5 times --heartbeat-interval %v",
			c.ElectionTimeout, c.HeartbeatInterval))
	}
	if c.ElectionTimeout > 50*time.Second {
		errs = append(errs, fmt.Errorf("--election-timeout: %v is above 50000 ms", c.ElectionTimeout))
	}
	if c.MaxRequestBytes < 0 {
		errs = append(errs, fmt.Errorf("--max-request-bytes: %d is negative", c.MaxRequestBytes))
	}
	if c.AuthToken == "" {
		c.AuthToken = "simple"
	}
	if tokens, err := parseAuthToken(c.AuthToken); err != nil {
		errs = append(errs, err)
	} else {
		c.authTokens = tokens
	}
	if c.BcryptCost == 0 {
		c.BcryptCost = bcrypt.DefaultCost
	}
	if c.BcryptCost < bcrypt.MinCost || c.BcryptCost > bcrypt.MaxCost {
		errs = append(errs, fmt.Errorf("--bcrypt-cost: %d is outside [%d, %d]", c.BcryptCost, bcrypt.MinCost, bcrypt.MaxCost))
	}
	members, err := membership.ParseInitialCluster(c.InitialCluster, c.InitialClusterToken)
	if err != nil {
		errs = append(errs, fmt.Errorf("--initial-cluster: %w", err))
	} else {
		i := slices.IndexFunc(members, func(m membership.Member) bool { return m.Name == c.Name })
		if i < 0 {
			errs = append(errs, fmt.Errorf("--initial-cluster: member %q (--name) is not in %q", c.Name, c.InitialCluster))
		} else if !sameURLs(members[i].PeerURLs, c.InitialAdvertisePeerURLs) {
			errs = append(errs, fmt.Errorf("--initial-cluster: %s's peer URLs %v differ from --initial-advertise-peer-urls %v",
				c.Name, members[i].PeerURLs, c.InitialAdvertisePeerURLs))
		}
	}
	return errors.Join(errs...)
}

func checkURL(u string) error {
	p, err := url.Parse(u)
	if err != nil {
		return fmt.Errorf("invalid URL %q: %w", u, err)
	}
	if p.Scheme != "http" && p.Scheme != "https" {
		return fmt.Errorf("URL %q: the scheme must be http:// or https://", u)
	}
	if _, _, err := net.SplitHostPort(p.Host); err != nil {
		return fmt.Errorf("URL %q needs host:port: %w", u, err)
	}
	if p.Path != "" && p.Path != "/" {
		return fmt.Errorf("URL %q must not have a path", u)
	}
	return nil
}

func sameURLs(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// splitURLs splits a comma-separated flag value.
func splitURLs(s string) []string {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// SplitURLs splits a comma-separated URL list as etcd's URL flags do.
func SplitURLs(s string) []string { return splitURLs(s) }

// hostOf returns host:port of an http or https URL (validated by Config.Validate).
func hostOf(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return u
	}
	return p.Host
}
