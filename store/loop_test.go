package store

import (
	"bytes"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/havoclab/havoc/internal/detrand"
	"github.com/havoclab/havoc/store/membership"
	"github.com/havoclab/havoc/vfs"
)

// testClock is a manual clock shared by the members of a test loop.
type testClock struct{ now time.Time }

func (c *testClock) Now() time.Time { return c.now }

// loop is the minimal deterministic driver of the node tests: it delivers messages
// in FIFO order, drops what crosses a cut link, and ticks every member each round.
type loop struct {
	t       testing.TB
	clock   *testClock
	dir     string
	initial []membership.Member
	// clusterID is the ID of the initial cluster, kept when members join.
	clusterID uint64
	nodes     map[uint64]*Node
	disks     map[uint64]*vfs.Mem
	names     map[uint64]string
	cut       map[[2]uint64]bool
	queue     []*raftpb.Message
	resps     map[uint64]Response
	events    map[uint64][]string
	token     uint64
	snapCnt   uint64
	release   func()
	// dupProps delivers every forwarded proposal twice.
	dupProps bool
	// quota is Config.QuotaBackendBytes for members opened from now on.
	quota int64
	// streamSnaps is Config.StreamSnapshots for members opened from now on; the
	// loop then fills each MsgSnap's Data from its image, as a runtime would,
	// and counts the images in streamed.
	streamSnaps bool
	streamed    int
	// reportSnap has the streamed MsgSnaps, whose sender deliver tells how the
	// send went (ReportSnapshot), as the runtime does.
	reportSnap map[*raftpb.Message]bool
	// observe, when set, is every member's Config.Observe.
	observe func(id uint64, p Point)
	// sendEarly, when set, is called with every message a member sends
	// through Config.SendEarly (which the loop then sets), before the message
	// joins the queue.
	sendEarly func(id uint64, m *raftpb.Message)
	// backendSync, when set, is every member's Config.BackendSync.
	backendSync func(id uint64) error
	// halts, when not nil, collects the members' halts (Output.Err) instead
	// of failing the test.
	halts map[uint64]error
}

func newLoop(t testing.TB, size int, seed uint64, snapCount uint64, opts ...func(*loop)) *loop {
	t.Helper()
	l := &loop{
		t: t, clock: &testClock{now: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)}, dir: t.TempDir(),
		nodes: map[uint64]*Node{}, disks: map[uint64]*vfs.Mem{}, names: map[uint64]string{},
		cut: map[[2]uint64]bool{}, resps: map[uint64]Response{}, events: map[uint64][]string{}, snapCnt: snapCount,
	}
	for _, o := range opts {
		o(l)
	}
	l.release = detrand.Acquire(seed)
	t.Cleanup(l.close)
	var spec []string
	for i := 1; i <= size; i++ {
		spec = append(spec, fmt.Sprintf("m%d=http://127.0.0.1:%d", i, 2380+i))
	}
	ms, err := membership.ParseInitialCluster(joinComma(spec), "test")
	require.NoError(t, err)
	l.initial = ms
	ids := make([]uint64, len(ms))
	for i, m := range ms {
		ids[i] = m.ID
	}
	l.clusterID = membership.ClusterID(ids)
	for _, m := range ms {
		l.disks[m.ID] = vfs.NewMem()
		l.names[m.ID] = m.Name
		l.open(m.ID, false)
	}
	return l
}

func joinComma(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += ","
		}
		out += x
	}
	return out
}

func (l *loop) close() {
	for _, id := range l.ids() {
		_ = l.nodes[id].Close()
	}
	l.nodes = map[uint64]*Node{}
	if l.release != nil {
		l.release()
		l.release = nil
	}
}

func (l *loop) config(id uint64, join bool) Config {
	return Config{
		Name: l.names[id], ID: id, InitialCluster: l.initial, ClusterID: l.clusterID, Join: join,
		FS: l.disks[id], WALDir: "wal", DBPath: filepath.Join(l.dir, fmt.Sprintf("%x.db", id)), DBNoSync: true,
		Clock: l.clock, SnapshotCount: l.snapCnt, CatchUpEntries: 5, ClientURLs: []string{"http://" + l.names[id]},
		QuotaBackendBytes: l.quota, StreamSnapshots: l.streamSnaps, Observe: l.observer(id), SendEarly: l.early(id),
		BackendSync: l.backendSyncer(id),
	}
}

func (l *loop) early(id uint64) func([]*raftpb.Message) {
	if l.sendEarly == nil {
		return nil
	}
	return func(ms []*raftpb.Message) {
		for _, m := range ms {
			l.sendEarly(id, m)
		}
		l.queue = append(l.queue, ms...)
	}
}

func (l *loop) backendSyncer(id uint64) func() error {
	if l.backendSync == nil {
		return nil
	}
	return func() error { return l.backendSync(id) }
}

func (l *loop) observer(id uint64) func(Point) {
	if l.observe == nil {
		return nil
	}
	return func(p Point) { l.observe(id, p) }
}

func (l *loop) open(id uint64, join bool) {
	n, err := Open(l.config(id, join))
	require.NoError(l.t, err)
	l.nodes[id] = n
}

func (l *loop) ids() []uint64 { return sortedKeys(l.nodes) }

// followers returns the running members other than lead, in ID order.
func (l *loop) followers(lead uint64) []uint64 {
	var out []uint64
	for _, id := range l.ids() {
		if id != lead {
			out = append(out, id)
		}
	}
	return out
}

// crash simulates power loss on one member: unsynced log writes and the open
// backend batch are lost.
func (l *loop) crash(id uint64) {
	l.nodes[id].Crash()
	delete(l.nodes, id)
	l.disks[id].Crash()
}

func (l *loop) restart(id uint64) { l.open(id, false) }

func (l *loop) isolate(id uint64, on bool) {
	for _, other := range sortedKeys(l.names) {
		l.cut[[2]uint64{id, other}] = on
		l.cut[[2]uint64{other, id}] = on
	}
}

// drain collects every member's output into the queue and response table.
func (l *loop) drain() {
	for _, id := range l.ids() {
		out := l.nodes[id].Drain()
		if l.halts != nil && out.Err != nil {
			l.halts[id] = out.Err
		} else {
			require.NoError(l.t, out.Err)
		}
		for _, si := range out.Snapshots {
			require.Empty(l.t, si.Message.GetSnapshot().GetData(), "a streamed snapshot's message has no image")
			var buf bytes.Buffer
			_, err := si.Image.WriteTo(&buf)
			require.NoError(l.t, err)
			require.NoError(l.t, si.Image.Close())
			si.Message.Snapshot.Data = buf.Bytes()
			l.streamed++
			if l.reportSnap == nil {
				l.reportSnap = map[*raftpb.Message]bool{}
			}
			l.reportSnap[si.Message] = true
		}
		l.queue = append(l.queue, out.Messages...)
		for _, r := range out.Responses {
			l.resps[r.Token] = r
		}
		for _, w := range out.Watch {
			for _, ev := range w.Events {
				l.events[uint64(w.ID)] = append(l.events[uint64(w.ID)], fmt.Sprintf("%s %s=%s@%d", ev.Type, ev.Kv.Key, ev.Kv.Value, ev.Kv.ModRevision))
			}
		}
	}
}

// deliver sends every queued message (and those they cause) until the network is quiet.
func (l *loop) deliver() {
	for range 100 {
		l.drain()
		if len(l.queue) == 0 {
			return
		}
		q := l.queue
		l.queue = nil
		for _, m := range q {
			to, from := m.GetTo(), m.GetFrom()
			n, ok := l.nodes[to]
			delivered := ok && !l.cut[[2]uint64{from, to}]
			if l.reportSnap[m] {
				delete(l.reportSnap, m)
				if sender, ok := l.nodes[from]; ok {
					sender.ReportSnapshot(to, delivered)
				}
			}
			if !delivered {
				continue
			}
			if l.dupProps && m.GetType() == raftpb.MsgProp {
				_ = n.Step(proto.Clone(m).(*raftpb.Message))
			}
			_ = n.Step(m)
		}
	}
}

// tick advances time by one heartbeat on every member and delivers messages.
func (l *loop) tick(rounds int) {
	for range rounds {
		l.clock.now = l.clock.now.Add(100 * time.Millisecond)
		for _, id := range l.ids() {
			l.nodes[id].Tick()
		}
		l.deliver()
	}
}

func (l *loop) leader() uint64 {
	for _, id := range l.ids() {
		if l.nodes[id].Status().IsLeader {
			return id
		}
	}
	return 0
}

func (l *loop) waitLeader() uint64 {
	for range 200 {
		if id := l.leader(); id != 0 {
			return id
		}
		l.tick(1)
	}
	l.t.Fatal("no leader elected within 200 ticks")
	return 0
}

// do submits a request to a member and runs until it is answered.
func (l *loop) do(id uint64, req Request) Response {
	l.t.Helper()
	l.token++
	tok := l.token
	l.nodes[id].Submit(tok, req)
	l.deliver()
	for range 300 {
		if r, ok := l.resps[tok]; ok {
			delete(l.resps, tok)
			return r
		}
		l.tick(1)
	}
	l.t.Fatalf("request %d to %x never answered", tok, id)
	return Response{}
}

func (l *loop) put(id uint64, k, v string) *pb.PutResponse {
	l.t.Helper()
	r := l.do(id, Request{Put: &pb.PutRequest{Key: []byte(k), Value: []byte(v)}})
	require.NoError(l.t, r.Err)
	return r.Put
}

func (l *loop) get(id uint64, k string, serializable bool) *pb.RangeResponse {
	l.t.Helper()
	r := l.do(id, Request{Range: &pb.RangeRequest{Key: []byte(k), Serializable: serializable}})
	require.NoError(l.t, r.Err)
	return r.Range
}

// converged requires every live member to have applied the same index and hold the
// same HashKV at the same revision.
func (l *loop) requireConverged() {
	l.t.Helper()
	l.tick(5)
	var applied uint64
	var hash uint32
	var rev int64
	for i, id := range l.ids() {
		st := l.nodes[id].Status()
		h, hrev, _, err := l.nodes[id].HashKV(0)
		require.NoError(l.t, err)
		if i == 0 {
			applied, hash, rev = st.Applied, h, hrev
			continue
		}
		require.Equal(l.t, applied, st.Applied, "member %x applied index", id)
		require.Equal(l.t, rev, hrev, "member %x revision", id)
		require.Equal(l.t, hash, h, "member %x HashKV", id)
	}
}
