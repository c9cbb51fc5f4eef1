package linearizability

import (
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
