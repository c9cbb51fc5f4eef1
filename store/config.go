package store

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/havoclab/havoc/store/auth"
	"github.com/havoclab/havoc/store/membership"
	"github.com/havoclab/havoc/vfs"
)

// Clock is the member's only source of time. The simulator gives each host its own
// virtual clock (with offset and drift); a real process gives the wall clock.
type Clock interface {
	Now() time.Time
}

// Config configures one member. Zero values take etcd's defaults where noted.
type Config struct {
	// Name is the member's human-readable name (etcd --name).
	Name string
	// ID is the raft ID; zero means "the ID of Name in InitialCluster".
	ID uint64
	// InitialCluster lists every member of a new cluster (etcd --initial-cluster),
	// with IDs computed from the cluster token. For a member joining an existing
	// cluster it lists the cluster as it will be once the member is added.
	InitialCluster []membership.Member
	// ClusterID identifies the cluster; zero means membership.ClusterID of the
	// initial members.
	ClusterID uint64
	// Join is true for --initial-cluster-state=existing: the member starts with an
	// empty log and waits for the leader.
	Join bool
	// ClientURLs are the member's advertised client URLs.
	ClientURLs []string

	// FS holds the write-ahead log (real files or the simulator's strict disk).
	FS vfs.FS
	// WALDir is the log directory inside FS.
	WALDir string
	// DBPath is the bbolt backend file (always a real file; on tmpfs in the simulator).
	DBPath string
	// DBNoSync skips fsync on backend commits (safe only where the file cannot be
	// lost, e.g. the simulator, which crashes the log but not the bbolt file).
	DBNoSync bool
	// BackendSync, when set, stands for the fsync of each periodic backend
	// commit where the backend file is never really synced (the simulator,
	// DBNoSync): it is called before a batch with writes is committed and
	// before a leader's snapshot image replaces the backend, and an error
	// fails that commit as a failed fdatasync fails bbolt's: nothing is
	// committed or replaced, and the member halts with the error (etcd exits
	// on a failed backend commit). The simulator's disk faults use it; nil in production.
	BackendSync func() error
	// DBInitialMmapSize is how much of the backend bbolt maps up front (see
	// mvcc.Options.InitialMmapSize); 0 lets bbolt choose.
	DBInitialMmapSize int

	// Clock is required.
	Clock Clock
	// Observe, when set, is called as the member passes each Point of its
	// protocol (nil in production: the store behaves the same either way). It
	// must not call back into the Node; it may panic to stop the member right
	// there, as a crash would, if the runtime then discards the Node and
	// recovers the member from its disk (the simulator's crash points do).
	Observe func(Point)
	// SendEarly, when set, lets a leader send its messages before it writes
	// the same Ready's entries to its log, as etcd's leader does (raft thesis
	// §10.2.1): the fsync of the leader's log overlaps the followers'. The
	// leader still applies an entry only after its own fsync, so nothing it
	// acknowledges depends on an unsynced write of its own. SendEarly gets
	// the messages before the write and must only queue them (it must not
	// call back into the Node); the rest of the Ready's messages come out of
	// Drain as usual. Nil (the simulator): every message leaves after the
	// write.
	SendEarly func([]*raftpb.Message)
	// TickInterval is the wall-time length of one Tick (etcd --heartbeat-interval,
	// 100ms when zero). It converts lease TTLs to ticks; the runtime drives Tick.
	TickInterval time.Duration
	// ElectionTicks is etcd's election-timeout / heartbeat-interval (10 when zero).
	ElectionTicks int
	// SnapshotCount is the number of applied entries between raft snapshots
	// (etcd --snapshot-count, 10000 when zero).
	SnapshotCount uint64
	// CatchUpEntries is how many entries stay in the log after a snapshot for slow
	// followers (5000 when zero).
	CatchUpEntries uint64
	// StreamSnapshots leaves the backend image out of an outgoing MsgSnap's
	// Snapshot.Data: Output.Snapshots then carries the image opened, for the
	// runtime to stream from another goroutine, Close, and report with
	// ReportSnapshot, as etcd's snapshot sender does (the real server sets it;
	// false: Data holds the image and a lost one is retried after two election
	// timeouts).
	StreamSnapshots bool
	// MaxRequestBytes bounds an encoded request (1.5 MiB when zero).
	MaxRequestBytes int
	// MaxTxnOps bounds the operations of one txn (128 when zero).
	MaxTxnOps int
	// AuthTokenTTL is how long an unused simple auth token lives (etcd
	// --auth-token-ttl; 300s when zero).
	AuthTokenTTL time.Duration
	// AuthTokens, when set, issues and checks auth tokens instead of simple
	// tokens (etcd --auth-token jwt,...); a runtime's, never a simulation's.
	AuthTokens auth.Tokens
	// QuotaBackendBytes raises the NOSPACE alarm past this backend size (2 GiB
	// when zero, disabled when negative).
	QuotaBackendBytes int64
	// RequestTimeoutTicks answers a pending request with ErrTimeout after this many
	// ticks (5 s worth when zero).
	RequestTimeoutTicks int
	// Logger receives diagnostics; nil discards them.
	Logger *slog.Logger
}

// Validate checks the configuration and fills defaults.
func (c *Config) Validate() error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("store: config: Name is required"))
	}
	if c.FS == nil || c.WALDir == "" {
		errs = append(errs, errors.New("store: config: FS and WALDir are required"))
	}
	if c.DBPath == "" {
		errs = append(errs, errors.New("store: config: DBPath is required"))
	}
	if c.Clock == nil {
		errs = append(errs, errors.New("store: config: Clock is required"))
	}
	if c.TickInterval == 0 {
		c.TickInterval = 100 * time.Millisecond
	}
	if c.ElectionTicks == 0 {
		c.ElectionTicks = 10
	}
	if c.ElectionTicks < 5 {
		errs = append(errs, fmt.Errorf("store: config: ElectionTicks %d must be at least 5 heartbeats", c.ElectionTicks))
	}
	if c.SnapshotCount == 0 {
		c.SnapshotCount = 10000
	}
	if c.CatchUpEntries == 0 {
		c.CatchUpEntries = 5000
	}
	if c.MaxRequestBytes == 0 {
		c.MaxRequestBytes = 1536 * 1024
	}
	if c.MaxTxnOps == 0 {
		c.MaxTxnOps = 128
	}
	if c.QuotaBackendBytes == 0 {
		c.QuotaBackendBytes = 2 << 30
	}
	if c.RequestTimeoutTicks == 0 {
		c.RequestTimeoutTicks = int(5*time.Second/c.TickInterval) + 2*c.ElectionTicks
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.ID == 0 {
		for _, m := range c.InitialCluster {
			if m.Name == c.Name {
				c.ID = m.ID
			}
		}
		if c.ID == 0 && c.Name != "" {
			errs = append(errs, fmt.Errorf("store: config: member %q is not in the initial cluster", c.Name))
		}
	}
	if c.ClusterID == 0 && len(c.InitialCluster) > 0 {
		ids := make([]uint64, len(c.InitialCluster))
		for i, m := range c.InitialCluster {
			ids[i] = m.ID
		}
		c.ClusterID = membership.ClusterID(ids)
	}
	return errors.Join(errs...)
}

// minLeaseTTL is etcd's minimum lease TTL in seconds: ceil(1.5 × election timeout).
func (c *Config) minLeaseTTL() int64 {
	election := time.Duration(c.ElectionTicks) * c.TickInterval
	ttl := (3*election/2 + time.Second - 1) / time.Second
	return int64(ttl)
}
