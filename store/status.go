package store

import (
	"cmp"
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

func sortedKeys[K cmp.Ordered, V any](m map[K]V) []K {
	ks := make([]K, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
