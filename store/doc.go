// Package store is havoc's etcd-compatible key-value store: a deterministic member core that drives a raft.RawNode and applies committed entries to an MVCC keyspace on bbolt.
package store
