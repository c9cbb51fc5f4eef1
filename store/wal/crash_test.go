package wal

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/havoclab/havoc/vfs"
)

var errDead = errors.New("process died in a simulated crash")

// crashFS wraps a Mem and kills the process at the crashAt-th sync (file or
// directory): the disk crashes just before it (or just after, if after) and
// every later call fails, as if the process were gone.
type crashFS struct {
	mem     *vfs.Mem
	syncs   int
	crashAt int // 0 = never
	after   bool
	rnd     *rand.Rand // nil: Crash, else CrashTorn
	dead    bool
}

func (c *crashFS) crash() {
	if c.rnd != nil {
		c.mem.CrashTorn(c.rnd)
	} else {
		c.mem.Crash()
	}
	c.dead = true
}

// sync runs do as the next sync point, crashing around it when it is due.
func (c *crashFS) sync(do func() error) error {
	if c.dead {
		return errDead
	}
	c.syncs++
	if c.syncs != c.crashAt {
		return do()
	}
	if c.after {
		if err := do(); err != nil {
			return err
		}
	}
	c.crash()
	return errDead
}

func (c *crashFS) file(f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return crashFile{File: f, c: c}, nil
}

func (c *crashFS) Create(n string) (vfs.File, error) {
	if c.dead {
		return nil, errDead
	}
	return c.file(c.mem.Create(n))
}

func (c *crashFS) Open(n string) (vfs.File, error) {
	if c.dead {
		return nil, errDead
	}
	return c.file(c.mem.Open(n))
}

func (c *crashFS) OpenAppend(n string) (vfs.File, error) {
	if c.dead {
		return nil, errDead
	}
	return c.file(c.mem.OpenAppend(n))
}

func (c *crashFS) Remove(n string) error {
	if c.dead {
		return errDead
	}
	return c.mem.Remove(n)
}

func (c *crashFS) Rename(o, n string) error {
	if c.dead {
		return errDead
	}
	return c.mem.Rename(o, n)
}

func (c *crashFS) MkdirAll(d string) error {
	if c.dead {
		return errDead
	}
	return c.mem.MkdirAll(d)
}

func (c *crashFS) List(d string) ([]string, error) {
	if c.dead {
		return nil, errDead
	}
	return c.mem.List(d)
}

func (c *crashFS) Exists(n string) (bool, error) {
	if c.dead {
		return false, errDead
	}
	return c.mem.Exists(n)
}

func (c *crashFS) SyncDir(d string) error { return c.sync(func() error { return c.mem.SyncDir(d) }) }

type crashFile struct {
	vfs.File
	c *crashFS
}

func (f crashFile) Write(p []byte) (int, error) {
	if f.c.dead {
		return 0, errDead
	}
	return f.File.Write(p)
}

func (f crashFile) Truncate(n int64) error {
	if f.c.dead {
		return errDead
	}
	return f.File.Truncate(n)
}

func (f crashFile) Sync() error { return f.c.sync(f.File.Sync) }

// op is one step of a workload; rec lists the records it writes, in order.
type op struct {
	hs       *raftpb.HardState
	ents     []*raftpb.Entry
	sync     bool
	snap     *Snapshot
	release  uint64
	isRelase bool
}

// genWorkload makes a raft-like sequence: appends that sometimes overwrite an
// uncommitted suffix in a new term, hard states, snapshots of committed
// entries, snapshots from a "leader" that jump past or conflict with the log,
// and releases.
func genWorkload(rnd *rand.Rand, n int) []op {
	var ops []op
	term, last, commit, snapIdx := uint64(1), uint64(0), uint64(0), uint64(0)
	terms := map[uint64]uint64{}
	for len(ops) < n {
		switch k := rnd.IntN(10); {
		case k < 6:
			from := last + 1
			if rnd.IntN(4) == 0 && last > max(commit, snapIdx) {
				term++
				from = max(commit, snapIdx) + 1 + uint64(rnd.IntN(int(last-max(commit, snapIdx))))
			}
			cnt := uint64(rnd.IntN(4))
			var es []*raftpb.Entry
			for i := from; i < from+cnt; i++ {
				es = append(es, ent(i, term, fmt.Sprintf("op%d-%d", len(ops), i)))
				terms[i] = term
			}
			if cnt > 0 {
				last = from + cnt - 1
			}
			var hs *raftpb.HardState
			if rnd.IntN(2) == 0 {
				if last > commit {
					commit += uint64(rnd.IntN(int(last-commit) + 1))
				}
				hs = hardState(term, 1, commit)
			}
			ops = append(ops, op{hs: hs, ents: es, sync: rnd.IntN(2) == 0})
		case k < 8:
			if commit > snapIdx {
				s := Snapshot{Index: commit, Term: terms[commit], ConfState: &raftpb.ConfState{Voters: []uint64{1, 2, 3}}}
				snapIdx = commit
				ops = append(ops, op{snap: &s})
			}
		case k < 9:
			// A leader's snapshot: beyond the log, or conflicting with it.
			term++
			idx := max(snapIdx, commit) + 1 + uint64(rnd.IntN(5))
			s := Snapshot{Index: idx, Term: term}
			snapIdx, commit, last = idx, idx, idx
			terms[idx] = term
			ops = append(ops, op{snap: &s})
		default:
			ops = append(ops, op{release: snapIdx, isRelase: true})
		}
	}
	return ops
}

// model replays records the way recovery must, as the oracle.
type model struct {
	snap Snapshot
	hs   *raftpb.HardState
	ents []*raftpb.Entry
}

type record struct {
	e    *raftpb.Entry
	hs   *raftpb.HardState
	snap *Snapshot
}

func (m *model) apply(r record) {
	switch {
	case r.e != nil:
		var kept []*raftpb.Entry
		for _, e := range m.ents {
			if e.GetIndex() < r.e.GetIndex() {
				kept = append(kept, e)
			}
		}
		m.ents = append(kept, r.e)
	case r.hs != nil:
		m.hs = r.hs
	case r.snap != nil:
		holds := r.snap.Index <= m.snap.Index && (r.snap.Index < m.snap.Index || r.snap.Term == m.snap.Term)
		var kept []*raftpb.Entry
		for _, e := range m.ents {
			if e.GetIndex() == r.snap.Index && e.GetTerm() == r.snap.Term {
				holds = true
			}
			if e.GetIndex() > r.snap.Index {
				kept = append(kept, e)
			}
		}
		if !holds {
			kept = nil
		}
		m.ents, m.snap = kept, *r.snap
	}
}

func (m *model) summary() string {
	st := &State{Snapshot: m.snap, HardState: m.hs, Entries: m.ents}
	if st.HardState == nil {
		st.HardState = &raftpb.HardState{}
	}
	return summary(st)
}

// runWorkload applies ops to a WAL on fsys until the first error, and returns
// the records written (attempted) and how many were acknowledged durable.
func runWorkload(fsys vfs.FS, ops []op, opts Options) (recs []record, durable int, err error) {
	w, err := Create(fsys, dir, []byte("meta"), opts)
	if err != nil {
		return nil, 0, err
	}
	for _, o := range ops {
		switch {
		case o.snap != nil:
			recs = append(recs, record{snap: o.snap})
			err = w.SaveSnapshot(*o.snap)
			if err == nil {
				durable = len(recs)
			}
		case o.isRelase:
			err = w.ReleaseTo(o.release)
		default:
			for _, e := range o.ents {
				recs = append(recs, record{e: e})
			}
			if o.hs != nil {
				recs = append(recs, record{hs: o.hs})
			}
			err = w.Save(o.hs, o.ents, o.sync)
			if err == nil && o.sync {
				durable = len(recs)
			}
		}
		if err != nil {
			return recs, durable, err
		}
	}
	return recs, durable, nil
}

// checkRecovered opens the crashed disk and requires the state to be that of
// some prefix of recs at least durable long, then that the WAL still works.
func checkRecovered(t *testing.T, mem *vfs.Mem, recs []record, durable int, opts Options, what string) {
	t.Helper()
	w, st, err := Open(mem, dir, opts)
	if durable == 0 && errors.Is(err, ErrNotFound) {
		return // crashed inside Create, before it returned
	}
	require.NoError(t, err, what)
	got := summary(st)
	var m model
	var allowed []string
	for k := 0; k <= len(recs); k++ {
		if k > 0 {
			m.apply(recs[k-1])
		}
		if k >= durable {
			s := m.summary()
			if s == got {
				allowed = nil
				break
			}
			allowed = append(allowed, s)
		}
	}
	require.Nil(t, allowed, "%s: recovered %s\nnot the state after any prefix of at least %d of %d records", what, got, durable, len(recs))

	// The recovered WAL takes appends and keeps them.
	next := max(st.Snapshot.Index, 0) + 1
	if n := len(st.Entries); n > 0 {
		next = st.Entries[n-1].GetIndex() + 1
	}
	require.NoError(t, w.Save(hardState(1000, 1, 0), ents(next, next, 1000), true), what)
	mem.Crash()
	_, st2, err := Open(mem, dir, opts)
	require.NoError(t, err, what)
	require.Equal(t, got+fmt.Sprintf("%d/1000:e%d.1000 ", next, next), summary(&State{Snapshot: st2.Snapshot, HardState: st.HardState, Entries: st2.Entries}), what)
	require.Equal(t, uint64(1000), st2.HardState.GetTerm(), what)
}

func TestCrashAtEverySyncBoundary(t *testing.T) {
	workloads := 3
	if testing.Short() {
		workloads = 1
	}
	for wl := range workloads {
		ops := genWorkload(rand.New(rand.NewPCG(uint64(wl), 99)), 80)
		opts := Options{SegmentBytes: 400}
		// Count the sync points of an uninterrupted run.
		probe := &crashFS{mem: vfs.NewMem()}
		_, _, err := runWorkload(probe, ops, opts)
		require.NoError(t, err)
		require.Greater(t, probe.syncs, 40)
		runs := 0
		for at := 1; at <= probe.syncs; at++ {
			for _, after := range []bool{false, true} {
				for seed := range 4 {
					c := &crashFS{mem: vfs.NewMem(), crashAt: at, after: after}
					if seed > 0 {
						c.rnd = rand.New(rand.NewPCG(uint64(seed), uint64(at)))
					}
					recs, durable, err := runWorkload(c, ops, opts)
					require.ErrorIs(t, err, errDead)
					what := fmt.Sprintf("workload %d, crash at sync %d (after=%v, torn seed %d)", wl, at, after, seed)
					checkRecovered(t, c.mem, recs, durable, opts, what)
					runs++
				}
			}
		}
		t.Logf("workload %d: %d ops, %d sync points, %d crash runs", wl, len(ops), probe.syncs, runs)
	}
}

func TestCrashAfterEveryStep(t *testing.T) {
	ops := genWorkload(rand.New(rand.NewPCG(7, 7)), 80)
	opts := Options{SegmentBytes: 400}
	for step := 0; step <= len(ops); step++ {
		for seed := range 4 {
			c := &crashFS{mem: vfs.NewMem()}
			recs, durable, err := runWorkload(c, ops[:step], opts)
			require.NoError(t, err)
			if seed == 0 {
				c.mem.Crash()
			} else {
				c.mem.CrashTorn(rand.New(rand.NewPCG(uint64(seed), uint64(step))))
			}
			checkRecovered(t, c.mem, recs, durable, opts, fmt.Sprintf("crash after step %d, torn seed %d", step, seed))
		}
	}
}

func TestDiskFull(t *testing.T) {
	ops := genWorkload(rand.New(rand.NewPCG(3, 3)), 80)
	for i := range ops {
		ops[i].sync = true
	}
	opts := Options{SegmentBytes: 500}
	full := 0
	for capacity := int64(150); capacity < 2000; capacity += 17 {
		mem := vfs.NewMem()
		mem.SetCapacity(capacity)
		c := &crashFS{mem: mem}
		recs, durable, err := runWorkload(c, ops, opts)
		if err == nil {
			continue
		}
		what := fmt.Sprintf("capacity %d", capacity)
		require.ErrorIs(t, err, vfs.ErrNoSpace, what)
		full++
		// Reopen on the still-full disk: recovery only ever shrinks files.
		w, st, err := Open(mem, dir, opts)
		if durable == 0 && errors.Is(err, ErrNotFound) {
			continue
		}
		require.NoError(t, err, what)
		require.False(t, st.TruncatedTail, "a failed Mem write writes nothing")
		require.NoError(t, w.Close())
		mem.SetCapacity(0)
		mem.Crash()
		checkRecovered(t, mem, recs, durable, opts, what)
	}
	require.Greater(t, full, 40, "most capacities must run out")
}
