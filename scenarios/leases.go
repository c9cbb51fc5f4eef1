package scenarios

import (
	"fmt"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/havoclab/havoc/cluster"
	"github.com/havoclab/havoc/sim"
	"github.com/havoclab/havoc/store"
)

// simLeaseClient checks etcd's lease guarantees under faults. It grants short
// leases, attaches a key to each, keeps some alive for a while, then lets them go:
//  1. safety: while a lease is protected (its grant or last keep-alive was called
//     less than TTL ago), a linearizable read must still find its key. The leader
//     sets a lease's expiry when it applies the grant or renews it, which is after
//     the client called it, so the protection is a lower bound. Checked for a
//     lease only when no clock fault was in force from its grant to the read:
//     etcd's leases rely on the leader's clock.
//  2. liveness: once the client stops, every lease expires and its key vanishes
//     (checked in the liveness phase).
//
// Its operations are not part of the linearizability history: expiry happens
// without an operation, which the KV model does not express.
type simLeaseClient struct {
	members []string
	host    *sim.Host
	target  int
	ttl     int64
	// skewed reports whether a clock fault was in force between two virtual
	// times: a lease whose life meets one is not held to its TTL (nil: none is).
	skewed func(from, to time.Duration) bool

	nextID  uint64
	pending map[uint64]func(store.Response)
	timers  map[uint64]sim.TimerID

	n        int
	live     []*leaseKey
	stopped  bool
	empty    bool  // the final range found no ttl/ keys
	left     int64 // the ttl/ keys the last final range found
	errs     []string
	granted  int
	verified int
	refused  int // keep-alives answered TTL 0: the lease had expired
}

type leaseKey struct {
	since     time.Duration // when its grant was called
	putRev    int64         // revision of the acknowledged put
	key       string
	lease     int64
	protected time.Duration // virtual time until which the key must exist
	renewals  int           // keep-alives still to send
}

const leasePrefix = "ttl/"

func newSimLeaseClient(members []string, ttl int64, skewed func(from, to time.Duration) bool) *simLeaseClient {
	return &simLeaseClient{members: members, ttl: ttl, skewed: skewed,
		pending: map[uint64]func(store.Response){}, timers: map[uint64]sim.TimerID{}}
}

func (c *simLeaseClient) now() time.Duration { return c.host.World().Elapsed() }

// Start begins the session.
func (c *simLeaseClient) Start(h *sim.Host) {
	c.host = h
	c.target = h.Rand().IntN(len(c.members))
	h.After(time.Second, c.cycle)
}

// cycle runs every 300 ms: grant a new lease now and then, renew, and verify.
func (c *simLeaseClient) cycle() {
	if c.stopped {
		c.finalCheck()
		return
	}
	if c.host.Rand().IntN(6) == 0 {
		c.grant()
	}
	for _, k := range c.live {
		c.verify(k)
		if k.renewals > 0 && c.host.Rand().IntN(3) == 0 {
			c.renew(k)
		}
	}
	c.host.After(300*time.Millisecond, c.cycle)
}

func (c *simLeaseClient) call(req store.Request, done func(store.Response)) {
	c.nextID++
	id := c.nextID
	c.pending[id] = done
	c.host.Send(c.members[c.target], &cluster.ClientRequest{ID: id, Req: req})
	c.timers[id] = c.host.After(2*time.Second, func() {
		if f, ok := c.pending[id]; ok {
			delete(c.pending, id)
			delete(c.timers, id)
			c.switchMember()
			f(store.Response{Err: store.ErrTimeout})
		}
	})
}

func (c *simLeaseClient) switchMember() {
	if len(c.members) > 1 {
		c.target = (c.target + 1 + c.host.Rand().IntN(len(c.members)-1)) % len(c.members)
	}
}

// Receive routes a member's answer to the waiting call.
func (c *simLeaseClient) Receive(_ string, payload any) {
	r, ok := payload.(*cluster.ClientResponse)
	if !ok {
		return
	}
	f, ok := c.pending[r.ID]
	if !ok {
		return
	}
	delete(c.pending, r.ID)
	c.host.Cancel(c.timers[r.ID])
	delete(c.timers, r.ID)
	if r.Resp.Err != nil {
		c.switchMember()
	}
	f(r.Resp)
}

func (c *simLeaseClient) grant() {
	called := c.now()
	c.call(store.Request{LeaseGrant: &pb.LeaseGrantRequest{TTL: c.ttl}}, func(r store.Response) {
		if r.Err != nil || r.LeaseGrant == nil {
			return
		}
		c.granted++
		c.n++
		k := &leaseKey{since: called, key: fmt.Sprintf("%s%d", leasePrefix, c.n), lease: r.LeaseGrant.ID,
			renewals: c.host.Rand().IntN(4)}
		c.call(store.Request{Put: &pb.PutRequest{Key: []byte(k.key), Value: []byte(k.key), Lease: k.lease}}, func(r store.Response) {
			if r.Err != nil {
				return // outcome unknown or refused: the key is not tracked
			}
			// The leader set the lease's expiry when it applied the grant, after
			// called; an acknowledged put means the lease was alive then.
			k.protected = called + time.Duration(c.ttl)*time.Second
			k.putRev = r.Put.GetHeader().GetRevision()
			c.live = append(c.live, k)
		})
	})
}

func (c *simLeaseClient) renew(k *leaseKey) {
	called := c.now()
	k.renewals--
	c.call(store.Request{LeaseKeepAlive: &pb.LeaseKeepAliveRequest{ID: k.lease}}, func(r store.Response) {
		switch {
		case r.Err != nil || r.LeaseKeepAlive == nil:
		case r.LeaseKeepAlive.TTL > 0:
			k.protected = max(k.protected, called+time.Duration(r.LeaseKeepAlive.TTL)*time.Second)
		default:
			c.refused++ // expired at the leader (its revoke may not have committed yet)
		}
	})
}

// verify reads the key linearizably; absent while protected is a violation.
func (c *simLeaseClient) verify(k *leaseKey) {
	c.call(store.Request{Range: &pb.RangeRequest{Key: []byte(k.key)}}, func(r store.Response) {
		if r.Err != nil || r.Range == nil {
			return
		}
		returned := c.now()
		if len(r.Range.Kvs) > 0 {
			c.verified++
			return
		}
		if returned < k.protected-100*time.Millisecond && (c.skewed == nil || !c.skewed(k.since, returned)) {
			c.errs = append(c.errs, fmt.Sprintf("lease %x: key %q (put at revision %d) gone at %s (read at revision %d from member %x), protected until %s",
				k.lease, k.key, k.putRev, returned, r.Range.GetHeader().GetRevision(), r.Range.GetHeader().GetMemberId(), k.protected))
		}
		c.drop(k)
	})
}

func (c *simLeaseClient) drop(k *leaseKey) {
	for i, x := range c.live {
		if x == k {
			c.live = append(c.live[:i], c.live[i+1:]...)
			return
		}
	}
}

// stop ends granting and renewing; the client then waits for every lease to
// expire (finalCheck).
func (c *simLeaseClient) stop() {
	c.stopped = true
}

// finalCheck polls a linearizable range over the lease keys until it is empty.
func (c *simLeaseClient) finalCheck() {
	p := []byte(leasePrefix)
	c.call(store.Request{Range: &pb.RangeRequest{Key: p, RangeEnd: prefixEnd(p), CountOnly: true}}, func(r store.Response) {
		if r.Err == nil && r.Range != nil {
			c.left = r.Range.Count
			c.empty = r.Range.Count == 0
		}
	})
	if !c.empty {
		c.host.After(500*time.Millisecond, c.finalCheck)
	}
}
