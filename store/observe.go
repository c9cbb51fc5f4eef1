package store

// Point names a step of a member's own protocol that a runtime may observe
// through Config.Observe. The simulator crashes a member at one (a crash point,
// as etcd's failpoints but without patching the store), so crashes land
// exactly where crash safety is hardest: between a durable vote and the vote
// message, inside an apply batch, around a backend commit, inside a snapshot
// install or a log compaction.
type Point string

// The observed points, in the order a Ready passes them.
const (
	// PointVotePersisted: a changed term or vote is durable in the log; the
	// messages of the same Ready (the vote itself) are not yet handed out.
	PointVotePersisted Point = "vote-persisted"
	// PointSnapshotInstall: the backend has been replaced by a leader's image;
	// the snapshot's marker is not yet in the log.
	PointSnapshotInstall Point = "snapshot-install"
	// PointApplyMid: between two entries of one batch of committed entries
	// (the first applied to the open backend batch, the second not).
	PointApplyMid Point = "apply-mid"
	// PointCompaction: a keyspace compaction has been applied to the open
	// backend batch, not yet committed.
	PointCompaction Point = "compaction"
	// PointBeforeCommit: the open backend batch is about to be committed.
	PointBeforeCommit Point = "before-commit"
	// PointAfterCommit: the backend batch has just been committed.
	PointAfterCommit Point = "after-commit"
	// PointLogCompaction: a raft snapshot's marker is durable; the in-memory
	// log and the log's old segments are not yet compacted behind it.
	PointLogCompaction Point = "log-compaction"
)

// Points lists every Point in a fixed order.
var Points = []Point{PointVotePersisted, PointSnapshotInstall, PointApplyMid, PointCompaction, PointBeforeCommit, PointAfterCommit, PointLogCompaction}

// observe reports p to Config.Observe, if set.
func (n *Node) observe(p Point) {
	if n.cfg.Observe != nil {
		n.cfg.Observe(p)
	}
}
