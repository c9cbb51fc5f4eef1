// Package snapshot reads, writes, checks and restores etcd v3 snapshot files, so
// that havoc and etcd exchange backups in both directions.
//
// # File format
//
// A snapshot file is a bbolt image of the backend (etcd's member/snap/db, whose
// length is a multiple of the page size and so of 512) followed by the sha256 of
// the image: exactly what `etcdctl snapshot save` writes, so its length is
// 32 modulo 512 (etcd v3.7.3: go.etcd.io/etcd/client/v3/snapshot SaveWithVersion
// requires it; go.etcd.io/etcd/etcdutl/v3/snapshot strips and checks the hash).
//
// # Contract
//
//   - Verify and Status never trust the file: they read it with this package's
//     own bounds-checked bbolt reader (bolt.go), never with bbolt's mmap, so any
//     bytes give an error wrapping ErrMissingHash, ErrHashMismatch or ErrCorrupt,
//     never a panic or a fault.
//   - Status computes what `etcdutl snapshot status` prints, bit for bit: the
//     CRC-32C over every bucket in name order (name, then every key and value),
//     the main revision of the last key-bucket key, the number of live keys,
//     tx.Size() and meta.storageVersion.
//   - Restore does what `etcdutl snapshot restore` does (new membership, consistent
//     index N = number of members, term 1) but writes havoc's own write-ahead log,
//     so that store.Open restarts each member as part of the new cluster at the
//     snapshot's revision. Any input it cannot use is refused before anything is
//     written: the data dir is built next to the target and renamed at the end.
//
// # Data dir layout
//
// Restore writes etcd's layout: <data-dir>/member/snap/db (bbolt) and
// <data-dir>/member/wal (havoc's log, see store/wal). store.Config's DBPath and
// WALDir point there.
package snapshot
