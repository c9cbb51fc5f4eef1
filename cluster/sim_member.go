package cluster

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/havoclab/havoc/store"
	"github.com/havoclab/havoc/store/membership"
	"github.com/havoclab/havoc/vfs"
)

// The simulator's membership changes (chaos.Membership). An operator, as a
// person with etcdctl would, sends MemberRemove, MemberAdd and MemberPromote
// to whichever member leads, one change at a time, and retries through leader
// changes, partitions and refusals until each change is done:
//
//  1. remove: MemberRemove of the slot's member ID. Once it is answered (or
//     answered "member not found": an earlier attempt of unknown outcome
//     committed it) the member's host is stopped and its disk and backend
//     file wiped; the slot is empty.
//  2. add: MemberAdd with the slot's peer URL (as a learner if asked). The
//     answer carries the new ID; a fresh member with that ID starts on the
//     slot's host with an empty data dir, joining the existing cluster. An
//     answer "peer URL exists" (an earlier attempt committed) is resolved
//     by a linearizable MemberList.
//  3. promote: MemberPromote of the slot's learner, retried while the leader
//     says it is not in sync; "not a learner" means an earlier attempt did it.
//
// The request reaches the leader's store directly (there is no operator host
// on the simulated network: a fault between operator and leader would only
// delay the change), and its answer comes back when the change applies on
// the leader, or never (the leader crashed, or lost the proposal): then the
// attempt is abandoned after opTimeout and made again.

// opTimeout is how long the operator waits for the leader's answer before it
// tries again; opRetry is the pause before another attempt.
const (
	opTimeout = 3 * time.Second
	opRetry   = 200 * time.Millisecond
)

// memberOp is one queued membership change.
type memberOp struct {
	verb    string // "remove", "add" or "promote"
	member  string
	learner bool
	// lookup: the last MemberAdd found the peer URL taken, so the next
	// attempt asks for the member list instead.
	lookup   bool
	attempts int
	lastErr  string
}

func (o *memberOp) String() string {
	s := o.verb + " " + o.member
	if o.learner {
		s += " (learner)"
	}
	return s
}

// simOperator is the queue of membership changes and the attempt in flight.
type simOperator struct {
	queue []*memberOp
	busy  bool
	// gen numbers attempts; an answer to an abandoned attempt is ignored.
	gen uint64
	// log lists the changes done, one line each, for tests and reports.
	log []string
}

// peerURL is the peer URL of a member slot.
func peerURL(name string) string { return "http://" + name + ":2380" }

// RemoveMember queues the removal of member's current member (chaos.Membership).
func (c *Sim) RemoveMember(member string) error {
	return c.enqueue(&memberOp{verb: "remove", member: member})
}

// AddMember queues a fresh member (a learner if asked) for member's slot
// (chaos.Membership).
func (c *Sim) AddMember(member string, learner bool) error {
	return c.enqueue(&memberOp{verb: "add", member: member, learner: learner})
}

// PromoteMember queues the promotion of the learner in member's slot
// (chaos.Membership).
func (c *Sim) PromoteMember(member string) error {
	return c.enqueue(&memberOp{verb: "promote", member: member})
}

// MemberID returns the raft ID of the member in slot name now (0 while the
// slot is empty).
func (c *Sim) MemberID(name string) uint64 {
	m := c.members[name]
	if m == nil || m.removed {
		return 0
	}
	return m.id
}

// MemberChanges lists the membership changes done so far, one line each.
func (c *Sim) MemberChanges() []string { return slices.Clone(c.op.log) }

// MemberChangesPending describes the membership change the operator is
// working on ("" when none is queued).
func (c *Sim) MemberChangesPending() string {
	if len(c.op.queue) == 0 {
		return ""
	}
	o := c.op.queue[0]
	s := fmt.Sprintf("membership change %s pending (%d queued, %d attempts", o, len(c.op.queue), o.attempts)
	if o.lastErr != "" {
		s += ", last: " + o.lastErr
	}
	return s + ")"
}

func (c *Sim) enqueue(o *memberOp) error {
	if c.members[o.member] == nil {
		return fmt.Errorf("cluster: no member %q", o.member)
	}
	c.op.queue = append(c.op.queue, o)
	c.kick(0)
	return nil
}

// kick schedules the next attempt d from now unless one is under way.
func (c *Sim) kick(d time.Duration) {
	if c.op.busy || len(c.op.queue) == 0 {
		return
	}
	c.op.busy = true
	c.w.Schedule(d, "member", c.attempt)
}

// retry ends the attempt in flight and tries the change again after d.
func (c *Sim) retry(o *memberOp, why string, d time.Duration) {
	o.attempts++
	o.lastErr = why
	if c.w.Tracing() {
		c.w.Tracef("member", "%s: attempt %d: %s", o, o.attempts, why)
	}
	c.op.gen++
	c.op.busy = false
	c.kick(d)
}

// done ends the change at the head of the queue.
func (c *Sim) done(o *memberOp, note string) {
	line := fmt.Sprintf("%.3fs %s: %s", c.w.Elapsed().Seconds(), o, note)
	c.op.log = append(c.op.log, line)
	c.w.Tracef("member", "%s: %s", o, note)
	c.op.gen++
	c.op.queue = c.op.queue[1:]
	c.op.busy = false
	c.kick(0)
}

// attempt makes one try at the change at the head of the queue.
func (c *Sim) attempt() {
	o := c.op.queue[0]
	m := c.members[o.member]
	var req store.Request
	switch {
	case o.verb == "remove" && m.removed:
		c.done(o, "already removed")
		return
	case o.verb == "remove":
		req.MemberRemove = &pb.MemberRemoveRequest{ID: m.id}
	case o.verb == "add" && !m.removed:
		c.done(o, fmt.Sprintf("slot holds member %x already; nothing to add", m.id))
		return
	case o.verb == "add" && o.lookup:
		req.MemberList = &pb.MemberListRequest{Linearizable: true}
	case o.verb == "add":
		req.MemberAdd = &pb.MemberAddRequest{PeerURLs: []string{peerURL(o.member)}, IsLearner: o.learner}
	case o.verb == "promote" && m.removed:
		c.done(o, "slot is empty; nothing to promote")
		return
	case o.verb == "promote":
		req.MemberPromote = &pb.MemberPromoteRequest{ID: m.id}
	}
	leader := c.Leader()
	if leader == "" {
		c.retry(o, "no leader", opRetry)
		return
	}
	gen := c.op.gen
	c.members[leader].submitOp(req, func(r store.Response) {
		if c.op.gen == gen {
			c.answered(o, leader, r)
		}
	})
	c.w.Schedule(opTimeout, "member", func() {
		if c.op.gen == gen {
			c.retry(o, "no answer from leader "+leader, 0)
		}
	})
}

// answered handles the leader's answer to the attempt in flight.
func (c *Sim) answered(o *memberOp, leader string, r store.Response) {
	m := c.members[o.member]
	switch o.verb {
	case "remove":
		if r.Err != nil && !errors.Is(r.Err, store.ErrMemberNotFound) {
			c.retry(o, r.Err.Error(), opRetry)
			return
		}
		old := m.id
		c.wipe(m)
		c.done(o, fmt.Sprintf("member %x removed through %s; data wiped", old, leader))
	case "add":
		if errors.Is(r.Err, store.ErrPeerURLExists) {
			o.lookup = true
			c.retry(o, r.Err.Error(), 0)
			return
		}
		if r.Err != nil {
			c.retry(o, r.Err.Error(), opRetry)
			return
		}
		var id uint64
		var list []*pb.Member
		if r.MemberList != nil {
			list = r.MemberList.Members
			for _, pm := range list {
				if slices.Contains(pm.PeerURLs, peerURL(o.member)) {
					id = pm.ID
				}
			}
			if id == 0 {
				o.lookup = false
				c.retry(o, "peer URL not in the member list any more", opRetry)
				return
			}
		} else {
			id, list = r.MemberAdd.Member.ID, r.MemberAdd.Members
		}
		c.startFresh(m, id, list, o.learner)
		c.done(o, fmt.Sprintf("member %x added through %s and started", id, leader))
	case "promote":
		switch {
		case r.Err == nil, errors.Is(r.Err, store.ErrMemberNotLearner):
			m.learner = false
			c.done(o, fmt.Sprintf("member %x promoted through %s", m.id, leader))
		case errors.Is(r.Err, store.ErrMemberNotFound):
			c.done(o, fmt.Sprintf("member %x is gone; nothing to promote", m.id))
		default:
			c.retry(o, r.Err.Error(), opRetry)
		}
	}
}

// wipe stops a removed member and empties its slot: a fresh disk for the
// log, the backend file deleted.
func (c *Sim) wipe(m *simMember) {
	h := c.w.Host(m.name)
	h.Crash()
	if m.node != nil {
		m.node.Crash()
		m.node = nil
	}
	if err := os.Remove(m.cfg.DBPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		c.errs = append(c.errs, fmt.Errorf("cluster: wipe %s: %w", m.name, err))
	}
	m.setDisk(vfs.NewMem())
	m.removed = true
	m.armed = nil
	delete(c.hashes, m.name)
}

// startFresh fills an empty slot with member id, joining the cluster whose
// members (as the leader listed them) are list.
func (c *Sim) startFresh(m *simMember, id uint64, list []*pb.Member, learner bool) {
	initial := make([]membership.Member, 0, len(list))
	for _, pm := range list {
		mm := membership.Member{ID: pm.ID, Name: pm.Name, PeerURLs: slices.Clone(pm.PeerURLs),
			ClientURLs: slices.Clone(pm.ClientURLs), IsLearner: pm.IsLearner}
		if pm.ID == id {
			mm.Name = m.name
		}
		initial = append(initial, mm)
	}
	m.cfg.ID, m.cfg.ClusterID, m.cfg.Join, m.cfg.InitialCluster = id, c.clusterID, true, initial
	m.id = id
	m.removed, m.learner = false, learner
	c.byID[id] = m.name
	c.w.Host(m.name).Restart()
}

// submitOp submits an operator's request to the member's node; done gets the
// answer as a world event of its own (never inside the member's flush).
func (m *simMember) submitOp(req store.Request, done func(store.Response)) {
	if m.node == nil || m.halted || m.deferred(func() { m.submitOp(req, done) }) {
		return
	}
	defer m.recoverCrash()
	m.token++
	m.ops[m.token] = done
	m.node.Submit(m.token, req)
	m.flush()
}

// membersAgree reports whether every member's member list is its raft
// configuration (voters and learners) and the same on every member, and the
// member of every slot is in it; otherwise it says how they differ.
func (c *Sim) membersAgree() (bool, string) {
	var ref []uint64
	for i, name := range c.names {
		list, why := c.memberListIsConf(name)
		if why != "" {
			return false, why
		}
		if i == 0 {
			ref = list
			for _, slot := range c.names {
				if !slices.Contains(list, c.members[slot].id) {
					return false, fmt.Sprintf("%s lists members %s without %s's member %x", name, hexIDs(list), slot, c.members[slot].id)
				}
			}
		} else if !slices.Equal(list, ref) {
			return false, fmt.Sprintf("member lists differ: %s=%s %s=%s", c.names[0], hexIDs(ref), name, hexIDs(list))
		}
	}
	return true, ""
}

// memberListIsConf returns the IDs a running member lists as members, sorted,
// and says how they differ from its raft configuration ("" when they are the
// same). A correct store changes both when it applies a conf change, so on a
// member that has applied what it recovered they never differ.
func (c *Sim) memberListIsConf(name string) ([]uint64, string) {
	n := c.Node(name)
	var list []uint64
	for _, mm := range n.Members() {
		list = append(list, mm.ID)
	}
	slices.Sort(list)
	st := n.Status()
	conf := append(slices.Clone(st.Voters), st.Learners...)
	slices.Sort(conf)
	if !slices.Equal(list, conf) {
		return list, fmt.Sprintf("%s lists members %s but its raft configuration is %s", name, hexIDs(list), hexIDs(conf))
	}
	return list, ""
}

// slotsInCluster says which slot holds a member that the leader does not list
// ("" when every slot's member is listed, or no member leads): a member started
// with an ID the cluster never added can never catch up.
func (c *Sim) slotsInCluster() string {
	leader := c.Leader()
	l := c.Node(leader)
	if l == nil {
		return ""
	}
	var ids []uint64
	for _, mm := range l.Members() {
		ids = append(ids, mm.ID)
	}
	slices.Sort(ids)
	for _, name := range c.names {
		if id := c.members[name].id; !slices.Contains(ids, id) {
			return fmt.Sprintf("%s's member %x is not in the cluster (leader %s lists %s)", name, id, leader, hexIDs(ids))
		}
	}
	return ""
}

func hexIDs(ids []uint64) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = fmt.Sprintf("%x", id)
	}
	return "[" + strings.Join(s, " ") + "]"
}
