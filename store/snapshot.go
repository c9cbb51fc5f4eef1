package store

import (
	"bytes"
	"fmt"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
	"google.golang.org/protobuf/proto"

	"github.com/havoclab/havoc/store/wal"

	"github.com/havoclab/havoc/internal/mutant"
)

// Raft snapshots, as in etcd: the snapshot kept in raft's storage is only a marker
// (index, term, configuration). When the leader sends one to a follower, it sends
// an image of the whole backend at that moment, described by the image's own
// consistent index, term and configuration rather than by the marker's (etcd's
// createMergedSnapshotMessage does the same). The marker may be older than the
// follower itself: a member added after the last snapshot is not in the marker's
// configuration, and raft refuses a snapshot that does not name its recipient.

// attachSnapshot fills an outgoing MsgSnap with the current backend image and
// the metadata of that image (with StreamSnapshots: opens the image for the
// runtime to stream, and to report with ReportSnapshot).
func (n *Node) attachSnapshot(m *raftpb.Message) {
	if n.cfg.StreamSnapshots {
		img, err := n.kv.OpenSnapshot()
		if err != nil {
			n.halt(fmt.Errorf("store: snapshot backend for %x: %w", m.GetTo(), err))
			return
		}
		m.Snapshot = &raftpb.Snapshot{Metadata: n.imageMetadata(m.GetSnapshot().GetMetadata())}
		n.out.Snapshots = append(n.out.Snapshots, SnapshotImage{Message: m, Image: img})
		return // the runtime reports how the send went (no retry timer)
	}
	var buf bytes.Buffer
	if _, err := n.kv.WriteSnapshot(&buf); err != nil {
		n.halt(fmt.Errorf("store: snapshot backend for %x: %w", m.GetTo(), err))
		return
	}
	m.Snapshot = &raftpb.Snapshot{Metadata: n.imageMetadata(m.GetSnapshot().GetMetadata()), Data: buf.Bytes()}
	n.snapSent[m.GetTo()] = n.ticks
}

// imageMetadata describes the committed backend image: its consistent index and
// term, and the configuration as of that index. The image is never behind the
// marker (snapshots are taken at the applied index, and the backend holds every
// applied entry). Usually the backend is exactly at the applied index, and the
// configuration is the member's; while a restarted member replays entries its
// backend already holds, it is the one the backend recorded. Failing both, the
// marker's metadata is kept.
func (n *Node) imageMetadata(marker *raftpb.SnapshotMetadata) *raftpb.SnapshotMetadata {
	ci, term := n.kv.ConsistentIndex()
	if ci < marker.GetIndex() {
		return marker
	}
	cs := n.confState
	if ci != n.applied {
		var err error
		if cs, err = n.backendConfState(); err != nil || len(cs.GetVoters()) == 0 {
			return marker
		}
	}
	return &raftpb.SnapshotMetadata{Index: new(ci), Term: new(term), ConfState: proto.Clone(cs).(*raftpb.ConfState)}
}

// retrySnapshots reports a snapshot as failed when its follower is still waiting
// for it after two election timeouts (the message was lost), so that raft sends
// another. Streamed snapshots (StreamSnapshots) are not timed: a large image may
// take longer, and the runtime reports each one's outcome.
func (n *Node) retrySnapshots() {
	if len(n.snapSent) == 0 {
		return
	}
	st := n.rn.Status()
	for _, id := range sortedKeys(n.snapSent) {
		pr, ok := st.Progress[id]
		if !ok || pr.State != tracker.StateSnapshot {
			delete(n.snapSent, id)
			continue
		}
		if n.ticks-n.snapSent[id] >= 2*int64(n.cfg.ElectionTicks) {
			n.rn.ReportSnapshot(id, raft.SnapshotFailure)
			delete(n.snapSent, id)
		}
	}
}

// installSnapshot replaces the backend with the leader's image, then records the
// marker in the log. The order matters for crash safety: a crash after the backend
// is replaced but before the marker is durable is recovered from the backend's
// consistent index at restart.
func (n *Node) installSnapshot(s *raftpb.Snapshot) error {
	if len(s.GetData()) == 0 {
		return fmt.Errorf("store: snapshot at index %d carries no backend image", s.GetMetadata().GetIndex())
	}
	// The mutant takes the snapshot's place in the log but keeps its old state.
	if !mutant.On(mutant.SnapshotNoReload) {
		// The image goes to a file of its own, synced before it replaces the
		// backend: a failed sync leaves the old backend in place.
		if n.cfg.BackendSync != nil {
			if err := n.cfg.BackendSync(); err != nil {
				return fmt.Errorf("store: install snapshot at index %d: sync: %w", s.GetMetadata().GetIndex(), err)
			}
		}
		if err := n.kv.ReplaceWith(bytes.NewReader(s.GetData())); err != nil {
			return fmt.Errorf("store: install snapshot at index %d: %w", s.GetMetadata().GetIndex(), err)
		}
		if err := n.loadBackendState(); err != nil {
			return err
		}
	}
	n.observe(PointSnapshotInstall)
	md := s.GetMetadata()
	marker := wal.Snapshot{Index: md.GetIndex(), Term: md.GetTerm(), ConfState: md.GetConfState()}
	if err := n.wal.SaveSnapshot(marker); err != nil {
		return fmt.Errorf("store: log snapshot marker: %w", err)
	}
	if err := n.storage.ApplySnapshot(&raftpb.Snapshot{Metadata: md}); err != nil {
		return fmt.Errorf("store: raft storage snapshot: %w", err)
	}
	n.confState = md.GetConfState()
	n.snapIndex = md.GetIndex()
	n.proposals.pruneBelow(md.GetIndex() + 1)
	// A leader describes the image by its own consistent index, so usually the
	// two agree. Should the image be ahead of the metadata (a leader that fell
	// back to its marker), the entries in between still come through apply: it
	// skips their keyspace effects (the image has them) but hands their
	// configuration changes to raft.
	n.applied = md.GetIndex()
	return nil
}

// maybeSnapshot takes a raft snapshot every SnapshotCount applied entries and
// compacts the in-memory log and the WAL behind it.
func (n *Node) maybeSnapshot() {
	if n.halted != nil || n.applied-n.snapIndex < n.cfg.SnapshotCount {
		return
	}
	if err := n.syncBackend(); err != nil {
		n.halt(fmt.Errorf("store: commit before snapshot: %w", err))
		return
	}
	if err := n.kv.Commit(); err != nil {
		n.halt(fmt.Errorf("store: commit before snapshot: %w", err))
		return
	}
	snap, err := n.storage.CreateSnapshot(n.applied, n.confState, nil)
	if err != nil {
		n.halt(fmt.Errorf("store: create snapshot at %d: %w", n.applied, err))
		return
	}
	md := snap.GetMetadata()
	if err := n.wal.SaveSnapshot(wal.Snapshot{Index: md.GetIndex(), Term: md.GetTerm(), ConfState: md.GetConfState()}); err != nil {
		n.halt(fmt.Errorf("store: log snapshot marker: %w", err))
		return
	}
	n.snapIndex = n.applied
	n.observe(PointLogCompaction)
	if n.applied > n.cfg.CatchUpEntries {
		compactTo := n.applied - n.cfg.CatchUpEntries
		if first, _ := n.storage.FirstIndex(); compactTo > first {
			if err := n.storage.Compact(compactTo); err != nil && err != raft.ErrCompacted {
				n.halt(fmt.Errorf("store: compact raft log to %d: %w", compactTo, err))
				return
			}
			n.proposals.pruneBelow(compactTo)
		}
	}
	if err := n.wal.ReleaseTo(n.snapIndex); err != nil {
		n.log.Warn("releasing old log segments failed", "err", err)
	}
}
