package scenarios

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/havoclab/havoc/chaos"
	"github.com/havoclab/havoc/cluster"
	"github.com/havoclab/havoc/internal/detrand"
	"github.com/havoclab/havoc/linearizability"
	"github.com/havoclab/havoc/sim"
	"github.com/havoclab/havoc/store/mvcc"
	"github.com/havoclab/havoc/store/snapshot"
	"github.com/havoclab/havoc/vfs"
)

// Drills are named backup and recovery scenarios in the simulator. Each is
// deterministic per seed (one seeded world at a time; a restore starts a second
// world seeded from the first) and ends in a DrillReport whose Verdict is
// VerdictOK only if every property the drill names was checked and held.
//
// Virtual versus wall time: the simulator takes a snapshot instantly (it reads
// the backend between two events), so SaveVirtual is 0 and the real cost is
// SaveWall; RestoreWall is the wall time of snapshot.Restore for every member.
// ServeVirtual is the virtual time from the restored cluster's start to its
// first acknowledged client operation.

// Drill names.
const (
	DrillSaveRestore      = "save-restore"
	DrillDisasterRecovery = "disaster-recovery"
	DrillFollowerCatchUp  = "follower-catch-up"
	DrillRollingRestart   = "rolling-restart"
)

// DrillNames lists every drill.
var DrillNames = []string{DrillSaveRestore, DrillDisasterRecovery, DrillFollowerCatchUp, DrillRollingRestart}

// DrillAbout says what each drill does and what it proves, for help texts.
var DrillAbout = map[string]string{
	DrillSaveRestore: "saves a snapshot from one member halfway through a load phase (with --faults), restores every member " +
		"from it into a fresh cluster, and proves the restored keyspace equals the checked history at the snapshot's " +
		"revision; the restored cluster must then serve linearizably. Writes acknowledged after the snapshot are " +
		"correctly absent.",
	DrillDisasterRecovery: "like save-restore, but three quarters into the load a majority of the members is lost for " +
		"good and the cluster is rebuilt from the snapshot. The writes acknowledged after the snapshot are listed: " +
		"losing them is expected (a restore goes back to its snapshot); the recovery time runs from the loss to the " +
		"first request the rebuilt cluster serves.",
	DrillFollowerCatchUp: "partitions one follower until the leader has compacted its log past the follower's " +
		"position, heals, and requires the follower to catch up through a raft snapshot and every member to converge " +
		"(same HashKV).",
	DrillRollingRestart: "restarts every member in turn under load, saving a snapshot from the leader between " +
		"restarts; the cluster must keep a leader (no gap longer than an election), the snapshots' revisions must " +
		"not go back, and the history must be linearizable.",
}

// simToken and simPeer are cluster.NewSim's initial cluster (names m1.., peer
// URLs http://mN:2380, token havoc-sim): a restored sim cluster must use the
// same, so that its members recognise their logs.
const simToken = "havoc-sim"

func simInitialCluster(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf("m%d=http://m%d:2380", i+1, i+1)
	}
	return strings.Join(parts, ",")
}

// DrillConfig configures a drill. Zero values take the documented defaults.
type DrillConfig struct {
	Seed    uint64
	Members int // 3 when zero
	// Duration is the load phase before (and for save-restore, around) the save
	// (10 s when zero).
	Duration time.Duration
	// After is how long the restored cluster serves the workload (5 s when zero).
	After time.Duration
	// Faults are drawn into the load phase of save-restore (none when empty).
	Faults   []chaos.Kind
	Workload Workload
	// SnapshotCount is the members' raft snapshot interval (1000 when zero).
	SnapshotCount uint64
	// CheckBudget bounds each linearizability check, in model steps per
	// partition (linearizability.DefaultBudget when zero).
	CheckBudget int64

	// tamper, if set, damages a restored backend before the restored cluster
	// starts (tests use it to prove a drill can fail).
	tamper func(dbPath string) error
}

// Validate fills defaults.
func (c *DrillConfig) Validate() error {
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
		return fmt.Errorf("scenarios: drill with %d members (want 1 to 9)", c.Members)
	}
	return c.Workload.Validate()
}

// DrillReport is the outcome of one drill.
type DrillReport struct {
	Name string `json:"name"`
	Seed uint64 `json:"seed"`
	// Backend is "" for the simulator, "process/havoc" or "process/etcd" for a
	// real drill (RunRealDrill), whose times are wall-clock: SaveWall,
	// RestoreWall, ServeWall, RecoveryWall.
	Backend string `json:"backend,omitempty"`
	// SnapshotBytes is the size of the (last) snapshot file; SnapshotRevision
	// its revision.
	SnapshotBytes    int64 `json:"snapshot_bytes"`
	SnapshotRevision int64 `json:"snapshot_revision"`
	// SaveAt is the virtual time the (last) save began.
	SaveAt       time.Duration `json:"save_at"`
	SaveVirtual  time.Duration `json:"save_virtual"`
	SaveWall     time.Duration `json:"save_wall"`
	RestoreWall  time.Duration `json:"restore_wall"`
	ServeVirtual time.Duration `json:"serve_virtual"`
	// RecoveryVirtual (disaster-recovery) is the virtual time from the loss of
	// the majority to the restored cluster's first acknowledged operation.
	RecoveryVirtual time.Duration `json:"recovery_virtual,omitempty"`
	// ServeWall (real drills) is the wall time from the restored cluster's
	// launch (after the restore) to its first linearizable read; for
	// follower-catch-up, from the heal to the follower's catch-up.
	ServeWall time.Duration `json:"serve_wall,omitempty"`
	// RecoveryWall (real disaster-recovery) is the wall time from the loss of
	// the majority to the restored cluster's first acknowledged write.
	RecoveryWall time.Duration `json:"recovery_wall,omitempty"`
	// KeysChecked and RevisionsChecked count the restored keys compared and the
	// acknowledged writes whose revision was looked up.
	KeysChecked      int `json:"keys_checked"`
	RevisionsChecked int `json:"revisions_checked"`
	// Lost (disaster-recovery) lists the acknowledged writes the restored
	// cluster lacks (revision > snapshot revision), as "key=value@revision".
	Lost []string `json:"lost,omitempty"`
	// Notes are the drill's other observations, one line each.
	Notes   []string `json:"notes,omitempty"`
	Verdict string   `json:"verdict"`
	Reason  string   `json:"reason,omitempty"`
}

// Passed reports whether the drill found nothing wrong.
func (r *DrillReport) Passed() bool { return r.Verdict == VerdictOK }

func (r *DrillReport) fail(verdict, format string, args ...any) {
	if r.Verdict == "" || r.Verdict == VerdictOK {
		r.Verdict, r.Reason = verdict, fmt.Sprintf(format, args...)
	}
}

func (r *DrillReport) notef(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// String is the report as a few readable lines.
func (r *DrillReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "drill %s seed %d", r.Name, r.Seed)
	if r.Backend != "" {
		fmt.Fprintf(&b, " on %s", r.Backend)
	}
	fmt.Fprintf(&b, ": %s", r.Verdict)
	if r.Reason != "" {
		fmt.Fprintf(&b, " (%s)", r.Reason)
	}
	// Only the lines that apply to the drill: follower-catch-up saves nothing,
	// only save-restore and disaster-recovery restore and compare keys.
	switch {
	case r.SnapshotBytes == 0:
	case r.Backend != "":
		fmt.Fprintf(&b, "\n  snapshot %d bytes at revision %d, save began at %s, took %s",
			r.SnapshotBytes, r.SnapshotRevision, r.SaveAt.Round(time.Millisecond), r.SaveWall.Round(time.Millisecond))
	default:
		fmt.Fprintf(&b, "\n  snapshot %d bytes at revision %d, saved at %s (virtual %s, wall %s)",
			r.SnapshotBytes, r.SnapshotRevision, r.SaveAt, r.SaveVirtual, r.SaveWall.Round(time.Microsecond))
	}
	switch {
	case r.RestoreWall > 0 && r.Backend != "":
		fmt.Fprintf(&b, "\n  restore %s, serving after %s", r.RestoreWall.Round(time.Millisecond), r.ServeWall.Round(time.Millisecond))
		if r.RecoveryWall > 0 {
			fmt.Fprintf(&b, ", recovery %s", r.RecoveryWall.Round(time.Millisecond))
		}
	case r.RestoreWall > 0:
		fmt.Fprintf(&b, "\n  restore wall %s, serving after %s virtual", r.RestoreWall.Round(time.Microsecond), r.ServeVirtual)
		if r.RecoveryVirtual > 0 {
			fmt.Fprintf(&b, ", recovery %s virtual", r.RecoveryVirtual)
		}
	case r.ServeWall > 0 && r.Backend != "":
		fmt.Fprintf(&b, "\n  caught up %s after the heal", r.ServeWall.Round(time.Millisecond))
	}
	if r.KeysChecked > 0 || r.RevisionsChecked > 0 {
		fmt.Fprintf(&b, "\n  restored keyspace checked: %d keys, %d revisions", r.KeysChecked, r.RevisionsChecked)
	}
	if len(r.Lost) > 0 {
		if r.Name == DrillDisasterRecovery {
			fmt.Fprintf(&b, "\n  %d writes were acknowledged after the snapshot (revision > %d), so the restored cluster lacks them:"+
				" expected, a restore goes back to its snapshot (the recovery point)", len(r.Lost), r.SnapshotRevision)
		} else {
			fmt.Fprintf(&b, "\n  %d acknowledged writes lost", len(r.Lost))
		}
		const shown = 10
		for _, l := range r.Lost[:min(shown, len(r.Lost))] {
			fmt.Fprintf(&b, "\n    %s", l)
		}
		if len(r.Lost) > shown {
			fmt.Fprintf(&b, "\n    ... and %d more (--json lists them all)", len(r.Lost)-shown)
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "\n  %s", n)
	}
	return b.String()
}

// RunDrill runs the named drill.
func RunDrill(name string, c DrillConfig) (*DrillReport, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	release := detrand.Acquire(c.Seed)
	defer release()
	dir, err := os.MkdirTemp(tmpfsDir(), "havoc-drill-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	r := &DrillReport{Name: name, Seed: c.Seed}
	switch name {
	case DrillSaveRestore:
		err = drillSaveRestore(c, dir, r, false)
	case DrillDisasterRecovery:
		err = drillSaveRestore(c, dir, r, true)
	case DrillFollowerCatchUp:
		err = drillFollowerCatchUp(c, dir, r)
	case DrillRollingRestart:
		err = drillRollingRestart(c, dir, r)
	default:
		return nil, fmt.Errorf("scenarios: unknown drill %q (want one of %s)", name, strings.Join(DrillNames, ", "))
	}
	if err != nil {
		return nil, err
	}
	if r.Verdict == "" {
		r.Verdict = VerdictOK
	}
	return r, nil
}

// drillWorld is one simulated cluster with its clients.
type drillWorld struct {
	w       *sim.World
	cl      *cluster.Sim
	rec     *linearizability.Recorder
	clients []*simClient
	dbDir   string
}

// newDrillWorld builds a world with a cluster; prepare, if set, runs before
// any member starts (to put restored data dirs in place). Client IDs start at
// clientBase+1, so that values stay unique across worlds.
func newDrillWorld(seed uint64, c *DrillConfig, dir string, clientBase int, prepare func(w *sim.World) error) (*drillWorld, error) {
	d := &drillWorld{w: sim.NewWorld(sim.Config{Seed: seed, MaxEvents: 500_000_000}), rec: &linearizability.Recorder{}, dbDir: dir}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	cl, err := cluster.NewSim(d.w, cluster.SimConfig{Members: c.Members, Dir: dir, SnapshotCount: c.SnapshotCount})
	if err != nil {
		return nil, err
	}
	d.cl = cl
	if prepare != nil {
		if err := prepare(d.w); err != nil {
			cl.Close()
			return nil, err
		}
	}
	wl := c.Workload
	for i := range wl.Clients {
		cc := newSimClient(clientBase+i+1, &wl, d.rec, cl.Members())
		d.clients = append(d.clients, cc)
		d.w.AddHost(fmt.Sprintf("c%03d", clientBase+i+1), cc)
	}
	return d, nil
}

func (d *drillWorld) okOps() int {
	n := 0
	for _, cc := range d.clients {
		n += cc.okCount
	}
	return n
}

// settle stops the clients and waits until none has a request outstanding and
// (if converge) the members agree.
func (d *drillWorld) settle(converge bool, limit time.Duration) error {
	for _, cc := range d.clients {
		cc.stopped = true
	}
	return d.w.RunUntil(func() bool {
		for _, cc := range d.clients {
			if !cc.idle() {
				return false
			}
		}
		if !converge {
			return true
		}
		ok, _ := d.cl.Converged()
		return ok
	}, limit)
}

// converge settles the clients and waits until the members agree, failing r
// (and returning false) if they do not within 30 virtual seconds or a member
// reported an error. what names the cluster in the failure.
func (d *drillWorld) converge(r *DrillReport, what string) bool {
	if err := d.settle(true, 30*time.Second); err != nil {
		_, why := d.cl.Converged()
		r.fail(VerdictNoLiveness, "%s did not converge: %v: %s", what, err, why)
		return false
	}
	if err := d.cl.Err(); err != nil {
		r.fail(VerdictFailed, "%s: %v", what, err)
		return false
	}
	return true
}

// check checks the drill world's history (after extra, if any) and fails r
// if it is not linearizable; what names the history in the failure. ok is
// false when r failed.
func (d *drillWorld) check(r *DrillReport, c *DrillConfig, what string, extra []linearizability.Operation) (ok bool, err error) {
	ops := d.rec.Operations()
	if len(extra) > 0 {
		ops = prependHistory(extra, ops)
	}
	cr, err := linearizability.Check(ops, linearizability.Options{Budget: c.CheckBudget})
	if err != nil {
		return false, err
	}
	if cr.Verdict != linearizability.VerdictOK {
		r.fail(verdictOf(cr), "%s: %s", what, cr.Reason)
		return false, nil
	}
	return true, nil
}

// scheduleFaults applies a seeded fault schedule over [0, dur) as RunSim does.
func (d *drillWorld) scheduleFaults(seed uint64, members int, dur time.Duration, kinds []chaos.Kind) {
	sched := chaos.Generate(rand.New(rand.NewPCG(seed, 0xd7111)), chaos.GenerateOptions{Members: members, Duration: dur, Kinds: kinds})
	for _, f := range sched {
		d.w.Schedule(f.At, "fault", func() {
			heal, desc, _ := chaos.Apply(d.cl, f)
			d.w.Tracef("chaos", "start %s", desc)
			if heal != nil {
				d.w.Schedule(f.Duration, "heal", func() { _ = heal() })
			}
		})
	}
}

// pickSource returns the leader if one is up, else the first member that is up.
func (d *drillWorld) pickSource() string {
	if l := d.cl.Leader(); l != "" {
		return l
	}
	for _, name := range d.cl.Members() {
		if d.cl.Node(name) != nil {
			return name
		}
	}
	return ""
}

// save writes a snapshot file of member's backend and reports its revision.
func save(d *drillWorld, member, path string, r *DrillReport) error {
	n := d.cl.Node(member)
	if n == nil {
		return fmt.Errorf("scenarios: drill: member %s is down at the save", member)
	}
	start := time.Now()
	var img bytes.Buffer
	if _, err := n.WriteSnapshot(&img); err != nil {
		return fmt.Errorf("scenarios: drill: snapshot %s: %w", member, err)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	size, err := snapshot.Write(f, &img)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	r.SaveWall += time.Since(start)
	st, err := snapshot.Status(path)
	if err != nil {
		return fmt.Errorf("scenarios: drill: status of the fresh snapshot: %w", err)
	}
	if err := snapshot.Verify(path); err != nil {
		return fmt.Errorf("scenarios: drill: the fresh snapshot does not verify: %w", err)
	}
	r.SnapshotBytes, r.SnapshotRevision, r.SaveAt = size, st.Revision, d.w.Elapsed()
	return nil
}

// drillSaveRestore is save-restore and (lose=true) disaster-recovery:
//  1. world 1 runs the workload (with faults for save-restore); at Duration/2
//     a member's backend is saved (revision R);
//  2. save-restore: the load continues to Duration, everything heals and the
//     history is checked; disaster-recovery: at 3/4 Duration a majority of the
//     members is lost for good and the rest can no longer serve;
//  3. a fresh world restores every member from the file with
//     snapshot.RestoreFiles and the restored keyspace is compared with the
//     history of world 1 (checkRestored);
//  4. the restored cluster serves the workload for After and its history
//     (after a preamble that recreates the restored keys) is checked.
func drillSaveRestore(c DrillConfig, dir string, r *DrillReport, lose bool) error {
	d1, err := newDrillWorld(c.Seed, &c, filepath.Join(dir, "w1"), 0, nil)
	if err != nil {
		return err
	}
	defer d1.cl.Close()
	if !lose {
		d1.scheduleFaults(c.Seed, c.Members, c.Duration, c.Faults)
	}
	snapPath := filepath.Join(dir, "backup.snap")
	var saveErr error
	var saveStart time.Duration
	// The save waits for a member to be up: a power loss may have taken all.
	var trySave func()
	trySave = func() {
		src := d1.pickSource()
		if src == "" {
			d1.w.Schedule(100*time.Millisecond, "save", trySave)
			return
		}
		saveStart = d1.w.Elapsed()
		saveErr = save(d1, src, snapPath, r)
	}
	d1.w.Schedule(c.Duration/2, "save", trySave)
	var lost []string
	var lossAt time.Duration
	if lose {
		d1.w.Schedule(c.Duration*3/4, "disaster", func() {
			lossAt = d1.w.Elapsed()
			names := d1.cl.Members()
			for _, name := range names[:c.Members/2+1] {
				_ = d1.cl.Crash(name, false)
				lost = append(lost, name)
			}
		})
	}
	if err := d1.w.RunFor(c.Duration); err != nil {
		return err
	}
	if saveErr != nil {
		return saveErr
	}
	if lose {
		r.notef("lost members %s for good at %s", strings.Join(lost, ","), lossAt)
		if err := d1.settle(false, 30*time.Second); err != nil {
			r.fail(VerdictNoLiveness, "clients of the broken cluster did not settle: %v", err)
			return nil
		}
		if err := d1.cl.Err(); err != nil {
			r.fail(VerdictFailed, "world 1: %v", err)
			return nil
		}
	} else {
		d1.cl.HealAll()
		if !d1.converge(r, "world 1") {
			return nil
		}
	}
	if ok, err := d1.check(r, &c, "world 1 history", nil); !ok {
		return err
	}
	h1 := d1.rec.Operations()

	// Restore into a fresh world.
	d2, serveAt, err := restoreWorld(c, dir, snapPath, r)
	if err != nil {
		return err
	}
	if d2 == nil {
		return nil
	}
	defer d2.cl.Close()
	if lose {
		r.RecoveryVirtual = (c.Duration - lossAt) + serveAt
	}
	return finishRestored(c, d2, h1, saveStart, r, lose)
}

// restoreWorld restores the snapshot into a fresh world's members, starts the
// world and runs until the first acknowledged operation. It returns nil (with r failed) if the restored
// cluster never serves.
func restoreWorld(c DrillConfig, dir, snapPath string, r *DrillReport) (*drillWorld, time.Duration, error) {
	w2dir := filepath.Join(dir, "w2")
	spec := simInitialCluster(c.Members)
	prepare := func(w *sim.World) error {
		start := time.Now()
		for i := 1; i <= c.Members; i++ {
			name := fmt.Sprintf("m%d", i)
			disk, ok := w.Host(name).Disk().(vfs.FS)
			if !ok {
				return fmt.Errorf("scenarios: drill: host %s has no vfs disk", name)
			}
			db := filepath.Join(w2dir, name+".db")
			err := snapshot.RestoreFiles(snapshot.RestoreOptions{
				SnapshotPath: snapPath, Name: name, InitialCluster: spec, InitialClusterToken: simToken,
				InitialAdvertisePeerURLs: []string{fmt.Sprintf("http://%s:2380", name)},
			}, db, disk, "member/wal")
			if err != nil {
				return err
			}
			if c.tamper != nil {
				if err := c.tamper(db); err != nil {
					return err
				}
			}
		}
		r.RestoreWall = time.Since(start)
		// Keep a copy of what was restored for checkRestored: the members
		// write to theirs as soon as they start.
		b, err := os.ReadFile(filepath.Join(w2dir, "m1.db"))
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, "restored-view.db"), b, 0o600)
	}
	// The restored cluster's history starts at the snapshot: its clients
	// name no revision below it (the first world's compactions and writes
	// are not in that history).
	c2 := c
	c2.Workload.PastFloor = r.SnapshotRevision + 1
	d2, err := newDrillWorld(c.Seed^0x7e57043ed, &c2, w2dir, 100, prepare)
	if err != nil {
		return nil, 0, err
	}
	if err := d2.w.RunUntil(func() bool { return d2.okOps() > 0 || d2.cl.Err() != nil }, 30*time.Second); err != nil || d2.cl.Err() != nil {
		r.fail(VerdictNoLiveness, "the restored cluster never served: %v %v", err, d2.cl.Err())
		d2.cl.Close()
		return nil, 0, nil
	}
	r.ServeVirtual = d2.w.Elapsed()
	return d2, r.ServeVirtual, nil
}

// finishRestored compares the restored keyspace with world 1's history, runs
// the workload on the restored cluster and checks its history.
func finishRestored(c DrillConfig, d2 *drillWorld, h1 []linearizability.Operation, saveStart time.Duration, r *DrillReport, lose bool) error {
	view := filepath.Join(filepath.Dir(d2.dbDir), "restored-view.db")
	kv, err := mvcc.Open(view, mvcc.Options{NoSync: true})
	if err != nil {
		r.fail(VerdictFailed, "restored backend does not open: %v", err)
		return nil
	}
	preamble, err := checkRestored(mvccKeyspace{kv}, h1, saveStart, r, lose)
	_ = kv.Close()
	if err != nil {
		return err
	}
	if r.Verdict != "" {
		return nil
	}
	if err := d2.w.RunFor(c.After); err != nil {
		return err
	}
	if !d2.converge(r, "restored cluster") {
		return nil
	}
	if _, err := d2.check(r, &c, "restored cluster history", preamble); err != nil {
		return err
	}
	r.notef("restored cluster: %d operations after a preamble of %d", len(d2.rec.Operations()), len(preamble))
	return nil
}

func verdictOf(cr linearizability.Result) string {
	if cr.Verdict == linearizability.VerdictIllegal {
		return VerdictIllegal
	}
	return VerdictInconclusive
}

// writesValue reports whether an acknowledged op wrote op.Value at its revision.
func writesValue(op *linearizability.Operation) bool {
	switch op.Kind {
	case linearizability.KindPut, linearizability.KindPutLease:
		return true
	case linearizability.KindCAS:
		return op.Resp.Succeeded
	}
	return false
}

// restoredKeyspace is what checkRestored reads of a restored store: in the
// simulator a copy of the restored backend (mvccKeyspace), on a real cluster
// the restored members over gRPC before anything else writes to them.
type restoredKeyspace interface {
	// Rev is the store's current revision.
	Rev() (int64, error)
	// Range reads [key, end) at revision rev (etcd's RangeRequest semantics).
	Range(key, end []byte, rev int64) ([]*mvccpb.KeyValue, error)
	// Leases returns the IDs of the live leases.
	Leases() (map[int64]bool, error)
}

// mvccKeyspace reads a restored backend file directly.
type mvccKeyspace struct{ s *mvcc.Store }

func (m mvccKeyspace) Rev() (int64, error) { return m.s.Rev(), nil }

func (m mvccKeyspace) Range(key, end []byte, rev int64) ([]*mvccpb.KeyValue, error) {
	resp, err := m.s.Range(&pb.RangeRequest{Key: key, RangeEnd: end, Revision: rev})
	if err != nil {
		return nil, err
	}
	return resp.Kvs, nil
}

func (m mvccKeyspace) Leases() (map[int64]bool, error) {
	live := map[int64]bool{}
	err := m.s.ForEachRaw("lease", func(k, _ []byte) error {
		if len(k) == 8 {
			live[int64(binary.BigEndian.Uint64(k))] = true
		}
		return nil
	})
	return live, err
}

// checkRestored proves the restored keyspace kv is world 1's state at the
// snapshot revision R, as its checked history implies:
//   - kv is at revision R exactly (nothing after R);
//   - every acknowledged write with revision <= R is in kv's history at that
//     revision (a put's value, a delete's absence), and every acknowledged
//     write that returned before the save began has a revision <= R;
//   - acknowledged writes with revision > R are reported lost (an error for
//     save-restore only if they returned before the save began);
//   - every key in kv at R holds a value some operation of the history wrote,
//     at the revision that operation was acknowledged with.
//
// It returns the preamble that recreates the restored keys for the checker.
func checkRestored(kv restoredKeyspace, h1 []linearizability.Operation, saveStart time.Duration, r *DrillReport, lose bool) ([]linearizability.Operation, error) {
	R := r.SnapshotRevision
	if rev, err := kv.Rev(); err != nil || rev != R {
		r.fail(VerdictFailed, "restored revision %d (%v), snapshot revision %d", rev, err, R)
		return nil, nil
	}
	writer := map[string]*linearizability.Operation{}
	after := 0
	for i := range h1 {
		op := &h1[i]
		if op.Outcome == linearizability.OutcomeFail {
			continue
		}
		if writesValue(op) || (op.Outcome == linearizability.OutcomeUnknown && op.Value != "") {
			writer[op.Value] = op
		}
		if op.Outcome != linearizability.OutcomeOK || op.Resp.Revision == 0 {
			continue
		}
		rev := op.Resp.Revision
		isDelete := op.Kind == linearizability.KindDelete && op.Resp.Deleted > 0
		if !writesValue(op) && !isDelete {
			continue
		}
		if rev > R {
			after++
			if lose {
				r.Lost = append(r.Lost, fmt.Sprintf("%s=%s@%d", op.Key, op.Value, rev))
			}
			if time.Duration(op.Return) < saveStart {
				r.fail(VerdictFailed, "write %s=%q acknowledged at %s with revision %d before the save began at %s, but the snapshot is at revision %d",
					op.Key, op.Value, time.Duration(op.Return), rev, saveStart, R)
			}
			continue
		}
		r.RevisionsChecked++
		got, err := kv.Range([]byte(op.Key), nil, rev)
		if err != nil {
			r.fail(VerdictFailed, "restored history at revision %d: %v", rev, err)
			continue
		}
		switch {
		case isDelete && len(got) != 0:
			r.fail(VerdictFailed, "delete of %s at revision %d is missing from the restored history", op.Key, rev)
		case !isDelete && (len(got) != 1 || string(got[0].Value) != op.Value || got[0].ModRevision != rev):
			r.fail(VerdictFailed, "write %s=%q at revision %d is missing from the restored history (found %v)", op.Key, op.Value, rev, got)
		}
	}
	if !lose && after > 0 {
		r.notef("%d acknowledged writes came after the snapshot (revision > %d): correctly absent from the restore", after, R)
	}
	all, err := kv.Range([]byte{0}, []byte{0}, R)
	if err != nil {
		return nil, err
	}
	var preamble []linearizability.Operation
	leases := map[int64]bool{}
	for _, k := range all {
		r.KeysChecked++
		w, ok := writer[string(k.Value)]
		switch {
		case !ok:
			r.fail(VerdictFailed, "restored key %s holds %q, which no operation wrote", k.Key, k.Value)
		case w.Key != string(k.Key):
			r.fail(VerdictFailed, "restored key %s holds %q, which was written to %s", k.Key, k.Value, w.Key)
		case w.Outcome == linearizability.OutcomeOK && w.Resp.Revision != 0 && w.Resp.Revision != k.ModRevision:
			r.fail(VerdictFailed, "restored key %s=%q at revision %d, acknowledged at revision %d", k.Key, k.Value, k.ModRevision, w.Resp.Revision)
		}
		// The preamble: every put of the key's current generation, oldest first.
		var gen []linearizability.Operation
		for rev := k.ModRevision; rev >= k.CreateRevision; {
			g, err := kv.Range(k.Key, nil, rev)
			if err != nil || len(g) != 1 {
				r.fail(VerdictFailed, "restored history of %s at revision %d: %v %v", k.Key, rev, err, g)
				break
			}
			v := g[0]
			op := linearizability.Operation{Kind: linearizability.KindPut, Key: string(v.Key), Value: string(v.Value),
				Outcome: linearizability.OutcomeOK, Resp: linearizability.Response{Revision: v.ModRevision}}
			if v.Lease != 0 {
				op.Kind, op.Lease = linearizability.KindPutLease, v.Lease
				leases[v.Lease] = true
			}
			gen = append(gen, op)
			rev = v.ModRevision - 1
		}
		slices.Reverse(gen)
		preamble = append(preamble, gen...)
	}
	slices.SortStableFunc(preamble, func(a, b linearizability.Operation) int { return int(a.Resp.Revision - b.Resp.Revision) })
	var grants []linearizability.Operation
	for _, id := range sortedKeys(leases) {
		grants = append(grants, linearizability.Operation{Kind: linearizability.KindLeaseGrant, Lease: id, TTL: 3600,
			Outcome: linearizability.OutcomeOK, Resp: linearizability.Response{LeaseID: id}})
	}
	// Leases that intermediate versions used but that are gone at R are
	// revoked at the end of the preamble (deleting nothing).
	liveLeases, err := kv.Leases()
	if err != nil {
		return nil, err
	}
	preamble = append(grants, preamble...)
	for _, id := range sortedKeys(leases) {
		if !liveLeases[id] {
			preamble = append(preamble, linearizability.Operation{Kind: linearizability.KindLeaseRevoke, Lease: id, Outcome: linearizability.OutcomeOK})
		}
	}
	return preamble, nil
}

// prependHistory puts a sequential preamble (client 0, before everything)
// ahead of ops, renumbering IDs and shifting ops' times after it.
func prependHistory(pre, ops []linearizability.Operation) []linearizability.Operation {
	out := make([]linearizability.Operation, 0, len(pre)+len(ops))
	for i, op := range pre {
		op.ID, op.Client, op.Member = int64(i), 0, "restore"
		op.Call, op.Return = int64(2*i), int64(2*i+1)
		out = append(out, op)
	}
	shift := int64(2*len(pre) + 1)
	for _, op := range ops {
		op.ID += int64(len(pre))
		op.Call += shift
		op.Return += shift
		out = append(out, op)
	}
	return out
}

func sortedKeys[K int64 | string, V any](m map[K]V) []K {
	ks := make([]K, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// drillFollowerCatchUp partitions one follower long enough that the leader
// compacts its log past the follower's position, lets writes continue, heals,
// and requires the follower to catch up through a raft snapshot: its snapshot
// index moves past the leader's compaction point and HashKV converges.
func drillFollowerCatchUp(c DrillConfig, dir string, r *DrillReport) error {
	const catchUpEntries = 5000 // store.Config's default CatchUpEntries, which cluster.Sim keeps
	d, err := newDrillWorld(c.Seed, &c, filepath.Join(dir, "w1"), 0, nil)
	if err != nil {
		return err
	}
	defer d.cl.Close()
	if err := d.w.RunFor(2 * time.Second); err != nil {
		return err
	}
	leader := d.cl.Leader()
	if leader == "" {
		r.fail(VerdictNoLiveness, "no leader after 2 s")
		return nil
	}
	var follower string
	for _, name := range d.cl.Members() {
		if name != leader {
			follower = name
			break
		}
	}
	others := slices.DeleteFunc(d.cl.Members(), func(s string) bool { return s == follower })
	_ = d.cl.Partition([]string{follower}, others)
	before := d.cl.Node(follower).Status()
	r.notef("partitioned follower %s at %s (applied %d, snapshot index %d)", follower, d.w.Elapsed(), before.Applied, before.SnapshotIndex)
	// Run until the leader's log no longer holds the follower's next entry.
	compacted := func() bool {
		l := d.cl.Leader()
		if l == "" || l == follower {
			return false
		}
		st := d.cl.Node(l).Status()
		return st.SnapshotIndex > before.Applied+catchUpEntries+1
	}
	if err := d.w.RunUntil(compacted, 10*c.Duration); err != nil {
		r.fail(VerdictNoLiveness, "the leader never compacted past the follower: %v", err)
		return nil
	}
	lst := d.cl.Node(d.cl.Leader()).Status()
	r.notef("leader %s snapshot index %d at %s: log compacted past the follower's %d", d.cl.Leader(), lst.SnapshotIndex, d.w.Elapsed(), before.Applied)
	_ = d.cl.HealNetwork()
	healAt := d.w.Elapsed()
	caught := func() bool {
		n := d.cl.Node(follower)
		return n != nil && n.Status().SnapshotIndex >= lst.SnapshotIndex-catchUpEntries && n.Status().Applied >= lst.SnapshotIndex
	}
	if err := d.w.RunUntil(caught, 30*time.Second); err != nil {
		r.fail(VerdictNoLiveness, "follower %s did not catch up: %+v", follower, d.cl.Node(follower).Status())
		return nil
	}
	after := d.cl.Node(follower).Status()
	r.ServeVirtual = d.w.Elapsed() - healAt
	r.notef("follower %s caught up in %s: snapshot index %d -> %d, applied %d", follower, r.ServeVirtual, before.SnapshotIndex, after.SnapshotIndex, after.Applied)
	if after.SnapshotIndex <= before.SnapshotIndex {
		r.fail(VerdictFailed, "follower snapshot index did not move (%d)", after.SnapshotIndex)
	}
	if err := d.w.RunFor(2 * time.Second); err != nil { // writes continue after the catch-up
		return err
	}
	if !d.converge(r, "cluster") {
		return nil
	}
	h, rev, _, _ := d.cl.Node(follower).HashKV(0)
	r.notef("converged: HashKV %08x at revision %d on every member", h, rev)
	r.notef("history: %d operations, %d acknowledged", len(d.rec.Operations()), d.okOps())
	_, err = d.check(r, &c, "history", nil)
	return err
}

// drillRollingRestart restarts every member in turn (crash, 1 s down, restart,
// wait until the cluster converges... under load it need not, so: until the
// member has caught up with the leader's commit index), saving a snapshot from
// the leader between restarts. The cluster must never lose quorum (a leader
// exists except for election gaps shorter than maxGap), the snapshots must
// verify with non-decreasing revisions, and the history must be linearizable.
func drillRollingRestart(c DrillConfig, dir string, r *DrillReport) error {
	const maxGap = 3 * time.Second
	d, err := newDrillWorld(c.Seed, &c, filepath.Join(dir, "w1"), 0, nil)
	if err != nil {
		return err
	}
	defer d.cl.Close()
	var lastLeader, worstGap time.Duration
	var probe func()
	probe = func() {
		if d.cl.Leader() != "" {
			lastLeader = d.w.Elapsed()
		} else if gap := d.w.Elapsed() - lastLeader; gap > worstGap {
			worstGap = gap
		}
		d.w.Schedule(50*time.Millisecond, "probe", probe)
	}
	d.w.Schedule(2*time.Second, "probe", func() { lastLeader = d.w.Elapsed(); probe() })
	if err := d.w.RunFor(2 * time.Second); err != nil {
		return err
	}
	var prevRev int64
	for i, name := range d.cl.Members() {
		_ = d.cl.Crash(name, false)
		if err := d.w.RunFor(time.Second); err != nil {
			return err
		}
		_ = d.cl.Restart(name)
		caught := func() bool {
			n, l := d.cl.Node(name), d.cl.Leader()
			if n == nil || l == "" {
				return false
			}
			return n.Status().Applied >= d.cl.Node(l).Status().Committed
		}
		if err := d.w.RunUntil(caught, 30*time.Second); err != nil {
			r.fail(VerdictNoLiveness, "member %s did not catch up after its restart: %v", name, err)
			return nil
		}
		src := d.pickSource()
		path := filepath.Join(dir, fmt.Sprintf("rolling-%d.snap", i))
		if err := save(d, src, path, r); err != nil {
			return err
		}
		if r.SnapshotRevision < prevRev {
			r.fail(VerdictFailed, "snapshot after restarting %s is at revision %d, before the previous %d", name, r.SnapshotRevision, prevRev)
		}
		prevRev = r.SnapshotRevision
		r.notef("restarted %s, caught up by %s; snapshot from %s: %d bytes at revision %d", name, d.w.Elapsed(), src, r.SnapshotBytes, r.SnapshotRevision)
		if err := d.w.RunFor(time.Second); err != nil {
			return err
		}
	}
	r.notef("longest time without a leader: %s", worstGap)
	if worstGap > maxGap {
		r.fail(VerdictNoLiveness, "no leader for %s (quorum lost?)", worstGap)
	}
	if !d.converge(r, "cluster") {
		return nil
	}
	r.notef("history: %d operations, %d acknowledged", len(d.rec.Operations()), d.okOps())
	_, err = d.check(r, &c, "history", nil)
	return err
}
