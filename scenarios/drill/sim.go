package drill

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/havoclab/havoc/chaos"
	"github.com/havoclab/havoc/cluster"
	"github.com/havoclab/havoc/internal/detrand"
	"github.com/havoclab/havoc/linearizability"
	"github.com/havoclab/havoc/scenarios"
	"github.com/havoclab/havoc/sim"
	"github.com/havoclab/havoc/store/mvcc"
	"github.com/havoclab/havoc/store/snapshot"
	"github.com/havoclab/havoc/vfs"
)

// simEnv runs a drill in the simulator: deterministic per seed (one seeded
// world at a time; a restore starts a second world seeded from the first),
// on virtual time. A snapshot is taken instantly (the backend is read between
// two events), so SaveVirtual stays 0 and the real cost is SaveWall;
// RestoreWall is the wall time of snapshot.RestoreFiles for every member.
type simEnv struct {
	c       *Config
	r       *Report
	dir     string
	release func()
}

func newSimEnv(c *Config, r *Report, dir string) *simEnv {
	return &simEnv{c: c, r: r, dir: dir, release: detrand.Acquire(c.Seed)}
}

func (e *simEnv) Dir() string                 { return e.dir }
func (e *simEnv) Virtual() bool               { return true }
func (e *simEnv) MaxLeaderGap() time.Duration { return 3 * time.Second }
func (e *simEnv) CatchUpEntries() uint64      { return 5000 } // store.Config's default, which cluster.Sim keeps
func (e *simEnv) Close()                      { e.release() }

// simToken is cluster.NewSim's cluster token (members m1.., peer URLs
// http://mN:2380): a restored sim cluster must use the same, so that its
// members recognise their logs.
const simToken = "havoc-sim"

// NewCluster builds a world with a cluster and the workload's clients; a
// restore writes the members' files before any starts, and keeps a copy of
// one restored backend as the cluster's Keyspace.
func (e *simEnv) NewCluster(spec ClusterSpec) (Cluster, error) {
	seed, sub := e.c.Seed, "w1"
	if spec.RestoreFrom != "" {
		seed, sub = e.c.Seed^0x7e57043ed, "w2"
	}
	dir := filepath.Join(e.dir, sub)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	w := sim.NewWorld(sim.Config{Seed: seed, MaxEvents: 500_000_000})
	cl, err := cluster.NewSim(w, cluster.SimConfig{Members: e.c.Members, Dir: dir, SnapshotCount: e.c.SnapshotCount})
	if err != nil {
		return nil, err
	}
	s := &simCluster{Sim: cl, w: w}
	if spec.RestoreFrom != "" {
		s.view = filepath.Join(e.dir, "restored-view.db")
		if err := e.restore(s.w, spec.RestoreFrom, dir, s.view); err != nil {
			cl.Close()
			return nil, err
		}
	}
	wl := e.c.Workload
	wl.PastFloor = spec.PastFloor
	s.load = scenarios.NewSimLoad(s.w, &wl, spec.ClientBase, cl.Members())
	for _, f := range spec.Faults {
		s.w.Schedule(f.At, "fault", func() {
			heal, desc, _ := chaos.Apply(cl, f)
			s.w.Tracef("chaos", "start %s", desc)
			if heal != nil {
				s.w.Schedule(f.Duration, "heal", func() { _ = heal() })
			}
		})
	}
	return s, nil
}

// restore writes every member's backend and WAL from the snapshot onto its
// simulated disk, and a copy of m1's backend to view.
func (e *simEnv) restore(w *sim.World, snapPath, dir, view string) error {
	var initial []string
	for i := 1; i <= e.c.Members; i++ {
		initial = append(initial, fmt.Sprintf("m%d=http://m%d:2380", i, i))
	}
	start := time.Now()
	for i := 1; i <= e.c.Members; i++ {
		name := fmt.Sprintf("m%d", i)
		disk, ok := w.Host(name).Disk().(vfs.FS)
		if !ok {
			return fmt.Errorf("drill: host %s has no vfs disk", name)
		}
		db := filepath.Join(dir, name+".db")
		err := snapshot.RestoreFiles(snapshot.RestoreOptions{
			SnapshotPath: snapPath, Name: name, InitialCluster: strings.Join(initial, ","), InitialClusterToken: simToken,
			InitialAdvertisePeerURLs: []string{fmt.Sprintf("http://%s:2380", name)},
		}, db, disk, "member/wal")
		if err != nil {
			return err
		}
		if e.c.tamper != nil {
			if err := e.c.tamper(db); err != nil {
				return err
			}
		}
	}
	e.r.RestoreWall = time.Since(start)
	// The members write to their backends as soon as they start.
	b, err := os.ReadFile(filepath.Join(dir, "m1.db"))
	if err != nil {
		return err
	}
	return os.WriteFile(view, b, 0o600)
}

// simCluster is one simulated world with a cluster and its clients.
type simCluster struct {
	*cluster.Sim
	w      *sim.World
	load   *scenarios.SimLoad
	view   string // restored clusters: a copy of the restored backend
	closed bool
}

// Close closes the cluster; it may be called twice.
func (s *simCluster) Close() {
	if !s.closed {
		s.closed = true
		s.Sim.Close()
	}
}

func (s *simCluster) Now() time.Duration          { return s.w.Elapsed() }
func (s *simCluster) Sleep(d time.Duration) error { return s.w.RunFor(d) }
func (s *simCluster) Stop(m string) error         { _ = s.Sim.Crash(m, false); return nil }
func (s *simCluster) HealAll() error              { s.Sim.HealAll(); return nil }
func (s *simCluster) Acknowledged() int           { return s.load.Acknowledged() }

func (s *simCluster) History() []linearizability.Operation { return s.load.History() }

func (s *simCluster) Until(limit time.Duration, cond func() (bool, string)) error {
	var why string
	err := s.w.RunUntil(func() bool { ok, w := cond(); why = w; return ok }, limit)
	if err != nil && why != "" {
		err = fmt.Errorf("%w: %s", err, why)
	}
	return err
}

var errDown = errors.New("drill: member is down")

// lastAckedWrite is the highest revision an acknowledged write of h got.
func lastAckedWrite(h []linearizability.Operation) int64 {
	var last int64
	for i := range h {
		op := &h[i]
		if op.Outcome == linearizability.OutcomeOK && (writesValue(op) || op.Kind == linearizability.KindDelete) {
			last = max(last, op.Resp.Revision)
		}
	}
	return last
}

func (s *simCluster) Status(m string) (Status, error) {
	n := s.Sim.Node(m)
	if n == nil {
		return Status{}, fmt.Errorf("%w: %s", errDown, m)
	}
	st := n.Status()
	return Status{Applied: st.Applied, Committed: st.Committed, SnapshotIndex: st.SnapshotIndex, SnapshotKnown: true}, nil
}

func (s *simCluster) HashKV(m string) (uint32, int64, error) {
	n := s.Sim.Node(m)
	if n == nil {
		return 0, 0, fmt.Errorf("%w: %s", errDown, m)
	}
	h, rev, _, err := n.HashKV(0)
	return h, rev, err
}

// Save snapshots the leader (else the first member up) between two events,
// once it holds every write acknowledged so far (what the real save's barrier
// read ensures): if none does yet (faults took them down, or the one up is
// behind), the world runs until one does, up to 10 s.
func (s *simCluster) Save(path string) (Save, error) {
	sv := Save{Start: s.w.Elapsed()}
	need := lastAckedWrite(s.load.History())
	ready := func() bool {
		sv.Source = s.Sim.Leader()
		for _, name := range s.Sim.Members() {
			if sv.Source == "" && s.Sim.Node(name) != nil {
				sv.Source = name
			}
		}
		n := s.Sim.Node(sv.Source)
		return n != nil && n.Status().Revision >= need
	}
	if err := s.w.RunUntil(ready, 10*time.Second); err != nil {
		return sv, fmt.Errorf("drill: no member up with revision %d to save from: %w", need, err)
	}
	src, n := sv.Source, s.Sim.Node(sv.Source)
	sv.Waited = s.w.Elapsed() - sv.Start
	start := time.Now()
	var img bytes.Buffer
	if _, err := n.WriteSnapshot(&img); err != nil {
		return sv, fmt.Errorf("drill: snapshot %s: %w", src, err)
	}
	f, err := os.Create(path)
	if err != nil {
		return sv, err
	}
	sv.Bytes, err = snapshot.Write(f, &img)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	sv.Wall = time.Since(start)
	return sv, err
}

// StopLoad stops the clients and runs until none has a request outstanding.
func (s *simCluster) StopLoad(limit time.Duration) error {
	s.load.Stop()
	return s.w.RunUntil(s.load.Idle, limit)
}

// Settle is StopLoad that also waits until the members agree.
func (s *simCluster) Settle(limit time.Duration) error {
	s.load.Stop()
	err := s.w.RunUntil(func() bool {
		if !s.load.Idle() {
			return false
		}
		ok, _ := s.Sim.Converged()
		return ok
	}, limit)
	if err != nil {
		_, why := s.Sim.Converged()
		return fmt.Errorf("%w: %s", err, why)
	}
	return nil
}

// WatchLeader schedules a probe every 50 ms of virtual time.
func (s *simCluster) WatchLeader() func() time.Duration {
	last, worst, stopped := s.w.Elapsed(), time.Duration(0), false
	var probe func()
	probe = func() {
		if stopped {
			return
		}
		if s.Sim.Leader() != "" {
			last = s.w.Elapsed()
		} else if gap := s.w.Elapsed() - last; gap > worst {
			worst = gap
		}
		s.w.Schedule(50*time.Millisecond, "probe", probe)
	}
	probe()
	return func() time.Duration { stopped = true; return worst }
}

// Keyspace opens the copy of the restored backend.
func (s *simCluster) Keyspace() (Keyspace, error) {
	kv, err := mvcc.Open(s.view, mvcc.Options{NoSync: true})
	if err != nil {
		return nil, err
	}
	return mvccKeyspace{kv}, nil
}

// mvccKeyspace reads a restored backend file directly.
type mvccKeyspace struct{ s *mvcc.Store }

func (m mvccKeyspace) Rev() (int64, error) { return m.s.Rev(), nil }
func (m mvccKeyspace) Close() error        { return m.s.Close() }

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
