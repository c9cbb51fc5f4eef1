package scenarios

import (
	"time"

	"github.com/havoclab/havoc/cluster"
	"github.com/havoclab/havoc/linearizability"
	"github.com/havoclab/havoc/sim"
)

// simClient is one client session as a simulated host: one operation
// outstanding, a timeout per request, no automatic retry of writes. It talks to
// one member and moves to another after an error or timeout, as etcd clients do.
type simClient struct {
	id      int
	w       *Workload
	rec     *linearizability.Recorder
	members []string
	host    *sim.Host
	sess    *Session
	target  int
	nextID  uint64

	inflight uint64
	opID     int64
	op       linearizability.Operation
	timer    sim.TimerID

	stopped bool
	okCount int
	nextDue time.Duration // when the session's next operation is due (open-loop pacing)
}

func newSimClient(id int, w *Workload, rec *linearizability.Recorder, members []string) *simClient {
	return &simClient{id: id, w: w, rec: rec, members: members}
}

// Start begins the session (clients never crash, so this runs once).
func (c *simClient) Start(h *sim.Host) {
	c.host = h
	c.sess = NewSession(c.w, c.id, h.Rand())
	c.target = h.Rand().IntN(len(c.members))
	c.scheduleNext()
}

func (c *simClient) now() int64 { return int64(c.host.World().Elapsed()) }

// scheduleNext paces the session at Rate/Clients operations per second: each
// operation is due a random interval (mean ThinkTime) after the previous one was
// due, or at once if the previous one took longer than that.
func (c *simClient) scheduleNext() {
	if c.stopped {
		return
	}
	think := c.w.ThinkTime()
	c.nextDue += time.Duration(c.host.Rand().Int64N(int64(2*think) + 1))
	now := c.host.World().Elapsed()
	if c.nextDue < now {
		c.nextDue = now
	}
	c.host.After(c.nextDue-now, c.issue)
}

func (c *simClient) issue() {
	if c.stopped || c.inflight != 0 {
		return
	}
	op := c.sess.Next()
	member := c.members[c.target]
	c.nextID++
	c.inflight = c.nextID
	c.op = op
	c.opID = c.rec.Begin(c.id, member, op, c.now())
	c.host.Send(member, &cluster.ClientRequest{ID: c.inflight, Req: ToRequest(op), Defragment: op.Kind == linearizability.KindDefrag})
	c.timer = c.host.After(c.w.Timeout, c.timeout)
}

// Receive handles a member's answer; late answers to abandoned requests are ignored.
func (c *simClient) Receive(from string, payload any) {
	r, ok := payload.(*cluster.ClientResponse)
	if !ok || r.ID != c.inflight || c.inflight == 0 {
		return
	}
	c.host.Cancel(c.timer)
	outcome, resp, errText := FromResponse(c.op, r.Resp)
	c.finish(outcome, resp, errText)
	if outcome != linearizability.OutcomeOK {
		c.switchMember()
	}
}

func (c *simClient) timeout() {
	if c.inflight == 0 {
		return
	}
	outcome := linearizability.OutcomeUnknown
	if readOnly(c.op) {
		outcome = linearizability.OutcomeFail
	}
	c.finish(outcome, linearizability.Response{}, "client timeout")
	c.switchMember()
}

func (c *simClient) finish(outcome linearizability.Outcome, resp linearizability.Response, errText string) {
	c.rec.End(c.opID, outcome, resp, errText, c.now())
	c.sess.Observe(c.op, outcome, resp, errText)
	if outcome == linearizability.OutcomeOK {
		c.okCount++
	}
	c.inflight = 0
	c.scheduleNext()
}

func (c *simClient) switchMember() {
	if len(c.members) > 1 {
		c.target = (c.target + 1 + c.host.Rand().IntN(len(c.members)-1)) % len(c.members)
	}
}

// idle reports whether the client has nothing outstanding.
func (c *simClient) idle() bool { return c.inflight == 0 }
