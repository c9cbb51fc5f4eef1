package cluster

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/havoclab/havoc/chaos"
	"github.com/havoclab/havoc/sim"
	"github.com/havoclab/havoc/store"
	"github.com/havoclab/havoc/store/membership"
	"github.com/havoclab/havoc/store/mvcc"
	"github.com/havoclab/havoc/vfs"
)

// ClientRequest is the simulated wire message from a client host to a member.
type ClientRequest struct {
	ID  uint64
	Req store.Request
	// Defragment, if set, asks the member to defragment its backend
	// (etcd's maintenance Defragment, not a store.Request) instead of Req.
	Defragment bool
}

// ClientResponse is a member's answer to a ClientRequest.
type ClientResponse struct {
	ID   uint64
	Resp store.Response
}

// ClientWatch is a client's watch request to a member: create a watch on
// [Key, End) from StartRev, or (Progress) ask for a progress notification of an
// existing one. ID is the client's name for the watch.
type ClientWatch struct {
	ID       uint64
	Key, End []byte
	StartRev int64
	// PrevKV asks for each event's previous key-value (etcd's prev_kv).
	PrevKV   bool
	Progress bool
	Cancel   bool
	// Hold stops the member delivering the watch's events, as a client that
	// reads slowly does (store.Node.HoldWatch); Release resumes it.
	Hold, Release bool
}

// ClientWatchEvents carries a member's watch responses to a client (events, or
// progress notifications: no events, Revision = the member's current revision).
// Seq numbers the messages of one watch from 1: the simulated network may drop a
// message, which on a real stream would break the connection, so a client that
// sees a gap must treat the stream as broken.
type ClientWatchEvents struct {
	ID        uint64
	Seq       uint64
	Responses []mvcc.WatchEvent
}

// SimConfig configures a cluster inside a simulated world.
type SimConfig struct {
	// Members is the cluster size (3 when zero).
	Members int
	// Dir holds the members' bbolt files; use tmpfs (/dev/shm) for speed. The
	// write-ahead logs live on each host's strict in-memory disk.
	Dir string
	// SnapshotCount is store.Config.SnapshotCount (etcd's default when zero).
	SnapshotCount uint64
	// TickInterval is the raft heartbeat (100 ms when zero).
	TickInterval time.Duration
	// ElectionTicks is store.Config.ElectionTicks (10 when zero).
	ElectionTicks int
	// CatchUpEntries is store.Config.CatchUpEntries (the store's 5000 when
	// zero): how far behind a follower may fall before only a snapshot can
	// catch it up.
	CatchUpEntries uint64
	// QuotaBackendBytes is store.Config.QuotaBackendBytes (2 GiB when zero,
	// no quota when negative).
	QuotaBackendBytes int64
	// Model, when set, charges the members' disk and CPU virtual time (the
	// what-if figures of harness bench --backend sim). Nil, as in every
	// checked run: both are instant.
	Model *SimModel
}

// SimModel is a member's cost in virtual time. A member is one loop, as
// etcd's raft loop is: while it waits for a sync or serves a client request
// it handles nothing else, and what arrives meanwhile (peer messages, client
// requests, ticks) waits in order and is handled once it is free; the
// messages, responses and watch events of a batch leave only when the
// batch's syncs are done.
type SimModel struct {
	// Fsync draws the latency of one fsync of a member's log from the
	// member's PRNG (nil: instant). A batch pays one draw per sync it does.
	Fsync func(r *rand.Rand) time.Duration
	// Service is a member's time per client request, spent before it
	// handles the request (zero: none).
	Service time.Duration
}

// defaultCatchUpEntries is store.Config's CatchUpEntries when zero.
const defaultCatchUpEntries = 5000

// Sim is a cluster of store members running as hosts of a sim.World. It
// implements chaos.Injector with the world's verbs.
type Sim struct {
	w       *sim.World
	cfg     SimConfig
	names   []string
	byID    map[uint64]string
	members map[string]*simMember
	errs    []error
	hashes  map[string]cachedHash
	// votes is every vote sent, by voter and term (noteVote).
	votes map[voteKey]uint64
	// degraded are the link degradations in force, by the order they began:
	// overlapping ones combine, and each heal removes only its own.
	degraded []*chaos.Links
	// clientDeg are the client-link degradations in force; stalls counts the
	// StallClients in force per member (simclient.go).
	clientDeg []*chaos.Links
	stalls    map[string]int
	healGen   uint64 // bumped by HealNetwork: older stall heals are void
	// clusterID is the cluster's ID, which a member joining later is told.
	clusterID uint64
	// op is the operator of membership changes (sim_member.go).
	op simOperator
	// stops counts the members' stops on injected disk errors.
	stops int
}

// NewSim adds cfg.Members member hosts named m1, m2, ... to w.
func NewSim(w *sim.World, cfg SimConfig) (*Sim, error) {
	if cfg.Members == 0 {
		cfg.Members = 3
	}
	if cfg.TickInterval == 0 {
		cfg.TickInterval = 100 * time.Millisecond
	}
	if cfg.Dir == "" {
		return nil, errors.New("cluster: SimConfig.Dir is required")
	}
	spec := ""
	for i := 1; i <= cfg.Members; i++ {
		if i > 1 {
			spec += ","
		}
		spec += fmt.Sprintf("m%d=http://m%d:2380", i, i)
	}
	initial, err := membership.ParseInitialCluster(spec, "havoc-sim")
	if err != nil {
		return nil, err
	}
	c := &Sim{w: w, cfg: cfg, byID: map[uint64]string{}, members: map[string]*simMember{}, hashes: map[string]cachedHash{},
		votes: map[voteKey]uint64{}}
	for i := 1; i <= cfg.Members; i++ {
		c.names = append(c.names, fmt.Sprintf("m%d", i))
	}
	ids := make([]uint64, 0, len(initial))
	for _, m := range initial {
		c.byID[m.ID] = m.Name
		ids = append(ids, m.ID)
	}
	c.clusterID = membership.ClusterID(ids)
	w.SetDescriber(c.describe)
	for _, name := range c.names {
		m := &simMember{c: c, name: name}
		for _, im := range initial {
			if im.Name == name {
				m.id = im.ID
			}
		}
		m.cfg = store.Config{
			Name: name, InitialCluster: initial, ClientURLs: []string{"http://" + name + ":2379"},
			WALDir: "member/wal", DBPath: filepath.Join(cfg.Dir, name+".db"), DBNoSync: true,
			SnapshotCount: cfg.SnapshotCount, TickInterval: cfg.TickInterval, ElectionTicks: cfg.ElectionTicks,
			CatchUpEntries: cfg.CatchUpEntries, QuotaBackendBytes: cfg.QuotaBackendBytes, Observe: m.observe,
			SendEarly: m.sendEarly,
		}
		c.members[name] = m
		w.AddHost(name, m)
		m.setDisk(vfs.NewMem())
	}
	return c, nil
}

// setDisk gives the member a disk (a fresh one when its slot is wiped): its
// log's file system, its backend's sync (store.Config.BackendSync) and the
// torn-write hook, and what a crash of its host crashes.
func (m *simMember) setDisk(d *vfs.Mem) {
	m.disk = d
	m.cfg.FS = d
	m.cfg.BackendSync = d.SyncExternal
	d.OnSync(m.onSync)
	m.c.w.Host(m.name).SetDisk(d)
}

// Members returns the member host names in order (chaos.Injector).
func (c *Sim) Members() []string { return slices.Clone(c.names) }

// Node returns a member's store core, or nil while it is down.
func (c *Sim) Node(name string) *store.Node {
	m := c.members[name]
	if m == nil || !c.w.Host(name).Up() {
		return nil
	}
	return m.node
}

// Err returns the first member failure (a restart that could not recover, a
// halted member).
func (c *Sim) Err() error { return errors.Join(c.errs...) }

// Leader returns the member that is up, not paused and believes it leads,
// with the highest term (chooseLeader: the rule of every backend; a down or
// paused member is one that would not answer a real backend's Status).
func (c *Sim) Leader() string {
	claims := make([]leaderClaim, 0, len(c.names))
	for _, name := range c.names {
		n := c.Node(name)
		if n == nil || c.w.Host(name).Paused() {
			continue
		}
		st := n.Status()
		claims = append(claims, leaderClaim{member: name, term: st.Term, leads: st.IsLeader})
	}
	return chooseLeader(claims)
}

// Partition cuts both directions between a and b.
func (c *Sim) Partition(a, b []string) error { c.w.Net().Partition(a, b); return nil }

// PartitionOneWay drops messages from every member of from to every member of to.
func (c *Sim) PartitionOneWay(from, to []string) error {
	c.w.Net().PartitionOneWay(from, to)
	return nil
}

// DegradeLinks applies loss, duplication, reordering and latency to every link
// between members.
func (c *Sim) DegradeLinks(l chaos.Links) error {
	cfg, err := degradedLink(c.w.Net().Default(), l)
	if err != nil {
		return err
	}
	for _, a := range c.names {
		for _, b := range c.names {
			if a != b {
				c.w.Net().SetLink(a, b, cfg)
			}
		}
	}
	return nil
}

// HealNetwork removes every partition and link degradation.
func (c *Sim) HealNetwork() error {
	c.degraded, c.clientDeg = nil, nil
	clear(c.stalls)
	c.healGen++
	c.w.Net().Heal()
	return nil
}

// CutLinks cuts from → to (and back if both) for one fault and returns the
// heal that releases that fault's cut only (chaos.Scoped): a link another
// fault still cuts stays cut.
func (c *Sim) CutLinks(from, to []string, both bool) (func() error, error) {
	release := c.w.Net().Cut(from, to, both)
	return func() error { release(); return nil }, nil
}

// DegradeLinksScoped adds a degradation of every link between members and
// returns the heal that removes it only (chaos.Scoped). Degradations in force
// together combine: losses compound, the highest duplication and reordering
// rates and the longest latency apply.
func (c *Sim) DegradeLinksScoped(l chaos.Links) (func() error, error) {
	return addDegradation(&c.degraded, l, c.applyDegraded)
}

// degradedLink is the default link def with degradation l: its loss,
// duplication and reordering, and at least its latency.
func degradedLink(def sim.LinkConfig, l chaos.Links) (sim.LinkConfig, error) {
	cfg := def
	cfg.Loss, cfg.Duplicate, cfg.Reorder = l.Loss, l.Duplicate, l.Reorder
	if l.LatencyMax > 0 {
		cfg.LatencyMin, cfg.LatencyMax = max(def.LatencyMin, l.LatencyMin), max(def.LatencyMax, l.LatencyMax)
	}
	return cfg, cfg.Validate()
}

// addDegradation adds l to the degradations in force in *list and applies
// them; it returns the heal that removes l only and applies the rest.
func addDegradation(list *[]*chaos.Links, l chaos.Links, apply func() error) (func() error, error) {
	d := &l
	*list = append(*list, d)
	if err := apply(); err != nil {
		*list = slices.DeleteFunc(*list, func(x *chaos.Links) bool { return x == d })
		return nil, err
	}
	return func() error {
		i := slices.Index(*list, d)
		if i < 0 {
			return nil // healed already (HealNetwork)
		}
		*list = slices.Delete(*list, i, i+1)
		return apply()
	}, nil
}

// applyDegraded sets every member link to the combination of c.degraded, or
// back to the network default when none is in force.
func (c *Sim) applyDegraded() error {
	if len(c.degraded) == 0 {
		for _, a := range c.names {
			for _, b := range c.names {
				if a != b {
					c.w.Net().ResetLink(a, b)
				}
			}
		}
		return nil
	}
	return c.DegradeLinks(combineLinks(c.degraded))
}

// AfterFunc calls fn once d of virtual time has passed (chaos.Clocked).
func (c *Sim) AfterFunc(d time.Duration, fn func()) { c.w.Schedule(d, "fault", fn) }

// Notef writes a note about a fault to the trace (chaos.Clocked).
func (c *Sim) Notef(format string, args ...any) { c.w.Tracef("chaos", format, args...) }

// NeedsSnapshot reports whether the current leader's log has been compacted
// past member's position, so that only a snapshot can catch member up
// (chaos.SnapshotProbe). The member's position is taken as its commit index
// plus a margin for entries it holds beyond it (raft's in-flight window).
func (c *Sim) NeedsSnapshot(member string) bool {
	l, n := c.Node(c.Leader()), c.Node(member)
	if l == nil || n == nil {
		return false
	}
	catchUp := c.cfg.CatchUpEntries
	if catchUp == 0 {
		catchUp = defaultCatchUpEntries
	}
	const inflightMargin = 64
	snap := l.Status().SnapshotIndex
	return snap > catchUp && snap-catchUp > n.Status().Committed+inflightMargin
}

// Crash powers a member off, losing unsynced log writes (torn if asked).
func (c *Sim) Crash(name string, torn bool) error {
	if c.members[name].removed {
		return nil // the slot is empty (a membership change)
	}
	h := c.w.Host(name)
	if torn {
		h.CrashTorn()
	} else {
		h.Crash()
	}
	return nil
}

// Restart boots a crashed member from its disk.
func (c *Sim) Restart(name string) error {
	if c.members[name].removed {
		return nil // the slot is empty: only the operator fills it
	}
	if h := c.w.Host(name); !h.Up() {
		h.Restart()
	}
	return nil
}

// Pause freezes a member.
func (c *Sim) Pause(name string) error { c.w.Host(name).Pause(); return nil }

// Resume unfreezes a member.
func (c *Sim) Resume(name string) error { c.w.Host(name).Resume(); return nil }

// SetClock sets a member's clock offset and drift.
func (c *Sim) SetClock(name string, offset time.Duration, driftPPM int64) error {
	c.w.Host(name).SetClock(offset, driftPPM)
	return nil
}

// HealAll ends every fault: network healed, paused members resumed, crashed
// members restarted, clocks reset. Membership changes under way go on (an
// empty slot stays empty until the operator fills it).
func (c *Sim) HealAll() {
	_ = c.HealNetwork()
	for _, name := range c.names {
		h := c.w.Host(name)
		c.members[name].healDisk()
		h.SetClock(0, 0)
		if h.Paused() {
			h.Resume()
		}
		if !h.Up() && !c.members[name].removed {
			h.Restart()
		}
	}
}

// Converged reports whether no membership change is under way, every member
// is up, has applied the same index, holds the same keyspace (HashKV at the
// same revision) and the same member list (which is its raft configuration
// and holds every slot's current member); otherwise it says why not. The
// members are the current ones: a member removed is no longer compared (its
// slot holds the member that replaced it). The cheap comparisons come first:
// HashKV reads the whole key history, so it is computed only once the
// applied indexes and revisions agree.
func (c *Sim) Converged() (bool, string) {
	if p := c.MemberChangesPending(); p != "" {
		return false, p
	}
	if why := c.slotsInCluster(); why != "" {
		return false, why
	}
	var ref store.Status
	for i, name := range c.names {
		n := c.Node(name)
		if n == nil {
			return false, name + " is down"
		}
		st := n.Status()
		switch {
		case st.Halted != nil:
			return false, fmt.Sprintf("%s halted: %v", name, st.Halted)
		case i == 0 && st.Leader == 0:
			return false, name + " has no leader"
		case i == 0:
			ref = st
		case st.Applied != ref.Applied:
			return false, fmt.Sprintf("applied index %s=%d %s=%d", c.names[0], ref.Applied, name, st.Applied)
		case st.Revision != ref.Revision:
			return false, fmt.Sprintf("revision %s=%d %s=%d", c.names[0], ref.Revision, name, st.Revision)
		}
	}
	var refHash uint32
	for i, name := range c.names {
		h, err := c.hash(name)
		if err != nil {
			return false, fmt.Sprintf("%s HashKV: %v", name, err)
		}
		if i == 0 {
			refHash = h
		} else if h != refHash {
			return false, fmt.Sprintf("HashKV differs at revision %d: %s=%08x %s=%08x", ref.Revision, c.names[0], refHash, name, h)
		}
	}
	return c.membersAgree()
}

// Divergence compares the members' replicas on a healed cluster and says how
// they differ, or returns "" when it cannot tell (a member is down, halted or
// without a leader: that is a liveness problem) or they do not differ. The
// replicas diverged when, with every member up and following a leader:
//
//  1. some member's keyspace differs from the reference member's (the leader,
//     else the first member) at a revision both hold: the first such revision
//     is found by bisecting HashKV over the revisions both hold; or
//  2. the applied indexes are equal but the revisions are not (one member
//     holds revisions the others do not); or
//  3. the applied indexes differ although the cluster has had time to catch
//     up with no traffic (the caller quiets the cluster first).
func (c *Sim) Divergence() string {
	// A member list that is not the raft configuration on a member that
	// follows a leader and has applied all it knows committed (a change
	// applied before it committed, or never undone when its proposal was
	// lost). A correct store changes both as it applies a conf change, so
	// this holds even while the operator's changes are under way.
	for _, name := range c.names {
		n := c.Node(name)
		if n == nil {
			continue
		}
		if st := n.Status(); st.Leader == 0 || st.Halted != nil || st.Applied < st.Committed {
			continue
		}
		if _, why := c.memberListIsConf(name); why != "" {
			return "membership: " + why
		}
	}
	sts := make([]store.Status, len(c.names))
	ref := 0
	for i, name := range c.names {
		n := c.Node(name)
		if n == nil {
			return ""
		}
		sts[i] = n.Status()
		if sts[i].Halted != nil || sts[i].Leader == 0 {
			return ""
		}
		if sts[i].IsLeader {
			ref = i
		}
	}
	describe := func(field func(store.Status) int64) string {
		var b []byte
		for i, name := range c.names {
			b = fmt.Appendf(b, " %s=%d", name, field(sts[i]))
		}
		return string(b)
	}
	applied := describe(func(st store.Status) int64 { return int64(st.Applied) })
	revs := describe(func(st store.Status) int64 { return st.Revision })
	refName, refNode := c.names[ref], c.Node(c.names[ref])
	for i, name := range c.names {
		if i == ref {
			continue
		}
		n := c.Node(name)
		lo := max(sts[ref].CompactRev, sts[i].CompactRev, 1)
		hi := min(sts[ref].Revision, sts[i].Revision)
		differs := func(rev int64) (bool, uint32, uint32) {
			a, _, _, errA := refNode.HashKV(rev)
			b, _, _, errB := n.HashKV(rev)
			return errA == nil && errB == nil && a != b, a, b
		}
		if d, _, _ := differs(hi); hi >= lo && d {
			// Bisect: differs(lo-1) is taken as false, differs(hi) is true.
			for lo < hi {
				mid := lo + (hi-lo)/2
				if d, _, _ := differs(mid); d {
					hi = mid
				} else {
					lo = mid + 1
				}
			}
			_, a, b := differs(hi)
			return fmt.Sprintf("%s and %s first differ at revision %d (HashKV %08x vs %08x; applied%s; revision%s)",
				refName, name, hi, a, b, applied, revs)
		}
	}
	if ok, why := c.membersAgree(); !ok && c.MemberChangesPending() == "" {
		return "membership: " + why
	}
	for i, name := range c.names {
		switch {
		case sts[i].Applied == sts[ref].Applied && sts[i].Revision != sts[ref].Revision:
			first := min(sts[i].Revision, sts[ref].Revision) + 1
			return fmt.Sprintf("%s and %s applied the same index but first differ at revision %d, which only one holds (applied%s; revision%s)",
				refName, name, first, applied, revs)
		case sts[i].Applied != sts[ref].Applied:
			return fmt.Sprintf("applied indexes stay apart on a healed cluster with no traffic (leader %s; applied%s; revision%s)",
				c.names[ref], applied, revs)
		}
	}
	return ""
}

// Corrupt crashes a member, hands its closed backend file to fn (which may
// change it behind the store's back: an extra put, a changed value), and
// restarts it. It stands for a disk or apply bug that makes one replica differ
// from the others; tests use it to prove that a run reports such divergence.
func (c *Sim) Corrupt(name string, fn func(dbPath string) error) error {
	m := c.members[name]
	if m == nil {
		return fmt.Errorf("cluster: no member %q", name)
	}
	c.w.Host(name).Crash()
	if m.node != nil {
		m.node.Crash()
		m.node = nil
	}
	err := fn(m.cfg.DBPath)
	c.w.Host(name).Restart()
	return err
}

// hash returns a member's HashKV, recomputed only when its applied index moved
// (the liveness phase asks after every event).
func (c *Sim) hash(name string) (uint32, error) {
	n := c.Node(name)
	applied := n.Status().Applied
	if h, ok := c.hashes[name]; ok && h.node == n && h.applied == applied {
		return h.hash, nil
	}
	h, _, _, err := n.HashKV(0)
	if err != nil {
		return 0, err
	}
	c.hashes[name] = cachedHash{node: n, applied: applied, hash: h}
	return h, nil
}

type cachedHash struct {
	node    *store.Node
	applied uint64
	hash    uint32
}

// Revision returns the highest store revision among the members that are up.
func (c *Sim) Revision() int64 {
	var rev int64
	for _, name := range c.names {
		if n := c.Node(name); n != nil {
			rev = max(rev, n.Status().Revision)
		}
	}
	return rev
}

// Close closes every member's backend.
func (c *Sim) Close() {
	for _, name := range c.names {
		c.members[name].armed = nil // closing syncs the log: no crash point there
		if m := c.members[name]; m.node != nil {
			_ = m.node.Close()
			m.node = nil
		}
	}
}

// simMember runs a store.Node on a simulated host.
type simMember struct {
	c       *Sim
	name    string
	disk    *vfs.Mem
	cfg     store.Config
	node    *store.Node
	host    *sim.Host
	clients map[uint64]clientRef
	token   uint64
	leader  uint64
	halted  bool
	watches simWatches
	// armed is the crash point this member crashes at next (nil when none),
	// shared by every member the same crash-at fault armed.
	armed *armedCrash
	// id is the raft ID of the slot's member now; removed says the slot is
	// empty (its member was removed and its data wiped: sim_member.go).
	id      uint64
	removed bool
	// learner is set while the slot's member was added as a learner and not
	// yet promoted (as the operator knows it: cheaper than asking raft on
	// every request).
	learner bool
	// ops are the operator's requests in flight, by token.
	ops map[uint64]func(store.Response)
	// busy is set while the member waits out a cost of SimConfig.Model;
	// backlog holds, in arrival order, what came meanwhile.
	busy    bool
	backlog []func()
	// gathering is set while work hands the backlog to the node: the inputs
	// are not flushed one by one.
	gathering bool
	// stopped is the injected disk error the member stopped on, as designed
	// (nil if none): the disk fault's heal restarts it.
	stopped error
}

// busyFor makes the member busy for d, then runs then and works through the
// backlog.
func (m *simMember) busyFor(d time.Duration, then func()) {
	m.busy = true
	m.host.After(d, func() {
		m.busy = false
		then()
		m.work()
	})
}

// work takes what waited in the backlog, in order, as the server's run loop
// gathers its queued inputs: every peer message, tick and client request is
// handed to the node, and one flush (one Ready, one fsync) follows, until
// the backlog is empty or the member is busy again (a client request's
// service time; its handling flushes what was gathered before it).
func (m *simMember) work() {
	for len(m.backlog) > 0 && !m.busy {
		m.gathering = true
		for len(m.backlog) > 0 && !m.busy {
			next := m.backlog[0]
			m.backlog = m.backlog[1:]
			next()
		}
		m.gathering = false
		if !m.busy && m.node != nil && !m.halted {
			m.flushRecovering()
		}
	}
}

// flushRecovering is flush for a caller without its own recoverCrash.
func (m *simMember) flushRecovering() {
	defer m.recoverCrash()
	m.flush()
}

// deferred queues fn until the member is free, if it is busy.
func (m *simMember) deferred(fn func()) bool {
	if !m.busy {
		return false
	}
	m.backlog = append(m.backlog, fn)
	return true
}

// armedCrash is one crash-at fault: the point, whether the crash tears, and
// the member that crashed there ("" until one did).
type armedCrash struct {
	point   string
	torn    bool
	crashed string
	// reboot, when positive, boots the crashed member again that long after
	// its crash instead of at the fault's end.
	reboot time.Duration
}

// afterAppendResponse is the crash point the runtime sees itself: right after
// the member sent a MsgAppResp.
const afterAppendResponse = "after-append-response"

// afterVote is the other crash point the runtime sees itself: right after
// the member sent a vote, its own as a candidate (MsgVote) or one it granted
// (MsgVoteResp), so that a vote not yet durable is lost with the crash.
const afterVote = chaos.PointAfterVote

// voteKey is a voter in a term.
type voteKey struct{ voter, term uint64 }

// noteVote records that voter sent its vote in term for candidate; a second
// candidate in the same term breaks raft's election safety (two leaders of
// one term), which only a vote lost by a crash can cause: it is a finding.
func (c *Sim) noteVote(voter, term, candidate uint64) {
	k := voteKey{voter, term}
	prev, ok := c.votes[k]
	switch {
	case !ok:
		c.votes[k] = candidate
	case prev != candidate:
		c.errs = append(c.errs, fmt.Errorf("member %s voted for %s and then for %s in term %d at %s (a vote must be durable before it is sent)",
			c.memberName(voter), c.memberName(prev), c.memberName(candidate), term, c.w.Elapsed()))
		c.votes[k] = candidate
	}
}

// crashPoint is what simMember.observe panics with to stop the member at a
// crash point; the member's entry points recover it and crash the host.
type crashPoint struct{ point string }

// observe is store.Config.Observe: it stops the member at its armed point.
func (m *simMember) observe(p store.Point) {
	if m.armed != nil && m.armed.point == string(p) {
		panic(crashPoint{m.armed.point})
	}
}

// recoverCrash turns a crashPoint panic into a crash of the member's host
// (deferred by every entry point that runs the node); other panics go on.
func (m *simMember) recoverCrash() {
	v := recover()
	if v == nil {
		return
	}
	if _, ok := v.(crashPoint); !ok {
		panic(v)
	}
	m.crashAt()
}

// crashAt crashes the member's host at its armed point: the node is
// discarded where it stopped (its open backend batch rolled back, the log's
// unsynced writes lost), and the fault is disarmed on every member.
func (m *simMember) crashAt() {
	a := m.armed
	m.host.Tracef("crash at %s", a.point)
	a.crashed = m.name
	for _, o := range m.c.members {
		if o.armed == a {
			o.armed = nil
		}
	}
	// The disk crashes first: closing the node's log afterwards syncs nothing.
	if a.torn {
		m.host.CrashTorn()
	} else {
		m.host.Crash()
	}
	if m.node != nil {
		m.node.Crash()
		m.node = nil
	}
	if a.reboot > 0 {
		name := m.name
		m.c.w.Schedule(a.reboot, "reboot", func() { _ = m.c.Restart(name) })
	}
}

// onSync is the disk's hook at each sync of unsynced data: torn-write's crash
// point, in the middle of the member's write.
func (m *simMember) onSync(string) {
	if m.armed != nil && m.armed.point == chaos.PointBeforeSync {
		panic(crashPoint{m.armed.point})
	}
}

// ArmCrash arms crash point point on member (every member when ""): the first
// armed member to pass it crashes there (chaos.Pointed). The heal disarms the
// point and restarts the member that crashed.
func (c *Sim) ArmCrash(member, point string, torn bool, reboot time.Duration) (func() error, error) {
	if !slices.Contains(chaos.CrashPoints, point) && point != chaos.PointBeforeSync {
		return nil, fmt.Errorf("cluster: unknown crash point %q (known: %v)", point, chaos.CrashPoints)
	}
	targets := c.names
	if member != "" {
		if c.members[member] == nil {
			return nil, fmt.Errorf("cluster: no member %q", member)
		}
		targets = []string{member}
	}
	a := &armedCrash{point: point, torn: torn, reboot: reboot}
	for _, name := range targets {
		c.members[name].armed = a
	}
	return func() error {
		for _, name := range targets {
			if m := c.members[name]; m.armed == a {
				m.armed = nil
			}
		}
		if a.crashed != "" {
			return c.Restart(a.crashed)
		}
		c.Notef("crash-at %s: no member passed it", point)
		return nil
	}, nil
}

type clientRef struct {
	host string
	id   uint64
}

// simWatches maps a member's node watch IDs to the clients' watches.
type simWatches struct {
	next     int64
	byNode   map[int64]clientRef
	byClient map[clientRef]int64
	seq      map[int64]uint64
	// held are the slow watchers the node holds (slowwatch.go); polling says
	// a poll for them is scheduled.
	held    map[int64]bool
	polling bool
}

// Start boots (or, after a crash, recovers) the member from its disk.
func (m *simMember) Start(h *sim.Host) {
	m.host = h
	defer m.recoverCrash() // a crash point may lie on the replay of the log
	if m.node != nil {
		m.node.Crash() // the previous incarnation died with the host
		m.node = nil
	}
	m.clients = map[uint64]clientRef{}
	m.busy, m.backlog, m.gathering, m.stopped = false, nil, false, nil
	m.watches = simWatches{byNode: map[int64]clientRef{}, byClient: map[clientRef]int64{}, seq: map[int64]uint64{}, held: map[int64]bool{}}
	m.ops = map[uint64]func(store.Response){}
	m.leader, m.halted = 0, false
	cfg := m.cfg
	cfg.Clock = h
	n, err := store.Open(cfg)
	if errors.Is(err, vfs.ErrInjected) {
		m.stop(err)
		return
	}
	if err != nil {
		m.c.errs = append(m.c.errs, fmt.Errorf("member %s failed to start at %s: %w", m.name, m.c.w.Elapsed(), err))
		h.Tracef("start failed: %v", err)
		return
	}
	m.node = n
	m.tick()
}

func (m *simMember) tick() {
	if m.node == nil || m.halted || m.deferred(m.tick) {
		return
	}
	defer m.recoverCrash()
	m.node.Tick()
	if !m.gathering {
		m.flush()
	}
	m.host.After(m.cfg.TickInterval, m.tick)
}

// describe renders a raft message for the trace: member names in place of
// raft IDs, and text of its own (protobuf's String varies its spacing from
// one build to the next, so two builds would write different traces).
func (c *Sim) describe(p any) (string, bool) {
	m, ok := p.(*raftpb.Message)
	if !ok {
		return "", false
	}
	b := make([]byte, 0, 128)
	b = fmt.Appendf(b, "type:%s to:%s from:%s term:%d", m.GetType(), c.memberName(m.GetTo()), c.memberName(m.GetFrom()), m.GetTerm())
	if v := m.GetLogTerm(); v != 0 {
		b = fmt.Appendf(b, " logTerm:%d", v)
	}
	if v := m.GetIndex(); v != 0 {
		b = fmt.Appendf(b, " index:%d", v)
	}
	for _, e := range m.GetEntries() {
		b = fmt.Appendf(b, " entries:{Term:%d Index:%d", e.GetTerm(), e.GetIndex())
		if e.GetType() != raftpb.EntryNormal {
			b = fmt.Appendf(b, " Type:%s", e.GetType())
		}
		b = append(b, '}')
	}
	if v := m.GetCommit(); v != 0 {
		b = fmt.Appendf(b, " commit:%d", v)
	}
	if v := m.GetVote(); v != 0 {
		b = fmt.Appendf(b, " vote:%s", c.memberName(v))
	}
	if sn := m.GetSnapshot(); sn != nil {
		md := sn.GetMetadata()
		b = fmt.Appendf(b, " snapshot:{index:%d term:%d voters:[", md.GetIndex(), md.GetTerm())
		for i, id := range md.GetConfState().GetVoters() {
			if i > 0 {
				b = append(b, ' ')
			}
			b = append(b, c.memberName(id)...)
		}
		b = append(b, "]}"...)
	}
	if m.GetReject() {
		b = fmt.Appendf(b, " reject:true rejectHint:%d", m.GetRejectHint())
	}
	if ctx := m.GetContext(); len(ctx) > 0 {
		b = fmt.Appendf(b, " context:%x", ctx)
	}
	return string(b), true
}

// memberName is the name of the member with raft ID id (the ID in decimal if
// no member has it).
func (c *Sim) memberName(id uint64) string {
	if name, ok := c.byID[id]; ok {
		return name
	}
	return strconv.FormatUint(id, 10)
}

// Receive handles raft messages from peers and requests from clients.
func (m *simMember) Receive(from string, payload any) {
	if m.node == nil || m.halted || m.deferred(func() { m.Receive(from, payload) }) {
		return
	}
	if p, ok := payload.(*ClientRequest); ok && m.c.cfg.Model != nil && m.c.cfg.Model.Service > 0 {
		m.busyFor(m.c.cfg.Model.Service, func() { m.receive(from, p) })
		return
	}
	m.receive(from, payload)
}

// receive handles a message once the member is free to.
func (m *simMember) receive(from string, payload any) {
	if m.node == nil || m.halted {
		return
	}
	defer m.recoverCrash()
	switch p := payload.(type) {
	case *raftpb.Message:
		if p.GetTo() != m.id {
			return // for the member this slot held before a replacement
		}
		// raft mutates proposals and read-index requests it forwards; a
		// duplicated delivery must not share them.
		if t := p.GetType(); t == raftpb.MsgProp || t == raftpb.MsgReadIndex {
			p = proto.Clone(p).(*raftpb.Message)
		}
		_ = m.node.Step(p)
	case *ClientRequest:
		if p.Defragment {
			var r store.Response
			if err := m.node.Defragment(); err != nil {
				r = store.Response{Err: err, Definite: true}
			}
			m.host.Send(from, &ClientResponse{ID: p.ID, Resp: r})
			break
		}
		if err := m.refuse(p.Req); err != nil {
			m.host.Send(from, &ClientResponse{ID: p.ID, Resp: store.Response{Err: err, Definite: true}})
			break
		}
		m.token++
		m.clients[m.token] = clientRef{host: from, id: p.ID}
		m.node.Submit(m.token, p.Req)
	case *ClientWatch:
		m.watch(from, p)
	}
	if !m.gathering {
		m.flush()
	}
}

// ErrLearner is a learner's answer to a client request other than a
// serializable range, as etcd's (a learner serves no other client request).
var ErrLearner = errors.New("etcdserver: rpc not supported for learner")

// refuse returns why the member does not serve req: it has been removed from
// the cluster (store.ErrRemoved: a removed member stops serving, as etcd's
// does), or it is a learner; nil if it serves it.
func (m *simMember) refuse(req store.Request) error {
	if m.node.Removed() {
		return store.ErrRemoved
	}
	if req.Range != nil && req.Range.Serializable {
		return nil
	}
	if m.learner {
		return ErrLearner
	}
	return nil
}

func (m *simMember) watch(from string, w *ClientWatch) {
	ref := clientRef{host: from, id: w.ID}
	switch {
	case w.Progress:
		if id, ok := m.watches.byClient[ref]; ok {
			m.node.RequestProgress(id)
		}
		return
	case w.Cancel:
		if id, ok := m.watches.byClient[ref]; ok {
			m.node.CancelWatch(id)
			m.watches.forget(id, ref)
		}
		return
	case w.Hold || w.Release:
		if id, ok := m.watches.byClient[ref]; ok {
			m.node.HoldWatch(id, w.Hold)
		}
		return
	}
	m.watches.next++
	id := m.watches.next
	if err := m.node.Watch(id, mvcc.WatchRequest{Key: w.Key, End: w.End, StartRev: w.StartRev, PrevKV: w.PrevKV}); err != nil {
		return
	}
	m.watches.byNode[id] = ref
	m.watches.byClient[ref] = id
}

func (w *simWatches) forget(id int64, ref clientRef) {
	delete(w.byNode, id)
	delete(w.byClient, ref)
	delete(w.seq, id)
	delete(w.held, id)
}

// flush collects what the node emitted and sends it, at once or, after a slow
// fsync (slow-fsync), once the sync completes: the member does nothing else
// until then, as etcd's raft loop blocks on its fsync.
func (m *simMember) flush() {
	syncs := m.disk.Syncs()
	out := m.node.Drain()
	d := m.disk.TakeSyncDelay() // slow-fsync
	if mod := m.c.cfg.Model; mod != nil && mod.Fsync != nil && m.disk.Syncs() > syncs {
		for range m.disk.Syncs() - syncs {
			d += mod.Fsync(m.host.Rand())
		}
	}
	if d > 0 {
		m.busyFor(d, func() { m.emit(out) })
	} else {
		m.emit(out)
	}
	if m.node == nil { // crashed at a point emit saw
		return
	}
	if out.Err != nil && errors.Is(out.Err, vfs.ErrInjected) {
		m.stop(out.Err)
		return
	}
	if out.Err != nil && !m.halted {
		m.halted = true
		m.c.errs = append(m.c.errs, fmt.Errorf("member %s halted at %s: %w", m.name, m.c.w.Elapsed(), out.Err))
		m.host.Tracef("halted: %v", out.Err)
	}
	if lead := m.node.Leader(); lead != m.leader {
		m.leader = lead
		if m.host.Tracing() {
			m.host.Tracef("leader is %s", m.c.byID[lead])
		}
	}
}

// sendEarly is store.Config.SendEarly: a leader's appends leave before it
// writes its log, as they do from a real member (package server), so that a
// crash between the two is reachable here too.
func (m *simMember) sendEarly(msgs []*raftpb.Message) {
	for _, msg := range msgs {
		if to, ok := m.c.byID[msg.GetTo()]; ok {
			m.host.Send(to, msg)
		}
	}
}

// emit sends what a batch produced: raft messages, client responses, watch
// events.
func (m *simMember) emit(out store.Output) {
	appResp, voted := false, false
	for _, msg := range out.Messages {
		if to, ok := m.c.byID[msg.GetTo()]; ok {
			m.host.Send(to, msg)
		}
		switch msg.GetType() {
		case raftpb.MsgAppResp:
			appResp = true
		case raftpb.MsgVote:
			voted = true
			m.c.noteVote(msg.GetFrom(), msg.GetTerm(), msg.GetFrom())
		case raftpb.MsgVoteResp:
			if !msg.GetReject() {
				voted = true
				m.c.noteVote(msg.GetFrom(), msg.GetTerm(), msg.GetTo())
			}
		}
	}
	if m.armed != nil && (appResp && m.armed.point == afterAppendResponse || voted && m.armed.point == afterVote) {
		m.crashAt()
		return
	}
	for _, r := range out.Responses {
		if done, ok := m.ops[r.Token]; ok {
			delete(m.ops, r.Token)
			m.c.w.Schedule(0, "member", func() { done(r) })
			continue
		}
		ref, ok := m.clients[r.Token]
		if !ok {
			continue
		}
		delete(m.clients, r.Token)
		m.host.Send(ref.host, &ClientResponse{ID: ref.id, Resp: r})
	}
	// One message per watch and flush, in order.
	for i := 0; i < len(out.Watch); {
		id := out.Watch[i].ID
		j := i
		for j < len(out.Watch) && out.Watch[j].ID == id {
			j++
		}
		if ref, ok := m.watches.byNode[id]; ok {
			m.watches.seq[id]++
			m.host.Send(ref.host, &ClientWatchEvents{ID: ref.id, Seq: m.watches.seq[id], Responses: out.Watch[i:j:j]})
			if out.Watch[j-1].Canceled {
				m.watches.forget(id, ref)
			} else {
				m.holdIfSlow(id, ref)
			}
		}
		i = j
	}
}

// stop ends the member on an injected disk error, as designed: a store halts
// on a failed fsync or a full log disk (etcd exits), so the process exits, and
// the host goes down as a crash does (its unsynced writes lost: the strictest
// case of a process exit followed by a power loss). It is not a member
// failure: the disk fault's heal restarts the member, and only if that restart
// fails, or the member stopped on any other error, is the run's verdict
// member-failure (a panic stays member-panic, whatever it says: the store is
// meant to stop with an error, not to panic).
func (m *simMember) stop(err error) {
	m.c.Notef("%s stopped on an injected disk error at %s: %v", m.name, m.c.w.Elapsed(), err)
	m.c.stops++
	m.host.Crash()
	if m.node != nil {
		m.node.Crash()
		m.node = nil
	}
	m.stopped = err
	m.busy, m.backlog = false, nil
}

// healDisk ends every disk fault of the member.
func (m *simMember) healDisk() {
	m.disk.FailSyncs(false)
	m.disk.Fill(false)
	m.disk.SetSyncLatency(vfs.Latency{}, nil)
}

// restartStopped restarts the member if a disk fault stopped it.
func (m *simMember) restartStopped() error {
	if m.stopped == nil {
		return nil
	}
	return m.c.Restart(m.name)
}

// Stops returns how many times a member stopped on an injected disk error.
func (c *Sim) Stops() int { return c.stops }

// SlowDisk makes member's fsyncs slow (chaos.Disked): each takes a latency
// drawn from base and the heavy tail with the host's PRNG, and the member
// waits for it (see flush).
func (c *Sim) SlowDisk(member string, base time.Duration, tail float64, tailMax time.Duration) (func() error, error) {
	m := c.members[member]
	if m == nil {
		return nil, fmt.Errorf("cluster: no member %q", member)
	}
	if base <= 0 || tail < 0 || tail > 1 {
		return nil, fmt.Errorf("cluster: slow disk: base %s and tail %v (want a positive base and a tail probability)", base, tail)
	}
	m.disk.SetSyncLatency(vfs.Latency{Base: base, Tail: tail, TailMax: tailMax}, c.w.Host(member).Rand())
	return func() error { m.disk.SetSyncLatency(vfs.Latency{}, nil); return nil }, nil
}

// FailSyncs makes member's fsyncs fail with EIO (chaos.Disked); the heal
// ends it and restarts the member if it stopped on the error.
func (c *Sim) FailSyncs(member string) (func() error, error) {
	m := c.members[member]
	if m == nil {
		return nil, fmt.Errorf("cluster: no member %q", member)
	}
	m.disk.FailSyncs(true)
	return func() error { m.disk.FailSyncs(false); return m.restartStopped() }, nil
}

// FillDisk makes member's disk full (chaos.Disked); the heal frees it and
// restarts the member if it stopped on the error.
func (c *Sim) FillDisk(member string) (func() error, error) {
	m := c.members[member]
	if m == nil {
		return nil, fmt.Errorf("cluster: no member %q", member)
	}
	m.disk.Fill(true)
	return func() error { m.disk.Fill(false); return m.restartStopped() }, nil
}
