package server

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/havoclab/havoc/store"
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

// maxWatchQueue is the longest queue of responses waiting on a watch stream of m.
func maxWatchQueue(t *testing.T, m *Member) int {
	n, err := call(ctxT(t), m, func(*store.Node) int {
		longest := 0
		for _, tgt := range m.watchers {
			tgt.ws.mu.Lock()
			longest = max(longest, len(tgt.ws.queue))
			tgt.ws.mu.Unlock()
		}
		return longest
	})
	require.NoError(t, err)
	return n
}

// A client that does not read its watch stream holds a bounded queue on the
// member (etcd's send channel of 128 responses; the rest waits in the store as
// etcd's victims do), slows no other watcher, and, once it reads, gets every
// event in order.
func TestSlowWatchClientIsBounded(t *testing.T) {
	c := startCluster(t, 1)
	cli := c.client()
	ctx := ctxT(t)
	slow, err := pb.NewWatchClient(c.rawConn(0)).Watch(ctx)
	require.NoError(t, err)
	require.NoError(t, slow.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{
		CreateRequest: &pb.WatchCreateRequest{Key: []byte("k")}}}))
	created, err := slow.Recv()
	require.NoError(t, err)
	require.True(t, created.Created)
	fast := cli.Watch(ctx, "k", clientv3.WithCreatedNotify())
	nextResponse(t, fast, "created")

	const puts, workers = 600, 6
	value := strings.Repeat("x", 4096)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < puts; i += workers {
				_, err := cli.Put(ctx, "k", value)
				assert.NoError(t, err)
			}
		})
	}
	var fastRevs []int64
	for len(fastRevs) < puts {
		resp := nextResponse(t, fast, "fast watcher")
		for _, ev := range resp.Events {
			fastRevs = append(fastRevs, ev.Kv.ModRevision)
		}
	}
	wg.Wait()
	// At most the puts in flight at once land in the drain that fills the queue.
	assert.LessOrEqual(t, maxWatchQueue(t, c.members[0]), watchSendBufLen+workers,
		"responses queued for a client that does not read")

	var slowRevs []int64
	for len(slowRevs) < puts {
		resp, err := slow.Recv()
		require.NoError(t, err)
		for _, ev := range resp.Events {
			slowRevs = append(slowRevs, ev.Kv.ModRevision)
		}
	}
	assert.Equal(t, fastRevs, slowRevs, "the slow client got every event once, in order")
	for i, r := range slowRevs {
		require.EqualValues(t, i+2, r)
	}
}
