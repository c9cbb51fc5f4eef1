package mvcc

import (
	"encoding/binary"
	"fmt"
)

// revBytesLen is the length of a revision key in the key bucket: main, '_', sub.
const revBytesLen = 8 + 1 + 8

// markTombstone is the suffix byte etcd appends to the key of a deletion.
const markTombstone byte = 't'

// revision is a (main, sub) pair: main is the write txn's revision, sub the position of
// the change inside that txn.
type revision struct {
	main, sub int64
}

// greaterThan orders revisions by main, then sub.
func (a revision) greaterThan(b revision) bool {
	if a.main != b.main {
		return a.main > b.main
	}
	return a.sub > b.sub
}

// appendRevKey appends the bucket key of r, with the tombstone mark if tomb.
func appendRevKey(dst []byte, r revision, tomb bool) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(r.main))
	dst = append(dst, '_')
	dst = binary.BigEndian.AppendUint64(dst, uint64(r.sub))
	if tomb {
		dst = append(dst, markTombstone)
	}
	return dst
}

// revKey returns the bucket key of r.
func revKey(r revision, tomb bool) []byte {
	return appendRevKey(make([]byte, 0, revBytesLen+1), r, tomb)
}

// parseRevKey decodes a key bucket key. etcd panics on a malformed key
// (BytesToBucketKey); so does havoc, with the offending bytes.
func parseRevKey(k []byte) (revision, bool) {
	if (len(k) != revBytesLen && len(k) != revBytesLen+1) || k[8] != '_' ||
		(len(k) == revBytesLen+1 && k[revBytesLen] != markTombstone) {
		panic(fmt.Sprintf("mvcc: malformed key bucket key %x", k))
	}
	r := revision{main: int64(binary.BigEndian.Uint64(k[:8])), sub: int64(binary.BigEndian.Uint64(k[9:17]))}
	if r.main < 0 || r.sub < 0 {
		panic(fmt.Sprintf("mvcc: negative revision in key bucket key %x", k))
	}
	return r, len(k) == revBytesLen+1
}
