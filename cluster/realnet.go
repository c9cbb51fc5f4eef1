package cluster

// The link-fault verbs and the leader lookup of every real backend (Process,
// Docker), written once over the backend's link proxies and its members'
// client endpoints.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/havoclab/havoc/chaos"
	"github.com/havoclab/havoc/cluster/linkproxy"
)

// memberEndpoints is what realNet needs from a real backend: the member names
// and a client of each member's own endpoint.
type memberEndpoints interface {
	Members() []string
	// Client returns a client bound to member's endpoint only.
	Client(member string) (*clientv3.Client, error)
	// ClientURL returns member's client URL ("" for an unknown member).
	ClientURL(member string) string
}

// realNet implements the network verbs of chaos.Injector and Leader for a real
// backend, which embeds it. The semantics are the simulator's (sim.Network):
//
//   - Link state is kept per direction, and a cut and a degradation of the
//     same direction are independent: Partition and PartitionOneWay set cuts
//     and leave latency and loss alone; DegradeLinks replaces the degradation
//     of every link and leaves cuts alone.
//   - Each fault has an undo that heals only what it broke: Repair undoes
//     Partition, RepairOneWay undoes PartitionOneWay (cuts only), RestoreLinks
//     undoes DegradeLinks (degradation only). HealNetwork makes every link
//     healthy, as sim.Network.Heal does.
//   - Leader is the member that answers Status naming itself leader, with the
//     highest term among such answers (see chooseLeader).
//
// Every verb names members; an unknown name is an error and changes nothing.
type realNet struct {
	eps memberEndpoints
	// lnet returns the link proxies' network, or an error before Start or
	// after Close.
	lnet func() (*linkproxy.Network, error)
	// event records what a verb did ("net" is the member of the event).
	event func(what string)

	mu sync.Mutex // one verb at a time: each reads and rewrites link states
}

// statusTimeout bounds each member's Status call in Leader.
const statusTimeout = 500 * time.Millisecond

// network checks the names and returns the links to change.
func (r *realNet) network(sets ...[]string) (*linkproxy.Network, error) {
	if r.lnet == nil {
		return nil, errNotStarted // a backend value not made by its constructor
	}
	n, err := r.lnet()
	if err != nil {
		return nil, err
	}
	ms := r.eps.Members()
	for _, s := range sets {
		for _, m := range s {
			if !slices.Contains(ms, m) {
				return nil, fmt.Errorf("cluster: no member %q", m)
			}
		}
	}
	return n, nil
}

// update rewrites the state of from -> to with f (from == to is skipped: a
// member's link to itself does not exist).
func update(n *linkproxy.Network, from, to string, f func(*linkproxy.LinkState)) {
	if from == to {
		return
	}
	s := n.Link(from, to)
	f(&s)
	n.SetLink(from, to, s)
}

// setCut sets or clears the cut of every direction from a to b (and b to a
// with both), keeping each link's degradation.
func (r *realNet) setCut(a, b []string, cut, both bool, what string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	n, err := r.network(a, b)
	if err != nil {
		return err
	}
	set := func(s *linkproxy.LinkState) { s.Cut = cut }
	for _, x := range a {
		for _, y := range b {
			update(n, x, y, set)
			if both {
				update(n, y, x, set)
			}
		}
	}
	r.event(what)
	return nil
}

// Partition cuts both directions of every link between a member of a and a
// member of b. Latency and loss on those links stay as they were.
func (r *realNet) Partition(a, b []string) error {
	return r.setCut(a, b, true, true, fmt.Sprintf("partition %v | %v", a, b))
}

// PartitionOneWay cuts every link from a member of from to a member of to;
// replies on connections opened the other way still cross (see package
// linkproxy for what a one-way cut means on TCP).
func (r *realNet) PartitionOneWay(from, to []string) error {
	return r.setCut(from, to, true, false, fmt.Sprintf("cut %v -> %v", from, to))
}

// Repair undoes Partition(a, b): both directions between a and b are no
// longer cut. Their degradation stays.
func (r *realNet) Repair(a, b []string) error {
	return r.setCut(a, b, false, true, fmt.Sprintf("repair %v | %v", a, b))
}

// RepairOneWay undoes PartitionOneWay(from, to).
func (r *realNet) RepairOneWay(from, to []string) error {
	return r.setCut(from, to, false, false, fmt.Sprintf("repair %v -> %v", from, to))
}

// DegradeLinks sets latency and loss (as connection resets) on every link
// between members, replacing an earlier degradation and keeping every cut.
// Duplication and reordering cannot be done to a TCP byte stream: they are
// unsupported, and nothing changes.
func (r *realNet) DegradeLinks(l chaos.Links) error {
	if l.Duplicate > 0 || l.Reorder > 0 {
		return fmt.Errorf("%w: duplication and reordering (peer links are TCP streams)", chaos.ErrUnsupported)
	}
	return r.degrade(l, fmt.Sprintf("degrade links: %s", l))
}

// RestoreLinks undoes DegradeLinks: no link has latency or loss. Cuts stay.
func (r *realNet) RestoreLinks() error {
	return r.degrade(chaos.Links{}, "restore links")
}

func (r *realNet) degrade(l chaos.Links, what string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	n, err := r.network()
	if err != nil {
		return err
	}
	ms := r.eps.Members()
	for _, x := range ms {
		for _, y := range ms {
			update(n, x, y, func(s *linkproxy.LinkState) {
				s.Loss, s.LatencyMin, s.LatencyMax = l.Loss, l.LatencyMin, l.LatencyMax
			})
		}
	}
	r.event(what)
	return nil
}

// HealNetwork makes every link healthy: no cut, no latency, no loss.
func (r *realNet) HealNetwork() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	n, err := r.network()
	if err != nil {
		return err
	}
	n.Heal()
	r.event("heal")
	return nil
}

// leaderClaim is one member's answer to Status: whether it leads, in which term.
type leaderClaim struct {
	member string
	term   uint64
	leads  bool
}

// chooseLeader returns the member that claims to lead with the highest term,
// "" when none does. A correct store has at most one leader per term; should
// two claim the same term, the later in member order wins, as the simulator's
// Sim.Leader has always chosen. claims are in member order; members that did
// not answer (down, paused, partitioned from the harness) are absent or do not
// lead, so a leader cut off from its followers still counts until it steps
// down or a higher term elects another.
func chooseLeader(claims []leaderClaim) string {
	best, term := "", uint64(0)
	for _, c := range claims {
		if c.leads && c.term >= term {
			best, term = c.member, c.term
		}
	}
	return best
}

// Leader asks every member for its Status (in parallel, 500 ms each) and
// returns chooseLeader of the answers: the member that says it leads, with
// the highest term. "" when no member says so.
func (r *realNet) Leader() string {
	if r.eps == nil {
		return ""
	}
	ms := r.eps.Members()
	claims := make([]leaderClaim, len(ms))
	var wg sync.WaitGroup
	for i, name := range ms {
		wg.Go(func() {
			claims[i] = leaderClaim{member: name}
			c, err := r.eps.Client(name)
			url := r.eps.ClientURL(name)
			if err != nil || url == "" {
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), statusTimeout)
			defer cancel()
			st, err := c.Status(ctx, url)
			if err != nil || st.Header == nil {
				return
			}
			claims[i].term = st.RaftTerm
			claims[i].leads = st.Leader != 0 && st.Leader == st.Header.MemberId
		})
	}
	wg.Wait()
	return chooseLeader(claims)
}

// errNotStarted is realNet's answer for a backend whose proxies do not exist.
var errNotStarted = errors.New("cluster: network fault before Start or after Close")
