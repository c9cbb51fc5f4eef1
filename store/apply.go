package store

import (
	"encoding/json"
	"fmt"
	"slices"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/membershippb"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/havoclab/havoc/store/auth"
	"github.com/havoclab/havoc/store/membership"

	"github.com/havoclab/havoc/internal/mutant"
)

// apply applies committed entries in log order. Entries the backend already holds
// (index <= its consistent index, e.g. after a restart or a snapshot that was ahead
// of the log) change only raft's configuration, never the keyspace again.
func (n *Node) apply(ents []*raftpb.Entry) {
	for i, e := range ents {
		idx := e.GetIndex()
		if idx <= n.applied {
			continue
		}
		if i > 0 && ents[i-1].GetIndex() == n.applied {
			n.observe(PointApplyMid)
		}
		ci, _ := n.kv.ConsistentIndex()
		fresh := idx > ci
		switch e.GetType() {
		case raftpb.EntryNormal:
			if fresh {
				n.applyNormal(e)
			}
		case raftpb.EntryConfChange:
			var cc raftpb.ConfChange
			if err := proto.Unmarshal(e.GetData(), &cc); err != nil {
				panic(fmt.Sprintf("store: committed conf change %d undecodable: %v", idx, err))
			}
			n.applyConfChange(cc.AsV2(), fresh)
		case raftpb.EntryConfChangeV2:
			var cc raftpb.ConfChangeV2
			if err := proto.Unmarshal(e.GetData(), &cc); err != nil {
				panic(fmt.Sprintf("store: committed conf change %d undecodable: %v", idx, err))
			}
			n.applyConfChange(&cc, fresh)
		}
		if fresh {
			n.kv.SetConsistentIndex(idx, e.GetTerm())
		}
		n.applied = idx
	}
}

func (n *Node) applyNormal(e *raftpb.Entry) {
	if len(e.GetData()) == 0 {
		return // a new leader's empty entry
	}
	ir, err := DecodeEntry(e.GetData())
	if err != nil {
		// Every member proposes only what it encoded, and the log checks each
		// record's CRC: an undecodable committed entry is a broken invariant.
		// Skipping it would move the consistent index past a write that some
		// other member may have applied.
		panic(fmt.Sprintf("store: committed entry %d undecodable: %v", e.GetIndex(), err))
	}
	resp := n.applyRequest(ir, e.GetIndex())
	id := ir.GetHeader().GetID()
	if w, ok := n.waiters[id]; ok {
		delete(n.waiters, id)
		resp.Token = w.token
		n.respond(resp)
	}
}

// applyRequest applies one decoded write on every member identically.
func (n *Node) applyRequest(ir *pb.InternalRaftRequest, index uint64) Response {
	noSpace := n.hasAlarm(pb.AlarmType_NOSPACE)
	var r Response
	var err error
	// Permissions are checked against the auth state at this point of the log,
	// so every member decides the same (etcd's authApplierV3).
	ai := auth.Info{User: ir.GetHeader().GetUsername(), Revision: ir.GetHeader().GetAuthRevision()}
	switch {
	case ir.Put != nil:
		if noSpace {
			return Response{Err: ErrNoSpace, Definite: true}
		}
		if err := n.checkPut(ai, ir.Put); err != nil {
			return Response{Err: err, Definite: true}
		}
		r.Put, err = n.kv.Put(ir.Put)
		if err == nil {
			r.Put.Header = n.fillHeader(r.Put.Header)
		}
	case ir.DeleteRange != nil:
		if err := n.checkDelete(ai, ir.DeleteRange); err != nil {
			return Response{Err: err, Definite: true}
		}
		r.DeleteRange, err = n.kv.DeleteRange(ir.DeleteRange)
		if err == nil {
			r.DeleteRange.Header = n.fillHeader(r.DeleteRange.Header)
		}
	case ir.Txn != nil:
		if noSpace && !isReadOnlyTxn(ir.Txn) {
			return Response{Err: ErrNoSpace, Definite: true}
		}
		if err := n.checkTxn(ai, ir.Txn); err != nil {
			return Response{Err: err, Definite: true}
		}
		r.Txn, err = n.kv.Txn(ir.Txn)
		if err == nil {
			r.Txn.Header = n.fillHeader(r.Txn.Header)
		}
	case ir.Compaction != nil:
		r.Compaction, err = n.kv.Compact(ir.Compaction.Revision)
		if err == nil {
			r.Compaction.Header = n.fillHeader(r.Compaction.Header)
			n.observe(PointCompaction)
		}
	case ir.LeaseGrant != nil:
		if noSpace {
			return Response{Err: ErrNoSpace, Definite: true}
		}
		lg, gerr := n.lessor.Grant(ir.LeaseGrant.ID, ir.LeaseGrant.TTL, n.cfg.Clock.Now())
		err = gerr
		if err == nil {
			r.LeaseGrant = &pb.LeaseGrantResponse{Header: n.header(), ID: lg.ID, TTL: lg.TTL}
		}
	case ir.LeaseRevoke != nil:
		if err := n.checkLeasePuts(ai, ir.LeaseRevoke.ID); err != nil {
			return Response{Err: err, Definite: true}
		}
		keys, rerr := n.lessor.Revoke(ir.LeaseRevoke.ID)
		err = rerr
		if err == nil {
			delete(n.revoking, ir.LeaseRevoke.ID)
			if len(keys) > 0 {
				_, err = n.kv.DeleteKeys(keys)
			}
			r.LeaseRevoke = &pb.LeaseRevokeResponse{Header: n.header()}
		}
	case ir.Alarm != nil:
		r.Alarm = n.applyAlarm(ir.Alarm)
	case ir.ClusterMemberAttrSet != nil:
		n.applyMemberAttr(ir.ClusterMemberAttrSet)
	case auth.IsRequest(ir):
		r.Auth, err = n.auth.Apply(ai, ir, index, n.cfg.Clock.Now(), n.header())
	}
	if err != nil {
		return Response{Err: err, Definite: true}
	}
	return r
}

// fillHeader completes a header from the backend with the cluster fields.
func (n *Node) fillHeader(h *pb.ResponseHeader) *pb.ResponseHeader {
	full := n.header()
	if h != nil && h.Revision != 0 {
		full.Revision = h.Revision
	}
	if mutant.On(mutant.HeaderRevisionStale) && full.Revision > 1 {
		full.Revision--
	}
	return full
}

func (n *Node) applyAlarm(a *pb.AlarmRequest) *pb.AlarmResponse {
	key := func(m *pb.AlarmMember) []byte { b, _ := proto.Marshal(m); return b }
	switch a.Action {
	case pb.AlarmRequest_ACTIVATE:
		if a.Alarm != pb.AlarmType_NONE && !n.hasAlarm(a.Alarm) {
			m := &pb.AlarmMember{MemberID: a.MemberID, Alarm: a.Alarm}
			n.alarms = append(n.alarms, m)
			n.kv.PutRaw("alarm", key(m), nil)
		}
	case pb.AlarmRequest_DEACTIVATE:
		n.alarms = slices.DeleteFunc(n.alarms, func(m *pb.AlarmMember) bool {
			if m.Alarm == a.Alarm && (a.MemberID == 0 || m.MemberID == a.MemberID) {
				n.kv.DeleteRaw("alarm", key(m))
				return true
			}
			return false
		})
	}
	return &pb.AlarmResponse{Header: n.header(), Alarms: slices.Clone(n.alarms)}
}

// Alarms returns the active alarms.
func (n *Node) Alarms() []*pb.AlarmMember { return slices.Clone(n.alarms) }

// applyConfChange applies a committed membership change. Validity is decided from
// raft's own configuration, which every member (and every replay after a restart)
// derives from the same log, so all members take the same decision. The members
// bucket is written only for entries the backend does not hold yet.
func (n *Node) applyConfChange(cc *raftpb.ConfChangeV2, fresh bool) {
	ctx, reqID := decodeConfContext(cc.GetContext())
	var err error
	if len(cc.GetChanges()) != 1 {
		if len(cc.GetChanges()) > 1 {
			err = fmt.Errorf("%w: %d changes in one conf change", ErrUnsupported, len(cc.GetChanges()))
		}
	} else {
		err = n.checkConfChange(cc.GetChanges()[0])
	}
	if err != nil {
		// A rejected change is applied as a change of node 0, which raft ignores
		// (etcd does the same), so raft's pending-change bookkeeping moves on.
		n.confState = n.rn.ApplyConfChange(&raftpb.ConfChangeV2{Changes: []*raftpb.ConfChangeSingle{
			{Type: raftpb.ConfChangeAddNode.Enum(), NodeId: new(uint64(0))}}})
	} else {
		n.confState = n.rn.ApplyConfChange(cc)
		if fresh && len(cc.GetChanges()) == 1 {
			n.updateMembers(cc.GetChanges()[0], ctx)
		}
	}
	if fresh {
		if b, jerr := json.Marshal(n.confState); jerr == nil {
			n.kv.PutRaw("meta", []byte("confState"), b)
		}
	}
	w, ok := n.waiters[reqID]
	if !ok {
		return
	}
	delete(n.waiters, reqID)
	token := w.token
	if err != nil {
		n.respond(Response{Token: token, Err: err, Definite: true})
		return
	}
	h := n.clusterHeader()
	list := n.memberList()
	switch w.kind {
	case kindMemberRemove:
		n.respond(Response{Token: token, MemberRemove: &pb.MemberRemoveResponse{Header: h, Members: list}})
	case kindMemberPromote:
		n.respond(Response{Token: token, MemberPromote: &pb.MemberPromoteResponse{Header: h, Members: list}})
	case kindMemberUpdate:
		n.respond(Response{Token: token, MemberUpdate: &pb.MemberUpdateResponse{Header: h, Members: list}})
	default:
		pm := &pb.Member{ID: ctx.ID, PeerURLs: ctx.PeerURLs, Name: ctx.Name, ClientURLs: ctx.ClientURLs, IsLearner: ctx.IsLearner}
		n.respond(Response{Token: token, MemberAdd: &pb.MemberAddResponse{Header: h, Member: pm, Members: list}})
	}
}

func (n *Node) checkConfChange(ch *raftpb.ConfChangeSingle) error {
	id := ch.GetNodeId()
	isVoter := slices.Contains(n.confState.GetVoters(), id)
	isLearner := slices.Contains(n.confState.GetLearners(), id)
	switch ch.GetType() {
	case raftpb.ConfChangeRemoveNode:
		if !isVoter && !isLearner {
			return ErrMemberNotFound
		}
		if isVoter && len(n.confState.GetVoters()) == 1 {
			return ErrNotEnoughStarted
		}
	case raftpb.ConfChangeAddLearnerNode:
		if isVoter {
			return ErrIDExists // demoting a voter is not supported
		}
	case raftpb.ConfChangeAddNode:
		// Adding, promoting, or (for bootstrap entries raft applied already)
		// confirming a voter.
	case raftpb.ConfChangeUpdateNode:
		if !isVoter && !isLearner {
			return ErrMemberNotFound
		}
	default:
		return fmt.Errorf("%w: conf change type %s", ErrUnsupported, ch.GetType())
	}
	return nil
}

func (n *Node) updateMembers(ch *raftpb.ConfChangeSingle, m membership.Member) {
	id := ch.GetNodeId()
	switch ch.GetType() {
	case raftpb.ConfChangeRemoveNode:
		old := n.members[id]
		delete(n.members, id)
		n.kv.DeleteRaw("members", old.Key())
		if old.ID == 0 {
			old.ID = id
		}
		n.kv.PutRaw("members_removed", old.Key(), []byte("removed"))
	case raftpb.ConfChangeUpdateNode:
		old := n.members[id]
		old.ID = id
		old.PeerURLs = slices.Clone(m.PeerURLs)
		n.members[id] = old
		b, _ := json.Marshal(old)
		n.kv.PutRaw("members", old.Key(), b)
	default:
		if old, ok := n.members[id]; ok {
			old.IsLearner = ch.GetType() == raftpb.ConfChangeAddLearnerNode
			m = old
		}
		m.ID = id
		m.IsLearner = ch.GetType() == raftpb.ConfChangeAddLearnerNode
		n.members[id] = m
		b, _ := json.Marshal(m)
		n.kv.PutRaw("members", m.Key(), b)
	}
}

func decodeConfContext(b []byte) (membership.Member, uint64) {
	var c confContext
	if json.Unmarshal(b, &c) == nil && c.Member.ID != 0 {
		return c.Member, c.RequestID
	}
	var m membership.Member
	_ = json.Unmarshal(b, &m)
	return m, 0
}

// maybePublish records the member's name and client URLs in the cluster once it has
// a leader, as etcd's publish does (member list shows it "started"). The member is
// published only when its attributes are applied (the members table, which only
// apply changes, holds them); until then the proposal is made again every election
// timeout, since a forwarded proposal can be lost (a cut link, a leader change, the
// leader's duplicate filter).
func (n *Node) maybePublish() {
	if n.published || n.lead == 0 {
		return
	}
	m, ok := n.members[n.id]
	if !ok {
		return
	}
	if m.Name == n.cfg.Name && slices.Equal(m.ClientURLs, n.cfg.ClientURLs) {
		n.published = true
		return
	}
	if n.publishProposedAt != 0 && n.ticks-n.publishProposedAt < int64(n.cfg.ElectionTicks) {
		return
	}
	id, err := n.newID()
	if err != nil {
		return
	}
	req := &pb.InternalRaftRequest{Header: &pb.RequestHeader{ID: id}, ClusterMemberAttrSet: &membershippb.ClusterMemberAttrSetRequest{
		Member_ID: n.id, MemberAttributes: &membershippb.Attributes{Name: n.cfg.Name, ClientUrls: n.cfg.ClientURLs}}}
	data, err := proto.Marshal(req)
	if err == nil && n.propose(data) == nil {
		n.publishProposedAt = n.ticks
	}
}

func (n *Node) applyMemberAttr(a *membershippb.ClusterMemberAttrSetRequest) {
	m, ok := n.members[a.Member_ID]
	if !ok {
		return
	}
	m.Name = a.GetMemberAttributes().GetName()
	m.ClientURLs = a.GetMemberAttributes().GetClientUrls()
	n.members[m.ID] = m
	b, _ := json.Marshal(m)
	n.kv.PutRaw("members", m.Key(), b)
}
