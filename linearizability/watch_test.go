package linearizability

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

func watchHistory() []Operation {
	return []Operation{
		{ID: 1, Kind: KindPut, Key: "k/a", Value: "v1", Outcome: OutcomeOK, Resp: Response{Revision: 2}},
		{ID: 2, Kind: KindPut, Key: "k/b", Value: "v2", Outcome: OutcomeOK, Resp: Response{Revision: 3}},
		{ID: 3, Kind: KindDelete, Key: "k/a", Outcome: OutcomeOK, Resp: Response{Revision: 4, Deleted: 1}},
		{ID: 4, Kind: KindPut, Key: "k/c", Value: "v3", Outcome: OutcomeUnknown},
		{ID: 5, Kind: KindPut, Key: "k/d", Value: "v4", Outcome: OutcomeFail},
	}
}

func stream(w int) []WatchEvent {
	return []WatchEvent{
		{Watcher: w, Type: "put", Key: "k/a", Value: "v1", Revision: 2},
		{Watcher: w, Type: "put", Key: "k/b", Value: "v2", Revision: 3},
		{Watcher: w, Type: "delete", Key: "k/a", Revision: 4},
		{Watcher: w, Type: "put", Key: "k/c", Value: "v3", Revision: 5},
	}
}

func TestCheckWatch(t *testing.T) {
	opt := WatchOptions{Prefix: "k/", Reached: map[int]int64{1: 5, 2: 5}}
	good := append(stream(1), stream(2)...)
	require.NoError(t, CheckWatch(watchHistory(), good, opt))

	mutate := map[string]func([]WatchEvent) []WatchEvent{
		"out of order": func(e []WatchEvent) []WatchEvent { e[0], e[1] = e[1], e[0]; return e },
		"repeated":     func(e []WatchEvent) []WatchEvent { return append(e[:2:2], e[1:]...) },
		"missing":      func(e []WatchEvent) []WatchEvent { return append(e[:1:1], e[2:]...) },
		"wrong rev":    func(e []WatchEvent) []WatchEvent { e[1].Revision = 9; return e },
		"never written": func(e []WatchEvent) []WatchEvent {
			e[3].Value = "ghost"
			return e
		},
		"failed write": func(e []WatchEvent) []WatchEvent {
			return append(e, WatchEvent{Watcher: 1, Type: "put", Key: "k/d", Value: "v4", Revision: 6})
		},
		"unexplained delete": func(e []WatchEvent) []WatchEvent {
			return append(e, WatchEvent{Watcher: 1, Type: "delete", Key: "k/b", Revision: 7})
		},
		"outside prefix": func(e []WatchEvent) []WatchEvent {
			return append(e, WatchEvent{Watcher: 1, Type: "put", Key: "x", Value: "v1", Revision: 8})
		},
	}
	for name, m := range mutate {
		t.Run(name, func(t *testing.T) {
			evs := append(m(stream(1)), stream(2)...)
			require.ErrorIs(t, CheckWatch(watchHistory(), evs, opt), ErrWatch)
		})
	}
	t.Run("watchers disagree", func(t *testing.T) {
		other := stream(2)
		other[3].Value = "v1"
		require.ErrorIs(t, CheckWatch(watchHistory(), append(stream(1), other...), opt), ErrWatch)
	})
	t.Run("not reached is not required", func(t *testing.T) {
		short := stream(1)[:1]
		require.NoError(t, CheckWatch(watchHistory(), short, WatchOptions{Prefix: "k/", Reached: map[int]int64{1: 2}}))
	})
}

func TestCheckWatchCompacted(t *testing.T) {
	opt := WatchOptions{Prefix: "k/", Reached: map[int]int64{1: 5}}
	compacted := append(watchHistory(), Operation{ID: 6, Kind: KindCompact, Rev: 4, Outcome: OutcomeOK, Resp: Response{Revision: 5}})
	// The watcher saw revision 2, was told 4 was compacted and resumed there.
	mark := func(rev int64) WatchEvent { return WatchEvent{Watcher: 1, Type: WatchCompacted, Revision: rev} }
	resumed := []WatchEvent{stream(1)[0], mark(4), stream(1)[2], stream(1)[3]}
	require.NoError(t, CheckWatch(compacted, resumed, opt))

	t.Run("the compact revision's events are required", func(t *testing.T) {
		evs := []WatchEvent{stream(1)[0], mark(4), stream(1)[3]}
		require.ErrorContains(t, CheckWatch(compacted, evs, opt), "never got #3")
	})
	t.Run("no compaction requested", func(t *testing.T) {
		require.ErrorContains(t, CheckWatch(watchHistory(), resumed, opt), "no compaction to it was requested")
	})
	t.Run("a failed compaction does not explain it", func(t *testing.T) {
		failed := append(watchHistory(), Operation{ID: 6, Kind: KindCompact, Rev: 4, Outcome: OutcomeFail})
		require.ErrorContains(t, CheckWatch(failed, resumed, opt), "no compaction to it was requested")
	})
	t.Run("compacted below an event seen", func(t *testing.T) {
		evs := []WatchEvent{stream(1)[0], stream(1)[1], mark(3), stream(1)[2], stream(1)[3]}
		require.ErrorContains(t, CheckWatch(compacted, evs, opt), "after an event at revision 3")
	})
}

// TestCheckWatchGuarantees feeds streams that each break one guarantee and
// requires the checker to name it.
func TestCheckWatchGuarantees(t *testing.T) {
	ops := []Operation{
		{ID: 1, Kind: KindPut, Key: "k/a", Value: "v1", Outcome: OutcomeOK, Resp: Response{Revision: 2}},
		{ID: 2, Kind: KindPut, Key: "k/a", Value: "v2", Outcome: OutcomeOK, Resp: Response{Revision: 3}},
		{ID: 3, Kind: KindDelete, Key: "k/a", Outcome: OutcomeOK, Resp: Response{Revision: 4, Deleted: 1}},
		{ID: 4, Kind: KindPut, Key: "k/b", Value: "v3", Outcome: OutcomeOK, Resp: Response{Revision: 5}},
	}
	good := func() []WatchEvent {
		return []WatchEvent{
			{Watcher: 1, Type: WatchStart, Revision: 1},
			{Watcher: 1, Type: "put", Key: "k/a", Value: "v1", Revision: 2, Response: 1, Create: true},
			{Watcher: 1, Type: "put", Key: "k/a", Value: "v2", Revision: 3, Response: 2, HasPrev: true, PrevValue: "v1"},
			{Watcher: 1, Type: WatchProgress, Revision: 3, Response: 3},
			{Watcher: 1, Type: "delete", Key: "k/a", Revision: 4, Response: 4, HasPrev: true, PrevValue: "v2"},
			{Watcher: 1, Type: "put", Key: "k/b", Value: "v3", Revision: 5, Response: 4, Create: true},
			{Watcher: 1, Type: WatchProgress, Revision: 5, Response: 5},
		}
	}
	opt := WatchOptions{Prefix: "k/", Reached: map[int]int64{1: 5}, IsCreate: true, PrevKV: true}
	require.NoError(t, CheckWatch(ops, good(), opt))

	tests := []struct {
		name, want string
		mutate     func(e []WatchEvent) []WatchEvent
	}{
		{"ordered", "got revision 2 after 3", func(e []WatchEvent) []WatchEvent { e[1], e[2] = e[2], e[1]; return e }},
		{"unique", "twice", func(e []WatchEvent) []WatchEvent { return append(e[:3:3], e[2:]...) }},
		{"reliable", "never got #2", func(e []WatchEvent) []WatchEvent { return append(e[:2:2], e[3:]...) }},
		{"filtered", "outside prefix", func(e []WatchEvent) []WatchEvent {
			return append(e, WatchEvent{Watcher: 1, Type: "put", Key: "x", Value: "v1", Revision: 6, Response: 6})
		}},
		{"bookmarkable: event at the notified revision", "bookmarkable", func(e []WatchEvent) []WatchEvent {
			e[3].Revision = 4
			return e
		}},
		{"bookmarkable: notification goes backwards", "bookmarkable", func(e []WatchEvent) []WatchEvent {
			e[6].Revision = 2
			return e
		}},
		{"atomic", "atomic: watcher 1 got revision 4 split", func(e []WatchEvent) []WatchEvent {
			// Revision 4 deletes two keys; they arrive in two responses.
			ev := WatchEvent{Watcher: 1, Type: "delete", Key: "k/c", Revision: 4, Response: 5}
			return append(e[:5:5], append([]WatchEvent{ev}, e[5:]...)...)
		}},
		{"IsCreate on an update", "IsCreate", func(e []WatchEvent) []WatchEvent { e[2].Create = true; return e }},
		{"no IsCreate on a create", "IsCreate", func(e []WatchEvent) []WatchEvent { e[5].Create = false; return e }},
		{"prev_kv wrong", "prev_kv", func(e []WatchEvent) []WatchEvent { e[4].PrevValue = "v1"; return e }},
		{"prev_kv missing", "prev_kv", func(e []WatchEvent) []WatchEvent { e[2].HasPrev, e[2].PrevValue = false, ""; return e }},
		{"prev_kv on a create", "prev_kv", func(e []WatchEvent) []WatchEvent { e[5].HasPrev, e[5].PrevValue = true, "v2"; return e }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckWatch(ops, tt.mutate(good()), opt)
			require.ErrorIs(t, err, ErrWatch)
			require.ErrorContains(t, err, tt.want)
		})
	}
	t.Run("a new stream's notifications may be lower", func(t *testing.T) {
		e := good()
		e = append(e[:4:4], append([]WatchEvent{{Watcher: 1, Type: WatchStart, Revision: 4}, {Watcher: 1, Type: WatchProgress, Revision: 3, Response: 9}}, e[4:]...)...)
		require.NoError(t, CheckWatch(ops, e, opt))
	})
}

// TestCheckWatchStarts covers watchers that start later than revision 1:
// from a past or future revision, or from a member's current one.
func TestCheckWatchStarts(t *testing.T) {
	opt := WatchOptions{Prefix: "k/", Reached: map[int]int64{7: 5}}
	start := func(rev int64) WatchEvent { return WatchEvent{Watcher: 7, Type: WatchStart, Revision: rev} }
	tail := stream(7)[1:] // revisions 3, 4, 5
	tests := []struct {
		name string
		evs  []WatchEvent
		want string // "" = no violation
	}{
		{"from a past revision", append([]WatchEvent{start(3)}, tail...), ""},
		{"from revision 3 missing revision 3", append([]WatchEvent{start(3)}, tail[1:]...), "never got #2"},
		{"resumable: an event below the start", append([]WatchEvent{start(4)}, tail...), "resumable"},
		{"from a future revision", []WatchEvent{start(5), tail[2]}, ""},
		{"from the current revision, first event at 4", append([]WatchEvent{start(0)}, tail[1:]...), ""},
		{"from the current revision, a gap after the first event", []WatchEvent{start(0), tail[0], tail[2]}, "never got #3"},
		{"from the current revision, nothing above the first notification may be missed",
			[]WatchEvent{start(0), {Watcher: 7, Type: WatchProgress, Revision: 3, Response: 1}, tail[2]}, "never got #3"},
		{"from the current revision, only a notification", []WatchEvent{start(0), {Watcher: 7, Type: WatchProgress, Revision: 5, Response: 1}}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckWatch(watchHistory(), tc.evs, opt)
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrWatch)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

// TestPrevKVCompactedAway: etcd fills prev_kv by reading the key at the
// event's revision - 1 when it sends the event; a watcher that lags behind a
// compaction past that revision gets the event without prev_kv (seen on
// etcd v3.7.3 under a real sweep). A missing prev_kv is excused only when a
// compaction to at least the event's revision was requested before the event
// arrived; a wrong prev_kv never is.
func TestPrevKVCompactedAway(t *testing.T) {
	ops := []Operation{
		{ID: 1, Kind: KindPut, Key: "k/a", Value: "v1", Outcome: OutcomeOK, Call: 10, Return: 20, Resp: Response{Revision: 2}},
		{ID: 2, Kind: KindPut, Key: "k/a", Value: "v2", Outcome: OutcomeOK, Call: 30, Return: 40, Resp: Response{Revision: 3}},
		{ID: 3, Kind: KindCompact, Rev: 3, Outcome: OutcomeUnknown, Call: 50, Return: 60},
	}
	evs := func(at int64) []WatchEvent {
		return []WatchEvent{
			{Watcher: 1, Type: WatchStart, Revision: 1},
			{Watcher: 1, Type: "put", Key: "k/a", Value: "v1", Revision: 2, Response: 1, Create: true, Time: 25},
			{Watcher: 1, Type: "put", Key: "k/a", Value: "v2", Revision: 3, Response: 2, Time: at},
		}
	}
	opt := WatchOptions{Prefix: "k/", Reached: map[int]int64{1: 3}, IsCreate: true, PrevKV: true}
	require.NoError(t, CheckWatch(ops, evs(70), opt), "sent after the compaction to 3: no prev_kv to read")
	require.ErrorContains(t, CheckWatch(ops, evs(45), opt), "prev_kv", "sent before any compaction was asked for")
	low := slices.Clone(ops)
	low[2].Rev = 2
	require.ErrorContains(t, CheckWatch(low, evs(70), opt), "prev_kv", "revision 2 (the one read) survives a compaction to 2")
	failed := slices.Clone(ops)
	failed[2].Outcome = OutcomeFail
	require.ErrorContains(t, CheckWatch(failed, evs(70), opt), "prev_kv", "a failed compaction did not happen")
	wrong := evs(70)
	wrong[2].HasPrev, wrong[2].PrevValue = true, "v0"
	require.ErrorContains(t, CheckWatch(ops, wrong, opt), "prev_kv", "a wrong prev_kv is never excused")
}
