package store

import (
	"encoding/binary"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3"

	"github.com/havoclab/havoc/store/auth"

	"github.com/havoclab/havoc/internal/mutant"
)

// readQueue batches linearizable reads behind raft's ReadIndex, as etcd does:
//  1. reads that arrive wait in next;
//  2. when no ReadIndex is in flight, all of next is bound to a new one (ctx =
//     a sequence number);
//  3. its ReadState gives the commit index; the batch waits until the member has
//     applied that far, then every read is served from the local backend;
//  4. a ReadIndex lost with a message is re-issued after an election timeout.
type readQueue struct {
	seq      uint64
	next     []pendingRead
	inflight *readBatch
	ready    []*readBatch
}

type pendingRead struct {
	token uint64
	req   Request
}

type readBatch struct {
	ctx    uint64
	reads  []pendingRead
	index  uint64
	sentAt int64
}

func (q *readQueue) add(token uint64, req Request) {
	q.next = append(q.next, pendingRead{token: token, req: req})
}

// issue starts a ReadIndex for the waiting reads; it reports whether it did.
func (q *readQueue) issue(n *Node) bool {
	if q.inflight != nil || len(q.next) == 0 {
		return false
	}
	if n.rn.BasicStatus().Lead == raft.None {
		for _, r := range q.next {
			n.fail(r.token, ErrNoLeader)
		}
		q.next = nil
		return false
	}
	if (mutant.On(mutant.StaleReadFollower) && n.lead != n.id) || (mutant.On(mutant.StaleReadLeader) && n.lead == n.id) {
		for _, r := range q.next {
			n.respond(n.serveRead(r.token, &r.req))
		}
		q.next = nil
		return false
	}
	q.seq++
	q.inflight = &readBatch{ctx: q.seq, reads: q.next, sentAt: n.ticks}
	q.next = nil
	n.rn.ReadIndex(binary.BigEndian.AppendUint64(nil, q.seq))
	return true
}

func (q *readQueue) onReadState(rs raft.ReadState) {
	if q.inflight == nil || len(rs.RequestCtx) != 8 || binary.BigEndian.Uint64(rs.RequestCtx) != q.inflight.ctx {
		return
	}
	q.inflight.index = rs.Index
	q.ready = append(q.ready, q.inflight)
	q.inflight = nil
}

// serve answers every batch whose read index has been applied.
func (q *readQueue) serve(n *Node) {
	i := 0
	for ; i < len(q.ready) && q.ready[i].index <= n.applied; i++ {
		for _, r := range q.ready[i].reads {
			if _, ok := n.pending[r.token]; ok {
				n.respond(n.serveRead(r.token, &r.req))
			}
		}
	}
	q.ready = q.ready[i:]
}

// retry re-issues a ReadIndex that has not come back within an election timeout
// (its message or the answer was lost, or leadership moved).
func (q *readQueue) retry(n *Node) {
	if q.inflight == nil || n.ticks-q.inflight.sentAt < int64(n.cfg.ElectionTicks) {
		return
	}
	q.next = append(q.inflight.reads, q.next...)
	q.inflight = nil
}

// serveRead answers a read from the local backend, once who sent it may read it
// (etcd's doSerialize: the identity is resolved after the read barrier).
func (n *Node) serveRead(token uint64, req *Request) Response {
	if err := n.checkRead(req); err != nil {
		return Response{Token: token, Err: err, Definite: true}
	}
	switch {
	case req.Range != nil:
		resp, err := n.kv.Range(req.Range)
		if err != nil {
			return Response{Token: token, Err: err, Definite: true}
		}
		resp.Header = n.fillHeader(resp.Header)
		return Response{Token: token, Range: resp}
	case req.Txn != nil:
		resp, err := n.kv.Txn(req.Txn)
		if err != nil {
			return Response{Token: token, Err: err, Definite: true}
		}
		resp.Header = n.fillHeader(resp.Header)
		return Response{Token: token, Txn: resp}
	case req.LeaseKeepAlive != nil:
		return n.leaseKeepAlive(token, req.LeaseKeepAlive)
	case req.MemberList != nil:
		return Response{Token: token, MemberList: &pb.MemberListResponse{Header: n.clusterHeader(), Members: n.memberList()}}
	}
	return Response{Token: token, Err: ErrUnsupported, Definite: true}
}

// checkRead makes etcd's permission check of a read: Range and read-only Txn
// need read permission, a keep-alive needs write permission on the lease's keys
// (etcd's checkLeaseRenew).
func (n *Node) checkRead(req *Request) error {
	if !n.auth.Enabled() || req.MemberList != nil {
		return nil
	}
	ai, err := n.identify(req.Who)
	if err != nil {
		return err
	}
	switch {
	case req.Range != nil:
		return n.auth.IsRangePermitted(ai, req.Range.Key, req.Range.RangeEnd)
	case req.Txn != nil:
		return n.checkTxn(ai, req.Txn)
	case req.LeaseKeepAlive != nil:
		if ai.User == "" {
			return auth.ErrUserEmpty
		}
		return n.checkLeasePuts(ai, req.LeaseKeepAlive.ID)
	}
	return nil
}
