package wal

import (
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/havoclab/havoc/vfs"
)

const dir = "data/wal"

func ent(index, term uint64, data string) *raftpb.Entry {
	return &raftpb.Entry{Index: new(index), Term: new(term), Type: raftpb.EntryType_EntryNormal.Enum(), Data: []byte(data)}
}

func ents(from, to, term uint64) []*raftpb.Entry {
	var out []*raftpb.Entry
	for i := from; i <= to; i++ {
		out = append(out, ent(i, term, fmt.Sprintf("e%d.%d", i, term)))
	}
	return out
}

func hardState(term, vote, commit uint64) *raftpb.HardState {
	return &raftpb.HardState{Term: new(term), Vote: new(vote), Commit: new(commit)}
}

// summary renders the parts of a State that tests compare.
func summary(st *State) string {
	var b strings.Builder
	fmt.Fprintf(&b, "snap=%d/%d hs=%d/%d/%d ents=", st.Snapshot.Index, st.Snapshot.Term,
		st.HardState.GetTerm(), st.HardState.GetVote(), st.HardState.GetCommit())
	for _, e := range st.Entries {
		fmt.Fprintf(&b, "%d/%d:%s ", e.GetIndex(), e.GetTerm(), e.GetData())
	}
	return b.String()
}

func open(t *testing.T, fsys vfs.FS, opts Options) (*WAL, *State) {
	t.Helper()
	w, st, err := Open(fsys, dir, opts)
	require.NoError(t, err)
	return w, st
}

func segments(t testing.TB, fsys vfs.FS) []string {
	t.Helper()
	names, err := fsys.List(dir)
	require.NoError(t, err)
	return names
}

func readAll(t testing.TB, fsys vfs.FS, name string) []byte {
	t.Helper()
	f, err := fsys.Open(name)
	require.NoError(t, err)
	defer f.Close()
	b, err := io.ReadAll(f)
	require.NoError(t, err)
	return b
}

func writeFile(t *testing.T, fsys vfs.FS, name string, b []byte) {
	t.Helper()
	f, err := fsys.Create(name)
	require.NoError(t, err)
	_, err = f.Write(b)
	require.NoError(t, err)
	require.NoError(t, f.Sync())
	require.NoError(t, f.Close())
	require.NoError(t, fsys.SyncDir(path.Dir(name)))
}

func TestCreateOpenErrors(t *testing.T) {
	m := vfs.NewMem()
	ok, err := Exist(m, dir)
	require.NoError(t, err)
	assert.False(t, ok)
	_, _, err = Open(m, dir, Options{})
	assert.ErrorIs(t, err, ErrNotFound)

	w, err := Create(m, dir, []byte("meta"), Options{})
	require.NoError(t, err)
	require.NoError(t, w.Close())
	assert.ErrorIs(t, w.Save(nil, ents(1, 1, 1), true), ErrClosed)
	ok, err = Exist(m, dir)
	require.NoError(t, err)
	assert.True(t, ok)
	_, err = Create(m, dir, nil, Options{})
	assert.ErrorIs(t, err, ErrExist)
	_, err = Create(m, "other", nil, Options{SegmentBytes: -1})
	assert.Error(t, err)

	// Create is durable on its own.
	m.Crash()
	_, st := open(t, m, Options{})
	assert.Equal(t, []byte("meta"), st.Metadata)
	assert.Equal(t, "snap=0/0 hs=0/0/0 ents=", summary(st))
}

func TestRoundTrip(t *testing.T) {
	for _, segBytes := range []int64{0, 1, 200} {
		t.Run(fmt.Sprint("segment=", segBytes), func(t *testing.T) {
			m := vfs.NewMem()
			opts := Options{SegmentBytes: segBytes}
			w, err := Create(m, dir, []byte("cluster-1"), opts)
			require.NoError(t, err)
			require.NoError(t, w.Save(hardState(1, 1, 0), ents(1, 3, 1), true))
			require.NoError(t, w.Save(nil, ents(4, 10, 1), false))
			require.NoError(t, w.Save(hardState(2, 0, 7), nil, true))
			require.NoError(t, w.SaveSnapshot(Snapshot{Index: 5, Term: 1, ConfState: &raftpb.ConfState{Voters: []uint64{1, 2, 3}}}))
			require.NoError(t, w.Save(hardState(2, 3, 9), ents(11, 12, 2), true))
			require.NoError(t, w.Close())

			want := "snap=5/1 hs=2/3/9 ents=6/1:e6.1 7/1:e7.1 8/1:e8.1 9/1:e9.1 10/1:e10.1 11/2:e11.2 12/2:e12.2 "
			w, st := open(t, m, opts)
			assert.Equal(t, want, summary(st))
			assert.Equal(t, []byte("cluster-1"), st.Metadata)
			assert.Equal(t, []uint64{1, 2, 3}, st.Snapshot.ConfState.GetVoters())
			assert.False(t, st.TruncatedTail)

			// The reopened WAL appends where it left off.
			require.NoError(t, w.Save(nil, ents(13, 13, 2), true))
			m.Crash()
			_, st = open(t, m, opts)
			assert.Equal(t, want+"13/2:e13.2 ", summary(st))
			if segBytes == 1 {
				assert.Greater(t, len(segments(t, m)), 5, "tiny segments roll on every save")
			}
		})
	}
}

func TestOverwrite(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(w *WAL) error
		want string
	}{
		{"tail", func(w *WAL) error {
			return errors.Join(w.Save(nil, ents(1, 5, 1), false), w.Save(nil, ents(4, 6, 2), true))
		}, "snap=0/0 hs=0/0/0 ents=1/1:e1.1 2/1:e2.1 3/1:e3.1 4/2:e4.2 5/2:e5.2 6/2:e6.2 "},
		{"shorter", func(w *WAL) error {
			return errors.Join(w.Save(nil, ents(1, 5, 1), false), w.Save(nil, ents(2, 2, 3), true))
		}, "snap=0/0 hs=0/0/0 ents=1/1:e1.1 2/3:e2.3 "},
		{"whole log", func(w *WAL) error {
			return errors.Join(w.Save(nil, ents(1, 3, 1), false), w.Save(nil, ents(1, 1, 2), true))
		}, "snap=0/0 hs=0/0/0 ents=1/2:e1.2 "},
		{"matching snapshot keeps later entries", func(w *WAL) error {
			return errors.Join(w.Save(nil, ents(1, 6, 1), false), w.SaveSnapshot(Snapshot{Index: 4, Term: 1}))
		}, "snap=4/1 hs=0/0/0 ents=5/1:e5.1 6/1:e6.1 "},
		{"conflicting snapshot resets", func(w *WAL) error {
			return errors.Join(w.Save(nil, ents(1, 6, 1), false), w.SaveSnapshot(Snapshot{Index: 4, Term: 2}),
				w.Save(nil, ents(5, 5, 2), true))
		}, "snap=4/2 hs=0/0/0 ents=5/2:e5.2 "},
		{"snapshot beyond the log resets", func(w *WAL) error {
			return errors.Join(w.Save(nil, ents(1, 3, 1), false), w.SaveSnapshot(Snapshot{Index: 9, Term: 2}),
				w.Save(nil, ents(10, 11, 2), true))
		}, "snap=9/2 hs=0/0/0 ents=10/2:e10.2 11/2:e11.2 "},
		{"same snapshot twice", func(w *WAL) error {
			return errors.Join(w.Save(nil, ents(1, 3, 1), false), w.SaveSnapshot(Snapshot{Index: 2, Term: 1}),
				w.SaveSnapshot(Snapshot{Index: 2, Term: 1}))
		}, "snap=2/1 hs=0/0/0 ents=3/1:e3.1 "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, segBytes := range []int64{0, 1} {
				m := vfs.NewMem()
				w, err := Create(m, dir, nil, Options{SegmentBytes: segBytes})
				require.NoError(t, err)
				require.NoError(t, tc.run(w))
				m.Crash()
				_, st := open(t, m, Options{})
				assert.Equal(t, tc.want, summary(st), "segment bytes %d", segBytes)
			}
		})
	}
}

func TestSavePanicsOnGap(t *testing.T) {
	w, err := Create(vfs.NewMem(), dir, nil, Options{})
	require.NoError(t, err)
	require.NoError(t, w.Save(nil, ents(1, 2, 1), false))
	assert.Panics(t, func() { _ = w.Save(nil, ents(4, 4, 1), false) })
	assert.Panics(t, func() { _ = w.Save(nil, []*raftpb.Entry{ent(3, 1, ""), ent(5, 1, "")}, false) })
	require.NoError(t, w.SaveSnapshot(Snapshot{Index: 2, Term: 1}))
	assert.Panics(t, func() { _ = w.Save(nil, ents(2, 2, 1), false) })
	assert.Panics(t, func() { _ = w.SaveSnapshot(Snapshot{Index: 1, Term: 1}) })
}

func TestReleaseTo(t *testing.T) {
	m := vfs.NewMem()
	opts := Options{SegmentBytes: 300}
	w, err := Create(m, dir, []byte("m"), opts)
	require.NoError(t, err)
	for i := uint64(1); i <= 60; i += 5 {
		require.NoError(t, w.Save(hardState(1, 1, i), ents(i, i+4, 1), true))
	}
	before := len(segments(t, m))
	require.Greater(t, before, 5)
	require.NoError(t, w.ReleaseTo(40), "no snapshot marker yet: nothing to release")
	assert.Len(t, segments(t, m), before)

	require.NoError(t, w.SaveSnapshot(Snapshot{Index: 40, Term: 1}))
	require.NoError(t, w.Save(nil, ents(61, 70, 1), true))
	require.NoError(t, w.ReleaseTo(40))
	after := segments(t, m)
	assert.Less(t, len(after), before)
	// The first kept segment holds the marker; everything before had entries <= 40.
	m.Crash()
	w, st := open(t, m, opts)
	assert.Equal(t, uint64(40), st.Snapshot.Index)
	require.Len(t, st.Entries, 30)
	assert.Equal(t, uint64(41), st.Entries[0].GetIndex())
	assert.Equal(t, uint64(56), st.HardState.GetCommit(), "hard state survives release")
	assert.Equal(t, []byte("m"), st.Metadata)

	// Releasing again after a later snapshot, then keep writing.
	require.NoError(t, w.SaveSnapshot(Snapshot{Index: 65, Term: 1}))
	require.NoError(t, w.ReleaseTo(100))
	require.NoError(t, w.Save(hardState(2, 2, 70), ents(71, 71, 2), true))
	names := segments(t, m)
	assert.Less(t, len(names), len(after))
	m.Crash()
	_, st = open(t, m, opts)
	assert.Equal(t, "snap=65/1 hs=2/2/70 ents=66/1:e66.1 67/1:e67.1 68/1:e68.1 69/1:e69.1 70/1:e70.1 71/2:e71.2 ", summary(st))
}

func TestReleaseToKeepsEntriesAfterMarker(t *testing.T) {
	// A marker at 10 lands in a segment cut after entry 30: releasing to 30
	// must keep every entry after 10 even though the segments hold only
	// entries <= 30.
	m := vfs.NewMem()
	w, err := Create(m, dir, nil, Options{SegmentBytes: 100})
	require.NoError(t, err)
	require.NoError(t, w.Save(nil, ents(1, 30, 1), true))
	require.NoError(t, w.SaveSnapshot(Snapshot{Index: 10, Term: 1}))
	require.NoError(t, w.ReleaseTo(30))
	m.Crash()
	_, st := open(t, m, Options{})
	require.Len(t, st.Entries, 20)
	assert.Equal(t, uint64(11), st.Entries[0].GetIndex())
}

// build returns the bytes of a single-segment WAL with 5 entries, and the
// offset where its last record starts.
func build(t testing.TB) (seg string, b []byte, lastRecord int) {
	m := vfs.NewMem()
	w, err := Create(m, dir, []byte("meta"), Options{})
	require.NoError(t, err)
	require.NoError(t, w.Save(hardState(1, 1, 1), ents(1, 4, 1), true))
	size := w.size
	require.NoError(t, w.Save(nil, ents(5, 5, 1), true))
	require.NoError(t, w.Close())
	names := segments(t, m)
	require.Len(t, names, 1)
	return names[0], readAll(t, m, path.Join(dir, names[0])), int(size)
}

func TestTornTail(t *testing.T) {
	seg, full, last := build(t)
	const want4 = "snap=0/0 hs=1/1/1 ents=1/1:e1.1 2/1:e2.1 3/1:e3.1 4/1:e4.1 "
	check := func(t *testing.T, b []byte, wantTorn bool, want string) {
		t.Helper()
		m := vfs.NewMem()
		require.NoError(t, m.MkdirAll(dir))
		writeFile(t, m, path.Join(dir, seg), b)
		w, st := open(t, m, Options{})
		assert.Equal(t, wantTorn, st.TruncatedTail)
		assert.Equal(t, want, summary(st))
		// The tail is cut on disk, durably, and appends continue after it.
		next := st.Entries[len(st.Entries)-1].GetIndex() + 1
		require.NoError(t, w.Save(nil, ents(next, next, 7), true))
		m.Crash()
		_, st = open(t, m, Options{})
		assert.False(t, st.TruncatedTail)
		assert.Equal(t, want+fmt.Sprintf("%d/7:e%d.7 ", next, next), summary(st))
	}
	t.Run("every cut of the last record", func(t *testing.T) {
		for cut := last; cut < len(full); cut++ {
			check(t, full[:cut], cut > last, want4)
		}
	})
	t.Run("garbled last byte", func(t *testing.T) {
		b := append([]byte(nil), full...)
		b[len(b)-1] ^= 0x40
		check(t, b, true, want4)
	})
	t.Run("zero-filled tail", func(t *testing.T) {
		b := append(append([]byte(nil), full...), make([]byte, 4096)...)
		check(t, b, true, want4+"5/1:e5.1 ")
		b = append(append([]byte(nil), full[:last+3]...), make([]byte, 100)...)
		check(t, b, true, want4)
	})
}

func TestCorruptionRefused(t *testing.T) {
	seg, full, last := build(t)
	load := func(b []byte) error {
		m := vfs.NewMem()
		require.NoError(t, m.MkdirAll(dir))
		writeFile(t, m, path.Join(dir, seg), b)
		_, _, err := Open(m, dir, Options{})
		return err
	}
	require.NoError(t, load(full))
	// Flip every byte of every record but the last: each is followed by a
	// valid record, so none may pass for a torn tail.
	for off := 0; off < last; off++ {
		b := append([]byte(nil), full...)
		b[off] ^= 0x01
		err := load(b)
		require.ErrorIs(t, err, ErrCorrupt, "flipped byte at %d", off)
		require.Contains(t, err.Error(), seg)
	}
	err := load(full[:20])
	assert.ErrorIs(t, err, ErrCorrupt, "a torn segment header is not a torn tail")
	assert.Contains(t, err.Error(), "offset 0")
}

func TestCorruptLayout(t *testing.T) {
	newWAL := func(t *testing.T, meta string) *vfs.Mem {
		m := vfs.NewMem()
		w, err := Create(m, dir, []byte(meta), Options{SegmentBytes: 100})
		require.NoError(t, err)
		for i := uint64(1); i <= 12; i += 3 {
			require.NoError(t, w.Save(nil, ents(i, i+2, 1), true))
		}
		require.NoError(t, w.Close())
		require.Greater(t, len(segments(t, m)), 3)
		return m
	}
	openErr := func(m *vfs.Mem) error { _, _, err := Open(m, dir, Options{}); return err }

	t.Run("missing segment", func(t *testing.T) {
		m := newWAL(t, "a")
		require.NoError(t, m.Remove(path.Join(dir, segments(t, m)[1])))
		err := openErr(m)
		assert.ErrorIs(t, err, ErrCorrupt)
		assert.Contains(t, err.Error(), "missing segment")
	})
	t.Run("damage in a non-final segment", func(t *testing.T) {
		m := newWAL(t, "a")
		name := path.Join(dir, segments(t, m)[1])
		b := readAll(t, m, name)
		writeFile(t, m, name, b[:len(b)-2]) // would be a torn tail if it were last
		err := openErr(m)
		assert.ErrorIs(t, err, ErrCorrupt)
		assert.Contains(t, err.Error(), segments(t, m)[1])
	})
	t.Run("metadata mismatch", func(t *testing.T) {
		a, b := newWAL(t, "a"), newWAL(t, "b")
		name := path.Join(dir, segments(t, a)[2])
		writeFile(t, a, name, readAll(t, b, name))
		err := openErr(a)
		assert.ErrorIs(t, err, ErrCorrupt)
		assert.Contains(t, err.Error(), "metadata mismatch")
	})
	t.Run("misplaced segment", func(t *testing.T) {
		m := newWAL(t, "a")
		names := segments(t, m)
		last := names[len(names)-1]
		seq, first, _ := parseSegmentName(last)
		require.NoError(t, m.Rename(path.Join(dir, last), path.Join(dir, segmentName(seq, first+1))))
		err := openErr(m)
		assert.ErrorIs(t, err, ErrCorrupt)
		assert.Contains(t, err.Error(), "misplaced")
	})
	t.Run("foreign file", func(t *testing.T) {
		m := newWAL(t, "a")
		writeFile(t, m, path.Join(dir, "notes.wal"), []byte("hello"))
		assert.ErrorIs(t, openErr(m), ErrCorrupt)
	})
	t.Run("entry index gap", func(t *testing.T) {
		m := vfs.NewMem()
		require.NoError(t, m.MkdirAll(dir))
		b := appendSegmentHeader(nil, 0, 1)
		b = appendBytes(b, recMetadata, nil)
		for _, e := range []*raftpb.Entry{ent(1, 1, ""), ent(2, 1, ""), ent(4, 1, "")} {
			b = appendProto(b, recEntry, e)
		}
		writeFile(t, m, path.Join(dir, segmentName(0, 1)), b)
		err := openErr(m)
		assert.ErrorIs(t, err, ErrCorrupt)
		assert.Contains(t, err.Error(), "gap")
	})
	t.Run("leftover tmp is removed", func(t *testing.T) {
		m := newWAL(t, "a")
		writeFile(t, m, path.Join(dir, segmentName(99, 99)+".tmp"), []byte("partial"))
		_, _, err := Open(m, dir, Options{})
		require.NoError(t, err)
		for _, n := range segments(t, m) {
			assert.False(t, strings.HasSuffix(n, ".tmp"), n)
		}
	})
}

func TestOSRoundTrip(t *testing.T) {
	fsys := vfs.Sub(vfs.OS(), t.TempDir())
	w, err := Create(fsys, dir, []byte("os"), Options{SegmentBytes: 150})
	require.NoError(t, err)
	require.NoError(t, w.Save(hardState(1, 1, 2), ents(1, 6, 1), true))
	require.NoError(t, w.SaveSnapshot(Snapshot{Index: 2, Term: 1}))
	require.NoError(t, w.Save(nil, ents(7, 8, 1), false))
	require.NoError(t, w.ReleaseTo(2))
	require.NoError(t, w.Close())
	_, st := open(t, fsys, Options{})
	assert.Equal(t, "snap=2/1 hs=1/1/2 ents=3/1:e3.1 4/1:e4.1 5/1:e5.1 6/1:e6.1 7/1:e7.1 8/1:e8.1 ", summary(st))
}
