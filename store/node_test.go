package store

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/havoclab/havoc/store/membership"
	"github.com/havoclab/havoc/store/mvcc"
	"github.com/havoclab/havoc/vfs"
)

func TestElectionDecidedBySeed(t *testing.T) {
	type outcome struct {
		leader uint64
		ticks  int
	}
	elect := func(seed uint64) outcome {
		l := newLoop(t, 3, seed, 0)
		defer l.close()
		for i := 1; i <= 200; i++ {
			l.tick(1)
			if id := l.leader(); id != 0 {
				return outcome{id, i}
			}
		}
		t.Fatalf("seed %d: no leader", seed)
		return outcome{}
	}
	seen := map[outcome]bool{}
	for seed := uint64(1); seed <= 8; seed++ {
		a, b := elect(seed), elect(seed)
		require.Equal(t, a, b, "seed %d must decide the election", seed)
		seen[a] = true
	}
	require.Greater(t, len(seen), 1, "different seeds must give different elections")
}

func TestReplicationAndReads(t *testing.T) {
	for _, size := range []int{3, 5} {
		t.Run(fmt.Sprintf("%d-members", size), func(t *testing.T) {
			l := newLoop(t, size, 7, 0)
			lead := l.waitLeader()
			ids := l.ids()
			follower := ids[0]
			if follower == lead {
				follower = ids[1]
			}
			p1 := l.put(lead, "a", "1")
			p2 := l.put(follower, "b", "2") // forwarded by raft
			require.Equal(t, p1.Header.Revision+1, p2.Header.Revision)
			for _, id := range ids {
				r := l.get(id, "b", false)
				require.Len(t, r.Kvs, 1)
				require.Equal(t, "2", string(r.Kvs[0].Value))
				require.Equal(t, p2.Header.Revision, r.Kvs[0].ModRevision)
			}
			l.requireConverged()
		})
	}
}

func TestLeaderLossAndRestartFromDisk(t *testing.T) {
	l := newLoop(t, 3, 11, 0)
	lead := l.waitLeader()
	for i := range 20 {
		l.put(lead, fmt.Sprintf("k%02d", i), fmt.Sprintf("v%d", i))
	}
	l.crash(lead)
	next := l.waitLeader()
	require.NotEqual(t, lead, next)
	l.put(next, "after", "crash")
	l.restart(lead)
	l.tick(20)
	r := l.get(lead, "after", false)
	require.Len(t, r.Kvs, 1)
	// Every member crashes at once: acknowledged writes survive.
	for _, id := range l.ids() {
		l.crash(id)
	}
	for _, id := range sortedKeys(l.names) {
		l.restart(id)
	}
	lead = l.waitLeader()
	r = l.do(lead, Request{Range: &pb.RangeRequest{Key: []byte("k"), RangeEnd: []byte("l")}}).Range
	require.Len(t, r.Kvs, 20)
	l.requireConverged()
}

func TestSnapshotCatchUp(t *testing.T) {
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprintf("stream=%v", stream), func(t *testing.T) { testSnapshotCatchUp(t, stream) })
	}
}

// testSnapshotCatchUp: with stream, the leader hands each snapshot's image to
// the runtime opened (Output.Snapshots) instead of copying it into the message.
func testSnapshotCatchUp(t *testing.T, stream bool) {
	l := newLoop(t, 3, 5, 20, func(l *loop) { l.streamSnaps = stream })
	lead := l.waitLeader()
	lag := l.followers(lead)[0]
	l.isolate(lag, true)
	for i := range 100 {
		l.put(lead, fmt.Sprintf("k%03d", i), "v")
	}
	require.Greater(t, l.nodes[lead].Status().SnapshotIndex, uint64(0))
	l.isolate(lag, false)
	l.tick(30)
	st := l.nodes[lag].Status()
	require.Greater(t, st.SnapshotIndex, uint64(50), "the follower must have caught up from a snapshot")
	if stream {
		require.Positive(t, l.streamed, "snapshot images handed to the runtime")
	}
	l.requireConverged()
	// And it restarts from that snapshot.
	l.crash(lag)
	l.restart(lag)
	l.tick(10)
	r := l.get(lag, "k099", true)
	require.Len(t, r.Kvs, 1)
	l.requireConverged()
}

func TestMembershipAddPromoteRemove(t *testing.T) {
	l := newLoop(t, 3, 3, 0)
	lead := l.waitLeader()
	l.put(lead, "x", "1")
	r := l.do(lead, Request{MemberAdd: &pb.MemberAddRequest{PeerURLs: []string{"http://127.0.0.1:2399"}, IsLearner: true}})
	require.NoError(t, r.Err)
	newID := r.MemberAdd.Member.ID
	require.Len(t, r.MemberAdd.Members, 4)
	l.names[newID] = "m4"
	l.disks[newID] = newMemDisk()
	l.initial = append(l.initial, memberOf(newID, "m4", "http://127.0.0.1:2399"))
	l.open(newID, true)
	l.tick(30)
	require.Equal(t, "1", string(l.get(newID, "x", true).Kvs[0].Value))
	r = l.do(lead, Request{MemberPromote: &pb.MemberPromoteRequest{ID: newID}})
	require.NoError(t, r.Err)
	require.Contains(t, l.nodes[lead].Status().Voters, newID)
	r = l.do(lead, Request{MemberPromote: &pb.MemberPromoteRequest{ID: newID}})
	require.ErrorIs(t, r.Err, ErrMemberNotLearner)
	// Remove a follower; the cluster goes on with 3 voters.
	var victim uint64
	for _, id := range l.ids() {
		if id != lead && id != newID {
			victim = id
		}
	}
	r = l.do(lead, Request{MemberRemove: &pb.MemberRemoveRequest{ID: victim}})
	require.NoError(t, r.Err)
	require.Len(t, r.MemberRemove.Members, 3)
	l.tick(5)
	require.True(t, l.nodes[victim].Removed())
	_ = l.nodes[victim].Close()
	delete(l.nodes, victim)
	l.put(l.waitLeader(), "y", "2")
	l.requireConverged()
	r = l.do(l.waitLeader(), Request{MemberRemove: &pb.MemberRemoveRequest{ID: victim}})
	require.ErrorIs(t, r.Err, ErrMemberNotFound)
}

// TestMemberRemoveKeepsAQuorumActive: removing a voter is refused when the
// voters left would not have an active quorum, at any point of the leader's
// election-timeout cycle (raft clears its own activity flags at each check).
func TestMemberRemoveKeepsAQuorumActive(t *testing.T) {
	l := newLoop(t, 3, 6, 0)
	lead := l.waitLeader()
	fs := l.followers(lead)
	healthy, cut := fs[0], fs[1]
	for range 30 { // every phase of the cycle, checked before the tick's messages are delivered
		for _, id := range l.ids() {
			l.nodes[id].Tick()
		}
		require.True(t, l.nodes[lead].mayRemoveVoter(healthy), "tick %d: a healthy cluster may lose a voter", l.nodes[lead].ticks)
		l.deliver()
	}
	l.isolate(cut, true)
	l.tick(20)
	require.Equal(t, lead, l.leader())
	r := l.do(lead, Request{MemberRemove: &pb.MemberRemoveRequest{ID: healthy}})
	require.ErrorIs(t, r.Err, ErrNotEnoughStarted, "the leader and a cut-off member are not a quorum")
	r = l.do(lead, Request{MemberRemove: &pb.MemberRemoveRequest{ID: cut}})
	require.NoError(t, r.Err, "removing the cut-off member leaves two active voters")
}

func TestMembershipUpdatePeerURLs(t *testing.T) {
	l := newLoop(t, 3, 4, 0)
	lead := l.waitLeader()
	follower := l.followers(lead)[0]
	var others []string
	for _, m := range l.nodes[lead].Members() {
		if m.ID != follower {
			others = append(others, m.PeerURLs...)
		}
	}
	bad := []struct {
		name string
		req  *pb.MemberUpdateRequest
		want error
	}{
		{"unknown member", &pb.MemberUpdateRequest{ID: 12345, PeerURLs: []string{"http://127.0.0.1:2400"}}, ErrMemberNotFound},
		{"no URLs", &pb.MemberUpdateRequest{ID: follower}, ErrBadMemberURLs},
		{"bad URL", &pb.MemberUpdateRequest{ID: follower, PeerURLs: []string{"127.0.0.1:2400"}}, ErrBadMemberURLs},
		{"another member's URL", &pb.MemberUpdateRequest{ID: follower, PeerURLs: others[:1]}, ErrPeerURLExists},
	}
	for _, tc := range bad {
		r := l.do(lead, Request{MemberUpdate: tc.req})
		require.ErrorIs(t, r.Err, tc.want, tc.name)
	}

	// The update reaches every member, keeps name and role, and survives a restart.
	urls := []string{"http://127.0.0.1:2402", "http://127.0.0.1:2401"}
	r := l.do(follower, Request{MemberUpdate: &pb.MemberUpdateRequest{ID: follower, PeerURLs: urls}})
	require.NoError(t, r.Err)
	require.Len(t, r.MemberUpdate.Members, 3)
	l.tick(5)
	for _, id := range l.ids() {
		i := slices.IndexFunc(l.nodes[id].Members(), func(m membership.Member) bool { return m.ID == follower })
		require.GreaterOrEqual(t, i, 0)
		m := l.nodes[id].Members()[i]
		require.Equal(t, []string{"http://127.0.0.1:2401", "http://127.0.0.1:2402"}, m.PeerURLs, "member %x", id)
		require.Equal(t, l.names[follower], m.Name)
		require.False(t, m.IsLearner)
	}
	require.ElementsMatch(t, l.ids(), l.nodes[lead].Status().Voters, "raft's configuration does not change")
	l.crash(follower)
	l.restart(follower)
	l.tick(10)
	i := slices.IndexFunc(l.nodes[follower].Members(), func(m membership.Member) bool { return m.ID == follower })
	require.Equal(t, []string{"http://127.0.0.1:2401", "http://127.0.0.1:2402"}, l.nodes[follower].Members()[i].PeerURLs)
	l.put(l.waitLeader(), "after", "update")
	l.requireConverged()
}

func TestLeaseExpiryDeletesKeysEverywhere(t *testing.T) {
	l := newLoop(t, 3, 9, 0)
	lead := l.waitLeader()
	g := l.do(lead, Request{LeaseGrant: &pb.LeaseGrantRequest{TTL: 5}})
	require.NoError(t, g.Err)
	require.EqualValues(t, 5, g.LeaseGrant.TTL)
	id := g.LeaseGrant.ID
	require.NoError(t, l.do(lead, Request{Put: &pb.PutRequest{Key: []byte("eph"), Value: []byte("v"), Lease: id}}).Err)
	r := l.do(lead, Request{Put: &pb.PutRequest{Key: []byte("bad"), Lease: id + 1}})
	require.Error(t, r.Err)
	ttl := l.do(lead, Request{LeaseTimeToLive: &pb.LeaseTimeToLiveRequest{ID: id, Keys: true}})
	require.NoError(t, ttl.Err)
	require.Equal(t, [][]byte{[]byte("eph")}, ttl.LeaseTimeToLive.Keys)
	l.tick(30) // 3 s: still alive
	for _, m := range l.ids() {
		require.Len(t, l.get(m, "eph", true).Kvs, 1)
	}
	l.tick(30) // past 5 s
	for _, m := range l.ids() {
		require.Empty(t, l.get(m, "eph", true).Kvs, "member %x", m)
	}
	require.Empty(t, l.do(lead, Request{LeaseLeases: &pb.LeaseLeasesRequest{}}).LeaseLeases.Leases)
	l.requireConverged()
}

func TestWatchEventsInRevisionOrder(t *testing.T) {
	l := newLoop(t, 3, 13, 0)
	lead := l.waitLeader()
	require.NoError(t, l.nodes[lead].Watch(1, mvcc.WatchRequest{Key: []byte("w/"), End: []byte("w0")}))
	l.put(lead, "w/a", "1")
	l.put(lead, "other", "x")
	l.put(lead, "w/b", "2")
	require.NoError(t, l.do(lead, Request{DeleteRange: &pb.DeleteRangeRequest{Key: []byte("w/a")}}).Err)
	l.tick(1)
	require.Len(t, l.events[1], 3)
	require.Contains(t, l.events[1][0], "w/a=1")
	require.Contains(t, l.events[1][2], "DELETE w/a")
}

func TestValidationAndErrors(t *testing.T) {
	l := newLoop(t, 3, 17, 0)
	lead := l.waitLeader()
	r := l.do(lead, Request{Put: &pb.PutRequest{Key: nil, Value: []byte("v")}})
	require.Error(t, r.Err)
	require.True(t, r.Definite)
	big := make([]byte, 2<<20)
	r = l.do(lead, Request{Put: &pb.PutRequest{Key: []byte("big"), Value: big}})
	require.ErrorIs(t, r.Err, ErrRequestTooLarge)
	l.put(lead, "a", "1")
	l.put(lead, "a", "2")
	l.put(lead, "a", "3")
	require.NoError(t, l.do(lead, Request{Compaction: &pb.CompactionRequest{Revision: 3}}).Err)
	r = l.do(lead, Request{Range: &pb.RangeRequest{Key: []byte("a"), Revision: 2}})
	require.ErrorIs(t, r.Err, mvcc.ErrCompacted)
	r = l.do(lead, Request{Range: &pb.RangeRequest{Key: []byte("a"), Revision: 100}})
	require.ErrorIs(t, r.Err, mvcc.ErrFutureRev)
	// A minority member cannot serve linearizable reads, only serializable ones.
	fs := l.followers(lead)
	f := fs[len(fs)-1]
	l.isolate(f, true)
	l.tick(40)
	l.token++
	l.nodes[f].Submit(l.token, Request{Range: &pb.RangeRequest{Key: []byte("a")}})
	l.tick(3)
	resp, answered := l.resps[l.token]
	if answered {
		require.Error(t, resp.Err, "an isolated member must not answer a linearizable read")
	}
	require.Equal(t, "3", string(l.get(f, "a", true).Kvs[0].Value))
}

func TestNodeRefusesForeignLog(t *testing.T) {
	l := newLoop(t, 3, 19, 0)
	l.waitLeader()
	ids := l.ids()
	a, b := ids[0], ids[1]
	l.crash(a)
	cfg := l.config(a, false)
	cfg.FS = l.disks[b]
	cfg.ID = 0
	cfg.Name = l.names[a]
	_ = l.nodes[b].Close()
	delete(l.nodes, b)
	_, err := Open(cfg)
	require.ErrorIs(t, err, ErrForeignDataDir)
}

func FuzzDecodeEntry(f *testing.F) {
	req := Request{Put: &pb.PutRequest{Key: []byte("k"), Value: []byte("v")}}
	good, _ := protoMarshal(req.internal(7))
	f.Add(good)
	f.Add([]byte{})
	f.Add([]byte{0xff, 0x01})
	f.Fuzz(func(t *testing.T, data []byte) {
		ir, err := DecodeEntry(data)
		if err != nil {
			require.ErrorIs(t, err, ErrBadEntry)
			return
		}
		require.NotNil(t, ir)
	})
}

// BenchmarkCommittedPuts3 measures puts committed through 3 members of the minimal
// loop (network and disks in memory, bbolt on a temporary file without fsync).
func BenchmarkCommittedPuts3(b *testing.B) {
	l := newLoop(b, 3, 1, 0)
	lead := l.waitLeader()
	val := make([]byte, 128)
	b.ResetTimer()
	start := time.Now()
	const batch = 64
	for i := 0; i < b.N; i += batch {
		for j := 0; j < batch && i+j < b.N; j++ {
			l.token++
			l.nodes[lead].Submit(l.token, Request{Put: &pb.PutRequest{Key: fmt.Appendf(nil, "k%d", (i+j)%10000), Value: val}})
		}
		l.deliver()
	}
	l.tick(1)
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "puts/s")
}

// TestDuplicatedProposalAppliesOnce is the regression test for what havoc's
// duplication fault found (sweep seed 14): a forwarded proposal delivered twice
// made one client put take effect twice.
func TestDuplicatedProposalAppliesOnce(t *testing.T) {
	l := newLoop(t, 3, 23, 0)
	lead := l.waitLeader()
	fs := l.followers(lead)
	f := fs[len(fs)-1]
	l.dupProps = true
	p := l.put(f, "dup", "v")
	l.dupProps = false
	l.tick(3)
	r := l.get(lead, "dup", false)
	require.Len(t, r.Kvs, 1)
	require.Equal(t, p.Header.Revision, r.Kvs[0].ModRevision, "the write must have one revision")
	require.EqualValues(t, 1, r.Kvs[0].Version)
	require.Equal(t, p.Header.Revision, r.Header.Revision, "nothing else may have been written")
}

// TestDiskFullHaltsWithoutLosingAcknowledgedWrites fills a member's log disk: the
// member halts with a clear error instead of acknowledging anything it could not
// log, and after space returns it restarts with every acknowledged write.
func TestDiskFullHaltsWithoutLosingAcknowledgedWrites(t *testing.T) {
	l := newLoop(t, 1, 29, 0)
	id := l.waitLeader()
	for i := range 10 {
		l.put(id, fmt.Sprintf("k%d", i), "v")
	}
	disk := l.disks[id]
	disk.SetCapacity(disk.Used() + 64)
	l.token++
	l.nodes[id].Submit(l.token, Request{Put: &pb.PutRequest{Key: []byte("big"), Value: make([]byte, 4096)}})
	out := l.nodes[id].Drain()
	require.Error(t, out.Err)
	require.ErrorIs(t, out.Err, vfs.ErrNoSpace)
	for _, r := range out.Responses {
		require.Error(t, r.Err, "nothing may be acknowledged once the log cannot be written")
	}
	l.crash(id)
	disk.SetCapacity(0)
	l.restart(id)
	l.waitLeader()
	r := l.do(id, Request{Range: &pb.RangeRequest{Key: []byte("k"), RangeEnd: []byte("l")}}).Range
	require.Len(t, r.Kvs, 10)
}

// TestQuotaRaisesNoSpaceAndLosesNothing: past the backend quota, writes get
// ErrNoSpace and the NOSPACE alarm is raised on every member; everything written
// before stays readable and deletes still work, as in etcd.
func TestQuotaRaisesNoSpaceAndLosesNothing(t *testing.T) {
	l := newLoop(t, 3, 31, 0)
	lead := l.waitLeader()
	size := l.nodes[lead].Status().DBSize
	for _, id := range l.ids() {
		_ = l.nodes[id].Close()
		delete(l.nodes, id)
	}
	l.quota = size + 64<<10
	for _, id := range sortedKeys(l.names) {
		l.open(id, false)
	}
	lead = l.waitLeader()
	val := make([]byte, 8<<10)
	written := 0
	var err error
	for i := 0; i < 200; i++ {
		r := l.do(lead, Request{Put: &pb.PutRequest{Key: fmt.Appendf(nil, "k%03d", i), Value: val}})
		if r.Err != nil {
			err = r.Err
			require.True(t, r.Definite)
			break
		}
		written++
		l.tick(1) // commit the batch so the backend grows
	}
	require.ErrorIs(t, err, ErrNoSpace)
	require.Greater(t, written, 0)
	l.tick(5)
	for _, id := range l.ids() {
		alarms := l.nodes[id].Alarms()
		require.Len(t, alarms, 1, "member %x", id)
		require.Equal(t, pb.AlarmType_NOSPACE, alarms[0].Alarm)
	}
	r := l.do(lead, Request{Range: &pb.RangeRequest{Key: []byte("k"), RangeEnd: []byte("l"), CountOnly: true}})
	require.NoError(t, r.Err)
	require.EqualValues(t, written, r.Range.Count, "every acknowledged write is still there")
	require.NoError(t, l.do(lead, Request{DeleteRange: &pb.DeleteRangeRequest{Key: []byte("k000")}}).Err, "deletes stay allowed")
	require.ErrorIs(t, l.do(lead, Request{Txn: &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("x")}}}}}}).Err, ErrNoSpace)
}

// With SendEarly a leader hands its appends to the runtime before it writes
// them to its own log (the leader's fsync overlaps the followers'), a
// follower never does, and the cluster answers and converges as without it.
func TestLeaderSendsAppendsBeforeItsLogWrite(t *testing.T) {
	type early struct {
		from  uint64
		typ   raftpb.MessageType
		syncs int64 // the sender's log syncs when it sent
		index uint64
	}
	var sent []early
	l := newLoop(t, 3, 1, 0, func(l *loop) {
		l.sendEarly = func(id uint64, m *raftpb.Message) {
			var last uint64
			if es := m.GetEntries(); len(es) > 0 {
				last = es[len(es)-1].GetIndex()
			}
			sent = append(sent, early{from: id, typ: m.GetType(), syncs: l.disks[id].Syncs(), index: last})
		}
	})
	lead := l.waitLeader()
	sent = nil
	syncsBefore := l.disks[lead].Syncs()
	resp := l.put(lead, "k", "v")
	require.Positive(t, resp.GetHeader().GetRevision())
	var apps int
	for _, e := range sent {
		require.Equal(t, lead, e.from, "only the leader sends early")
		if e.typ == raftpb.MsgApp && e.index > 0 {
			apps++
			require.Equal(t, syncsBefore, e.syncs, "the append left before the leader synced the entry")
		}
	}
	require.Equal(t, 2, apps, "one append per follower")
	require.Greater(t, l.disks[lead].Syncs(), syncsBefore, "the leader synced the entry")
	for _, id := range l.ids() {
		require.Equal(t, "v", string(l.get(id, "k", true).GetKvs()[0].GetValue()))
	}
	l.requireConverged()
}
