package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/havoclab/havoc/store/auth"
	"github.com/havoclab/havoc/store/lease"
	"github.com/havoclab/havoc/store/membership"
	"github.com/havoclab/havoc/store/mvcc"

	"github.com/havoclab/havoc/internal/mutant"
)

// Submit hands the member a client request. Its answer appears in a later Output
// with the same token (possibly in the very next Drain). Tokens are chosen by the
// runtime and must be unique among pending requests.
func (n *Node) Submit(token uint64, req Request) {
	if n.halted != nil {
		n.respond(Response{Token: token, Err: ErrStopped, Definite: true})
		return
	}
	n.pending[token] = &pendingReq{deadline: n.ticks + int64(n.cfg.RequestTimeoutTicks)}
	n.timeouts = append(n.timeouts, timeoutEntry{token: token, deadline: n.ticks + int64(n.cfg.RequestTimeoutTicks)})
	if err := n.validate(&req); err != nil {
		n.fail(token, err)
		return
	}
	ai, err := n.authorize(&req)
	if err != nil {
		n.fail(token, err)
		return
	}
	switch {
	case req.Range != nil && req.Range.Serializable:
		n.respond(n.serveRead(token, &req))
	case req.Range != nil || (req.Txn != nil && !req.isWrite()) || req.LeaseKeepAlive != nil:
		// Keep-alives also wait for ReadIndex: a leader must confirm it still
		// leads before promising a TTL (etcd's ensureLeadership).
		n.reads.add(token, req)
	case req.isWrite():
		n.proposeWrite(token, &req, ai)
	case req.LeaseTimeToLive != nil:
		n.leaseTimeToLive(token, req.LeaseTimeToLive)
	case req.LeaseLeases != nil:
		resp := &pb.LeaseLeasesResponse{Header: n.header()}
		for _, l := range n.lessor.Leases() {
			resp.Leases = append(resp.Leases, &pb.LeaseStatus{ID: l.ID})
		}
		n.respond(Response{Token: token, LeaseLeases: resp})
	case req.MemberList != nil && req.MemberList.Linearizable:
		// etcd answers a linearizable member list after a ReadIndex barrier
		// (linearizableReadNotify), so it never shows a table older than a
		// change the cluster already acknowledged.
		n.reads.add(token, req)
	case req.MemberList != nil:
		n.respond(n.serveRead(token, &req))
	case req.MemberAdd != nil, req.MemberRemove != nil, req.MemberPromote != nil, req.MemberUpdate != nil:
		n.proposeMemberChange(token, &req)
	case req.HashKV != nil:
		h, hashRev, compactRev, err := n.kv.HashKV(req.HashKV.Revision)
		if err != nil {
			n.fail(token, err)
			return
		}
		n.respond(Response{Token: token, HashKV: &pb.HashKVResponse{Header: n.header(), Hash: h, HashRevision: hashRev, CompactRevision: compactRev}})
	default:
		n.fail(token, fmt.Errorf("%w: empty request", ErrUnsupported))
	}
}

// authorize resolves who sent req and makes etcd's permission checks that come
// before proposing (admin RPCs, lease RPCs); reads are checked when served and
// writes when applied. It returns the identity a write carries in the log.
func (n *Node) authorize(req *Request) (auth.Info, error) {
	if req.Auth != nil && req.Auth.Authenticate != nil {
		return auth.Info{}, nil // the password was the check
	}
	if req.Range != nil || req.LeaseKeepAlive != nil || req.MemberList != nil || (req.Txn != nil && !req.isWrite()) {
		return auth.Info{}, nil // checked when served, after the read barrier
	}
	ai, err := n.identify(req.Who)
	if err != nil {
		return ai, err
	}
	switch {
	case req.MemberAdd != nil, req.MemberRemove != nil, req.MemberPromote != nil, req.MemberUpdate != nil, req.HashKV != nil,
		req.Alarm != nil && req.Alarm.Action != pb.AlarmRequest_GET:
		err = n.auth.IsAdminPermitted(ai)
	case req.LeaseGrant != nil, req.LeaseRevoke != nil:
		_, err = n.requireUser(req.Who)
	case req.LeaseTimeToLive != nil:
		if _, err = n.requireUser(req.Who); err == nil && req.LeaseTimeToLive.Keys {
			err = n.checkLeaseKeysRead(ai, req.LeaseTimeToLive.ID)
		}
	case req.LeaseLeases != nil:
		if _, err = n.requireUser(req.Who); err == nil {
			var ids []int64
			for _, l := range n.lessor.Leases() {
				ids = append(ids, l.ID)
			}
			err = n.checkLeaseKeysRead(ai, ids...)
		}
	}
	return ai, err
}

// validate applies etcd's request checks before anything is proposed.
func (n *Node) validate(req *Request) error {
	switch {
	case req.Range != nil:
		return mvcc.ValidateRange(req.Range)
	case req.Put != nil:
		return mvcc.ValidatePut(req.Put)
	case req.DeleteRange != nil:
		return mvcc.ValidateDeleteRange(req.DeleteRange)
	case req.Txn != nil:
		return mvcc.ValidateTxn(req.Txn, n.cfg.MaxTxnOps)
	}
	return nil
}

func (n *Node) fail(token uint64, err error) {
	n.respond(Response{Token: token, Err: err, Definite: true})
}

// respond emits a response if its request is still pending (it may have timed out).
func (n *Node) respond(r Response) {
	if _, ok := n.pending[r.Token]; !ok {
		return
	}
	delete(n.pending, r.Token)
	n.out.Responses = append(n.out.Responses, r)
}

func (n *Node) expireRequests() {
	i := 0
	for ; i < len(n.timeouts) && n.timeouts[i].deadline <= n.ticks; i++ {
		t := n.timeouts[i].token
		if _, ok := n.pending[t]; ok {
			n.respond(Response{Token: t, Err: ErrTimeout})
		}
	}
	n.timeouts = n.timeouts[i:]
	if len(n.timeouts) == 0 && cap(n.timeouts) > 4096 {
		n.timeouts = nil
	}
}

// header is the response header etcd puts on KV, lease and maintenance answers.
func (n *Node) header() *pb.ResponseHeader {
	return &pb.ResponseHeader{ClusterId: n.clusterID, MemberId: n.id, Revision: n.kv.Rev(), RaftTerm: n.rn.BasicStatus().GetTerm()}
}

// clusterHeader is the header of Cluster RPCs, which carry no revision.
func (n *Node) clusterHeader() *pb.ResponseHeader {
	return &pb.ResponseHeader{ClusterId: n.clusterID, MemberId: n.id, RaftTerm: n.rn.BasicStatus().GetTerm()}
}

func (n *Node) proposeWrite(token uint64, req *Request, ai auth.Info) {
	if req.LeaseGrant != nil && req.LeaseGrant.ID == 0 {
		lid, err := n.newID()
		if err != nil {
			n.fail(token, err)
			return
		}
		g := proto.Clone(req.LeaseGrant).(*pb.LeaseGrantRequest)
		g.ID = int64(lid & (1<<63 - 1))
		req = &Request{LeaseGrant: g}
	}
	if n.cfg.QuotaBackendBytes > 0 && (req.Put != nil || req.Txn != nil || req.LeaseGrant != nil) {
		if n.hasAlarm(pb.AlarmType_NOSPACE) || n.kv.Size() >= n.cfg.QuotaBackendBytes {
			n.raiseNoSpace()
			n.fail(token, ErrNoSpace)
			return
		}
	}
	id, err := n.newID()
	if err != nil {
		n.fail(token, err)
		return
	}
	ir := req.internal(id)
	ir.Header.Username, ir.Header.AuthRevision = ai.User, ai.Revision
	data, err := proto.Marshal(ir)
	if err != nil {
		n.fail(token, fmt.Errorf("store: encode request: %w", err))
		return
	}
	if len(data) > n.cfg.MaxRequestBytes {
		n.fail(token, ErrRequestTooLarge)
		return
	}
	if err := n.propose(data); err != nil {
		n.fail(token, err)
		return
	}
	n.waiters[id] = waiter{token: token}
}

// propose appends data to the raft log (forwarded to the leader by raft on a
// follower). ErrProposalDropped means the entry went nowhere: a definite failure.
func (n *Node) propose(data []byte) error {
	if n.rn.BasicStatus().Lead == raft.None {
		return ErrNoLeader
	}
	if err := n.rn.Propose(data); err != nil {
		if errors.Is(err, raft.ErrProposalDropped) {
			return ErrNoLeader
		}
		return err
	}
	return nil
}

func (n *Node) raiseNoSpace() {
	if n.hasAlarm(pb.AlarmType_NOSPACE) {
		return
	}
	req := &Request{Alarm: &pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, MemberID: n.id, Alarm: pb.AlarmType_NOSPACE}}
	id, err := n.newID()
	if err != nil {
		return
	}
	if data, err := proto.Marshal(req.internal(id)); err == nil {
		_ = n.propose(data)
	}
}

func (n *Node) hasAlarm(t pb.AlarmType) bool {
	for _, a := range n.alarms {
		if a.Alarm == t {
			return true
		}
	}
	return false
}

func (n *Node) leaseKeepAlive(token uint64, r *pb.LeaseKeepAliveRequest) Response {
	ttl, err := n.lessor.Renew(r.ID, n.cfg.Clock.Now())
	switch {
	case errors.Is(err, lease.ErrNotPrimary):
		return Response{Token: token, Err: ErrNotLeader, Definite: true}
	case errors.Is(err, lease.ErrNotFound):
		return Response{Token: token, LeaseKeepAlive: &pb.LeaseKeepAliveResponse{Header: n.header(), ID: r.ID, TTL: 0}}
	case err != nil:
		return Response{Token: token, Err: err, Definite: true}
	}
	return Response{Token: token, LeaseKeepAlive: &pb.LeaseKeepAliveResponse{Header: n.header(), ID: r.ID, TTL: ttl}}
}

func (n *Node) leaseTimeToLive(token uint64, r *pb.LeaseTimeToLiveRequest) {
	if !n.lessor.Primary() {
		n.fail(token, ErrNotLeader)
		return
	}
	l := n.lessor.Lookup(r.ID)
	if l == nil {
		n.respond(Response{Token: token, LeaseTimeToLive: &pb.LeaseTimeToLiveResponse{Header: n.header(), ID: r.ID, TTL: -1}})
		return
	}
	rem, _ := n.lessor.Remaining(r.ID, n.cfg.Clock.Now())
	resp := &pb.LeaseTimeToLiveResponse{Header: n.header(), ID: r.ID, TTL: rem, GrantedTTL: l.TTL}
	if r.Keys {
		resp.Keys = l.Keys()
	}
	n.respond(Response{Token: token, LeaseTimeToLive: resp})
}

// expireLeases proposes a revoke for every lease the leader's clock says expired;
// a revoke is re-proposed only if it has not applied within an election timeout.
func (n *Node) expireLeases() {
	if !n.lessor.Primary() {
		return
	}
	for _, id := range n.lessor.Expired(n.cfg.Clock.Now(), 16) {
		if at, ok := n.revoking[id]; ok && n.ticks-at < int64(n.cfg.ElectionTicks) {
			continue
		}
		req := &Request{LeaseRevoke: &pb.LeaseRevokeRequest{ID: id}}
		rid, err := n.newID()
		if err != nil {
			return
		}
		// The leader revokes as root, as etcd's lessor does (WithRoot); with
		// auth off the entry stays as it always was (a revoke that meets auth
		// turned on in between fails and is proposed again).
		ir := req.internal(rid)
		if n.auth.Enabled() {
			ir.Header.Username, ir.Header.AuthRevision = auth.RootUser, n.auth.Revision()
		}
		data, err := proto.Marshal(ir)
		if err != nil {
			continue
		}
		if n.propose(data) == nil {
			n.revoking[id] = n.ticks
		}
	}
}

func (n *Node) memberList() []*pb.Member {
	ids := make([]uint64, 0, len(n.members))
	for id := range n.members {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	out := make([]*pb.Member, 0, len(ids))
	for _, id := range ids {
		m := n.members[id]
		out = append(out, &pb.Member{ID: m.ID, Name: m.Name, PeerURLs: slices.Clone(m.PeerURLs), ClientURLs: slices.Clone(m.ClientURLs), IsLearner: m.IsLearner})
	}
	return out
}

// checkPeerURLs validates the peer URLs of a member add or update (of member
// self, 0 for a new member): at least one, each valid, none used by another
// member. It returns them sorted, as etcd stores them.
func (n *Node) checkPeerURLs(urls []string, self uint64) ([]string, error) {
	if len(urls) == 0 {
		return nil, ErrBadMemberURLs
	}
	for _, u := range urls {
		if membership.ValidateURL(u) != nil {
			return nil, ErrBadMemberURLs
		}
	}
	for _, id := range sortedKeys(n.members) {
		if id == self {
			continue
		}
		for _, u := range n.members[id].PeerURLs {
			if slices.Contains(urls, u) {
				return nil, ErrPeerURLExists
			}
		}
	}
	peers := slices.Clone(urls)
	slices.Sort(peers)
	return peers, nil
}

// proposeMemberChange validates a membership request against the current members
// and proposes a ConfChangeV2 whose context names the member and the request.
func (n *Node) proposeMemberChange(token uint64, req *Request) {
	id, err := n.newID()
	if err != nil {
		n.fail(token, err)
		return
	}
	var cc raftpb.ConfChangeSingle
	var m membership.Member
	switch {
	case req.MemberAdd != nil:
		peers, err := n.checkPeerURLs(req.MemberAdd.PeerURLs, 0)
		if err != nil {
			n.fail(token, err)
			return
		}
		m = membership.Member{ID: membership.ComputeID(peers, strconv.FormatInt(n.cfg.Clock.Now().Unix(), 10)), PeerURLs: peers, IsLearner: req.MemberAdd.IsLearner}
		if _, dup := n.members[m.ID]; dup {
			n.fail(token, ErrIDExists)
			return
		}
		typ := raftpb.ConfChangeAddNode
		if m.IsLearner {
			typ = raftpb.ConfChangeAddLearnerNode
			if n.countLearners() >= 1 {
				n.fail(token, ErrTooManyLearners)
				return
			}
		}
		cc = raftpb.ConfChangeSingle{Type: typ.Enum(), NodeId: new(m.ID)}
	case req.MemberRemove != nil:
		old, ok := n.members[req.MemberRemove.ID]
		if !ok {
			n.fail(token, ErrMemberNotFound)
			return
		}
		if !old.IsLearner && !n.mayRemoveVoter(old.ID) {
			n.fail(token, ErrNotEnoughStarted)
			return
		}
		m = old
		cc = raftpb.ConfChangeSingle{Type: raftpb.ConfChangeRemoveNode.Enum(), NodeId: new(m.ID)}
	case req.MemberPromote != nil:
		old, ok := n.members[req.MemberPromote.ID]
		if !ok {
			n.fail(token, ErrMemberNotFound)
			return
		}
		if !old.IsLearner {
			n.fail(token, ErrMemberNotLearner)
			return
		}
		if n.lead == n.id && !n.learnerInSync(old.ID) {
			n.fail(token, ErrLearnerNotReady)
			return
		}
		m = old
		m.IsLearner = false
		cc = raftpb.ConfChangeSingle{Type: raftpb.ConfChangeAddNode.Enum(), NodeId: new(m.ID)}
	case req.MemberUpdate != nil:
		old, ok := n.members[req.MemberUpdate.ID]
		if !ok {
			n.fail(token, ErrMemberNotFound)
			return
		}
		peers, err := n.checkPeerURLs(req.MemberUpdate.PeerURLs, old.ID)
		if err != nil {
			n.fail(token, err)
			return
		}
		m = old
		m.PeerURLs = peers
		cc = raftpb.ConfChangeSingle{Type: raftpb.ConfChangeUpdateNode.Enum(), NodeId: new(m.ID)}
	}
	kind := kindMemberAdd
	switch {
	case req.MemberRemove != nil:
		kind = kindMemberRemove
	case req.MemberPromote != nil:
		kind = kindMemberPromote
	case req.MemberUpdate != nil:
		kind = kindMemberUpdate
	}
	ctx, _ := json.Marshal(confContext{RequestID: id, Member: m})
	if n.rn.BasicStatus().Lead == raft.None {
		n.fail(token, ErrNoLeader)
		return
	}
	if err := n.rn.ProposeConfChange(&raftpb.ConfChangeV2{Changes: []*raftpb.ConfChangeSingle{&cc}, Context: ctx}); err != nil {
		if errors.Is(err, raft.ErrProposalDropped) {
			err = ErrNoLeader
		}
		n.fail(token, err)
		return
	}
	if mutant.On(mutant.ConfChangeEarly) {
		n.updateMembers(&cc, m)
	}
	n.waiters[id] = waiter{token: token, kind: kind}
}

func (n *Node) countLearners() int {
	c := 0
	for _, m := range n.members {
		if m.IsLearner {
			c++
		}
	}
	return c
}

// mayRemoveVoter is etcd's strict reconfiguration check: after removing id, the
// voters the leader sees as active must still form a quorum.
//
// A voter counts as active if this member heard from it within an election
// timeout (etcd asks its transport the same). Raft's own RecentActive is no
// use here: with CheckQuorum the leader clears it every election timeout, so
// right after that a healthy cluster would look inactive.
func (n *Node) mayRemoveVoter(id uint64) bool {
	if n.rn.BasicStatus().RaftState != raft.StateLeader {
		return true
	}
	voters, active := 0, 0
	for _, vid := range n.confState.GetVoters() {
		if vid == id {
			continue
		}
		voters++
		if t, ok := n.heard[vid]; vid == n.id || ok && n.ticks-t <= int64(n.cfg.ElectionTicks) {
			active++
		}
	}
	return active >= voters/2+1
}

// learnerInSync is etcd's promotion check: the learner's match index is at least
// 90% of the leader's.
func (n *Node) learnerInSync(id uint64) bool {
	st := n.rn.Status()
	pr, ok := st.Progress[id]
	if !ok {
		return false
	}
	leader := st.Progress[n.id].Match
	return leader == 0 || float64(pr.Match) >= 0.9*float64(leader)
}
