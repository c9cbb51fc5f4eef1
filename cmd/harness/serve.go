package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/havoclab/havoc/server"
	"github.com/havoclab/havoc/store"
	"github.com/havoclab/havoc/store/mvcc"
	"github.com/havoclab/havoc/store/wal"
)

// newServeCmd runs one havoc store member with etcd's flag names and defaults.
func newServeCmd() *cobra.Command {
	var (
		cfg                           server.Config
		listenClient, advertiseClient string
		listenPeer, advertisePeer     string
		heartbeatMs, electionMs       uint
		logLevel                      string
		cipherSuites                  string
		tokenTTLSec                   uint
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run one member of havoc's etcd-compatible store (etcd's flags; speaks the etcd v3 gRPC API)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return &exitError{code: 2, msg: fmt.Sprintf("harness serve: --log-level: %v", err)}
			}
			cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			cfg.ListenClientURLs = server.SplitURLs(listenClient)
			cfg.AdvertiseClientURLs = server.SplitURLs(advertiseClient)
			cfg.ListenPeerURLs = server.SplitURLs(listenPeer)
			cfg.InitialAdvertisePeerURLs = server.SplitURLs(advertisePeer)
			cfg.CipherSuites = server.SplitURLs(cipherSuites)
			cfg.HeartbeatInterval = time.Duration(heartbeatMs) * time.Millisecond
			cfg.ElectionTimeout = time.Duration(electionMs) * time.Millisecond
			cfg.AuthTokenTTL = time.Duration(tokenTTLSec) * time.Second
			if !cmd.Flags().Changed("initial-cluster") {
				cfg.InitialCluster = "" // etcd: --name alone makes a one-member cluster under that name
			}
			if err := cfg.Validate(); err != nil {
				return &exitError{code: 2, msg: "harness serve: bad flags: " + strings.ReplaceAll(err.Error(), "\n", "; ")}
			}
			m, err := startMember(cfg)
			if err != nil {
				return err
			}
			sig := make(chan os.Signal, 1)
			signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
			defer signal.Stop(sig)
			select {
			case s := <-sig:
				cfg.Logger.Info("stopping on signal", "signal", s.String())
			case <-m.Done():
				cfg.Logger.Warn("member stopped on its own", "err", m.Err())
			}
			stopErr := m.Err()
			if err := m.Close(); err != nil {
				return &exitError{code: 1, msg: "harness serve: close: " + err.Error()}
			}
			if stopErr != nil && !errors.Is(stopErr, store.ErrRemoved) {
				return &exitError{code: 1, msg: "harness serve: member halted: " + stopErr.Error()}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Name, "name", "default", "human-readable name for this member")
	f.StringVar(&cfg.DataDir, "data-dir", "", "path to the data directory (default \"${name}.etcd\")")
	f.StringVar(&listenClient, "listen-client-urls", "http://localhost:2379", "URLs to serve clients on (gRPC, /health, /metrics)")
	f.StringVar(&advertiseClient, "advertise-client-urls", "http://localhost:2379", "client URLs published to the cluster")
	f.StringVar(&listenPeer, "listen-peer-urls", "http://localhost:2380", "URLs to listen on for peer traffic")
	f.StringVar(&advertisePeer, "initial-advertise-peer-urls", "http://localhost:2380", "this member's peer URLs, as in --initial-cluster")
	f.StringVar(&cfg.InitialCluster, "initial-cluster", "default=http://localhost:2380", "initial cluster configuration for bootstrapping (name=peerURL,...)")
	f.StringVar(&cfg.ClientTLSInfo.CertFile, "cert-file", "", "path to the client server TLS cert file")
	f.StringVar(&cfg.ClientTLSInfo.KeyFile, "key-file", "", "path to the client server TLS key file")
	f.StringVar(&cfg.ClientTLSInfo.TrustedCAFile, "trusted-ca-file", "", "path to the client server TLS trusted CA cert file")
	f.BoolVar(&cfg.ClientTLSInfo.ClientCertAuth, "client-cert-auth", false, "enable client cert authentication")
	f.BoolVar(&cfg.ClientTLSInfo.AutoTLS, "auto-tls", false, "client TLS using generated certificates")
	f.StringVar(&cfg.PeerTLSInfo.CertFile, "peer-cert-file", "", "path to the peer server TLS cert file")
	f.StringVar(&cfg.PeerTLSInfo.KeyFile, "peer-key-file", "", "path to the peer server TLS key file")
	f.StringVar(&cfg.PeerTLSInfo.TrustedCAFile, "peer-trusted-ca-file", "", "path to the peer server TLS trusted CA file")
	f.BoolVar(&cfg.PeerTLSInfo.ClientCertAuth, "peer-client-cert-auth", false, "enable peer client cert authentication")
	f.BoolVar(&cfg.PeerTLSInfo.AutoTLS, "peer-auto-tls", false, "peer TLS using self-generated certificates if --peer-key-file and --peer-cert-file are not provided")
	f.StringVar(&cipherSuites, "cipher-suites", "", "comma-separated list of supported TLS cipher suites between client/server and peers (empty will be auto-populated by Go)")
	f.StringVar(&cfg.TLSMinVersion, "tls-min-version", "TLS1.2", "minimum TLS version supported by etcd: TLS1.2 or TLS1.3")
	f.StringVar(&cfg.InitialClusterState, "initial-cluster-state", "new", "initial cluster state ('new' or 'existing')")
	f.StringVar(&cfg.InitialClusterToken, "initial-cluster-token", "etcd-cluster", "initial cluster token (salts the member and cluster IDs)")
	f.Uint64Var(&cfg.SnapshotCount, "snapshot-count", 10000, "number of committed transactions to trigger a snapshot")
	f.Uint64Var(&cfg.SnapshotCatchUpEntries, "snapshot-catchup-entries", 5000,
		"number of entries for a slow follower to catch up after compacting the raft storage entries")
	f.UintVar(&heartbeatMs, "heartbeat-interval", 100, "time (in milliseconds) of a heartbeat interval")
	f.UintVar(&electionMs, "election-timeout", 1000, "time (in milliseconds) for an election to timeout")
	f.IntVar(&cfg.MaxRequestBytes, "max-request-bytes", 1572864, "maximum client request size in bytes the server will accept")
	f.Int64Var(&cfg.QuotaBackendBytes, "quota-backend-bytes", 0, "raise alarms when backend size exceeds the given quota (0 defaults to 2 GiB)")
	f.IntVar(&cfg.BcryptCost, "bcrypt-cost", 10, "bcrypt cost of stored passwords (4 to 31)")
	f.StringVar(&cfg.AuthToken, "auth-token", "simple", "auth token type: simple, or jwt,sign-method=METHOD,pub-key=FILE,priv-key=FILE[,ttl=DURATION]")
	f.UintVar(&tokenTTLSec, "auth-token-ttl", 300, "time (in seconds) an unused simple token lives")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.DurationVar(&cfg.WatchProgressNotifyInterval, "watch-progress-notify-interval", 10*time.Minute,
		"duration of periodic watch progress notifications")
	// etcd before 3.7 named it so; kube setups still pass it.
	f.DurationVar(&cfg.WatchProgressNotifyInterval, "experimental-watch-progress-notify-interval", 10*time.Minute,
		"duration of periodic watch progress notifications")
	_ = f.MarkHidden("experimental-watch-progress-notify-interval")
	return cmd
}

// recoverHint says how to bring back a member whose data dir is damaged.
const recoverHint = "to recover, move the data dir aside and restore it from a snapshot (harness snapshot restore FILE --data-dir DIR), " +
	"or remove the member (etcdctl member remove ID) and add it back with an empty data dir"

// startMember binds the member's peer and client ports, then opens (or creates)
// its data dir and starts it. A start that fails is one line and exit code 1,
// and leaves the data dir as it found it: the ports are bound before anything
// is written, and every file or directory the failed start created is removed.
func startMember(cfg server.Config) (*server.Member, error) {
	oneLine := func(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }
	if err := cfg.LoadTLS(); err != nil {
		return nil, &exitError{code: 1, msg: "harness serve: " + oneLine(err)}
	}
	pl, err := net.Listen("tcp", urlHost(cfg.ListenPeerURLs[0]))
	if err != nil {
		return nil, &exitError{code: 1, msg: "harness serve: listen on peer URL " + cfg.ListenPeerURLs[0] + ": " + oneLine(err)}
	}
	cl, err := net.Listen("tcp", urlHost(cfg.ListenClientURLs[0]))
	if err != nil {
		pl.Close()
		return nil, &exitError{code: 1, msg: "harness serve: listen on client URL " + cfg.ListenClientURLs[0] + ": " + oneLine(err)}
	}
	cfg.PeerListener, cfg.ClientListener = pl, cl
	before, err := pathsUnder(cfg.DataDir)
	if err != nil {
		pl.Close()
		cl.Close()
		return nil, &exitError{code: 1, msg: "harness serve: data dir: " + oneLine(err)}
	}
	m, err := server.Start(cfg)
	if err == nil {
		return m, nil
	}
	pl.Close()
	cl.Close()
	removeNewPaths(cfg.DataDir, before)
	msg := "harness serve: " + oneLine(err)
	switch {
	case errors.Is(err, wal.ErrCorrupt):
		msg = fmt.Sprintf("harness serve: refusing data dir %s: its write-ahead log is corrupt (or not havoc's): %s; %s", cfg.DataDir, oneLine(err), recoverHint)
	case errors.Is(err, mvcc.ErrCorrupt):
		msg = fmt.Sprintf("harness serve: refusing data dir %s: its backend is corrupt: %s; %s", cfg.DataDir, oneLine(err), recoverHint)
	case errors.Is(err, store.ErrForeignDataDir):
		msg = fmt.Sprintf("harness serve: refusing data dir %s: it was not written by this havoc member: %s", cfg.DataDir, oneLine(err))
	}
	return nil, &exitError{code: 1, msg: msg}
}

// urlHost is the host:port a listen URL names.
func urlHost(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return u
	}
	return p.Host
}

// pathsUnder returns every path under dir (dir included), or none if dir is
// missing.
func pathsUnder(dir string) (map[string]bool, error) {
	seen := map[string]bool{}
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		seen[p] = true
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]bool{}, nil
	}
	return seen, err
}

// removeNewPaths removes what appeared under dir since before was taken,
// deepest first.
func removeNewPaths(dir string, before map[string]bool) {
	now, _ := pathsUnder(dir)
	var added []string
	for p := range now {
		if !before[p] {
			added = append(added, p)
		}
	}
	slices.SortFunc(added, func(a, b string) int { return len(b) - len(a) })
	for _, p := range added {
		_ = os.RemoveAll(p)
	}
}
