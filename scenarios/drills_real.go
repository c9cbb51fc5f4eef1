package scenarios

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/havoclab/havoc/chaos"
	"github.com/havoclab/havoc/cluster"
	"github.com/havoclab/havoc/linearizability"
	"github.com/havoclab/havoc/store/snapshot"
)

// The real drills run the same four drills on OS processes (cluster.Process)
// or Docker containers (cluster.Docker) against havoc (`harness serve`) or a
// real etcd, on the wall clock. The drill code is the same for both backends
// (realCluster); only newCluster tells them apart. A restore writes each
// member's data dir on the host in the backend's Prepare hook; the Docker
// backend then copies it into the member's volume before the first start. They use
// RunReal's client sessions and fault loop, take snapshots over gRPC
// (Maintenance.Snapshot, as `etcdctl snapshot save` does), restore with
// store/snapshot.Restore (havoc) or `etcdutl snapshot restore` (etcd) into a
// fresh cluster, and prove the restored keyspace with checkRestored, the
// check the simulator drills use, reading the restored cluster over gRPC.
//
// In a real drill's DrillReport the wall-clock fields are set: SaveWall,
// RestoreWall, ServeWall, RecoveryWall; the virtual ones stay zero.

// realCatchUpEntries is store.Config's default CatchUpEntries, which `harness
// serve` keeps; etcd members of the follower-catch-up drill get
// --snapshot-catchup-entries etcdCatchUpEntries.
const (
	realCatchUpEntries = 5000
	etcdCatchUpEntries = 100
	// catchUpSnapshotCount is --snapshot-count in the follower-catch-up drill,
	// so that the leader compacts its log within seconds.
	catchUpSnapshotCount = 100
)

// The backends RunRealDrill runs on (RealDrillConfig.Backend).
const (
	BackendProcess = "process" // OS processes on 127.0.0.1 (cluster.Process)
	BackendDocker  = "docker"  // one container per member (cluster.Docker)
)

// RealDrillConfig configures RunRealDrill.
type RealDrillConfig struct {
	DrillConfig
	// Backend is where the members run: BackendProcess (when empty) or
	// BackendDocker.
	Backend string
	// Target is the store the members run (cluster.TargetHavoc when empty).
	Target cluster.Target
	// Binary is the harness binary (havoc) or the etcd binary. Required for
	// the process backend. For Docker it is optional and must be a static
	// Linux binary; when empty the image is built from the module (havoc) or
	// go.mod's pinned etcd, once per drill.
	Binary string
	// Etcdutl is the etcdutl binary that restores an etcd cluster, on the host
	// for both backends ("etcdutl" next to Binary, else on PATH, when empty).
	// Unused for havoc.
	Etcdutl string
	// Docker is the Docker backend's configuration template (CPUs,
	// MemoryBytes, ModuleDir, CacheDir, Log, StartTimeout); the drill sets
	// Members, Target, Dir, Seed, Binary, ExtraArgs and Prepare. A RunID
	// set here becomes <RunID>-<cluster> per cluster (c1, restored), so that a
	// caller can find what a drill created by label; empty: random per
	// cluster. Unused for the process backend.
	Docker cluster.DockerConfig
	// Dir keeps the clusters' run directories and the snapshot files; when
	// empty a temporary directory is used and removed at the end.
	Dir string
}

// Validate fills defaults.
func (c *RealDrillConfig) Validate() error {
	if c.Target == "" {
		c.Target = cluster.TargetHavoc
	}
	if c.Backend == "" {
		c.Backend = BackendProcess
	}
	switch {
	case c.Backend != BackendProcess && c.Backend != BackendDocker:
		return fmt.Errorf("scenarios: real drill: unknown backend %q (want %s or %s)", c.Backend, BackendProcess, BackendDocker)
	case c.Binary == "" && c.Backend == BackendProcess:
		return fmt.Errorf("scenarios: real drill: no binary for target %s", c.Target)
	}
	if c.Target == cluster.TargetEtcd && c.Etcdutl == "" {
		c.Etcdutl = "etcdutl"
		if c.Binary != "" {
			if next := filepath.Join(filepath.Dir(c.Binary), "etcdutl"); fileExists(next) {
				c.Etcdutl = next
			}
		}
	}
	return c.DrillConfig.Validate()
}

// RunRealDrill runs the named drill on process or Docker clusters (Backend).
// It returns an error
// only when the drill could not run (a member did not start, a snapshot could
// not be taken); what the drill finds is in the report's Verdict.
func RunRealDrill(ctx context.Context, name string, c RealDrillConfig) (*DrillReport, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	dir := c.Dir
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp(tmpfsDir(), "havoc-real-drill-"); err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	d := &realDrill{c: c, dir: dir, r: &DrillReport{Name: name, Seed: c.Seed, Backend: c.Backend + "/" + string(c.Target)}}
	if !slices.Contains(DrillNames, name) {
		return nil, fmt.Errorf("scenarios: unknown drill %q (want one of %s)", name, strings.Join(DrillNames, ", "))
	}
	if err := d.ensureImage(ctx); err != nil {
		return nil, err
	}
	var err error
	switch name {
	case DrillSaveRestore:
		err = d.saveRestore(ctx, false)
	case DrillDisasterRecovery:
		err = d.saveRestore(ctx, true)
	case DrillFollowerCatchUp:
		err = d.followerCatchUp(ctx)
	case DrillRollingRestart:
		err = d.rollingRestart(ctx)
	default:
		return nil, fmt.Errorf("scenarios: unknown drill %q (want one of %s)", name, strings.Join(DrillNames, ", "))
	}
	if err != nil {
		return nil, err
	}
	if d.r.Verdict == "" {
		d.r.Verdict = VerdictOK
	}
	return d.r, nil
}

// realDrill is one real drill in progress.
type realDrill struct {
	c   RealDrillConfig
	dir string
	r   *DrillReport
}

// realCluster is what the real drills need of a backend; cluster.Process and
// cluster.Docker both are one.
type realCluster interface {
	cluster.Backend
	// Client is a client bound to one member that never retries on its own.
	Client(member string) (*clientv3.Client, error)
	// Leader is the current leader's name, "" when none answers.
	Leader() string
	// Stop stops member gracefully (SIGTERM); Restart starts it again.
	Stop(member string) error
	// Err reports members that exited without the harness's doing.
	Err() error
}

var (
	_ realCluster = (*cluster.Process)(nil)
	_ realCluster = (*cluster.Docker)(nil)
)

// ensureImage, on Docker, gets the members' image once per drill (building
// the binary when Binary is empty), so that each cluster's Start finds it by
// hash instead of relinking the binary.
func (d *realDrill) ensureImage(ctx context.Context) error {
	if d.c.Backend != BackendDocker {
		return nil
	}
	dc := d.c.Docker
	dc.Target, dc.Binary = d.c.Target, d.c.Binary
	img, err := cluster.EnsureImage(ctx, dc)
	if err != nil {
		return err
	}
	d.c.Binary = img.Binary
	if img.Built {
		d.r.notef("built image %s (go build %s, image %s)", img.Tag, img.BinaryWall.Round(time.Millisecond), img.ImageWall.Round(time.Millisecond))
	}
	return nil
}

// newCluster starts a cluster on the configured backend in dir/sub; prepare,
// if set, fills the data dirs first (a restore). A failed Start has closed
// the cluster.
func (d *realDrill) newCluster(ctx context.Context, sub string, extra []string, prepare func(cluster.ProcessSpec) error) (realCluster, error) {
	args := append([]string{"--snapshot-count", fmt.Sprint(d.c.SnapshotCount)}, extra...)
	dir := filepath.Join(d.dir, sub)
	var b realCluster
	var err error
	if d.c.Backend == BackendDocker {
		dc := d.c.Docker
		dc.Members, dc.Target, dc.Dir, dc.Seed, dc.Binary = d.c.Members, d.c.Target, dir, d.c.Seed, d.c.Binary
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
			Target: d.c.Target, Binary: d.c.Binary, Members: d.c.Members, Dir: dir,
			Seed: d.c.Seed, ExtraArgs: args, Prepare: prepare,
		})
	}
	if err != nil {
		return nil, err
	}
	if err := b.Start(ctx); err != nil {
		return nil, err
	}
	return b, nil
}

// realLoad runs RunReal's client sessions (and optionally a fault schedule)
// on a backend until stop.
type realLoad struct {
	r      *realRun
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startLoad starts the workload of c on b with client IDs from clientBase+1
// (values stay unique across clusters) and applies faults until faultsEnd.
// Every acknowledged write counts in r.served.
func startLoad(ctx context.Context, b cluster.Backend, c *DrillConfig, clientBase int, faults chaos.Schedule, faultsEnd time.Duration) *realLoad {
	l := &realLoad{r: &realRun{c: Config{Seed: c.Seed, Workload: c.Workload}, b: b, start: time.Now(), rec: &linearizability.Recorder{}}}
	l.r.healAt.Store(1)
	ctx, l.cancel = context.WithCancel(ctx)
	members := b.Members()
	for i := range c.Workload.Clients {
		l.wg.Go(func() { l.r.client(ctx, clientBase+i+1, members) })
	}
	if len(faults) > 0 {
		l.wg.Go(func() { l.r.faults(ctx, &Result{Schedule: faults}, l.r.start.Add(faultsEnd)) })
	}
	return l
}

// elapsed is the time since the load started, on the history's clock.
func (l *realLoad) elapsed() time.Duration { return time.Duration(l.r.now()) }

// stop ends the sessions (each finishes its outstanding request) and returns
// the history.
func (l *realLoad) stop() []linearizability.Operation {
	l.r.stopping.Store(true)
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(l.r.c.Workload.Timeout + 5*time.Second):
		l.cancel()
		<-done
	}
	l.cancel()
	return l.r.rec.Operations()
}

func (l *realLoad) faultLog() []string {
	l.r.mu.Lock()
	defer l.r.mu.Unlock()
	var out []string
	for _, f := range l.r.faultLog {
		out = append(out, fmt.Sprintf("%s %s", f.at.Sub(l.r.start).Round(time.Millisecond), f.line))
	}
	return out
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

// converge waits until every member reports the same HashKV at one revision.
func converge(ctx context.Context, b cluster.Backend, limit time.Duration) error {
	var cv convergence
	return pollUntil(ctx, limit, func() (bool, string) { return cv.check(ctx, b, b.Members()) })
}

// saveReal streams a snapshot from the leader (or, without one, the first
// member that answers) into path, as etcdctl does, and sets the report's
// snapshot fields. It returns the history time the save began: before it, a
// linearizable read on the source makes the source apply every write
// acknowledged so far, so those must all be in the snapshot.
func (d *realDrill) saveReal(ctx context.Context, p realCluster, l *realLoad, path string) (time.Duration, string, error) {
	var lastErr error
	for attempt := range 5 {
		if attempt > 0 {
			if err := sleepCtx(ctx, 500*time.Millisecond); err != nil {
				return 0, "", err
			}
		}
		src := p.Leader()
		if src == "" {
			lastErr = errors.New("no leader")
			continue
		}
		saveStart := time.Duration(0)
		if l != nil {
			saveStart = l.elapsed()
		}
		start := time.Now()
		size, err := saveFrom(ctx, p, src, path)
		if err != nil {
			lastErr = fmt.Errorf("from %s: %w", src, err)
			continue
		}
		d.r.SaveWall += time.Since(start)
		if err := snapshot.Verify(path); err != nil {
			return 0, "", fmt.Errorf("scenarios: drill: the fresh snapshot does not verify: %w", err)
		}
		st, err := snapshot.Status(path)
		if err != nil {
			return 0, "", fmt.Errorf("scenarios: drill: status of the fresh snapshot: %w", err)
		}
		d.r.SnapshotBytes, d.r.SnapshotRevision, d.r.SaveAt = size, st.Revision, saveStart
		return saveStart, src, nil
	}
	return 0, "", fmt.Errorf("scenarios: drill: no snapshot after 5 attempts: %w", lastErr)
}

// saveFrom is one save attempt: barrier read, stream into path.part, require
// the sha256 trailer, fsync, rename.
func saveFrom(ctx context.Context, p realCluster, member, path string) (int64, error) {
	cli, err := p.Client(member)
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
	part := path + ".part"
	f, err := os.Create(part)
	if err != nil {
		return 0, err
	}
	defer os.Remove(part)
	n, err := io.Copy(f, rc)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, err
	}
	if n%512 != 32 {
		return 0, fmt.Errorf("%w: %d bytes", snapshot.ErrMissingHash, n)
	}
	return n, os.Rename(part, path)
}

// restoreCluster restores snapPath into every member of a fresh cluster,
// starts it and waits until it serves a linearizable read. It returns the
// cluster and the keyspace view for checkRestored (revision and leases taken
// at that first read, before anything writes), or nil with the report failed.
func (d *realDrill) restoreCluster(ctx context.Context, snapPath string) (realCluster, *clientKeyspace, error) {
	prepare := func(spec cluster.ProcessSpec) error {
		start := time.Now()
		for _, m := range spec.Members {
			if err := d.restoreMember(snapPath, spec, m); err != nil {
				return err
			}
		}
		d.r.RestoreWall = time.Since(start)
		return nil
	}
	launch := time.Now()
	p, err := d.newCluster(ctx, "restored", nil, prepare)
	if err != nil {
		return nil, nil, err
	}
	launch = launch.Add(d.r.RestoreWall)
	var ks *clientKeyspace
	err = pollUntil(ctx, 30*time.Second, func() (bool, string) {
		k, err := openClientKeyspace(ctx, p)
		if err != nil {
			return false, err.Error()
		}
		ks = k
		return true, ""
	})
	if err != nil {
		d.r.fail(VerdictNoLiveness, "the restored cluster never served a linearizable read: %v", err)
		_ = p.Close()
		return nil, nil, nil
	}
	d.r.ServeWall = time.Since(launch)
	return p, ks, nil
}

// restoreMember writes one member's data dir from the snapshot.
func (d *realDrill) restoreMember(snapPath string, spec cluster.ProcessSpec, m cluster.MemberSpec) error {
	if d.c.Target == cluster.TargetHavoc {
		err := snapshot.Restore(snapshot.RestoreOptions{
			SnapshotPath: snapPath, DataDir: m.DataDir, Name: m.Name, InitialCluster: spec.InitialCluster,
			InitialClusterToken: spec.Token, InitialAdvertisePeerURLs: []string{m.PeerURL},
		})
		if err == nil && d.c.tamper != nil {
			err = d.c.tamper(snapshot.DBPath(m.DataDir))
		}
		return err
	}
	out, err := exec.Command(d.c.Etcdutl, "snapshot", "restore", snapPath,
		"--name", m.Name, "--data-dir", m.DataDir, "--initial-cluster", spec.InitialCluster,
		"--initial-cluster-token", spec.Token, "--initial-advertise-peer-urls", m.PeerURL).CombinedOutput()
	if err != nil {
		return fmt.Errorf("etcdutl snapshot restore %s: %w: %s", m.Name, err, out)
	}
	return nil
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

func openClientKeyspace(ctx context.Context, p realCluster) (*clientKeyspace, error) {
	cli, err := p.Client(p.Members()[0])
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

func (k *clientKeyspace) Rev() (int64, error) { return k.rev, nil }

func (k *clientKeyspace) Range(key, end []byte, rev int64) ([]*mvccpb.KeyValue, error) {
	ctx, cancel := context.WithTimeout(k.ctx, 5*time.Second)
	defer cancel()
	resp, err := k.kv.Range(ctx, &pb.RangeRequest{Key: key, RangeEnd: end, Revision: rev, Serializable: true})
	if err != nil {
		return nil, err
	}
	return resp.Kvs, nil
}

func (k *clientKeyspace) Leases() (map[int64]bool, error) { return k.leases, nil }

// checkHistory runs the checker over ops (after a preamble) and fails the
// report with what as the history's name.
func (d *realDrill) checkHistory(what string, preamble, ops []linearizability.Operation) error {
	if len(preamble) > 0 {
		ops = prependHistory(preamble, ops)
	}
	cr, err := linearizability.Check(ops, linearizability.Options{Budget: d.c.CheckBudget})
	if err != nil {
		return err
	}
	ok := 0
	for _, op := range ops {
		if op.Outcome == linearizability.OutcomeOK {
			ok++
		}
	}
	d.r.notef("%s: %d operations (%d acknowledged) %s", what, len(ops), ok, cr.Verdict)
	if cr.Verdict != linearizability.VerdictOK {
		d.r.fail(verdictOf(cr), "%s: %s", what, cr.Reason)
	}
	return nil
}

// backendErr fails the report if a member exited on its own.
func (d *realDrill) backendErr(what string, p realCluster) bool {
	if err := p.Err(); err != nil {
		d.r.fail(VerdictFailed, "%s: %v", what, err)
		return true
	}
	return false
}

// saveRestore is save-restore and (lose=true) disaster-recovery on a real
// backend:
//  1. cluster 1 runs the workload (with faults for save-restore); at
//     Duration/2 the leader's snapshot is saved over gRPC (revision R);
//  2. save-restore: the load continues to Duration, everything heals and the
//     members must converge; disaster-recovery: at 3/4 Duration a majority is
//     killed for good, the load stops and cluster 1 is gone;
//  3. a fresh cluster is restored from the file and must serve a linearizable
//     read; its workload starts (disaster-recovery's recovery time ends at its
//     first acknowledged write);
//  4. the restored keyspace is compared with cluster 1's history
//     (checkRestored), both histories are checked, and the restored cluster
//     must converge.
func (d *realDrill) saveRestore(ctx context.Context, lose bool) error {
	c := &d.c.DrillConfig
	p1, err := d.newCluster(ctx, "c1", nil, nil)
	if err != nil {
		return err
	}
	defer p1.Close()
	var faults chaos.Schedule
	if !lose {
		faults = Plan(Config{Seed: c.Seed, Members: c.Members, Duration: c.Duration, Faults: c.Faults})
	}
	l1 := startLoad(ctx, p1, c, 0, faults, c.Duration)
	if err := sleepCtx(ctx, c.Duration/2); err != nil {
		l1.stop()
		return err
	}
	snapPath := filepath.Join(d.dir, "backup.snap")
	saveStart, src, err := d.saveReal(ctx, p1, l1, snapPath)
	if err != nil {
		l1.stop()
		return err
	}
	d.r.notef("saved from %s at %s: %d bytes at revision %d in %s", src, saveStart.Round(time.Millisecond), d.r.SnapshotBytes, d.r.SnapshotRevision, d.r.SaveWall.Round(time.Millisecond))
	var lossAt time.Time
	if lose {
		if err := sleepCtx(ctx, c.Duration*3/4-l1.elapsed()); err != nil {
			l1.stop()
			return err
		}
		lossAt = time.Now()
		names := p1.Members()[:c.Members/2+1]
		for _, name := range names {
			_ = p1.Crash(name, false)
		}
		d.r.notef("killed %s for good at %s", strings.Join(names, ","), l1.elapsed().Round(time.Millisecond))
	} else {
		if err := sleepCtx(ctx, c.Duration-l1.elapsed()); err != nil {
			l1.stop()
			return err
		}
		_ = p1.HealAll(ctx)
		if err := converge(ctx, p1, 30*time.Second); err != nil {
			l1.stop()
			d.r.fail(VerdictNoLiveness, "cluster 1 did not converge after the heal: %v", err)
			return nil
		}
	}
	// After a loss the restore starts at once, while cluster 1's sessions wait
	// out their pending requests.
	h1c := make(chan []linearizability.Operation, 1)
	if lose {
		go func() { h1c <- l1.stop() }()
	} else {
		h1c <- l1.stop()
	}
	p2, ks, err := d.restoreCluster(ctx, snapPath)
	h1 := <-h1c
	for _, f := range l1.faultLog() {
		d.r.notef("fault %s", f)
	}
	if err != nil || p2 == nil {
		return err
	}
	defer p2.Close()
	if d.backendErr("cluster 1", p1) {
		return nil
	}
	_ = p1.Close() // for disaster-recovery, the survivors go too: the cluster was rebuilt from the backup
	l2 := startLoad(ctx, p2, c, 100, nil, 0)
	err = pollUntil(ctx, 30*time.Second, func() (bool, string) {
		return l2.r.served.Load() > 0, "no write acknowledged by the restored cluster"
	})
	if err != nil {
		l2.stop()
		d.r.fail(VerdictNoLiveness, "restored cluster: %v", err)
		return nil
	}
	if lose {
		d.r.RecoveryWall = time.Since(lossAt)
	}
	// The keyspace check reads revisions <= R only, so the load may go on.
	preamble, err := checkRestored(ks, h1, saveStart, d.r, lose)
	if err != nil {
		l2.stop()
		return err
	}
	if err := sleepCtx(ctx, c.After); err != nil {
		l2.stop()
		return err
	}
	convErr := converge(ctx, p2, 30*time.Second)
	h2 := l2.stop()
	if d.r.Verdict != "" {
		return nil
	}
	if convErr != nil {
		d.r.fail(VerdictNoLiveness, "restored cluster did not converge: %v", convErr)
		return nil
	}
	if d.backendErr("restored cluster", p2) {
		return nil
	}
	if err := d.checkHistory("cluster 1 history", nil, h1); err != nil {
		return err
	}
	return d.checkHistory(fmt.Sprintf("restored cluster history (after a preamble of %d)", len(preamble)), preamble, h2)
}

// memberStatus asks one member for its status (1 s).
func memberStatus(ctx context.Context, p realCluster, name string) (*clientv3.StatusResponse, error) {
	cli, err := p.Client(name)
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	return cli.Status(sctx, p.ClientURL(name))
}

// followerCatchUp partitions a follower (link proxies) while the workload
// drives the leader's raft index past the follower's by more than the
// catch-up entries plus two snapshot intervals (so its log is compacted past
// the follower), heals, and requires every member's HashKV to agree while
// writes continue; then the history is checked. Members run with
// --snapshot-count 100 (and etcd with --snapshot-catchup-entries 100).
func (d *realDrill) followerCatchUp(ctx context.Context) error {
	c := &d.c.DrillConfig
	c.SnapshotCount = catchUpSnapshotCount
	catchUp := uint64(realCatchUpEntries)
	var extra []string
	if d.c.Target == cluster.TargetEtcd {
		catchUp = etcdCatchUpEntries
		extra = []string{"--snapshot-catchup-entries", fmt.Sprint(catchUp)}
	}
	p, err := d.newCluster(ctx, "c1", extra, nil)
	if err != nil {
		return err
	}
	defer p.Close()
	l := startLoad(ctx, p, c, 0, nil, 0)
	defer l.stop()
	var leader string
	if err := pollUntil(ctx, 10*time.Second, func() (bool, string) { leader = p.Leader(); return leader != "", "no leader" }); err != nil {
		d.r.fail(VerdictNoLiveness, "%v", err)
		return nil
	}
	follower := p.Members()[0]
	if follower == leader {
		follower = p.Members()[1]
	}
	others := slices.DeleteFunc(p.Members(), func(s string) bool { return s == follower })
	_ = p.Partition([]string{follower}, others)
	st, err := memberStatus(ctx, p, follower)
	if err != nil {
		return fmt.Errorf("scenarios: drill: status of %s: %w", follower, err)
	}
	applied := st.RaftAppliedIndex
	need := applied + catchUp + 2*c.SnapshotCount + 50
	d.r.notef("partitioned follower %s at %s (applied %d); waiting for the leader's raft index to pass %d",
		follower, l.elapsed().Round(time.Millisecond), applied, need)
	var lead *clientv3.StatusResponse
	err = pollUntil(ctx, 10*c.Duration, func() (bool, string) {
		name := p.Leader()
		if name == "" || name == follower {
			return false, "no leader on the majority side"
		}
		s, err := memberStatus(ctx, p, name)
		if err != nil {
			return false, err.Error()
		}
		lead = s
		return s.RaftIndex > need, fmt.Sprintf("leader %s at raft index %d", name, s.RaftIndex)
	})
	if err != nil {
		d.r.fail(VerdictNoLiveness, "the leader's log did not grow past the follower's compaction point: %v", err)
		return nil
	}
	d.r.notef("leader at raft index %d at %s: log compacted past the follower's %d", lead.RaftIndex, l.elapsed().Round(time.Millisecond), applied)
	logPath := filepath.Join(p.Dir(), follower+".log")
	logOffset := fileSize(logPath)
	_ = p.HealNetwork()
	healAt := time.Now()
	err = pollUntil(ctx, 30*time.Second, func() (bool, string) {
		s, err := memberStatus(ctx, p, follower)
		if err != nil {
			return false, err.Error()
		}
		return s.RaftAppliedIndex >= lead.RaftIndex, fmt.Sprintf("follower applied %d, leader was at %d", s.RaftAppliedIndex, lead.RaftIndex)
	})
	if err != nil {
		d.r.fail(VerdictNoLiveness, "follower %s did not catch up: %v", follower, err)
		return nil
	}
	d.r.ServeWall = time.Since(healAt)
	d.r.notef("follower %s caught up in %s", follower, d.r.ServeWall.Round(time.Millisecond))
	if lines := snapshotLines(logPath, logOffset, 3); len(lines) > 0 {
		d.r.notef("follower log after the heal: %s", strings.Join(lines, " | "))
	}
	// Writes continue while the members must agree.
	if err := converge(ctx, p, 30*time.Second); err != nil {
		d.r.fail(VerdictNoLiveness, "HashKV did not converge under load after the heal: %v", err)
		return nil
	}
	d.r.notef("HashKV converged under load %s after the heal", time.Since(healAt).Round(time.Millisecond))
	if err := sleepCtx(ctx, time.Second); err != nil {
		return err
	}
	h := l.stop()
	if err := converge(ctx, p, 30*time.Second); err != nil {
		d.r.fail(VerdictNoLiveness, "HashKV did not converge after the load: %v", err)
		return nil
	}
	if d.backendErr("cluster", p) {
		return nil
	}
	return d.checkHistory("history", nil, h)
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// snapshotLines returns up to n lines of the log after offset that mention a
// snapshot (evidence of the catch-up path; informational only).
func snapshotLines(path string, offset int64, n int) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return nil
	}
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() && len(out) < n {
		line := sc.Text()
		if strings.Contains(strings.ToLower(line), "snapshot") {
			if len(line) > 200 {
				line = line[:200]
			}
			out = append(out, line)
		}
	}
	return out
}

// rollingRestart stops every member gracefully (SIGTERM) in turn, restarts it
// after a second, waits until it has applied the leader's raft index, and
// saves a snapshot from the leader. A probe asks for the leader every 100 ms:
// the cluster must never be without one for longer than maxGap; the snapshots
// must verify with non-decreasing revisions; the history must be linearizable
// and the members must converge.
func (d *realDrill) rollingRestart(ctx context.Context) error {
	const maxGap = 5 * time.Second
	c := &d.c.DrillConfig
	p, err := d.newCluster(ctx, "c1", nil, nil)
	if err != nil {
		return err
	}
	defer p.Close()
	l := startLoad(ctx, p, c, 0, nil, 0)
	defer l.stop()
	probeCtx, stopProbe := context.WithCancel(ctx)
	var probeWG sync.WaitGroup
	var worstGap time.Duration
	probeWG.Go(func() {
		last := time.Now()
		for probeCtx.Err() == nil {
			if p.Leader() != "" {
				last = time.Now()
			} else if gap := time.Since(last); gap > worstGap {
				worstGap = gap
			}
			_ = sleepCtx(probeCtx, 100*time.Millisecond)
		}
	})
	stop := func() { stopProbe(); probeWG.Wait() }
	if err := sleepCtx(ctx, 2*time.Second); err != nil {
		stop()
		return err
	}
	var prevRev int64
	for i, name := range p.Members() {
		if err := p.Stop(name); err != nil {
			stop()
			return fmt.Errorf("scenarios: drill: stop %s: %w", name, err)
		}
		if err := sleepCtx(ctx, time.Second); err != nil {
			stop()
			return err
		}
		if err := p.Restart(name); err != nil {
			stop()
			return fmt.Errorf("scenarios: drill: restart %s: %w", name, err)
		}
		restarted := time.Now()
		err := pollUntil(ctx, 30*time.Second, func() (bool, string) {
			lead := p.Leader()
			if lead == "" {
				return false, "no leader"
			}
			ls, err := memberStatus(ctx, p, lead)
			if err != nil {
				return false, err.Error()
			}
			s, err := memberStatus(ctx, p, name)
			if err != nil {
				return false, err.Error()
			}
			return s.RaftAppliedIndex >= ls.RaftIndex, fmt.Sprintf("%s applied %d, leader %s at %d", name, s.RaftAppliedIndex, lead, ls.RaftIndex)
		})
		if err != nil {
			stop()
			d.r.fail(VerdictNoLiveness, "member %s did not catch up after its restart: %v", name, err)
			return nil
		}
		caught := time.Since(restarted)
		path := filepath.Join(d.dir, fmt.Sprintf("rolling-%d.snap", i))
		_, src, err := d.saveReal(ctx, p, l, path)
		if err != nil {
			stop()
			return err
		}
		if d.r.SnapshotRevision < prevRev {
			d.r.fail(VerdictFailed, "snapshot after restarting %s is at revision %d, before the previous %d", name, d.r.SnapshotRevision, prevRev)
		}
		prevRev = d.r.SnapshotRevision
		d.r.notef("restarted %s, caught up in %s; snapshot from %s: %d bytes at revision %d", name, caught.Round(time.Millisecond), src, d.r.SnapshotBytes, d.r.SnapshotRevision)
		if err := sleepCtx(ctx, time.Second); err != nil {
			stop()
			return err
		}
	}
	stop()
	d.r.notef("longest time without a leader: %s", worstGap.Round(time.Millisecond))
	if worstGap > maxGap {
		d.r.fail(VerdictNoLiveness, "no leader for %s (quorum lost?)", worstGap.Round(time.Millisecond))
	}
	h := l.stop()
	if err := converge(ctx, p, 30*time.Second); err != nil {
		d.r.fail(VerdictNoLiveness, "did not converge: %v", err)
		return nil
	}
	if d.backendErr("cluster", p) {
		return nil
	}
	return d.checkHistory("history", nil, h)
}
