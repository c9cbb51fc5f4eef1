package wal

import (
	"testing"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/havoclab/havoc/vfs"
)

func benchSave(b *testing.B, fsys vfs.FS) {
	w, err := Create(fsys, dir, []byte("bench"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	data := make([]byte, 128)
	hs := hardState(1, 1, 0)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	i := uint64(0)
	for b.Loop() {
		i++
		e := &raftpb.Entry{Index: new(i), Term: new(uint64(1)), Data: data}
		if err := w.Save(hs, []*raftpb.Entry{e}, true); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkSave measures Save of one 128-byte entry plus a hard state, synced.
func BenchmarkSave(b *testing.B) {
	b.Run("mem", func(b *testing.B) { benchSave(b, vfs.NewMem()) })
	b.Run("os", func(b *testing.B) { benchSave(b, vfs.Sub(vfs.OS(), b.TempDir())) })
}

// BenchmarkOpen measures recovery of 100k entries of 128 bytes (about 16 MB
// in 64 MiB segments, so one segment) from Mem.
func BenchmarkOpen(b *testing.B) {
	const n = 100_000
	m := vfs.NewMem()
	w, err := Create(m, dir, []byte("bench"), Options{SegmentBytes: 4 << 20})
	if err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 128)
	batch := make([]*raftpb.Entry, 0, 100)
	for i := uint64(1); i <= n; i++ {
		batch = append(batch, &raftpb.Entry{Index: new(i), Term: new(uint64(1)), Data: data})
		if len(batch) == cap(batch) {
			if err := w.Save(hardState(1, 1, i), batch, false); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		w, st, err := Open(m, dir, Options{})
		if err != nil {
			b.Fatal(err)
		}
		if len(st.Entries) != n {
			b.Fatalf("recovered %d entries, want %d", len(st.Entries), n)
		}
		w.Close()
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}
