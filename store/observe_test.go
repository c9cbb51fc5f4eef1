package store

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestObservePoints: a member reports the points of its protocol as it passes
// them, and observing changes nothing: the same seed and requests give the
// same revisions and keyspace hash with and without an observer.
func TestObservePoints(t *testing.T) {
	run := func(observe func(uint64, Point)) (int64, uint32) {
		l := newLoop(t, 3, 9, 5, func(l *loop) { l.observe = observe })
		defer l.close() // releases the seeded randomness for the next loop
		lead := l.waitLeader()
		var rev int64
		for i := 0; i < 30; i++ {
			rev = l.put(l.ids()[i%3], fmt.Sprintf("k%d", i%7), fmt.Sprint(i)).Header.Revision
		}
		l.tick(20)
		l.requireConverged()
		h, _, _, err := l.nodes[lead].HashKV(0)
		require.NoError(t, err)
		return rev, h
	}
	seen := map[Point]int{}
	rev, h := run(func(_ uint64, p Point) { seen[p]++ })
	for _, p := range []Point{PointVotePersisted, PointBeforeCommit, PointAfterCommit, PointLogCompaction} {
		require.Positive(t, seen[p], "%s never observed (seen %v)", p, seen)
	}
	require.Equal(t, seen[PointBeforeCommit], seen[PointAfterCommit])
	rev2, h2 := run(nil)
	require.Equal(t, rev, rev2)
	require.Equal(t, h, h2)
}
