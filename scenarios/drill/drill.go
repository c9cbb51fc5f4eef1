// Package drill runs havoc's named backup and recovery drills (save-restore,
// disaster-recovery, follower-catch-up, rolling-restart). Each drill is
// written once, as a script of steps over a small environment (Env and
// Cluster: start a cluster with the workload, sleep, wait until, save a
// snapshot, restore a cluster from it, stop, crash, restart or isolate a
// member, settle, check the history). Two environments run the scripts: the
// simulator (simEnv: deterministic per seed, virtual time) and real members
// (realEnv: OS processes or Docker containers of havoc or etcd, wall clock).
// A drill ends in a Report whose Verdict is scenarios.VerdictOK only if every
// property the drill names was checked and held.
package drill

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/havoclab/havoc/chaos"
	"github.com/havoclab/havoc/linearizability"
	"github.com/havoclab/havoc/scenarios"
)

// Drill names.
const (
	SaveRestore      = "save-restore"
	DisasterRecovery = "disaster-recovery"
	FollowerCatchUp  = "follower-catch-up"
	RollingRestart   = "rolling-restart"
)

// Names lists every drill.
var Names = []string{SaveRestore, DisasterRecovery, FollowerCatchUp, RollingRestart}

// Config configures a drill. Zero values take the documented defaults.
type Config struct {
	Seed    uint64
	Members int // 3 when zero
	// Duration is the load phase before (and for save-restore, around) the save
	// (10 s when zero).
	Duration time.Duration
	// After is how long the restored cluster serves the workload (5 s when zero).
	After time.Duration
	// Faults are drawn into the load phase of save-restore (none when empty).
	Faults   []chaos.Kind
	Workload scenarios.Workload
	// SnapshotCount is the members' raft snapshot interval (1000 when zero;
	// real members of follower-catch-up use 100).
	SnapshotCount uint64
	// CheckBudget bounds each linearizability check, in model steps per
	// partition (linearizability.DefaultBudget when zero).
	CheckBudget int64

	// tamper, if set, damages a restored backend before the restored cluster
	// starts (tests use it to prove a drill can fail).
	tamper func(dbPath string) error
}

// Validate fills defaults.
func (c *Config) Validate() error {
	if c.Members == 0 {
		c.Members = 3
	}
	if c.Duration == 0 {
		c.Duration = 10 * time.Second
	}
	if c.After == 0 {
		c.After = 5 * time.Second
	}
	if c.SnapshotCount == 0 {
		c.SnapshotCount = 1000
	}
	if c.CheckBudget == 0 {
		c.CheckBudget = linearizability.DefaultBudget
	}
	if c.Members < 1 || c.Members > 9 {
		return fmt.Errorf("drill: %d members (want 1 to 9)", c.Members)
	}
	if c.Workload.Mix == nil {
		// The keyspace check reads the first cluster's history at every
		// acknowledged revision, which a compaction removes: a drill's
		// default mix is its profile's without compactions.
		profile := c.Workload.Profile
		if profile == "" {
			profile = scenarios.ProfileEtcd
		}
		c.Workload.Mix = slices.DeleteFunc(slices.Clone(scenarios.Profiles[profile]), func(w scenarios.Weight) bool {
			return w.Kind == linearizability.KindCompact
		})
	}
	// The keyspace check knows single-key writes only: a drill sends no
	// multi-key txns.
	c.Workload.Mix = slices.DeleteFunc(slices.Clone(c.Workload.Mix), func(w scenarios.Weight) bool {
		return w.Kind == linearizability.KindTxn
	})
	return c.Workload.Validate()
}

// Run runs the named drill on backend b (the simulator when b.Kind is empty).
// It returns an error only when the drill could not run (a member did not
// start, a snapshot could not be taken); what the drill finds is in the
// report's Verdict.
func Run(ctx context.Context, name string, c Config, b Backend) (*Report, error) {
	script, ok := scripts[name]
	if !ok {
		return nil, fmt.Errorf("drill: unknown drill %q (want one of %s)", name, strings.Join(Names, ", "))
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	dir := b.Dir
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp(scenarios.TempDir(), "havoc-drill-"); err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	r := &Report{Name: name, Seed: c.Seed}
	env, err := newEnv(ctx, &c, b, r, dir)
	if err != nil {
		return nil, err
	}
	defer env.Close()
	if err := script(env, &c, r); err != nil {
		return nil, err
	}
	if r.Verdict == "" {
		r.Verdict = scenarios.VerdictOK
	}
	return r, nil
}

// scripts are the drills, by name.
var scripts = map[string]func(Env, *Config, *Report) error{
	SaveRestore:      func(e Env, c *Config, r *Report) error { return saveRestore(e, c, r, false) },
	DisasterRecovery: func(e Env, c *Config, r *Report) error { return saveRestore(e, c, r, true) },
	FollowerCatchUp:  followerCatchUp,
	RollingRestart:   rollingRestart,
}

// Env is where a drill runs: it starts clusters and says how the backend
// reports. simEnv and realEnv implement it.
type Env interface {
	// NewCluster starts a cluster as spec says, with the workload running. A
	// restored cluster that never serves fails the report and is nil.
	NewCluster(spec ClusterSpec) (Cluster, error)
	// Dir is a scratch directory for snapshot files.
	Dir() string
	// Virtual reports whether times are virtual (the report's *Virtual
	// fields) rather than wall-clock (its *Wall fields).
	Virtual() bool
	// MaxLeaderGap is the longest time without a leader a rolling restart
	// allows (the wall clock needs more slack than virtual time).
	MaxLeaderGap() time.Duration
	// CatchUpEntries is how many entries a leader keeps behind its snapshot
	// in a cluster started with ClusterSpec.CatchUp.
	CatchUpEntries() uint64
	// Close releases what the environment holds.
	Close()
}

// ClusterSpec says which cluster NewCluster starts.
type ClusterSpec struct {
	// Name is "c1" for the first cluster, "restored" for one restored from a
	// snapshot.
	Name string
	// ClientBase: client IDs start at ClientBase+1, so that written values
	// stay unique across clusters.
	ClientBase int
	// Faults are applied during the load phase (Config.Duration).
	Faults chaos.Schedule
	// RestoreFrom, if set, is a snapshot file every member is restored from
	// before it starts; the cluster's Keyspace is then what was restored.
	RestoreFrom string
	// PastFloor is the lowest revision the workload's past reads name (a
	// restored cluster's history starts at its snapshot).
	PastFloor int64
	// CatchUp asks for members that compact their log quickly (a real
	// backend lowers the snapshot count; etcd its catch-up entries).
	CatchUp bool
}

// Cluster is one running cluster with its workload, on its own clock. The
// fault verbs and the leader are the backend's own (chaos.Injector).
type Cluster interface {
	chaos.Injector
	// Now is the time on the cluster's clock (the history's clock for its
	// workload, from the start of the load).
	Now() time.Duration
	// Sleep lets d pass.
	Sleep(d time.Duration) error
	// Until waits up to limit for cond; on timeout the error carries cond's
	// last reason.
	Until(limit time.Duration, cond func() (bool, string)) error
	// Status is one member's raft position.
	Status(member string) (Status, error)
	// HashKV is one member's HashKV at its current revision.
	HashKV(member string) (hash uint32, rev int64, err error)
	// Stop takes a member down cleanly (a graceful stop; in the simulator a
	// crash that keeps synced writes).
	Stop(member string) error
	// HealAll ends every fault.
	HealAll() error
	// Save writes a snapshot of one member's backend to path (the leader, or
	// another member that is up).
	Save(path string) (Save, error)
	// WatchLeader samples the leader from now on; the returned func stops
	// it and returns the longest time without one.
	WatchLeader() func() time.Duration
	// Acknowledged counts the workload's acknowledged operations.
	Acknowledged() int
	// StopLoad stops the workload and waits for its outstanding requests.
	StopLoad(limit time.Duration) error
	// Settle stops the workload and waits until every member agrees (same
	// HashKV at one revision).
	Settle(limit time.Duration) error
	// History is the workload's history (complete once stopped).
	History() []linearizability.Operation
	// Keyspace is the restored keyspace of a restored cluster, as it was
	// before anything wrote to it.
	Keyspace() (Keyspace, error)
	// Err reports members that failed on their own.
	Err() error
	// Close stops the workload and the members; it may be called twice.
	Close()
}

// Status is a member's raft position.
type Status struct {
	Applied, Committed uint64
	// SnapshotIndex is the index of the member's latest raft snapshot, when
	// the backend reports it (SnapshotKnown: the simulator; a real member's
	// status has no such field).
	SnapshotIndex uint64
	SnapshotKnown bool
}

// Save is one snapshot taken by Cluster.Save.
type Save struct {
	Source string        // the member it came from
	Start  time.Duration // when the save began, on the cluster's clock
	Bytes  int64
	Wall   time.Duration // how long writing it took
	// Waited (simulator) is the virtual time from Start until a member held
	// every acknowledged write.
	Waited time.Duration
}

// faultSchedule draws save-restore's faults over the load phase; the same
// schedule on every backend.
func faultSchedule(c *Config) chaos.Schedule {
	return chaos.Generate(rand.New(rand.NewPCG(c.Seed, 0xd7111)), chaos.GenerateOptions{Members: c.Members, Duration: c.Duration, Kinds: c.Faults})
}

// others is members without m.
func others(members []string, m string) []string {
	return slices.DeleteFunc(slices.Clone(members), func(s string) bool { return s == m })
}
