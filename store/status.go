package store

import (
	"cmp"
	"fmt"
	"slices"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3"
)

// Status is a member's view of itself and the cluster.
type Status struct {
	ID, ClusterID        uint64
	Name                 string
	Leader, Term         uint64
	Committed, Applied   uint64
	SnapshotIndex        uint64
	IsLeader, IsLearner  bool
	Revision, CompactRev int64
	DBSize, DBSizeInUse  int64
	QuotaBackendBytes    int64
	Alarms               []*pb.AlarmMember
	Voters, Learners     []uint64
	Halted               error
}

// Status reports the member's state.
func (n *Node) Status() Status {
	bs := n.rn.BasicStatus()
	st := Status{
		ID: n.id, ClusterID: n.clusterID, Name: n.cfg.Name, Leader: bs.Lead, Term: bs.GetTerm(), Committed: bs.GetCommit(),
		Applied: n.applied, SnapshotIndex: n.snapIndex, IsLeader: bs.RaftState == raft.StateLeader,
		Revision: n.kv.Rev(), CompactRev: n.kv.CompactRev(), DBSize: n.kv.Size(), DBSizeInUse: n.kv.SizeInUse(),
		QuotaBackendBytes: n.cfg.QuotaBackendBytes, Alarms: n.Alarms(), Halted: n.halted,
		Voters: slices.Clone(n.confState.GetVoters()), Learners: slices.Clone(n.confState.GetLearners()),
	}
	st.IsLearner = slices.Contains(st.Learners, n.id)
	return st
}

// HashKV returns etcd's HashKV of the keyspace at rev (0 = current).
func (n *Node) HashKV(rev int64) (hash uint32, hashRev, compactRev int64, err error) {
	return n.kv.HashKV(rev)
}

// Hash returns etcd's Hash of this member's whole backend (the Hash RPC):
// equal on members that applied the same entries, whatever their raft term
// and consistent index.
func (n *Node) Hash() (uint32, error) { return n.kv.Hash() }

// Defragment rewrites this member's backend without its free pages (etcd's
// defrag); the keyspace does not change. If the backend cannot be reopened
// afterwards the member halts.
func (n *Node) Defragment() error {
	if n.halted != nil {
		return n.halted
	}
	err := n.kv.Defragment()
	if err != nil && n.kv.Closed() {
		n.halt(fmt.Errorf("store: backend lost in defragment: %w", err))
	}
	return err
}

func sortedKeys[K cmp.Ordered, V any](m map[K]V) []K {
	ks := make([]K, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
