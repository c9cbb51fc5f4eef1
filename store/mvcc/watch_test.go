package mvcc

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

func TestWatchBasics(t *testing.T) {
	s, _ := openTest(t, Options{NoSync: true})
	mustPut(t, s, "a", "1") // 2
	require.NoError(t, s.Watch(2, WatchRequest{Key: []byte("a"), PrevKV: true}))
	require.NoError(t, s.Watch(1, WatchRequest{Key: []byte("a"), End: []byte{0}, StartRev: 2}))
	require.ErrorIs(t, s.Watch(1, WatchRequest{Key: []byte("x")}), ErrWatchIDExists)
	mustPut(t, s, "a", "2")                                           // 3
	mustPut(t, s, "b", "1")                                           // 4
	_, err := s.DeleteRange(&pb.DeleteRangeRequest{Key: []byte("a")}) // 5
	require.NoError(t, err)
	s.RequestProgress(2)
	s.RequestProgress(1) // unsynced: ignored

	evs := s.DrainWatch(0)
	require.Len(t, evs, 4)
	// Watcher 1 first (id order): one catch-up response over revisions 2..5.
	require.EqualValues(t, 1, evs[0].ID)
	require.EqualValues(t, 5, evs[0].Revision)
	require.Len(t, evs[0].Events, 4)
	require.Nil(t, evs[0].Events[1].PrevKv, "no prev_kv unless asked")
	require.Equal(t, mvccpb.Event_DELETE, evs[0].Events[3].Type)
	require.EqualValues(t, 5, evs[0].Events[3].Kv.ModRevision)
	// Watcher 2 was synced from the start: one response per revision, then progress.
	require.EqualValues(t, []int64{2, 2, 2}, []int64{evs[1].ID, evs[2].ID, evs[3].ID})
	require.EqualValues(t, []int64{3, 5, 5}, []int64{evs[1].Revision, evs[2].Revision, evs[3].Revision})
	require.Equal(t, "1", string(evs[1].Events[0].PrevKv.Value))
	require.Equal(t, "2", string(evs[2].Events[0].PrevKv.Value))
	require.Empty(t, evs[3].Events, "progress notification")
	require.True(t, s.CancelWatch(1))
	require.False(t, s.CancelWatch(1))
	require.Empty(t, s.DrainWatch(0))
}

func TestWatchCompacted(t *testing.T) {
	s, _ := openTest(t, Options{NoSync: true})
	for i := range 5 {
		mustPut(t, s, "k", fmt.Sprint(i)) // 2..6
	}
	_, err := s.Compact(4)
	require.NoError(t, err)
	require.NoError(t, s.Watch(1, WatchRequest{Key: []byte("k"), StartRev: 3}))
	require.NoError(t, s.Watch(2, WatchRequest{Key: []byte("k"), StartRev: 4}))
	evs := s.DrainWatch(0)
	require.Len(t, evs, 2)
	require.Equal(t, WatchEvent{ID: 1, CompactRevision: 4, Canceled: true}, evs[0])
	require.EqualValues(t, 2, evs[1].ID)
	require.Len(t, evs[1].Events, 3, "start at the compaction revision is still served (etcd: minRev < compactRev cancels)")
	require.False(t, s.CancelWatch(1), "a compacted watcher is gone")
}

// TestWatchSlowDrainer: more undelivered responses than the queue holds make the
// watcher fall back to history; draining one at a time while writing never skips or
// repeats a revision.
func TestWatchSlowDrainer(t *testing.T) {
	s, _ := openTest(t, Options{NoSync: true})
	s.watchChunk = 7
	require.NoError(t, s.Watch(1, WatchRequest{Key: []byte("k"), PrevKV: true}))
	n := watchQueueMax + 300
	for i := range n {
		mustPut(t, s, "k", fmt.Sprint(i))
	}
	var got []int64
	for i := 0; ; i++ {
		if i%3 == 0 && len(got) < 2*n {
			mustPut(t, s, "k", "more")
			n++
		}
		evs := s.DrainWatch(1)
		if len(evs) == 0 {
			break
		}
		for _, e := range evs[0].Events {
			got = append(got, e.Kv.ModRevision)
			if e.Kv.Version > 1 {
				require.EqualValues(t, e.Kv.Version-1, e.PrevKv.Version)
			}
		}
	}
	require.Len(t, got, n)
	for i, r := range got {
		require.EqualValues(t, i+2, r)
	}
}

// TestWatchHold: a held watcher yields nothing while writes go on past its queue
// bound (it falls behind) and others are drained as usual; released, it gets every
// revision once, in order.
func TestWatchHold(t *testing.T) {
	s, _ := openTest(t, Options{NoSync: true})
	require.NoError(t, s.Watch(1, WatchRequest{Key: []byte("k")}))
	require.NoError(t, s.Watch(2, WatchRequest{Key: []byte("k")}))
	s.HoldWatch(1, true)
	s.HoldWatch(99, true) // unknown: ignored
	n := watchQueueMax + 10
	revs := func() map[int64][]int64 {
		got := map[int64][]int64{}
		for _, e := range s.DrainWatch(0) {
			for _, ev := range e.Events {
				got[e.ID] = append(got[e.ID], ev.Kv.ModRevision)
			}
		}
		return got
	}
	want := make([]int64, 0, 2*n)
	for i := range n {
		mustPut(t, s, "k", fmt.Sprint(i))
		want = append(want, int64(i+2))
		if i == 5 {
			got := revs()
			require.Equal(t, map[int64][]int64{2: want}, got, "only the free watcher is drained")
		}
	}
	got := revs()
	require.Equal(t, map[int64][]int64{2: want[6:]}, got)
	s.HoldWatch(1, false)
	got = revs()
	require.Equal(t, map[int64][]int64{1: want}, got, "released, the held watcher gets every revision once")
}
