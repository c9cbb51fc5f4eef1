package cluster

// A simulated member's slow-watcher handling: a client that stops taking a
// member's watch messages (client-stall holds the link) must not make the
// member queue without bound. As etcd does when a watch stream's send channel
// is full (its victims), the member stops sending and leaves the watcher's
// events in the store (store.Node.HoldWatch: past mvcc's own bound the watcher
// falls behind and catches up from history later), and resumes once the
// client has taken most of what waits.

import (
	"slices"
	"time"
)

const (
	// simWatchWindow is how many messages a member lets wait on its link to
	// a watching client before it holds the watcher: etcd's chanBufLen (on
	// a real stream, the HTTP/2 window plays this part).
	simWatchWindow = 128
	// simWatchPoll is how often a member looks whether a held watcher's
	// client reads again.
	simWatchPoll = 50 * time.Millisecond
)

// holdIfSlow holds watcher id when its client has simWatchWindow messages
// waiting. Links in a run without client faults never hold that many, so
// such runs are unchanged.
func (m *simMember) holdIfSlow(id int64, ref clientRef) {
	if m.watches.held[id] || m.c.w.Net().InFlight(m.name, ref.host) < simWatchWindow {
		return
	}
	m.watches.held[id] = true
	m.node.HoldWatch(id, true)
	m.host.Tracef("slow watcher %d of %s: held", id, ref.host)
	if !m.watches.polling {
		m.watches.polling = true
		m.host.After(simWatchPoll, m.pollSlow)
	}
}

// pollSlow releases the held watchers whose clients have taken at least half
// of what waited, and drains the node so their events flow again.
func (m *simMember) pollSlow() {
	m.watches.polling = false
	if m.node == nil || m.halted || m.deferred(m.pollSlow) {
		return
	}
	defer m.recoverCrash()
	ids := make([]int64, 0, len(m.watches.held))
	for id := range m.watches.held {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		ref, ok := m.watches.byNode[id]
		if !ok {
			delete(m.watches.held, id)
			continue
		}
		if m.c.w.Net().InFlight(m.name, ref.host) < simWatchWindow/2 {
			delete(m.watches.held, id)
			m.node.HoldWatch(id, false)
			m.host.Tracef("slow watcher %d of %s: released", id, ref.host)
		}
	}
	if len(m.watches.held) > 0 {
		m.watches.polling = true
		m.host.After(simWatchPoll, m.pollSlow)
	}
	m.flush()
}
