package store

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/havoclab/havoc/vfs"
)

// syncFaultRun is one run of the sync-boundary tests: a cluster of size whose
// member victim (the leader when 0) gets the fault at its k-th sync of
// unsynced data (log segment, request-ID file, directory or backend commit),
// counted from the first write of the workload.
type syncFaultRun struct {
	size    int
	k       int
	victim  uint64
	fault   func(d *vfs.Mem)
	wantErr error
}

// run does the workload (puts of w00..w19 to the victim, one at a time) and
// returns whether the fault fired. It requires: nothing acknowledged after the
// member halted, the halt wrapping the injected error, and after a crash and a
// restart with the fault healed every acknowledged write present.
func (r syncFaultRun) run(t *testing.T) bool {
	l := newLoop(t, r.size, uint64(40+r.k), 0)
	defer l.close()
	l.halts = map[uint64]error{}
	lead := l.waitLeader()
	victim := r.victim
	if victim == 0 {
		victim = lead
	}
	disk := l.disks[victim]
	syncs, fired, done := 0, false, false
	boundary := func() {
		if done {
			return
		}
		syncs++
		if syncs == r.k {
			r.fault(disk)
			fired = true
		}
	}
	disk.OnSync(func(string) { boundary() })
	l.backendSync = func(id uint64) error {
		if id == victim {
			boundary()
			return disk.SyncExternal()
		}
		return nil
	}
	for _, id := range l.ids() { // set the hook of the running members
		l.nodes[id].cfg.BackendSync = l.backendSyncer(id)
	}
	var acked []string
	for i := range 20 {
		key := fmt.Sprintf("w%02d", i)
		if _, halted := l.halts[victim]; halted {
			break
		}
		resp := l.do(victim, Request{Put: &pb.PutRequest{Key: []byte(key), Value: []byte("v")}})
		if resp.Err == nil {
			_, halted := l.halts[victim]
			require.False(t, halted, "k=%d: %s acknowledged by a halted member", r.k, key)
			acked = append(acked, key)
		}
	}
	l.tick(3)
	done = true
	if err, halted := l.halts[victim]; halted {
		require.ErrorIs(t, err, r.wantErr, "k=%d", r.k)
		require.ErrorIs(t, err, vfs.ErrInjected, "k=%d", r.k)
		require.NotContains(t, err.Error(), l.dir, "k=%d: a halt names no temporary path (the simulator's traces must replay)", r.k)
	} else {
		require.False(t, fired && r.size == 1, "k=%d: the only member met the fault and went on", r.k)
	}
	delete(l.halts, victim)
	l.crash(victim)
	disk.FailSyncs(false)
	disk.Fill(false)
	l.restart(victim)
	l.waitLeader()
	l.tick(20)
	require.Empty(t, l.halts, "k=%d: no member halts once the disk is healed", r.k)
	got := l.do(victim, Request{Range: &pb.RangeRequest{Key: []byte("w"), RangeEnd: []byte("x")}})
	require.NoError(t, got.Err)
	var keys []string
	for _, kv := range got.Range.Kvs {
		keys = append(keys, string(kv.Key))
	}
	for _, k := range acked {
		require.Contains(t, keys, k, "k=%d: an acknowledged write was lost", r.k)
	}
	return fired
}

// TestSyncFaultAtEveryBoundary fails a member's disk at each sync of a small
// workload in turn (EIO, then a full disk): the member either goes on with
// every acknowledged write or halts with the injected error before
// acknowledging anything it could not make durable, and after a crash (its
// unsynced writes lost) and a restart on a healed disk every acknowledged
// write is there.
func TestSyncFaultAtEveryBoundary(t *testing.T) {
	cases := []struct {
		name    string
		size    int
		victim  func(l *loop) uint64
		fault   func(d *vfs.Mem)
		wantErr error
	}{
		{"eio/1-member", 1, nil, func(d *vfs.Mem) { d.FailSyncs(true) }, vfs.ErrIO},
		{"full/1-member", 1, nil, func(d *vfs.Mem) { d.Fill(true) }, vfs.ErrNoSpace},
		{"eio/3-members-leader", 3, nil, func(d *vfs.Mem) { d.FailSyncs(true) }, vfs.ErrIO},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			limit := 200
			if testing.Short() && tc.size > 1 {
				limit = 30
			}
			k := 1
			for ; k <= limit; k++ {
				r := syncFaultRun{size: tc.size, k: k, fault: tc.fault, wantErr: tc.wantErr}
				if !r.run(t) {
					break
				}
			}
			t.Logf("%d sync boundaries", k-1)
			require.Greater(t, k, 20, "the workload passes at least one sync per write")
		})
	}
}

// TestOpenStoppedByACrashPointReleasesTheBackend: a runtime that stops a
// member with a panic while it opens (a crash point in its recovery) can open
// it again: the backend is not left locked.
func TestOpenStoppedByACrashPointReleasesTheBackend(t *testing.T) {
	l := newLoop(t, 1, 61, 0)
	id := l.waitLeader()
	l.put(id, "k", "v")
	l.crash(id)
	disk := l.disks[id]
	disk.OnSync(func(string) { panic("crash point") })
	require.PanicsWithValue(t, "crash point", func() { _, _ = Open(l.config(id, false)) })
	disk.OnSync(nil)
	disk.Crash()
	l.restart(id)
	l.waitLeader()
	require.Len(t, l.get(id, "k", false).Kvs, 1)
}
