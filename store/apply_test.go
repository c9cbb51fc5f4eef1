package store

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"go.etcd.io/raft/v3/raftpb"
)

// TestUndecodableCommittedEntryPanics: a committed normal entry the member cannot
// decode is a broken invariant (every member proposed only what it encoded), so
// apply must stop with the index and the error instead of skipping the entry while
// the consistent index moves past it.
func TestUndecodableCommittedEntryPanics(t *testing.T) {
	l := newLoop(t, 1, 41, 0)
	l.waitLeader()
	n := l.nodes[l.ids()[0]]
	idx := n.applied + 1
	e := &raftpb.Entry{Index: new(idx), Term: new(n.term), Type: raftpb.EntryNormal.Enum(), Data: []byte{0xff, 0xff}}
	_, derr := DecodeEntry(e.GetData())
	require.Error(t, derr)
	want := fmt.Sprintf("store: committed entry %d undecodable: %v", idx, derr)
	require.PanicsWithValue(t, want, func() { n.apply([]*raftpb.Entry{e}) })
	ci, _ := n.kv.ConsistentIndex()
	require.Less(t, ci, idx, "the consistent index must not move past the entry")
}
