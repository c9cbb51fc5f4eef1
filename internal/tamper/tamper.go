// Package tamper damages a member's bbolt backend behind the store's back, as
// a disk or a bug would, so that tests can require the harness to notice
// (divergence between replicas, a tampered restore). It knows etcd's backend
// layout (the "key" bucket of revision keys, a tombstone's key ending in "t")
// and nothing of havoc's store.
package tamper

import (
	"encoding/binary"
	"errors"

	bolt "go.etcd.io/bbolt"
)

// FlipNewestValue changes one bit of the value of the newest put in the bbolt
// file db (the value is the last field of the stored KeyValue), keeping every
// revision, and returns that put's revision.
func FlipNewestValue(db string) (rev int64, err error) {
	b, err := bolt.Open(db, 0o600, nil)
	if err != nil {
		return 0, err
	}
	defer b.Close()
	err = b.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket([]byte("key"))
		if bk == nil {
			return errors.New("tamper: no key bucket")
		}
		cur := bk.Cursor()
		k, v := cur.Last()
		for k != nil && len(k) != 17 { // skip tombstones (revision + "t")
			k, v = cur.Prev()
		}
		if k == nil {
			return errors.New("tamper: no put in the backend")
		}
		rev = int64(binary.BigEndian.Uint64(k[:8]))
		nv := append([]byte(nil), v...)
		nv[len(nv)-1] ^= 1
		return bk.Put(append([]byte(nil), k...), nv)
	})
	return rev, err
}
