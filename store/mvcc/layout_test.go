package mvcc

import (
	"bytes"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"
)

// TestBucketLayout reads the file with bbolt directly and checks etcd's bytes.
func TestBucketLayout(t *testing.T) {
	s, path := openTest(t, Options{NoSync: true})
	s.SetLeaseHooks(newTestLeases(0x77))
	_, err := s.Put(&pb.PutRequest{Key: []byte("foo"), Value: []byte("bar"), Lease: 0x77})
	require.NoError(t, err)
	_, err = s.Txn(&pb.TxnRequest{Success: []*pb.RequestOp{put("x", "1"), del("foo", "")}})
	require.NoError(t, err)
	_, err = s.Compact(2)
	require.NoError(t, err)
	s.SetConsistentIndex(42, 7)
	require.NoError(t, s.Close())

	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	require.NoError(t, err)
	defer db.Close()
	require.NoError(t, db.View(func(tx *bolt.Tx) error {
		var names []string
		require.NoError(t, tx.ForEach(func(name []byte, _ *bolt.Bucket) error { names = append(names, string(name)); return nil }))
		require.ElementsMatch(t, allBuckets, names)

		type entry struct{ k, v []byte }
		var got []entry
		require.NoError(t, tx.Bucket([]byte("key")).ForEach(func(k, v []byte) error {
			got = append(got, entry{bytes.Clone(k), bytes.Clone(v)})
			return nil
		}))
		require.Len(t, got, 3)
		require.Equal(t, []byte{0, 0, 0, 0, 0, 0, 0, 2, '_', 0, 0, 0, 0, 0, 0, 0, 0}, got[0].k)
		require.Equal(t, []byte{0, 0, 0, 0, 0, 0, 0, 3, '_', 0, 0, 0, 0, 0, 0, 0, 0}, got[1].k)
		require.Equal(t, []byte{0, 0, 0, 0, 0, 0, 0, 3, '_', 0, 0, 0, 0, 0, 0, 0, 1, 't'}, got[2].k)
		want, _ := proto.Marshal(&mvccpb.KeyValue{Key: []byte("foo"), Value: []byte("bar"), CreateRevision: 2, ModRevision: 2, Version: 1, Lease: 0x77})
		require.Equal(t, want, got[0].v)
		want, _ = proto.Marshal(&mvccpb.KeyValue{Key: []byte("foo")})
		require.Equal(t, want, got[2].v)
		// The proto3 wire bytes by hand: field 1 key, 2 create, 3 mod, 4 version, 5 value, 6 lease.
		require.Equal(t, []byte{0x0a, 3, 'f', 'o', 'o', 0x10, 2, 0x18, 2, 0x20, 1, 0x2a, 3, 'b', 'a', 'r', 0x30, 0x77}, got[0].v)

		m := tx.Bucket([]byte("meta"))
		require.Equal(t, []byte{0, 0, 0, 0, 0, 0, 0, 42}, m.Get([]byte("consistent_index")))
		require.Equal(t, []byte{0, 0, 0, 0, 0, 0, 0, 7}, m.Get([]byte("term")))
		rev2 := []byte{0, 0, 0, 0, 0, 0, 0, 2, '_', 0, 0, 0, 0, 0, 0, 0, 0}
		require.Equal(t, rev2, m.Get([]byte("scheduledCompactRev")))
		require.Equal(t, rev2, m.Get([]byte("finishedCompactRev")))
		require.Equal(t, []byte("3.7.0"), m.Get([]byte("storageVersion")))
		return nil
	}))
}

func TestOpenRejectsUndecodableValue(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	db, err := bolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		b, _ := tx.CreateBucket([]byte("key"))
		return b.Put(revKey(revision{2, 0}, false), []byte{0xff, 0xff})
	}))
	require.NoError(t, db.Close())
	_, err = Open(path, Options{NoSync: true})
	require.Error(t, err)
}

func TestAbortLosesOnlyTheBatch(t *testing.T) {
	s, path := openTest(t, Options{NoSync: true})
	mustPut(t, s, "a", "1")
	s.SetConsistentIndex(5, 1)
	require.NoError(t, s.Commit())
	mustPut(t, s, "a", "2")
	s.SetConsistentIndex(6, 1)
	require.NoError(t, s.Abort())
	s2, err := Open(path, Options{NoSync: true})
	require.NoError(t, err)
	defer s2.Close()
	require.EqualValues(t, 2, s2.Rev())
	idx, term := s2.ConsistentIndex()
	require.EqualValues(t, 5, idx)
	require.EqualValues(t, 1, term)
	require.Equal(t, "1", string(mustRange(t, s2, &pb.RangeRequest{Key: []byte("a")}).Kvs[0].Value))
}

func TestBatchLimitAutoCommits(t *testing.T) {
	s, path := openTest(t, Options{NoSync: true, BatchLimit: 3})
	for i := range 5 {
		mustPut(t, s, "k", string(rune('a'+i)))
	}
	require.NoError(t, s.Abort())
	s2, err := Open(path, Options{NoSync: true})
	require.NoError(t, err)
	defer s2.Close()
	require.EqualValues(t, 4, s2.Rev(), "writes 1-3 committed by the limit, 4-5 lost")
	require.Error(t, Options{BatchLimit: -1}.Validate())
}

func TestSnapshotAndReplace(t *testing.T) {
	src, _ := openTest(t, Options{NoSync: true})
	src.SetLeaseHooks(newTestLeases(3))
	fill(t, src)
	_, err := src.Put(&pb.PutRequest{Key: []byte("l"), Value: []byte("x"), Lease: 3})
	require.NoError(t, err)
	_, err = src.Compact(4)
	require.NoError(t, err)
	src.PutRaw(BucketMembers, []byte("1"), []byte("m"))
	var img bytes.Buffer
	n, err := src.WriteSnapshot(&img)
	require.NoError(t, err)
	require.EqualValues(t, img.Len(), n)
	require.Equal(t, src.Size(), n)
	require.LessOrEqual(t, src.SizeInUse(), src.Size())
	mustPut(t, src, "after", "snapshot") // the store stays usable

	dst, _ := openTest(t, Options{NoSync: true})
	mustPut(t, dst, "old", "x")
	require.NoError(t, dst.Watch(1, WatchRequest{Key: []byte("a")}))
	leases := newTestLeases(3)
	dst.SetLeaseHooks(leases)
	require.NoError(t, dst.ReplaceWith(bytes.NewReader(img.Bytes())))
	require.EqualValues(t, 8, dst.Rev())
	require.EqualValues(t, 4, dst.CompactRev())
	require.Empty(t, mustRange(t, dst, &pb.RangeRequest{Key: []byte("old")}).Kvs)
	require.Equal(t, []string{"a", "ab", "c", "l"}, keysOf(mustRange(t, dst, &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}})))
	require.Equal(t, []byte("m"), dst.GetRaw(BucketMembers, []byte("1")))
	require.Equal(t, map[string]bool{"l": true}, leases.attached[3])
	ha, _, _, err := src.HashKV(8)
	require.NoError(t, err)
	hb, _, _, err := dst.HashKV(8)
	require.NoError(t, err)
	require.Equal(t, ha, hb)
	// The watcher at "a" had seen revision 2 of the old store; it catches up on the new
	// history from revision 3 on: compacted (3 < 4).
	evs := dst.DrainWatch(0)
	require.Len(t, evs, 1)
	require.True(t, evs[0].Canceled)
	require.EqualValues(t, 4, evs[0].CompactRevision)

	require.Error(t, dst.ReplaceWith(bytes.NewReader([]byte("not a bolt file"))))
	require.EqualValues(t, 8, dst.Rev(), "a bad image leaves the store as it was")
}

func TestRawBuckets(t *testing.T) {
	s, path := openTest(t, Options{NoSync: true})
	s.PutRaw(BucketLease, []byte{0, 2}, []byte("b"))
	s.PutRaw(BucketLease, []byte{0, 1}, []byte("a"))
	s.DeleteRaw(BucketLease, []byte{0, 3})
	var seen []string
	require.NoError(t, s.ForEachRaw(BucketLease, func(k, v []byte) error { seen = append(seen, string(v)); return nil }))
	require.Equal(t, []string{"a", "b"}, seen)
	require.Panics(t, func() { s.PutRaw(BucketKey, []byte("x"), nil) })
	require.NoError(t, s.Close())
	s2, err := Open(path, Options{NoSync: true})
	require.NoError(t, err)
	defer s2.Close()
	require.Equal(t, []byte("a"), s2.GetRaw(BucketLease, []byte{0, 1}))
	require.Nil(t, s2.GetRaw(BucketLease, []byte{0, 9}))
}

func TestHashIgnoresMemberLocalMeta(t *testing.T) {
	a, _ := openTest(t, Options{NoSync: true})
	b, _ := openTest(t, Options{NoSync: true})
	for _, s := range []*Store{a, b} {
		mustPut(t, s, "k", "v1")
		mustPut(t, s, "k", "v2")
	}
	a.SetConsistentIndex(10, 2)
	b.SetConsistentIndex(99, 7)
	ha, err := a.Hash()
	require.NoError(t, err)
	hb, err := b.Hash()
	require.NoError(t, err)
	require.Equal(t, ha, hb, "term and consistent index are left out")

	b.PutRaw(BucketMembers, []byte("1"), []byte("m"))
	hb, err = b.Hash()
	require.NoError(t, err)
	require.NotEqual(t, ha, hb, "every other bucket counts")

	mustPut(t, a, "k", "v3")
	h3, err := a.Hash()
	require.NoError(t, err)
	require.NotEqual(t, ha, h3)
	require.NoError(t, a.Commit())
	h4, err := a.Hash()
	require.NoError(t, err)
	require.Equal(t, h3, h4, "the hash does not depend on batching")
}

func TestDefragmentShrinksAndKeepsEverything(t *testing.T) {
	s, path := openTest(t, Options{NoSync: true})
	value := string(bytes.Repeat([]byte("x"), 1024))
	for i := range 3000 {
		mustPut(t, s, fmt.Sprintf("big/%05d", i), value)
	}
	require.NoError(t, s.Commit()) // the file grows
	_, err := s.DeleteRange(&pb.DeleteRangeRequest{Key: []byte("big/"), RangeEnd: []byte("big0")})
	require.NoError(t, err)
	mustPut(t, s, "kept", "1")
	_, err = s.Compact(s.Rev())
	require.NoError(t, err)
	require.NoError(t, s.Watch(1, WatchRequest{Key: []byte("kept")}))
	require.NoError(t, s.Commit())

	before := s.Size()
	hash, err := s.Hash()
	require.NoError(t, err)
	kvHash, _, _, err := s.HashKV(0)
	require.NoError(t, err)
	rev, compactRev := s.Rev(), s.CompactRev()

	require.NoError(t, s.Defragment())
	require.Less(t, s.Size(), before/4, "defragment gives the free pages back")
	got, err := s.Hash()
	require.NoError(t, err)
	require.Equal(t, hash, got)
	gotKV, _, _, err := s.HashKV(0)
	require.NoError(t, err)
	require.Equal(t, kvHash, gotKV)
	require.Equal(t, rev, s.Rev())
	require.Equal(t, compactRev, s.CompactRev())
	require.Equal(t, []string{"kept"}, keysOf(mustRange(t, s, &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}})))

	// Writes and watchers go on, and the file reopens.
	mustPut(t, s, "kept", "2")
	evs := s.DrainWatch(0)
	require.Len(t, evs, 1)
	require.Len(t, evs[0].Events, 1)
	require.Equal(t, "2", string(evs[0].Events[0].Kv.Value))
	require.NoError(t, s.Close())
	r, err := Open(path, Options{NoSync: true})
	require.NoError(t, err)
	defer r.Close()
	require.Equal(t, rev+1, r.Rev())
	require.Equal(t, "2", string(mustRange(t, r, &pb.RangeRequest{Key: []byte("kept")}).Kvs[0].Value))
}

func TestConsistentIndexIsWrittenByTheClosingCommit(t *testing.T) {
	s, path := openTest(t, Options{NoSync: true})
	mustPut(t, s, "a", "1")
	s.SetConsistentIndex(9, 3)
	require.NoError(t, s.Close())
	reopen := func() (idx, term uint64) {
		r, err := Open(path, Options{NoSync: true})
		require.NoError(t, err)
		defer r.Close()
		idx, term = r.ConsistentIndex()
		r.SetConsistentIndex(0, 0) // index 0 is never written, as in etcd
		return idx, term
	}
	idx, term := reopen()
	require.EqualValues(t, 9, idx)
	require.EqualValues(t, 3, term)
	idx, _ = reopen()
	require.EqualValues(t, 9, idx, "setting index 0 did not overwrite it")
}

func TestOpenSnapshotIsAConsistentImageWhileWritesGoOn(t *testing.T) {
	// The mapping leaves room to grow: otherwise a commit that grows the file
	// waits for the snapshot to close (here, in the same goroutine, forever).
	s, _ := openTest(t, Options{NoSync: true, InitialMmapSize: 64 << 20})
	for i := range 500 {
		mustPut(t, s, fmt.Sprintf("k%03d", i), "before")
	}
	want, _, _, err := s.HashKV(0)
	require.NoError(t, err)
	rev := s.Rev()

	snap, err := s.OpenSnapshot()
	require.NoError(t, err)
	size := snap.Size()
	// Overwrite, delete, compact and commit while the snapshot is open: the
	// pages it reads must not be reused under it.
	for i := range 500 {
		mustPut(t, s, fmt.Sprintf("k%03d", i), string(bytes.Repeat([]byte("a"), 512)))
		if i%50 == 0 {
			require.NoError(t, s.Commit())
		}
	}
	_, err = s.Compact(s.Rev())
	require.NoError(t, err)
	require.NoError(t, s.Commit())

	var img bytes.Buffer
	n, err := snap.WriteTo(&img)
	require.NoError(t, err)
	require.Equal(t, size, n)
	require.NoError(t, snap.Close())

	other, _ := openTest(t, Options{NoSync: true})
	require.NoError(t, other.ReplaceWith(&img))
	require.Equal(t, rev, other.Rev())
	got, _, _, err := other.HashKV(rev)
	require.NoError(t, err)
	require.Equal(t, want, got, "the image is the store as of OpenSnapshot")
	mustPut(t, s, "after", "close") // the store goes on
}
