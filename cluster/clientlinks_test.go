package cluster

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// etcdGauge reads one metric of member from its /metrics (-1 when absent).
func etcdGauge(t *testing.T, clientURL, name string) float64 {
	t.Helper()
	resp, err := http.Get(clientURL + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == name {
			v, err := strconv.ParseFloat(f[1], 64)
			require.NoError(t, err)
			return v
		}
	}
	return -1
}

// TestClientLinksEtcd puts a real etcd's clients behind client links: a
// watcher whose link stalls gets nothing while the member writes megabytes of
// events, which etcd must hold as a slow watcher's pending events; after the
// heal every event arrives, in order. A client cut from the member cannot
// reach it until the heal.
func TestClientLinksEtcd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real etcd member")
	}
	bin := buildEtcd(t)
	p, err := NewProcess(ProcessConfig{Target: TargetEtcd, Binary: bin, Members: 1, Dir: t.TempDir(), Seed: 1})
	require.NoError(t, err)
	defer p.Close()
	ctx := context.Background()
	require.NoError(t, p.Start(ctx))
	direct, err := p.Client("m1")
	require.NoError(t, err)

	wurl, err := p.SessionURL("w01", "m1")
	require.NoError(t, err)
	require.NotEqual(t, p.ClientURL("m1"), wurl)
	wcli, err := NewClient(wurl)
	require.NoError(t, err)
	defer wcli.Close()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := wcli.Watch(wctx, "k/", clientv3.WithPrefix())
	_, err = direct.Put(ctx, "k/first", "v")
	require.NoError(t, err)
	var last int64
	select {
	case r := <-ch:
		require.Len(t, r.Events, 1)
		last = r.Events[0].Kv.ModRevision
	case <-time.After(5 * time.Second):
		t.Fatal("no event through the watcher's client link")
	}
	require.Positive(t, p.Network().Accepted()["w01->m1"])

	heal, err := p.StallClients([]string{"m1"})
	require.NoError(t, err)
	const puts = 1000
	value := strings.Repeat("x", 1024)
	for i := range puts {
		_, err := direct.Put(ctx, fmt.Sprintf("k/%04d", i), value)
		require.NoError(t, err)
	}
	select {
	case r := <-ch:
		t.Fatalf("a stalled watcher got a response: %d events", len(r.Events))
	case <-time.After(300 * time.Millisecond):
	}
	pending := etcdGauge(t, p.ClientURL("m1"), "etcd_debugging_mvcc_pending_events_total")
	slow := etcdGauge(t, p.ClientURL("m1"), "etcd_debugging_mvcc_slow_watcher_total")
	t.Logf("during the stall: pending events %v, slow watchers %v", pending, slow)
	require.True(t, pending > 0 || slow > 0, "etcd holds the stalled watcher as slow (pending %v, slow %v)", pending, slow)
	require.NoError(t, heal())

	got := 0
	deadline := time.After(20 * time.Second)
	for got < puts {
		select {
		case r := <-ch:
			require.NoError(t, r.Err())
			for _, ev := range r.Events {
				require.Equal(t, last+1, ev.Kv.ModRevision, "events in order, none missing")
				last = ev.Kv.ModRevision
				got++
			}
		case <-deadline:
			t.Fatalf("after the heal the watcher got %d of %d events", got, puts)
		}
	}

	// A client cut from the member fails; after the heal it succeeds.
	curl, err := p.SessionURL("c01", "m1")
	require.NoError(t, err)
	ccli, err := NewClient(curl)
	require.NoError(t, err)
	defer ccli.Close()
	get := func() error {
		gctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_, err := ccli.Get(gctx, "k/first")
		return err
	}
	require.NoError(t, get())
	uncut, err := p.CutClients([]string{"m1"})
	require.NoError(t, err)
	require.Error(t, get(), "a client cut from its member")
	_, err = direct.Put(ctx, "k/direct", "v")
	require.NoError(t, err, "the member itself is fine")
	require.NoError(t, uncut())
	require.Eventually(t, func() bool { return get() == nil }, 10*time.Second, 100*time.Millisecond)
}
