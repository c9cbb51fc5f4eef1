package store

import (
	"io"
	"slices"

	"go.etcd.io/raft/v3"

	"github.com/havoclab/havoc/store/membership"
	"github.com/havoclab/havoc/store/mvcc"
)

// This file holds the few hooks a real-process runtime (package server) needs
// beyond the simulator's: none of them changes what the member does on its own.

// WriteSnapshot writes an image of the whole backend (etcd's
// Maintenance.Snapshot); it commits the open batch first.
func (n *Node) WriteSnapshot(w io.Writer) (int64, error) { return n.kv.WriteSnapshot(w) }

// OpenSnapshot commits the open batch and returns an image of the backend as
// of now that another goroutine may stream while the member goes on; the
// caller must Close it.
func (n *Node) OpenSnapshot() (*mvcc.Snapshot, error) { return n.kv.OpenSnapshot() }

// TransferLeader asks raft to hand leadership to member id (etcd's MoveLeader).
// It has an effect only on the leader; the runtime watches Leader for the outcome.
func (n *Node) TransferLeader(id uint64) { n.rn.TransferLeader(id) }

// ReportSnapshot tells raft whether a MsgSnap reached member id.
func (n *Node) ReportSnapshot(id uint64, ok bool) {
	st := raft.SnapshotFinish
	if !ok {
		st = raft.SnapshotFailure
	}
	n.rn.ReportSnapshot(id, st)
}

// Members returns the cluster's members as this member has applied them, by ID.
func (n *Node) Members() []membership.Member {
	out := make([]membership.Member, 0, len(n.members))
	for _, id := range sortedKeys(n.members) {
		m := n.members[id]
		m.PeerURLs = slices.Clone(m.PeerURLs)
		m.ClientURLs = slices.Clone(m.ClientURLs)
		out = append(out, m)
	}
	return out
}

// Revision returns the backend's current revision.
func (n *Node) Revision() int64 { return n.kv.Rev() }
