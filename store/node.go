package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/havoclab/havoc/store/auth"
	"github.com/havoclab/havoc/store/lease"
	"github.com/havoclab/havoc/store/membership"
	"github.com/havoclab/havoc/store/mvcc"
	"github.com/havoclab/havoc/store/wal"

	"github.com/havoclab/havoc/internal/mutant"
)

// Output is what a member emits after its inputs: raft messages for the runtime to
// send, answers to submitted requests, and watch events. All slices are in a
// deterministic order.
type Output struct {
	Messages  []*raftpb.Message
	Responses []Response
	Watch     []mvcc.WatchEvent
	// Snapshots has, with Config.StreamSnapshots, the backend image of each
	// MsgSnap in Messages; the runtime must Close every one.
	Snapshots []SnapshotImage
	// Err is set once the member has halted (e.g. its log disk is full); it then
	// ignores every input and the runtime should stop it and report Err.
	Err error
}

// SnapshotImage is the backend image of an outgoing MsgSnap (Config.StreamSnapshots).
type SnapshotImage struct {
	Message *raftpb.Message
	Image   *mvcc.Snapshot
}

// Node is one member's deterministic core. It owns a raft.RawNode, the write-ahead
// log, the MVCC backend and the lessor. It has no goroutine, channel, mutex, timer
// or clock of its own: the runtime calls Tick, Step, Submit and the watch methods
// from one goroutine and collects the effects with Drain.
type Node struct {
	cfg       Config
	id        uint64
	clusterID uint64
	log       *slog.Logger

	rn        *raft.RawNode
	storage   *raft.MemoryStorage
	wal       *wal.WAL
	kv        *mvcc.Store
	lessor    *lease.Lessor
	auth      *auth.Store
	members   map[uint64]membership.Member
	confState *raftpb.ConfState

	applied   uint64
	snapIndex uint64
	lead      uint64
	term      uint64
	ticks     int64
	// votedTerm and voted are the durable term and vote, for PointVotePersisted.
	votedTerm, voted uint64
	ids              reqIDGen
	// heard is the tick at which each peer's last message arrived.
	heard map[uint64]int64

	pending   map[uint64]*pendingReq // by token
	timeouts  []timeoutEntry         // FIFO by deadline
	waiters   map[uint64]waiter      // by raft request ID
	reads     readQueue
	revoking  map[int64]int64 // lease ID -> tick its revoke was proposed
	snapSent  map[uint64]int64
	alarms    []*pb.AlarmMember
	published bool
	// publishProposedAt is the tick of the last publish proposal (0: none yet).
	publishProposedAt int64
	proposals         proposalLog

	out    Output
	halted error
}

type pendingReq struct {
	deadline int64
}

// waiter links a proposal to the request waiting for it.
type waiter struct {
	token uint64
	kind  waitKind
}

type waitKind uint8

const (
	kindWrite waitKind = iota
	kindMemberAdd
	kindMemberRemove
	kindMemberPromote
	kindMemberUpdate
)

type timeoutEntry struct {
	token    uint64
	deadline int64
}

// commitTicks is how often the backend batch is committed (etcd: every 100 ms).
const commitTicks = 1

// Open starts a member: it recovers the log and backend when they exist, otherwise
// creates them (bootstrapping a new cluster, or waiting to join an existing one).
func Open(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Node{
		cfg: cfg, id: cfg.ID, clusterID: cfg.ClusterID, log: cfg.Logger.With("member", cfg.Name),
		storage: raft.NewMemoryStorage(), members: map[uint64]membership.Member{},
		pending: map[uint64]*pendingReq{}, waiters: map[uint64]waiter{}, revoking: map[int64]int64{},
		snapSent: map[uint64]int64{}, confState: &raftpb.ConfState{}, heard: map[uint64]int64{},
	}
	kv, err := mvcc.Open(cfg.DBPath, mvcc.Options{NoSync: cfg.DBNoSync, BatchLimit: math.MaxInt, InitialMmapSize: cfg.DBInitialMmapSize})
	if err != nil {
		return nil, fmt.Errorf("store: open backend %s: %w", cfg.DBPath, err)
	}
	n.kv = kv
	// A panic on the way (a runtime's crash point: Config.Observe, or its
	// disk's hook) must not leave the backend open and locked against the
	// member's next incarnation.
	opened := false
	defer func() {
		if !opened {
			_ = kv.Abort()
		}
	}()
	n.lessor = lease.New(cfg.minLeaseTTL(), leaseBackend{kv})
	kv.SetLeaseHooks(n.lessor)
	n.auth = auth.New(kv, cfg.AuthTokenTTL)
	n.auth.SetTokens(cfg.AuthTokens)
	if err := n.auth.Load(); err != nil {
		_ = kv.Abort()
		return nil, fmt.Errorf("store: recover auth: %w", err)
	}
	exists, err := wal.Exist(cfg.FS, cfg.WALDir)
	if err == nil {
		if exists {
			err = n.restart()
		} else {
			err = n.start()
		}
	}
	if err == nil {
		n.ids, err = openReqIDGen(cfg.FS, cfg.WALDir, n.id)
	}
	if err != nil {
		if n.wal != nil {
			_ = n.wal.Close()
		}
		return nil, err
	}
	opened = true
	return n, nil
}

// walMetadata identifies the member and cluster a log belongs to.
type walMetadata struct {
	Name      string `json:"name"`
	MemberID  uint64 `json:"member_id"`
	ClusterID uint64 `json:"cluster_id"`
}

func (n *Node) raftConfig() *raft.Config {
	return &raft.Config{
		ID: n.id, ElectionTick: n.cfg.ElectionTicks, HeartbeatTick: 1, Storage: n.storage,
		MaxSizePerMsg: 1 << 20, MaxInflightMsgs: 512, MaxUncommittedEntriesSize: 1 << 30,
		CheckQuorum: true, PreVote: true, ReadOnlyOption: raft.ReadOnlySafe,
		Logger: raftLogger{n.log}, StepDownOnRemoval: true,
	}
}

// start creates the log of a fresh member.
func (n *Node) start() error {
	meta, _ := json.Marshal(walMetadata{Name: n.cfg.Name, MemberID: n.id, ClusterID: n.clusterID})
	if n.kv.Rev() > 1 {
		return fmt.Errorf("%w: backend %s has data but there is no log in %s", ErrForeignDataDir, n.cfg.DBPath, n.cfg.WALDir)
	}
	w, err := wal.Create(n.cfg.FS, n.cfg.WALDir, meta, wal.Options{})
	if err != nil {
		return fmt.Errorf("store: create log: %w", err)
	}
	n.wal = w
	rn, err := raft.NewRawNode(n.raftConfig())
	if err != nil {
		return err
	}
	n.rn = rn
	if n.cfg.Join {
		return nil
	}
	peers := make([]raft.Peer, 0, len(n.cfg.InitialCluster))
	for _, m := range n.cfg.InitialCluster {
		ctx, _ := json.Marshal(m)
		peers = append(peers, raft.Peer{ID: m.ID, Context: ctx})
	}
	return rn.Bootstrap(peers)
}

// restart recovers a member from its log and backend. The backend may be ahead of
// the log's last snapshot marker (its consistent index says how far), never behind.
func (n *Node) restart() error {
	w, st, err := wal.Open(n.cfg.FS, n.cfg.WALDir, wal.Options{})
	if err != nil {
		return fmt.Errorf("store: recover log %s: %w", n.cfg.WALDir, err)
	}
	n.wal = w
	var meta walMetadata
	if err := json.Unmarshal(st.Metadata, &meta); err != nil {
		return fmt.Errorf("%w: log metadata: %w", ErrForeignDataDir, err)
	}
	if meta.MemberID != n.id || (n.clusterID != 0 && meta.ClusterID != n.clusterID && !n.cfg.Join) {
		return fmt.Errorf("%w: log of member %x (%s) in cluster %x, configured as member %x in cluster %x",
			ErrForeignDataDir, meta.MemberID, meta.Name, meta.ClusterID, n.id, n.clusterID)
	}
	n.clusterID = meta.ClusterID
	if st.TruncatedTail {
		n.log.Warn("log had a torn tail; truncated the unsynced record")
	}
	snap := st.Snapshot
	ci, term := n.kv.ConsistentIndex()
	if ci < snap.Index {
		return fmt.Errorf("store: backend consistent index %d is behind the log snapshot %d: backend lost", ci, snap.Index)
	}
	lastIndex := snap.Index
	if len(st.Entries) > 0 {
		lastIndex = st.Entries[len(st.Entries)-1].GetIndex()
	}
	if ci > lastIndex {
		// The backend received a snapshot from the leader but the log marker never
		// became durable: the backend itself is the snapshot.
		cs, err := n.backendConfState()
		if err != nil {
			return err
		}
		snap = wal.Snapshot{Index: ci, Term: term, ConfState: cs}
		st.Entries = nil
		if err := n.wal.SaveSnapshot(snap); err != nil {
			return err
		}
	}
	if snap.Index > 0 {
		cs := snap.ConfState
		if cs == nil {
			cs = &raftpb.ConfState{}
		}
		if err := n.storage.ApplySnapshot(&raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{
			Index: new(snap.Index), Term: new(snap.Term), ConfState: cs}}); err != nil {
			return err
		}
		n.confState = cs
		n.snapIndex, n.applied = snap.Index, snap.Index
	}
	if err := n.storage.Append(st.Entries); err != nil {
		return err
	}
	n.proposals.add(st.Entries)
	hs := st.HardState
	if hs.GetCommit() < snap.Index {
		hs.Commit = new(snap.Index)
	}
	if err := n.storage.SetHardState(hs); err != nil {
		return err
	}
	n.votedTerm, n.voted = hs.GetTerm(), hs.GetVote()
	if err := n.loadBackendState(); err != nil {
		return err
	}
	rn, err := raft.NewRawNode(n.raftConfig())
	if err != nil {
		return err
	}
	n.rn = rn
	return nil
}

// loadBackendState rebuilds the lessor, key attachments, members and alarms from the
// backend (at boot and after installing a snapshot).
func (n *Node) loadBackendState() error {
	n.lessor.Reset()
	err := n.kv.ForEachRaw("lease", func(k, v []byte) error {
		id, ttl, err := decodeLease(v)
		if err != nil {
			return err
		}
		n.lessor.Recover(id, ttl)
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: recover leases: %w", err)
	}
	all, err := n.kv.Range(&pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}})
	if err != nil {
		return fmt.Errorf("store: recover lease attachments: %w", err)
	}
	for _, kv := range all.Kvs {
		if kv.Lease != 0 {
			n.lessor.Attach(kv.Lease, kv.Key)
		}
	}
	n.members = map[uint64]membership.Member{}
	err = n.kv.ForEachRaw("members", func(k, v []byte) error {
		var m membership.Member
		if err := json.Unmarshal(v, &m); err != nil {
			return err
		}
		n.members[m.ID] = m
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: recover members: %w", err)
	}
	if err := n.auth.Load(); err != nil {
		return fmt.Errorf("store: recover auth: %w", err)
	}
	n.alarms = nil
	return n.kv.ForEachRaw("alarm", func(k, _ []byte) error {
		var a pb.AlarmMember
		if err := proto.Unmarshal(k, &a); err != nil {
			return err
		}
		n.alarms = append(n.alarms, &a)
		return nil
	})
}

func (n *Node) backendConfState() (*raftpb.ConfState, error) {
	cs := &raftpb.ConfState{}
	var raw []byte
	_ = n.kv.ForEachRaw("meta", func(k, v []byte) error {
		if string(k) == "confState" {
			raw = slices.Clone(v)
		}
		return nil
	})
	if raw == nil {
		return cs, nil
	}
	if err := json.Unmarshal(raw, cs); err != nil {
		return nil, fmt.Errorf("store: backend confState: %w", err)
	}
	return cs, nil
}

// ID returns the member's raft ID.
func (n *Node) ID() uint64 { return n.id }

// ClusterID returns the cluster's ID.
func (n *Node) ClusterID() uint64 { return n.clusterID }

// Tick advances the member's logical clock by one heartbeat interval.
func (n *Node) Tick() {
	if n.halted != nil {
		return
	}
	n.ticks++
	n.rn.Tick()
	n.expireLeases()
	n.reads.retry(n)
	n.expireRequests()
	n.retrySnapshots()
	if n.ticks%commitTicks == 0 {
		n.commitBackend()
	}
	n.maybePublish()
}

// Step hands the member a raft message from a peer.
func (n *Node) Step(m *raftpb.Message) error {
	if n.halted != nil {
		return n.halted
	}
	if raft.IsLocalMsg(m.GetType()) {
		return fmt.Errorf("store: refusing local message type %s from the network", m.GetType())
	}
	if last, _ := n.storage.LastIndex(); m.GetType() == raftpb.MsgProp && !mutant.On(mutant.DedupeOff) && !n.proposals.filter(m, last+1) {
		return nil // every entry is already in the log: a duplicated delivery
	}
	if from := m.GetFrom(); from != 0 && from != n.id {
		n.heard[from] = n.ticks
	}
	err := n.rn.Step(m)
	if errors.Is(err, raft.ErrStepPeerNotFound) || errors.Is(err, raft.ErrStepLocalMsg) {
		return nil
	}
	return err
}

// ReportUnreachable tells raft that a peer could not be reached.
func (n *Node) ReportUnreachable(id uint64) { n.rn.ReportUnreachable(id) }

// Drain runs raft's Ready loop (persist, send, apply, advance) until nothing is left
// and returns everything the member emitted since the last Drain.
func (n *Node) Drain() Output {
	if n.halted == nil {
		for {
			for n.halted == nil && n.rn.HasReady() {
				n.handleReady(n.rn.Ready())
			}
			if n.halted != nil {
				break
			}
			n.reads.serve(n)
			if !n.reads.issue(n) || !n.rn.HasReady() {
				break
			}
		}
		n.out.Watch = append(n.out.Watch, n.kv.DrainWatch(1024)...)
	}
	out := n.out
	out.Err = n.halted
	n.out = Output{}
	return out
}

func (n *Node) halt(err error) {
	if n.halted != nil {
		return
	}
	n.halted = err
	n.log.Error("member halted", "err", err)
	tokens := make([]uint64, 0, len(n.pending))
	for t := range n.pending {
		tokens = append(tokens, t)
	}
	slices.Sort(tokens)
	for _, t := range tokens {
		n.out.Responses = append(n.out.Responses, Response{Token: t, Err: ErrStopped})
	}
	n.pending = map[uint64]*pendingReq{}
}

// handleReady processes one Ready in raftexample's order: persist the snapshot,
// persist hard state and entries (fsync when MustSync), send messages, apply
// committed entries, Advance.
func (n *Node) handleReady(rd raft.Ready) {
	if rd.SoftState != nil {
		n.onSoftState(rd.SoftState)
	}
	if rd.Snapshot != nil && !raft.IsEmptySnap(rd.Snapshot) {
		if err := n.installSnapshot(rd.Snapshot); err != nil {
			n.halt(err)
			return
		}
	}
	if n.cfg.SendEarly != nil && n.lead == n.id && len(rd.Messages) > 0 {
		rd.Messages = n.sendEarly(rd.Messages)
	}
	mustSync := rd.MustSync
	if (mutant.On(mutant.AckBeforeSync) && n.lead != n.id && len(rd.Entries) > 0) || (mutant.On(mutant.VoteBeforeSync) && len(rd.Entries) == 0) {
		mustSync = false
	}
	if err := n.wal.Save(rd.HardState, rd.Entries, mustSync); err != nil {
		n.halt(fmt.Errorf("store: write log: %w", err))
		return
	}
	if rd.HardState != nil {
		changed := rd.HardState.GetTerm() != n.votedTerm || rd.HardState.GetVote() != n.voted
		_ = n.storage.SetHardState(rd.HardState)
		n.term = rd.HardState.GetTerm()
		n.votedTerm, n.voted = rd.HardState.GetTerm(), rd.HardState.GetVote()
		if changed {
			n.observe(PointVotePersisted)
		}
	}
	if err := n.storage.Append(rd.Entries); err != nil {
		n.halt(fmt.Errorf("store: append to raft storage: %w", err))
		return
	}
	n.proposals.add(rd.Entries)
	for _, m := range rd.Messages {
		if m.GetType() == raftpb.MsgSnap {
			n.attachSnapshot(m)
		}
		n.out.Messages = append(n.out.Messages, m)
	}
	for _, rs := range rd.ReadStates {
		n.reads.onReadState(rs)
	}
	if mutant.On(mutant.ApplyUncommitted) && n.lead == n.id && !slices.ContainsFunc(rd.Entries, func(e *raftpb.Entry) bool { return e.GetType() != raftpb.EntryNormal }) {
		n.apply(rd.Entries)
	}
	n.apply(rd.CommittedEntries)
	n.rn.Advance(rd)
	n.maybeSnapshot()
}

// sendEarly hands a leader's messages, except snapshots (which need the
// backend image attached after the write), to Config.SendEarly and returns
// the rest.
func (n *Node) sendEarly(msgs []*raftpb.Message) []*raftpb.Message {
	early := make([]*raftpb.Message, 0, len(msgs))
	var rest []*raftpb.Message
	for _, m := range msgs {
		if m.GetType() == raftpb.MsgSnap {
			rest = append(rest, m)
			continue
		}
		early = append(early, m)
	}
	n.cfg.SendEarly(early)
	return rest
}

func (n *Node) onSoftState(ss *raft.SoftState) {
	wasLeader := n.lead == n.id
	n.lead = ss.Lead
	isLeader := ss.RaftState == raft.StateLeader
	switch {
	case isLeader && !wasLeader && mutant.On(mutant.LeaseNoExtendOnPromote):
		n.lessor.Promote(n.cfg.Clock.Now(), 0)
		n.revoking = map[int64]int64{}
	case isLeader && !wasLeader:
		n.lessor.Promote(n.cfg.Clock.Now(), n.electionTimeout())
		n.revoking = map[int64]int64{}
	case !isLeader && wasLeader && !mutant.On(mutant.LeaseExpireFollower):
		n.lessor.Demote()
	}
}

// Leader returns the member's view of the current leader (0 if none).
func (n *Node) Leader() uint64 { return n.rn.BasicStatus().Lead }

// Removed reports whether the member has been removed from the cluster.
func (n *Node) Removed() bool {
	_, ok := n.members[n.id]
	return !ok && n.applied > 0 && len(n.members) > 0
}

// Close commits the backend and closes the log.
func (n *Node) Close() error {
	err := n.kv.Close()
	return errors.Join(err, n.wal.Close())
}

// Crash drops the member's volatile state as a power loss would: the open backend
// batch is rolled back (the log's unsynced writes are the disk's business).
func (n *Node) Crash() {
	_ = n.kv.Abort()
	_ = n.wal.Close()
}

func (n *Node) commitBackend() {
	n.observe(PointBeforeCommit)
	if err := n.syncBackend(); err != nil {
		n.halt(fmt.Errorf("store: commit backend: %w", err))
		return
	}
	if err := n.kv.Commit(); err != nil {
		n.halt(fmt.Errorf("store: commit backend: %w", err))
		return
	}
	n.observe(PointAfterCommit)
}

// syncBackend stands for the fsync of a backend commit about to be made
// (Config.BackendSync; nothing when unset or the batch holds no write).
func (n *Node) syncBackend() error {
	if n.cfg.BackendSync == nil || n.kv.Pending() == 0 {
		return nil
	}
	if err := n.cfg.BackendSync(); err != nil {
		return fmt.Errorf("sync: %w", err) // no path: the simulator's is a temporary directory, and traces must replay
	}
	return nil
}

func (n *Node) electionTimeout() time.Duration {
	return time.Duration(n.cfg.ElectionTicks) * n.cfg.TickInterval
}

// leaseBackend writes lease records into the backend's lease bucket in etcd's
// leasepb.Lease encoding (ID = 1, TTL = 2).
type leaseBackend struct{ kv *mvcc.Store }

func leaseKey(id int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(id)) }

func (b leaseBackend) PutLease(id, ttl int64) {
	v := protowire.AppendTag(nil, 1, protowire.VarintType)
	v = protowire.AppendVarint(v, uint64(id))
	v = protowire.AppendTag(v, 2, protowire.VarintType)
	v = protowire.AppendVarint(v, uint64(ttl))
	b.kv.PutRaw("lease", leaseKey(id), v)
}

func (b leaseBackend) DeleteLease(id int64) { b.kv.DeleteRaw("lease", leaseKey(id)) }

func decodeLease(v []byte) (id, ttl int64, err error) {
	for len(v) > 0 {
		num, typ, n := protowire.ConsumeTag(v)
		if n < 0 {
			return 0, 0, fmt.Errorf("lease record: %w", protowire.ParseError(n))
		}
		v = v[n:]
		if typ != protowire.VarintType {
			m := protowire.ConsumeFieldValue(num, typ, v)
			if m < 0 {
				return 0, 0, fmt.Errorf("lease record: %w", protowire.ParseError(m))
			}
			v = v[m:]
			continue
		}
		x, m := protowire.ConsumeVarint(v)
		if m < 0 {
			return 0, 0, fmt.Errorf("lease record: %w", protowire.ParseError(m))
		}
		v = v[m:]
		switch num {
		case 1:
			id = int64(x)
		case 2:
			ttl = int64(x)
		}
	}
	return id, ttl, nil
}

// Watch registers a watcher on the member's keyspace; its events appear in Output.
func (n *Node) Watch(id int64, r mvcc.WatchRequest) error { return n.kv.Watch(id, r) }

// CancelWatch removes a watcher; it reports whether it existed.
func (n *Node) CancelWatch(id int64) bool { return n.kv.CancelWatch(id) }

// HoldWatch stops or resumes the delivery of a watcher's events in Output (see
// mvcc.Store.HoldWatch).
func (n *Node) HoldWatch(id int64, hold bool) { n.kv.HoldWatch(id, hold) }

// RequestProgress asks for a progress notification for a watcher.
func (n *Node) RequestProgress(id int64) { n.kv.RequestProgress(id) }
