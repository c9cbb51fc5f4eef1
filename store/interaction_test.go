package store

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/havoclab/havoc/store/membership"
)

// TestInteraction runs the scripts in testdata/interaction: node-level scenarios
// in the style of etcd-io/raft's interaction tests, written step by step over the
// deterministic loop of loop_test.go. Each command prints the raft messages it
// caused (one line each, members named m1..), the state changes, the entries
// each member applied and the answers to requests. Regenerate the expected output
// with `go test ./store -run TestInteraction -rewrite` and review it as a diff.
//
// Commands (members are given by number: 1 is m1):
//
//	add-nodes N [seed=S] [snap-count=C]   start a cluster of N members
//	campaign I                            member I starts an election (pre-vote first)
//	tick R                                R heartbeat rounds on every member
//	tick I R                              R ticks on member I alone, then deliver
//	stabilize                             deliver messages until the network is quiet
//	partition 1 | 2 3                     cut every link between the groups
//	isolate I / heal                      cut every link of I / restore every link
//	put I K V [wait=R]                    a put submitted to member I
//	get I K [serializable] [wait=R]       a range of one key (linearizable unless serializable)
//	read-index I [wait=R]                 a bare ReadIndex barrier on member I (etcd's
//	                                      linearizable member list), answered with the members
//	crash I / restart I                   power loss (unsynced log writes lost) / reopen from disk
//	add-learner I [start=false]           add member mI as a learner (via the leader), start it
//	add-member I                          add member mI as a voter (via the leader), start it
//	promote I / remove I                  promote learner mI / remove mI (via the leader)
//	compact-log I [keep=K]                member I takes a snapshot and compacts its log
//	status                                every running member's view
//
// wait=R bounds how many heartbeat rounds a request waits for its answer (100
// by default); an answer that comes later is printed when it comes.
func TestInteraction(t *testing.T) {
	datadriven.Walk(t, "testdata/interaction", func(t *testing.T, path string) {
		d := &driver{t: t}
		datadriven.RunTest(t, path, d.run)
	})
}

// driver runs one interaction script over a loop and records what happens.
type driver struct {
	t   *testing.T
	l   *loop
	out strings.Builder
	// byNum maps a script's member number to its raft ID.
	byNum map[int]uint64
	// state is each member's last printed (state, term, leader).
	state map[uint64]string
	// snapIn marks members that were handed a MsgSnap since their last drain.
	snapIn map[uint64]bool
	// what describes each pending request by token, for printing its answer.
	what map[uint64]string
	// replayTo is, for a restarted member, its backend's consistent index at
	// restart: the entries up to it are applied again without keyspace effects.
	replayTo map[uint64]uint64
	// answered holds the answers by token.
	answered map[uint64]*Response
	// beats and beatsDropped count the heartbeats delivered and dropped while
	// quietBeats is set (during heartbeat rounds), which are printed as one
	// summary line; round is the current round, printed as a header before
	// the first line it prints.
	beats, beatsDropped int
	quietBeats          bool
	round               int
	roundPrinted        bool
}

func (d *driver) printf(format string, args ...any) {
	if d.quietBeats && !d.roundPrinted {
		d.roundPrinted = true
		fmt.Fprintf(&d.out, "> round %d\n", d.round)
	}
	fmt.Fprintf(&d.out, format+"\n", args...)
}

func (d *driver) run(t *testing.T, td *datadriven.TestData) string {
	d.out.Reset()
	if td.Cmd != "add-nodes" && d.l == nil {
		td.Fatalf(t, "add-nodes first")
	}
	switch td.Cmd {
	case "add-nodes":
		d.addNodes(t, td)
	case "campaign":
		id := d.member(t, td, 0)
		d.printf("%s campaigns", d.name(id))
		check(t, td, d.l.nodes[id] != nil, "member is down")
		check(t, td, d.l.nodes[id].rn.Campaign() == nil, "campaign failed")
		d.stabilize()
	case "tick":
		d.tick(t, td)
	case "stabilize":
		d.stabilize()
	case "partition":
		d.partition(t, td)
	case "isolate":
		id := d.member(t, td, 0)
		d.l.isolate(id, true)
		d.printf("%s isolated", d.name(id))
	case "heal":
		d.l.cut = map[[2]uint64]bool{}
		d.printf("every link restored")
	case "put":
		check(t, td, len(td.CmdArgs) >= 3, "put I K V")
		id, k, v := d.member(t, td, 0), td.CmdArgs[1].Key, td.CmdArgs[2].Key
		d.do(t, td, id, fmt.Sprintf("put %s=%s", k, v), Request{Put: &pb.PutRequest{Key: []byte(k), Value: []byte(v)}})
	case "get":
		check(t, td, len(td.CmdArgs) >= 2, "get I K")
		id, k := d.member(t, td, 0), td.CmdArgs[1].Key
		ser := td.HasArg("serializable")
		kind := "linearizable"
		if ser {
			kind = "serializable"
		}
		d.do(t, td, id, fmt.Sprintf("get %s (%s)", k, kind), Request{Range: &pb.RangeRequest{Key: []byte(k), Serializable: ser}})
	case "read-index":
		id := d.member(t, td, 0)
		d.do(t, td, id, "read-index", Request{MemberList: &pb.MemberListRequest{Linearizable: true}})
	case "crash":
		id := d.member(t, td, 0)
		check(t, td, d.l.nodes[id] != nil, "member is down")
		d.l.crash(id)
		delete(d.state, id)
		delete(d.replayTo, id)
		d.printf("%s crashed", d.name(id))
	case "restart":
		id := d.member(t, td, 0)
		check(t, td, d.l.nodes[id] == nil, "member is running")
		d.l.restart(id)
		n := d.l.nodes[id]
		st := n.Status()
		ci, _ := n.kv.ConsistentIndex()
		d.replayTo[id] = ci
		d.printf("%s restarted: term=%d commit=%d applied=%d snapshot=%d backend at %d", d.name(id), st.Term, st.Committed, st.Applied, st.SnapshotIndex, ci)
		d.noteState(id)
		d.stabilize() // a runtime drains right after Open
	case "add-learner", "add-member":
		d.addMember(t, td, td.Cmd == "add-learner")
	case "promote":
		id := d.member(t, td, 0)
		d.do(t, td, d.leader(t, td), "promote "+d.name(id), Request{MemberPromote: &pb.MemberPromoteRequest{ID: id}})
	case "remove":
		id := d.member(t, td, 0)
		d.do(t, td, d.leader(t, td), "remove "+d.name(id), Request{MemberRemove: &pb.MemberRemoveRequest{ID: id}})
		if n := d.l.nodes[id]; n != nil && n.Removed() {
			check(t, td, n.Close() == nil, "close")
			delete(d.l.nodes, id)
			delete(d.state, id)
			d.printf("%s knows it was removed and stops", d.name(id))
		}
	case "compact-log":
		d.compact(t, td)
	case "status":
		for _, id := range d.ids() {
			d.printStatus(id)
		}
	default:
		td.Fatalf(t, "unknown command %q", td.Cmd)
	}
	return d.out.String()
}

func check(t *testing.T, td *datadriven.TestData, ok bool, msg string) {
	t.Helper()
	if !ok {
		td.Fatalf(t, "%s", msg)
	}
}

func (d *driver) addNodes(t *testing.T, td *datadriven.TestData) {
	check(t, td, d.l == nil && len(td.CmdArgs) >= 1, "add-nodes N, once")
	size, err := strconv.Atoi(td.CmdArgs[0].Key)
	check(t, td, err == nil, "add-nodes N")
	seed, snapCount := uint64(1), uint64(0)
	if td.HasArg("seed") {
		td.ScanArgs(t, "seed", &seed)
	}
	if td.HasArg("snap-count") {
		td.ScanArgs(t, "snap-count", &snapCount)
	}
	d.l = newLoop(t, size, seed, snapCount)
	d.replayTo = map[uint64]uint64{}
	d.byNum, d.state, d.snapIn, d.what, d.answered = map[int]uint64{}, map[uint64]string{}, map[uint64]bool{}, map[uint64]string{}, map[uint64]*Response{}
	for _, m := range d.l.initial {
		num, err := strconv.Atoi(strings.TrimPrefix(m.Name, "m"))
		check(t, td, err == nil, "member name")
		d.byNum[num] = m.ID
	}
	for _, id := range d.ids() {
		d.noteState(id)
	}
	// Apply the bootstrap configuration entries, as a runtime's first Ready
	// would: raft refuses to campaign while they are unapplied.
	d.stabilize()
}

// ids are the running members in script order (m1, m2, ...), not raft ID order.
func (d *driver) ids() []uint64 {
	nums := sortedKeys(d.byNum)
	out := make([]uint64, 0, len(nums))
	for _, num := range nums {
		if id := d.byNum[num]; d.l.nodes[id] != nil {
			out = append(out, id)
		}
	}
	return out
}

// member is the raft ID of the member numbered by argument i.
func (d *driver) member(t *testing.T, td *datadriven.TestData, i int) uint64 {
	check(t, td, len(td.CmdArgs) > i, "missing member number")
	num, err := strconv.Atoi(td.CmdArgs[i].Key)
	check(t, td, err == nil, "member number")
	id, ok := d.byNum[num]
	check(t, td, ok, fmt.Sprintf("no member m%d", num))
	return id
}

// leader is the running member that believes it leads.
func (d *driver) leader(t *testing.T, td *datadriven.TestData) uint64 {
	id := d.l.leader()
	check(t, td, id != 0, "no leader")
	return id
}

func (d *driver) name(id uint64) string {
	if id == 0 {
		return "none"
	}
	if n, ok := d.l.names[id]; ok {
		return n
	}
	return fmt.Sprintf("%x", id)
}

func (d *driver) names(ids []uint64) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = d.name(id)
	}
	slices.Sort(s)
	return "(" + strings.Join(s, " ") + ")"
}

// noteState prints a member's raft state when it changed since last printed.
func (d *driver) noteState(id uint64) {
	n := d.l.nodes[id]
	if n == nil {
		return
	}
	bs := n.rn.BasicStatus()
	role := strings.ToLower(strings.TrimPrefix(bs.RaftState.String(), "State"))
	s := fmt.Sprintf("%s is %s at term %d, leader %s", d.name(id), role, bs.GetTerm(), d.name(bs.Lead))
	if d.state[id] != s {
		d.state[id] = s
		d.printf("%s", s)
	}
}

// drain collects every running member's output in ID order: state changes,
// applied entries and answers are printed, messages queued.
func (d *driver) drain() {
	for _, id := range d.ids() {
		n := d.l.nodes[id]
		applied, snap := n.applied, n.snapIndex
		out := n.Drain()
		if out.Err != nil {
			d.printf("%s halted: %v", d.name(id), out.Err)
		}
		d.noteState(id)
		if d.snapIn[id] && n.snapIndex != snap {
			d.printf("%s installed snapshot %d", d.name(id), n.snapIndex)
			applied = max(applied, n.snapIndex)
		}
		delete(d.snapIn, id)
		if n.applied > applied {
			d.printApplied(id, applied+1, n.applied)
		}
		d.l.queue = append(d.l.queue, out.Messages...)
		for _, r := range out.Responses {
			d.printResponse(id, r)
		}
	}
}

func (d *driver) printApplied(id, lo, hi uint64) {
	n := d.l.nodes[id]
	if first, _ := n.storage.FirstIndex(); lo < first {
		d.printf("%s applied %d..%d (compacted since)", d.name(id), lo, min(first-1, hi))
		lo = first
	}
	if lo > hi {
		return
	}
	ents, err := n.storage.Entries(lo, hi+1, 1<<30)
	if err != nil {
		d.printf("%s applied %d..%d (%v)", d.name(id), lo, hi, err)
		return
	}
	for _, e := range ents {
		again := ""
		if e.GetIndex() <= d.replayTo[id] {
			again = " (again: in the backend already)"
		}
		d.printf("%s applied %s%s", d.name(id), d.entry(e), again)
	}
}

// deliver sends every queued message, and those they cause, until the network
// is quiet.
func (d *driver) deliver() {
	for range 100 {
		d.drain()
		if len(d.l.queue) == 0 {
			return
		}
		q := d.l.queue
		d.l.queue = nil
		for _, m := range q {
			to, from := m.GetTo(), m.GetFrom()
			n := d.l.nodes[to]
			drop := ""
			switch {
			case n == nil:
				drop = fmt.Sprintf(" (dropped: %s is down)", d.name(to))
			case d.l.cut[[2]uint64{from, to}]:
				drop = " (dropped: link cut)"
			}
			if d.quietBeats && (m.GetType() == raftpb.MsgHeartbeat || m.GetType() == raftpb.MsgHeartbeatResp) && len(m.GetContext()) == 0 {
				if drop == "" {
					d.beats++
				} else {
					d.beatsDropped++
				}
			} else {
				d.printf("%s%s", d.message(m), drop)
			}
			if drop != "" {
				continue
			}
			if m.GetType() == raftpb.MsgSnap {
				d.snapIn[to] = true
			}
			if err := n.Step(m); err != nil {
				d.printf("%s refused it: %v", d.name(to), err)
			}
		}
	}
	d.t.Fatal("the network did not go quiet in 100 rounds")
}

func (d *driver) stabilize() {
	d.deliver()
}

// tickRound advances the clock one heartbeat and ticks the given members.
func (d *driver) tickRound(ids []uint64) {
	d.l.clock.now = d.l.clock.now.Add(d.l.nodes[ids[0]].cfg.TickInterval)
	for _, id := range ids {
		if n := d.l.nodes[id]; n != nil {
			n.Tick()
		}
	}
}

func (d *driver) tick(t *testing.T, td *datadriven.TestData) {
	check(t, td, len(td.CmdArgs) == 1 || len(td.CmdArgs) == 2, "tick R, or tick I R")
	ids := d.ids()
	arg := td.CmdArgs[0]
	if len(td.CmdArgs) == 2 {
		ids = []uint64{d.member(t, td, 0)}
		check(t, td, d.l.nodes[ids[0]] != nil, "member is down")
		arg = td.CmdArgs[1]
	}
	rounds, err := strconv.Atoi(arg.Key)
	check(t, td, err == nil && rounds > 0, "tick rounds")
	d.runRounds(rounds, ids, nil)
}

// runRounds ticks ids for up to rounds rounds, delivering after each, and stops
// early when done says so. It reports the rounds run. Heartbeats without a
// ReadIndex context are summed up rather than printed one by one.
func (d *driver) runRounds(rounds int, ids []uint64, done func() bool) int {
	d.quietBeats, d.beats, d.beatsDropped = true, 0, 0
	defer func() { d.quietBeats = false }()
	r := 0
	for r < rounds && (done == nil || !done()) {
		r++
		d.round, d.roundPrinted = r, false
		d.tickRound(ids)
		d.deliver()
	}
	d.quietBeats = false
	if d.beats+d.beatsDropped > 0 {
		d.printf("%d rounds: %d heartbeat messages delivered, %d dropped", r, d.beats, d.beatsDropped)
	}
	return r
}

func (d *driver) partition(t *testing.T, td *datadriven.TestData) {
	var groups [][]uint64
	cur := []uint64{}
	for i, a := range td.CmdArgs {
		if a.Key == "|" {
			groups, cur = append(groups, cur), []uint64{}
			continue
		}
		cur = append(cur, d.member(t, td, i))
	}
	groups = append(groups, cur)
	check(t, td, len(groups) >= 2, "partition A.. | B..")
	var desc []string
	for gi, g := range groups {
		desc = append(desc, d.names(g))
		for gj, h := range groups {
			if gi == gj {
				continue
			}
			for _, a := range g {
				for _, b := range h {
					d.l.cut[[2]uint64{a, b}] = true
				}
			}
		}
	}
	d.printf("partitioned %s", strings.Join(desc, " | "))
}

// do submits a request to member id, delivers, and runs heartbeat rounds until
// it is answered (wait=R bounds them).
func (d *driver) do(t *testing.T, td *datadriven.TestData, id uint64, what string, req Request) {
	check(t, td, d.l.nodes[id] != nil, d.name(id)+" is down")
	wait := 100
	if td.HasArg("wait") {
		td.ScanArgs(t, "wait", &wait)
	}
	d.l.token++
	tok := d.l.token
	d.what[tok] = fmt.Sprintf("%s #%d %s", d.name(id), tok, what)
	d.printf("%s submitted", d.what[tok])
	d.l.nodes[id].Submit(tok, req)
	d.deliver()
	if d.answered[tok] != nil {
		return
	}
	r := d.runRounds(wait, d.ids(), func() bool { return d.answered[tok] != nil })
	if d.answered[tok] == nil {
		d.printf("#%d not answered after %d rounds", tok, r)
	}
}

func (d *driver) printResponse(id uint64, r Response) {
	d.answered[r.Token] = &r
	what := d.what[r.Token]
	switch {
	case r.Err != nil:
		def := "outcome unknown"
		if r.Definite {
			def = "definite"
		}
		d.printf("%s -> error %q (%s)", what, r.Err.Error(), def)
	case r.Put != nil:
		d.printf("%s -> ok, revision %d", what, r.Put.GetHeader().GetRevision())
	case r.Range != nil:
		var kvs []string
		for _, kv := range r.Range.GetKvs() {
			kvs = append(kvs, fmt.Sprintf("%s=%s@%d", kv.GetKey(), kv.GetValue(), kv.GetModRevision()))
		}
		d.printf("%s -> [%s], revision %d", what, strings.Join(kvs, " "), r.Range.GetHeader().GetRevision())
	case r.MemberList != nil:
		d.printf("%s -> ok, members %s", what, d.members(r.MemberList.GetMembers()))
	case r.MemberAdd != nil:
		d.printf("%s -> ok, members %s", what, d.members(r.MemberAdd.GetMembers()))
	case r.MemberPromote != nil:
		d.printf("%s -> ok, members %s", what, d.members(r.MemberPromote.GetMembers()))
	case r.MemberRemove != nil:
		d.printf("%s -> ok, members %s", what, d.members(r.MemberRemove.GetMembers()))
	default:
		d.printf("%s -> %+v", what, r)
	}
}

func (d *driver) members(ms []*pb.Member) string {
	var s []string
	for _, m := range ms {
		x := d.name(m.GetID())
		if m.GetIsLearner() {
			x += "(learner)"
		}
		s = append(s, x)
	}
	slices.Sort(s)
	return "(" + strings.Join(s, " ") + ")"
}

// addMember adds member number I through the leader and, unless start=false,
// starts it with an empty log to join.
func (d *driver) addMember(t *testing.T, td *datadriven.TestData, learner bool) {
	check(t, td, len(td.CmdArgs) >= 1, "add-learner I")
	num, err := strconv.Atoi(td.CmdArgs[0].Key)
	check(t, td, err == nil && d.byNum[num] == 0, "a new member number")
	peer := fmt.Sprintf("http://127.0.0.1:%d", 2380+num)
	// The leader computes the ID as etcd does: from the peer URLs and the time.
	id := membership.ComputeID([]string{peer}, strconv.FormatInt(d.l.clock.Now().Unix(), 10))
	name := fmt.Sprintf("m%d", num)
	d.byNum[num], d.l.names[id] = id, name
	kind := "add-member "
	if learner {
		kind = "add-learner "
	}
	before := d.l.token
	d.do(t, td, d.leader(t, td), kind+name, Request{MemberAdd: &pb.MemberAddRequest{PeerURLs: []string{peer}, IsLearner: learner}})
	if r := d.answered[before+1]; r == nil || r.Err != nil {
		delete(d.byNum, num)
		delete(d.l.names, id)
		return
	}
	if td.HasArg("start") {
		return
	}
	d.l.disks[id] = newMemDisk()
	d.l.initial = append(d.l.initial, memberOf(id, name, peer))
	d.l.open(id, true)
	d.printf("%s started, joining", name)
	d.noteState(id)
}

func (d *driver) compact(t *testing.T, td *datadriven.TestData) {
	id := d.member(t, td, 0)
	n := d.l.nodes[id]
	check(t, td, n != nil, "member is down")
	keep := uint64(0)
	if td.HasArg("keep") {
		td.ScanArgs(t, "keep", &keep)
	}
	check(t, td, n.applied > n.snapIndex, "nothing applied since the last snapshot")
	count, catchUp := n.cfg.SnapshotCount, n.cfg.CatchUpEntries
	n.cfg.SnapshotCount, n.cfg.CatchUpEntries = 1, keep
	n.maybeSnapshot()
	n.cfg.SnapshotCount, n.cfg.CatchUpEntries = count, catchUp
	first, _ := n.storage.FirstIndex()
	d.printf("%s took snapshot %d, log now starts at %d", d.name(id), n.snapIndex, first)
}

func (d *driver) printStatus(id uint64) {
	n := d.l.nodes[id]
	st := n.Status()
	role := strings.ToLower(strings.TrimPrefix(n.rn.BasicStatus().RaftState.String(), "State"))
	first, _ := n.storage.FirstIndex()
	last, _ := n.storage.LastIndex()
	d.printf("%s: %s term=%d leader=%s log=%d..%d commit=%d applied=%d snapshot=%d revision=%d voters=%s learners=%s",
		d.name(id), role, st.Term, d.name(st.Leader), first, last, st.Committed, st.Applied, st.SnapshotIndex, st.Revision,
		d.names(st.Voters), d.names(st.Learners))
}

// message is one raft message on one line.
func (d *driver) message(m *raftpb.Message) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s->%s %s", d.name(m.GetFrom()), d.name(m.GetTo()), m.GetType())
	if m.GetTerm() != 0 {
		fmt.Fprintf(&b, " term=%d", m.GetTerm())
	}
	switch m.GetType() {
	case raftpb.MsgApp, raftpb.MsgPreVote, raftpb.MsgVote:
		fmt.Fprintf(&b, " log=%d/%d", m.GetLogTerm(), m.GetIndex())
	case raftpb.MsgAppResp, raftpb.MsgReadIndexResp:
		fmt.Fprintf(&b, " index=%d", m.GetIndex())
	}
	if m.GetCommit() != 0 {
		fmt.Fprintf(&b, " commit=%d", m.GetCommit())
	}
	if m.GetReject() {
		b.WriteString(" rejected")
		if m.GetType() == raftpb.MsgAppResp {
			fmt.Fprintf(&b, " hint=%d/%d", m.GetLogTerm(), m.GetRejectHint())
		}
	}
	if ctx := m.GetContext(); len(ctx) > 0 {
		fmt.Fprintf(&b, " ctx=%x", ctx)
	}
	if s := m.GetSnapshot(); s != nil {
		md := s.GetMetadata()
		fmt.Fprintf(&b, " snapshot=%d/%d voters=%s learners=%s", md.GetTerm(), md.GetIndex(),
			d.names(md.GetConfState().GetVoters()), d.names(md.GetConfState().GetLearners()))
	}
	if ents := m.GetEntries(); len(ents) > 0 {
		s := make([]string, len(ents))
		for i, e := range ents {
			s[i] = d.entry(e)
		}
		fmt.Fprintf(&b, " entries=[%s]", strings.Join(s, ", "))
	}
	return b.String()
}

// entry is one raft entry as term/index and what it does (a proposal in flight
// has neither).
func (d *driver) entry(e *raftpb.Entry) string {
	pos := ""
	if e.GetIndex() != 0 {
		pos = fmt.Sprintf("%d/%d ", e.GetTerm(), e.GetIndex())
	}
	data := e.GetData()
	switch e.GetType() {
	case raftpb.EntryConfChange:
		var cc raftpb.ConfChange
		if proto.Unmarshal(data, &cc) != nil {
			return pos + "undecodable conf change"
		}
		return pos + d.confChange(cc.AsV2())
	case raftpb.EntryConfChangeV2:
		var cc raftpb.ConfChangeV2
		if proto.Unmarshal(data, &cc) != nil {
			return pos + "undecodable conf change"
		}
		return pos + d.confChange(&cc)
	}
	if len(data) == 0 {
		return pos + "empty"
	}
	if len(data) == 8 && e.GetIndex() == 0 {
		return pos + fmt.Sprintf("read %d", binary.BigEndian.Uint64(data))
	}
	ir, err := DecodeEntry(data)
	if err != nil {
		return pos + "undecodable"
	}
	switch {
	case ir.Put != nil:
		return pos + fmt.Sprintf("put %s=%s", ir.Put.GetKey(), ir.Put.GetValue())
	case ir.DeleteRange != nil:
		return pos + fmt.Sprintf("delete %s", ir.DeleteRange.GetKey())
	case ir.Txn != nil:
		return pos + "txn"
	case ir.Compaction != nil:
		return pos + fmt.Sprintf("compact %d", ir.Compaction.GetRevision())
	case ir.LeaseGrant != nil:
		return pos + "lease-grant"
	case ir.LeaseRevoke != nil:
		return pos + "lease-revoke"
	case ir.Alarm != nil:
		return pos + "alarm"
	case ir.ClusterMemberAttrSet != nil:
		return pos + "publish " + ir.ClusterMemberAttrSet.GetMemberAttributes().GetName()
	}
	return pos + "?"
}

func (d *driver) confChange(cc *raftpb.ConfChangeV2) string {
	var s []string
	for _, c := range cc.GetChanges() {
		verb := map[raftpb.ConfChangeType]string{
			raftpb.ConfChangeAddNode: "add", raftpb.ConfChangeRemoveNode: "remove",
			raftpb.ConfChangeUpdateNode: "update", raftpb.ConfChangeAddLearnerNode: "add-learner",
		}[c.GetType()]
		s = append(s, verb+" "+d.name(c.GetNodeId()))
	}
	return "conf " + strings.Join(s, ", ")
}
