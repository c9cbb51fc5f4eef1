package wal

import (
	"path"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/havoclab/havoc/vfs"
)

// FuzzDecode feeds arbitrary bytes as the only segment file: Open must never
// panic, and whatever it accepts must be a usable, self-consistent log.
func FuzzDecode(f *testing.F) {
	_, full, last := build(f)
	f.Add(full)
	f.Add(full[:last+5])
	f.Add(full[:20])
	f.Add([]byte{})
	snap := appendSegmentHeader(nil, 0, 1)
	snap = appendBytes(snap, recMetadata, []byte("m"))
	snap = appendSnapshot(snap, Snapshot{Index: 7, Term: 2}, true)
	snap = appendProto(snap, recEntry, ent(8, 2, "x"))
	f.Add(snap)
	f.Fuzz(func(t *testing.T, data []byte) {
		m := vfs.NewMem()
		require.NoError(t, m.MkdirAll(dir))
		fl, err := m.Create(path.Join(dir, segmentName(0, 1)))
		require.NoError(t, err)
		_, err = fl.Write(data)
		require.NoError(t, err)
		require.NoError(t, fl.Close())
		w, st, err := Open(m, dir, Options{SegmentBytes: 256})
		if err != nil {
			return
		}
		next := st.Snapshot.Index + 1
		for i, e := range st.Entries {
			require.Equal(t, next+uint64(i), e.GetIndex(), "entries are contiguous after the snapshot")
		}
		if n := len(st.Entries); n > 0 {
			next = st.Entries[n-1].GetIndex() + 1
		}
		if next == 0 {
			return // index space exhausted by a hostile input
		}
		require.NoError(t, w.Save(nil, ents(next, next, 1), true))
		require.NoError(t, w.Close())
		_, st2, err := Open(m, dir, Options{})
		require.NoError(t, err)
		require.Len(t, st2.Entries, len(st.Entries)+1)
	})
}
