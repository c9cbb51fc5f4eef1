// Package mvcc is the MVCC keyspace of havoc's etcd-compatible store: etcd v3.7.3's
// revisioned key-value semantics (Range, Put, DeleteRange, Txn, Compact, HashKV, Watch)
// on a bbolt file laid out byte for byte like etcd's backend, so that etcdutl can read
// havoc's snapshots and havoc can load etcd's.
//
// Contract:
//   - A Store is driven by exactly one goroutine (the member's deterministic core). It
//     starts no goroutine and reads no clock; the same call sequence gives the same bytes.
//   - Writes go into one open bbolt write transaction, the batch. Reads see the batch.
//     Commit makes the batch durable; Abort (a simulated crash) loses it and nothing else.
//   - The key bucket holds revision keys (8-byte big-endian main, '_', 8-byte big-endian
//     sub, 't' for tombstones) and proto.Marshal(mvccpb.KeyValue) values; the meta bucket
//     holds consistent_index, term, scheduledCompactRev, finishedCompactRev and
//     storageVersion exactly as etcd writes them (etcd v3.7.3's
//     go.etcd.io/etcd/server/v3/storage/schema).
//   - An in-memory index of key generations, rebuilt from the key bucket at Open like
//     etcd's restore, answers which revision of a key is visible at a revision.
//   - Request validation (Validate*) and application are separate, as in etcd: the gRPC
//     layer validates before proposing; Apply never panics on validated input.
package mvcc
