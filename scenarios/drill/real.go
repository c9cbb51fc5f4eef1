package drill

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/havoclab/havoc/cluster"
	"github.com/havoclab/havoc/linearizability"
	"github.com/havoclab/havoc/scenarios"
	"github.com/havoclab/havoc/store/snapshot"
)

// The backends a drill runs on (Backend.Kind).
const (
	BackendSim     = "sim"     // the deterministic simulator (also when empty)
	BackendProcess = "process" // OS processes on 127.0.0.1 (cluster.Process)
	BackendDocker  = "docker"  // one container per member (cluster.Docker)
)

// Backend says where a drill's members run.
type Backend struct {
	// Kind is BackendSim (when empty), BackendProcess or BackendDocker.
	Kind string
	// Target is the store real members run (cluster.TargetHavoc when empty).
	Target cluster.Target
	// Binary is the harness binary (havoc) or the etcd binary. Required for
	// the process backend. For Docker it is optional and must be a static
	// Linux binary; when empty the image is built from the module (havoc) or
	// go.mod's pinned etcd, once per drill.
	Binary string
	// Etcdutl is the etcdutl binary that restores an etcd cluster, on the host
	// for both backends ("etcdutl" next to Binary, else on PATH, when empty).
	Etcdutl string
	// Docker is the Docker backend's configuration template (CPUs,
	// MemoryBytes, ModuleDir, CacheDir, Log, StartTimeout); the drill sets
	// Members, Target, Dir, Seed, Binary, ExtraArgs and Prepare. A RunID set
	// here becomes <RunID>-<cluster> per cluster (c1, restored), so that a
	// caller can find what a drill created by label.
	Docker cluster.DockerConfig
	// Dir keeps the clusters' run directories and the snapshot files; when
	// empty a temporary directory is used and removed at the end.
	Dir string
	// LazyFS puts the process backend's data dirs on a lazy file system
	// (cluster.ProcessConfig.LazyFS).
	LazyFS bool
}

// newEnv validates b and makes its environment.
func newEnv(ctx context.Context, c *Config, b Backend, r *Report, dir string) (Env, error) {
	if b.Kind == "" || b.Kind == BackendSim {
		return newSimEnv(c, r, dir), nil
	}
	if b.Target == "" {
		b.Target = cluster.TargetHavoc
	}
	switch {
	case b.Kind != BackendProcess && b.Kind != BackendDocker:
		return nil, fmt.Errorf("drill: unknown backend %q (want %s, %s or %s)", b.Kind, BackendSim, BackendProcess, BackendDocker)
	case b.Binary == "" && b.Kind == BackendProcess:
		return nil, fmt.Errorf("drill: no binary for target %s", b.Target)
	}
	if b.Target == cluster.TargetEtcd && b.Etcdutl == "" {
		b.Etcdutl = "etcdutl"
		if next := filepath.Join(filepath.Dir(b.Binary), "etcdutl"); b.Binary != "" && fileExists(next) {
			b.Etcdutl = next
		}
	}
	r.Backend = b.Kind + "/" + string(b.Target)
	e := &realEnv{ctx: ctx, c: c, b: b, r: r, dir: dir}
	return e, e.ensureImage()
}

// realEnv runs a drill on process or Docker clusters of havoc or etcd, on
// the wall clock. Snapshots are taken over gRPC (Maintenance.Snapshot, as
// `etcdctl snapshot save` does) and restored with store/snapshot.Restore
// (havoc) or `etcdutl snapshot restore` (etcd) into each member's data dir
// in the backend's Prepare hook (Docker then copies it into the member's
// volume); the restored keyspace is read over gRPC.
type realEnv struct {
	ctx context.Context
	c   *Config
	b   Backend
	r   *Report
	dir string
}

func (e *realEnv) Dir() string                 { return e.dir }
func (e *realEnv) Virtual() bool               { return false }
func (e *realEnv) MaxLeaderGap() time.Duration { return 5 * time.Second }

// CatchUpEntries is store.Config's default (which `harness serve` keeps)
// for havoc, and etcd's --snapshot-catchup-entries as catch-up clusters set it.
func (e *realEnv) CatchUpEntries() uint64 {
	if e.b.Target == cluster.TargetEtcd {
		return etcdCatchUpEntries
	}
	return 5000
}

const (
	etcdCatchUpEntries = 100
	// catchUpSnapshotCount is --snapshot-count of a catch-up cluster, so that
	// the leader compacts its log within seconds.
	catchUpSnapshotCount = 100
)

func (e *realEnv) Close() {}

// ensureImage, on Docker, gets the members' image once per drill (building
// the binary when Binary is empty), so that each cluster's Start finds it by
// hash instead of relinking the binary.
func (e *realEnv) ensureImage() error {
	if e.b.Kind != BackendDocker {
		return nil
	}
	dc := e.b.Docker
	dc.Target, dc.Binary = e.b.Target, e.b.Binary
	img, err := cluster.EnsureImage(e.ctx, dc)
	if err != nil {
		return err
	}
	e.b.Binary = img.Binary
	if img.Built {
		e.r.notef("built image %s (go build %s, image %s)", img.Tag, img.BinaryWall.Round(time.Millisecond), img.ImageWall.Round(time.Millisecond))
	}
	return nil
}

// backend is what a drill needs of a real backend; cluster.Process and
// cluster.Docker both are one.
type backend interface {
	cluster.Backend
	// Client is a client bound to one member that never retries on its own.
	Client(member string) (*clientv3.Client, error)
	Leader() string
	// Stop stops member gracefully (SIGTERM).
	Stop(member string) error
	Err() error
}

var (
	_ backend = (*cluster.Process)(nil)
	_ backend = (*cluster.Docker)(nil)
)

// NewCluster starts a cluster in dir/<spec.Name>. A restored cluster must
// serve a linearizable read within 30 s (ServeWall, from the launch); its
// Keyspace is taken at that read, before its workload starts.
func (e *realEnv) NewCluster(spec ClusterSpec) (Cluster, error) {
	snapCount := e.c.SnapshotCount
	var extra []string
	if spec.CatchUp {
		snapCount = catchUpSnapshotCount
		e.c.SnapshotCount = snapCount
		if e.b.Target == cluster.TargetEtcd {
			extra = []string{"--snapshot-catchup-entries", fmt.Sprint(etcdCatchUpEntries)}
		}
	}
	var prepare func(cluster.ProcessSpec) error
	if spec.RestoreFrom != "" {
		prepare = func(ps cluster.ProcessSpec) error {
			start := time.Now()
			for _, m := range ps.Members {
				if err := e.restoreMember(spec.RestoreFrom, ps, m); err != nil {
					return err
				}
			}
			e.r.RestoreWall = time.Since(start)
			return nil
		}
	}
	launch := time.Now()
	b, err := e.start(spec.Name, append([]string{"--snapshot-count", fmt.Sprint(snapCount)}, extra...), prepare)
	if err != nil {
		return nil, err
	}
	rc := &realCluster{backend: b, ctx: e.ctx, start: time.Now()}
	if spec.RestoreFrom != "" {
		rc.start = launch
		err = pollUntil(e.ctx, 30*time.Second, func() (bool, string) {
			k, err := openClientKeyspace(e.ctx, b)
			if err != nil {
				return false, err.Error()
			}
			rc.keyspace = k
			return true, ""
		})
		if err != nil {
			e.r.fail(scenarios.VerdictNoLiveness, "the restored cluster never served a linearizable read: %v", err)
			_ = b.Close()
			return nil, nil
		}
		e.r.ServeWall = time.Since(launch)
	}
	wl := e.c.Workload
	wl.PastFloor = spec.PastFloor
	rc.load = scenarios.StartRealLoad(e.ctx, b, e.c.Seed, wl, spec.ClientBase, rc.start, spec.Faults, e.c.Duration)
	rc.notef = e.r.notef
	return rc, nil
}

// start starts a cluster on the configured backend in dir/sub; prepare, if
// set, fills the data dirs first. A failed Start has closed the cluster.
func (e *realEnv) start(sub string, args []string, prepare func(cluster.ProcessSpec) error) (backend, error) {
	dir := filepath.Join(e.dir, sub)
	var b backend
	var err error
	if e.b.Kind == BackendDocker {
		dc := e.b.Docker
		dc.Members, dc.Target, dc.Dir, dc.Seed, dc.Binary = e.c.Members, e.b.Target, dir, e.c.Seed, e.b.Binary
		dc.ExtraArgs, dc.Prepare = args, prepare
		if dc.RunID != "" {
			dc.RunID += "-" + sub
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		b, err = cluster.NewDocker(dc)
	} else {
		b, err = cluster.NewProcess(cluster.ProcessConfig{
			Target: e.b.Target, Binary: e.b.Binary, Members: e.c.Members, Dir: dir,
			Seed: e.c.Seed, ExtraArgs: args, Prepare: prepare, LazyFS: e.b.LazyFS,
		})
	}
	if err != nil {
		return nil, err
	}
	if err := b.Start(e.ctx); err != nil {
		return nil, err
	}
	return b, nil
}

// restoreMember writes one member's data dir from the snapshot.
func (e *realEnv) restoreMember(snapPath string, spec cluster.ProcessSpec, m cluster.MemberSpec) error {
	if e.b.Target == cluster.TargetHavoc {
		err := snapshot.Restore(snapshot.RestoreOptions{
			SnapshotPath: snapPath, DataDir: m.DataDir, Name: m.Name, InitialCluster: spec.InitialCluster,
			InitialClusterToken: spec.Token, InitialAdvertisePeerURLs: []string{m.PeerURL},
		})
		if err == nil && e.c.tamper != nil {
			err = e.c.tamper(snapshot.DBPath(m.DataDir))
		}
		return err
	}
	out, err := exec.Command(e.b.Etcdutl, "snapshot", "restore", snapPath,
		"--name", m.Name, "--data-dir", m.DataDir, "--initial-cluster", spec.InitialCluster,
		"--initial-cluster-token", spec.Token, "--initial-advertise-peer-urls", m.PeerURL).CombinedOutput()
	if err != nil {
		return fmt.Errorf("etcdutl snapshot restore %s: %w: %s", m.Name, err, out)
	}
	return nil
}

// realCluster is a running real cluster with its workload; its clock (Now)
// is the workload history's, from the load's start (a restored cluster's
// from its launch, before the restore).
type realCluster struct {
	backend
	ctx      context.Context
	start    time.Time
	load     *scenarios.RealLoad
	stopped  []linearizability.Operation
	keyspace *clientKeyspace
	notef    func(string, ...any)
	closed   bool
	// isolated are the members cut off by Partition's first side, with the
	// size of their logs when the network healed (evidence of a snapshot
	// catch-up, noted by Settle).
	isolated []string
	logAt    map[string]int64
}

// Partition cuts a from b and remembers a.
func (c *realCluster) Partition(a, b []string) error {
	c.isolated = append(c.isolated, a...)
	return c.backend.Partition(a, b)
}

// HealNetwork heals every link, first noting where the isolated members'
// logs end.
func (c *realCluster) HealNetwork() error {
	c.logAt = map[string]int64{}
	for _, m := range c.isolated {
		if st, err := os.Stat(c.logPath(m)); err == nil {
			c.logAt[m] = st.Size()
		}
	}
	return c.backend.HealNetwork()
}

func (c *realCluster) logPath(m string) string { return filepath.Join(c.Dir(), m+".log") }

// noteLogs notes up to 3 lines that mention a snapshot in each healed
// member's log since the heal (evidence of the catch-up path).
func (c *realCluster) noteLogs() {
	for _, m := range sortedKeys(c.logAt) {
		b, _ := os.ReadFile(c.logPath(m))
		var lines []string
		for _, line := range strings.Split(string(b[min(c.logAt[m], int64(len(b))):]), "\n") {
			if strings.Contains(strings.ToLower(line), "snapshot") && len(lines) < 3 {
				lines = append(lines, line[:min(len(line), 200)])
			}
		}
		if len(lines) > 0 {
			c.notef("%s log after the heal: %s", m, strings.Join(lines, " | "))
		}
	}
	c.logAt = nil
}

func (c *realCluster) HealAll() error              { return c.backend.HealAll(c.ctx) }
func (c *realCluster) Sleep(d time.Duration) error { return sleepCtx(c.ctx, d) }

// Now is truncated to milliseconds: reports read better, and an earlier
// save start only weakens checkRestored's "acknowledged before the save".
func (c *realCluster) Now() time.Duration { return time.Since(c.start).Truncate(time.Millisecond) }

func (c *realCluster) Until(limit time.Duration, cond func() (bool, string)) error {
	return pollUntil(c.ctx, limit, cond)
}

func (c *realCluster) Status(m string) (Status, error) {
	cli, err := c.backend.Client(m)
	if err != nil {
		return Status{}, err
	}
	ctx, cancel := context.WithTimeout(c.ctx, time.Second)
	defer cancel()
	st, err := cli.Status(ctx, c.backend.ClientURL(m))
	if err != nil {
		return Status{}, err
	}
	return Status{Applied: st.RaftAppliedIndex, Committed: st.RaftIndex}, nil
}

func (c *realCluster) HashKV(m string) (uint32, int64, error) {
	cli, err := c.backend.Client(m)
	if err != nil {
		return 0, 0, err
	}
	ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
	defer cancel()
	resp, err := cli.HashKV(ctx, c.backend.ClientURL(m), 0)
	if err != nil {
		return 0, 0, err
	}
	return resp.Hash, resp.Header.GetRevision(), nil
}

// Save streams a snapshot from the leader into path, as etcdctl does, trying
// up to 5 times. Its Start is when the successful attempt began: before it,
// a linearizable read on the source makes the source apply every write
// acknowledged so far, so those must all be in the snapshot.
func (c *realCluster) Save(path string) (Save, error) {
	var lastErr error
	for attempt := range 5 {
		if attempt > 0 {
			if err := sleepCtx(c.ctx, 500*time.Millisecond); err != nil {
				return Save{}, err
			}
		}
		src := c.backend.Leader()
		if src == "" {
			lastErr = errors.New("no leader")
			continue
		}
		sv := Save{Source: src, Start: c.Now()}
		start := time.Now()
		n, err := saveFrom(c.ctx, c.backend, src, path)
		if err != nil {
			lastErr = fmt.Errorf("from %s: %w", src, err)
			continue
		}
		sv.Bytes, sv.Wall = n, time.Since(start)
		c.notef("saved from %s at %s: %d bytes in %s", src, sv.Start, n, sv.Wall.Round(time.Millisecond))
		return sv, nil
	}
	return Save{}, fmt.Errorf("drill: no snapshot after 5 attempts: %w", lastErr)
}

// saveFrom is one save attempt: a barrier read, then etcdctl's save.
func saveFrom(ctx context.Context, b backend, member, path string) (int64, error) {
	cli, err := b.Client(member)
	if err != nil {
		return 0, err
	}
	bctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	_, err = cli.Get(bctx, "drill/barrier")
	cancel()
	if err != nil {
		return 0, fmt.Errorf("barrier read: %w", err)
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rc, err := cli.Snapshot(sctx)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	return snapshot.SaveStream(rc, path)
}

func (c *realCluster) Acknowledged() int {
	h := c.stopped
	if h == nil {
		h = c.load.History()
	}
	n := 0
	for _, op := range h {
		if op.Outcome == linearizability.OutcomeOK {
			n++
		}
	}
	return n
}

// StopLoad ends the sessions; each finishes its outstanding request. The
// fault schedule's log joins the report's notes.
func (c *realCluster) StopLoad(time.Duration) error {
	if c.stopped == nil {
		c.stopped = c.load.Stop()
		for _, f := range c.load.FaultLog() {
			c.notef("fault %s", f)
		}
	}
	return nil
}

// Settle waits until the members agree under load, stops the load and
// waits until they agree again.
func (c *realCluster) Settle(limit time.Duration) error {
	c.noteLogs()
	if c.stopped == nil {
		if err := c.converge(limit); err != nil {
			_ = c.StopLoad(limit)
			return fmt.Errorf("under load: %w", err)
		}
	}
	_ = c.StopLoad(limit)
	return c.converge(limit)
}

func (c *realCluster) converge(limit time.Duration) error {
	var cv scenarios.Convergence
	return pollUntil(c.ctx, limit, func() (bool, string) { return cv.Check(c.ctx, c.backend) })
}

func (c *realCluster) History() []linearizability.Operation {
	if c.stopped != nil {
		return c.stopped
	}
	return c.load.History()
}

// WatchLeader asks for the leader every 100 ms.
func (c *realCluster) WatchLeader() func() time.Duration {
	ctx, cancel := context.WithCancel(c.ctx)
	var wg sync.WaitGroup
	var worst time.Duration
	wg.Go(func() {
		last := time.Now()
		for ctx.Err() == nil {
			if c.backend.Leader() != "" {
				last = time.Now()
			} else if gap := time.Since(last); gap > worst {
				worst = gap
			}
			_ = sleepCtx(ctx, 100*time.Millisecond)
		}
	})
	return func() time.Duration { cancel(); wg.Wait(); return worst.Round(time.Millisecond) }
}

func (c *realCluster) Keyspace() (Keyspace, error) {
	if c.keyspace == nil {
		return nil, errors.New("drill: not a restored cluster")
	}
	return c.keyspace, nil
}

// Close stops the load (if running) and the members; it may be called twice.
func (c *realCluster) Close() {
	if c.closed {
		return
	}
	c.closed = true
	_ = c.StopLoad(0)
	_ = c.backend.Close()
}

// clientKeyspace is a restored real cluster as checkRestored reads it: the
// revision and live leases as the first linearizable read found them, and
// serializable ranges at past revisions from one member (what a restored
// member holds at revisions <= R does not change when the workload writes).
type clientKeyspace struct {
	ctx    context.Context
	kv     pb.KVClient
	rev    int64
	leases map[int64]bool
}

func openClientKeyspace(ctx context.Context, b backend) (*clientKeyspace, error) {
	cli, err := b.Client(b.Members()[0])
	if err != nil {
		return nil, err
	}
	conn := cli.ActiveConnection()
	k := &clientKeyspace{ctx: ctx, kv: pb.NewKVClient(conn), leases: map[int64]bool{}}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	resp, err := k.kv.Range(rctx, &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, CountOnly: true})
	if err != nil {
		return nil, err
	}
	k.rev = resp.GetHeader().GetRevision()
	ls, err := pb.NewLeaseClient(conn).LeaseLeases(rctx, &pb.LeaseLeasesRequest{})
	if err != nil {
		return nil, fmt.Errorf("lease leases: %w", err)
	}
	for _, l := range ls.Leases {
		k.leases[l.ID] = true
	}
	return k, nil
}

func (k *clientKeyspace) Rev() (int64, error)             { return k.rev, nil }
func (k *clientKeyspace) Leases() (map[int64]bool, error) { return k.leases, nil }
func (k *clientKeyspace) Close() error                    { return nil }

func (k *clientKeyspace) Range(key, end []byte, rev int64) ([]*mvccpb.KeyValue, error) {
	ctx, cancel := context.WithTimeout(k.ctx, 5*time.Second)
	defer cancel()
	resp, err := k.kv.Range(ctx, &pb.RangeRequest{Key: key, RangeEnd: end, Revision: rev, Serializable: true})
	if err != nil {
		return nil, err
	}
	return resp.Kvs, nil
}

// sleepCtx sleeps for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// pollUntil calls cond every 100 ms until it holds, limit passes (the last
// reason is returned as an error) or ctx ends.
func pollUntil(ctx context.Context, limit time.Duration, cond func() (bool, string)) error {
	deadline := time.Now().Add(limit)
	for {
		ok, why := cond()
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s: %s", limit, why)
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
