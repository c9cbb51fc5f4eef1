package mvcc

import (
	"hash/crc32"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/havoclab/havoc/internal/mutant"
)

// Compact removes, synchronously and in the batch, every revision at or below rev that
// is not the newest revision of its key at rev (a tombstone at exactly rev is kept, as
// in etcd ≥ 3.5.16). It writes scheduledCompactRev and finishedCompactRev in the batch.
// Compacting at or below the current compaction gives ErrCompacted, above the current
// revision ErrFutureRev, as etcd's updateCompactRev.
func (s *Store) Compact(rev int64) (*pb.CompactionResponse, error) {
	if s.tx == nil {
		return nil, ErrClosed
	}
	if rev <= s.compactRev {
		return nil, ErrCompacted
	}
	if rev > s.rev {
		return nil, ErrFutureRev
	}
	s.put(BucketMeta, metaScheduledCompactRev, revKey(revision{main: rev}, false))
	s.compactAt(rev)
	return &pb.CompactionResponse{Header: &pb.ResponseHeader{Revision: s.rev}}, s.maybeCommit()
}

// compactAt compacts the index and the key bucket at rev and records it as finished.
func (s *Store) compactAt(rev int64) {
	recorded := rev
	if mutant.On(mutant.CompactOffByOne) {
		rev++ // compacts one revision more than it records
	}
	available := make(map[revision]struct{})
	var empty [][]byte
	s.idx.all(func(ki *keyIndex) {
		ki.compact(rev, available)
		if ki.isEmpty() {
			empty = append(empty, ki.key)
		}
	})
	for _, k := range empty {
		s.idx.delete(k)
	}
	// Collect first, delete after: deleting under a bbolt cursor can skip entries.
	end := revKey(revision{main: rev + 1}, false)
	var drop [][]byte
	c := s.bucket(BucketKey).Cursor()
	for k, _ := c.First(); k != nil && string(k) < string(end); k, _ = c.Next() {
		r, _ := parseRevKey(k)
		if _, ok := available[r]; !ok {
			drop = append(drop, append([]byte(nil), k...))
		}
	}
	for _, k := range drop {
		s.del(BucketKey, k)
	}
	s.put(BucketMeta, metaFinishedCompactRev, revKey(revision{main: recorded}, false))
	s.compactRev = recorded
}

// HashKV computes etcd's HashKV over the key bucket at revision rev (0 = current):
// CRC-32C of "key" and every surviving (bucket key, value) pair, as etcd's computed path
// (go.etcd.io/etcd/server/v3/storage/mvcc, hash.go). It returns the hash, the revision hashed and the
// compaction revision, which a comparison must match too.
func (s *Store) HashKV(rev int64) (hash uint32, hashRev, compactRev int64, err error) {
	if s.tx == nil {
		return 0, 0, 0, ErrClosed
	}
	compactRev = s.compactRev
	switch {
	case rev > 0 && rev < compactRev:
		return 0, 0, 0, ErrCompacted
	case rev > 0 && rev > s.rev:
		return 0, 0, 0, ErrFutureRev
	case rev == 0:
		rev = s.rev
	}
	keep := make(map[revision]struct{})
	s.idx.all(func(ki *keyIndex) { ki.keep(rev, keep) })

	h := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	h.Write([]byte(BucketKey))
	c := s.bucket(BucketKey).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		r, tomb := parseRevKey(k)
		if r.main > rev {
			// Keys are in revision order: nothing after this is hashed.
			break
		}
		if r.main <= compactRev && len(keep) > 0 {
			if _, ok := keep[r]; !ok {
				continue
			}
		}
		if r.main == compactRev && tomb {
			continue
		}
		h.Write(k)
		if !mutant.On(mutant.HashSkipBucket) {
			h.Write(v)
		}
	}
	return h.Sum32(), rev, compactRev, nil
}
