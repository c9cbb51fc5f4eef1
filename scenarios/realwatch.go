package scenarios

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/havoclab/havoc/linearizability"
)

// realWatcher is a watch session of a real run, the simulator's simWatcher on
// the wall clock: it watches the workload's key prefix with prev_kv from
// revision 1 on one member, asks for a progress notification every
// progressEvery, and when the member stays silent for silentAfter (or the
// stream ends) it re-watches on another member from the last revision it has
// seen + 1. clientv3 resumes a broken stream on the same member by itself,
// from the revision after the last event it delivered: the guarantees the
// checker holds the events to are the same across such a resume.
type realWatcher struct {
	r       *realRun
	id      int
	members []string
	rnd     *rand.Rand

	mu        sync.Mutex
	events    []linearizability.WatchEvent
	lastRev   int64
	responses int
}

// reached is the revision up to which the watcher has seen every event.
func (w *realWatcher) reached() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lastRev
}

func (w *realWatcher) add(e linearizability.WatchEvent) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.events = append(w.events, e)
}

// run watches until ctx ends.
func (w *realWatcher) run(ctx context.Context) {
	target := w.rnd.IntN(len(w.members))
	clients := map[string]*clientv3.Client{}
	defer func() {
		for _, c := range clients {
			_ = c.Close()
		}
	}()
	for ctx.Err() == nil {
		member := w.members[target]
		cli, ok := clients[member]
		if !ok {
			var err error
			if cli, err = w.r.dial(fmt.Sprintf("w%02d", w.id), member); err != nil {
				w.r.logf("watcher %d: connect %s: %v", w.id, member, err)
				return
			}
			clients[member] = cli
		}
		w.watchOn(ctx, cli, member)
		if len(w.members) > 1 {
			target = (target + 1 + w.rnd.IntN(len(w.members)-1)) % len(w.members)
		}
	}
}

// watchOn runs one watch on member until its stream ends, breaks, is
// compacted or stays silent for silentAfter.
func (w *realWatcher) watchOn(ctx context.Context, cli *clientv3.Client, member string) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	from := w.reached() + 1
	w.add(linearizability.WatchEvent{Watcher: w.id, Member: member, Time: w.r.now(), Type: linearizability.WatchStart, Revision: from})
	ch := cli.Watch(wctx, w.r.c.Workload.prefix(), clientv3.WithPrefix(), clientv3.WithRev(from), clientv3.WithPrevKV())
	tick := time.NewTicker(progressEvery)
	defer tick.Stop()
	heard := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case resp, ok := <-ch:
			if !ok {
				return
			}
			heard = time.Now()
			if resp.CompactRevision > 0 {
				w.mu.Lock()
				if resp.CompactRevision > w.lastRev+1 {
					// The revisions it has not seen were compacted away: note
					// the gap and resume at the compact revision.
					w.events = append(w.events, linearizability.WatchEvent{Watcher: w.id, Member: member, Time: w.r.now(),
						Type: linearizability.WatchCompacted, Revision: resp.CompactRevision})
					w.lastRev = resp.CompactRevision - 1
				}
				w.mu.Unlock()
				return
			}
			if resp.Canceled || resp.Err() != nil {
				return
			}
			if resp.Created {
				continue // the header's revision is the member's, not the stream's
			}
			w.record(member, resp)
		case <-tick.C:
			if time.Since(heard) > silentAfter {
				return
			}
			pctx, pcancel := context.WithTimeout(wctx, progressEvery)
			_ = cli.RequestProgress(pctx)
			pcancel()
		}
	}
}

func (w *realWatcher) record(member string, resp clientv3.WatchResponse) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.responses++
	now := w.r.now()
	for _, ev := range resp.Events {
		w.events = append(w.events, watchEvent(w.id, member, now, w.responses, ev))
		w.lastRev = max(w.lastRev, ev.Kv.ModRevision)
	}
	if len(resp.Events) == 0 && resp.IsProgressNotify() {
		w.events = append(w.events, linearizability.WatchEvent{
			Watcher: w.id, Member: member, Time: now, Type: linearizability.WatchProgress, Response: w.responses, Revision: resp.Header.Revision,
		})
		w.lastRev = max(w.lastRev, resp.Header.Revision)
	}
}
