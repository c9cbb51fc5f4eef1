package server

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// nextResponse waits for a watch response on wch.
func nextResponse(t *testing.T, wch clientv3.WatchChan, what string) clientv3.WatchResponse {
	t.Helper()
	select {
	case resp, ok := <-wch:
		require.True(t, ok, "%s: watch channel closed", what)
		require.NoError(t, resp.Err(), what)
		return resp
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: no response", what)
	}
	panic("unreachable")
}

// RequestProgress on a stream with several watchers advances every one of them
// to the current revision (etcd: one response with watch ID -1, which clientv3
// broadcasts to every watcher of the stream), including watchers of keys that
// were never written.
func TestRequestProgressAdvancesEveryWatcher(t *testing.T) {
	c := startCluster(t, 1)
	cli := c.client()
	ctx := ctxT(t)
	var wchs []clientv3.WatchChan
	for _, k := range []string{"a", "b", "c"} {
		wchs = append(wchs, cli.Watch(ctx, k, clientv3.WithCreatedNotify()))
		nextResponse(t, wchs[len(wchs)-1], "created "+k)
	}
	var rev int64
	for i := range 5 {
		r, err := cli.Put(ctx, "a", fmt.Sprint(i))
		require.NoError(t, err)
		rev = r.Header.Revision
	}
	for i := range 5 {
		resp := nextResponse(t, wchs[0], "event")
		require.Len(t, resp.Events, 1, "event %d", i)
	}
	require.NoError(t, cli.RequestProgress(ctx))
	for i, wch := range wchs {
		resp := nextResponse(t, wch, fmt.Sprintf("progress of watcher %d", i))
		assert.True(t, resp.IsProgressNotify(), "watcher %d: %+v", i, resp)
		assert.Equal(t, rev, resp.Header.Revision, "watcher %d", i)
	}
}

// With a progress notify interval, every idle watcher that asked for progress
// notifications gets one with its own ID at the current revision each
// interval (etcd --watch-progress-notify-interval); one that got events since
// the last interval is skipped once, and one that did not ask gets none.
func TestPeriodicProgressNotify(t *testing.T) {
	c := startClusterWith(t, 1, func(cfg *Config) { cfg.WatchProgressNotifyInterval = 200 * time.Millisecond })
	cli := c.client()
	ctx := ctxT(t)
	idle1 := cli.Watch(ctx, "idle1", clientv3.WithProgressNotify(), clientv3.WithCreatedNotify())
	nextResponse(t, idle1, "created idle1")
	idle2 := cli.Watch(ctx, "idle2", clientv3.WithProgressNotify(), clientv3.WithCreatedNotify())
	nextResponse(t, idle2, "created idle2")
	quiet := cli.Watch(ctx, "quiet", clientv3.WithCreatedNotify())
	nextResponse(t, quiet, "created quiet")

	r, err := cli.Put(ctx, "other", "v")
	require.NoError(t, err)
	rev := r.Header.Revision
	for name, wch := range map[string]clientv3.WatchChan{"idle1": idle1, "idle2": idle2} {
		deadline := time.After(5 * time.Second)
		for {
			var resp clientv3.WatchResponse
			select {
			case resp = <-wch:
			case <-deadline:
				t.Fatalf("%s: no progress notification at revision %d", name, rev)
			}
			require.True(t, resp.IsProgressNotify(), "%s: %+v", name, resp)
			if resp.Header.Revision == rev {
				break
			}
		}
	}
	select {
	case resp := <-quiet:
		t.Fatalf("a watcher without progress_notify got %+v", resp)
	case <-time.After(500 * time.Millisecond):
	}
}

// startClusterWith is startCluster with each member's config changed by f.
func startClusterWith(t testing.TB, n int, f func(*Config)) *testCluster {
	t.Helper()
	old := configHook
	configHook = f
	defer func() { configHook = old }()
	return startCluster(t, n)
}
