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

// realNet implements the network verbs of chaos.Injector and chaos.Scoped and
// Leader for a real backend, which embeds it. The semantics are the
// simulator's (sim.Network and Sim):
//
//   - Link state is kept per direction, and a cut and a degradation of the
//     same direction are independent: Partition, PartitionOneWay and CutLinks
//     set cuts and leave latency and loss alone; DegradeLinks and
//     DegradeLinksScoped set the latency and loss of every link and leave cuts
//     alone.
//   - A direction is cut while any cause holds it: Partition or
//     PartitionOneWay (one cause, until HealNetwork), or any CutLinks whose
//     heal has not run. So overlapping faults each heal only what they broke.
//   - The scoped degradations in force combine: losses compound, the longest
//     latency applies; when the last one ends the links have none. An
//     unscoped DegradeLinks sets the degradation directly (until HealNetwork
//     or the next scoped change), as Sim.DegradeLinks does.
//   - HealNetwork makes every link healthy and ends every cause; a scoped heal
//     that runs after it (or a second time) does nothing.
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

	mu       sync.Mutex // guards the fields below; one verb at a time
	cutSet   map[[2]string]bool
	cutRefs  map[[2]string]int
	degraded []*chaos.Links // scoped degradations in force, oldest first
	deg      chaos.Links    // the degradation of every link
	healGen  uint64         // bumped by HealNetwork: older scoped heals are void

	// Client links: each client session reaches each member through a proxy
	// of its own (SessionURL), on the links session -> member and back.
	sessions    map[[2]string]*linkproxy.Proxy // by (session, member)
	clientCuts  map[string]int                 // member -> CutClients in force
	clientStall map[string]int                 // member -> StallClients in force
	clientDeg   []*chaos.Links                 // DegradeClientLinks in force
}

// statusTimeout bounds each member's Status call in Leader.
const statusTimeout = 500 * time.Millisecond

// network checks the names and returns the links to change. r.mu is held.
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
	if r.cutSet == nil {
		r.cutSet, r.cutRefs = map[[2]string]bool{}, map[[2]string]int{}
	}
	if r.sessions == nil {
		r.sessions, r.clientCuts, r.clientStall = map[[2]string]*linkproxy.Proxy{}, map[string]int{}, map[string]int{}
	}
	return n, nil
}

// directions lists the directed links from a to b (and b to a with both),
// skipping a member's link to itself.
func directions(a, b []string, both bool) [][2]string {
	var ls [][2]string
	for _, x := range a {
		for _, y := range b {
			if x == y {
				continue
			}
			ls = append(ls, [2]string{x, y})
			if both {
				ls = append(ls, [2]string{y, x})
			}
		}
	}
	return ls
}

// flush writes the state of every link between members to the proxies. r.mu
// is held.
func (r *realNet) flush(n *linkproxy.Network) {
	ms := r.eps.Members()
	for _, l := range directions(ms, ms, false) {
		want := linkproxy.LinkState{
			Cut:        r.cutSet[l] || r.cutRefs[l] > 0,
			Loss:       r.deg.Loss,
			LatencyMin: r.deg.LatencyMin,
			LatencyMax: r.deg.LatencyMax,
		}
		if n.Link(l[0], l[1]) != want {
			n.SetLink(l[0], l[1], want)
		}
	}
}

// partition sets an unscoped cut.
func (r *realNet) partition(a, b []string, both bool, what string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	n, err := r.network(a, b)
	if err != nil {
		return err
	}
	for _, l := range directions(a, b, both) {
		r.cutSet[l] = true
	}
	r.flush(n)
	r.event(what)
	return nil
}

// Partition cuts both directions of every link between a member of a and a
// member of b, until HealNetwork. Latency and loss stay as they were.
func (r *realNet) Partition(a, b []string) error {
	return r.partition(a, b, true, fmt.Sprintf("partition %v | %v", a, b))
}

// PartitionOneWay cuts every link from a member of from to a member of to,
// until HealNetwork; replies on connections opened the other way still cross
// (see package linkproxy for what a one-way cut means on TCP).
func (r *realNet) PartitionOneWay(from, to []string) error {
	return r.partition(from, to, false, fmt.Sprintf("cut %v -> %v", from, to))
}

// CutLinks cuts from -> to (and back with both) for one fault and returns the
// heal that releases that fault's cut only (chaos.Scoped): a direction another
// cause still holds stays cut.
func (r *realNet) CutLinks(from, to []string, both bool) (func() error, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n, err := r.network(from, to)
	if err != nil {
		return nil, err
	}
	ls := directions(from, to, both)
	for _, l := range ls {
		r.cutRefs[l]++
	}
	r.flush(n)
	arrow := "->"
	if both {
		arrow = "|"
	}
	r.event(fmt.Sprintf("cut %v %s %v", from, arrow, to))
	return r.healOnce(func(n *linkproxy.Network) {
		for _, l := range ls {
			r.cutRefs[l]--
		}
		r.flush(n)
		r.event(fmt.Sprintf("uncut %v %s %v", from, arrow, to))
	}), nil
}

// healOnce returns a fault's heal: undo, under the lock, the first time it is
// called, unless HealNetwork healed everything since (r.mu is held by the
// caller of healOnce).
func (r *realNet) healOnce(undo func(*linkproxy.Network)) func() error {
	gen, done := r.healGen, false
	return func() error {
		r.mu.Lock()
		defer r.mu.Unlock()
		if done || gen != r.healGen {
			return nil
		}
		done = true
		n, err := r.network()
		if err != nil {
			return err
		}
		undo(n)
		return nil
	}
}

// checkLinks refuses what a TCP link cannot do.
func checkLinks(l chaos.Links) error {
	if l.Duplicate > 0 || l.Reorder > 0 {
		return fmt.Errorf("%w: duplication and reordering (peer links are TCP streams)", chaos.ErrUnsupported)
	}
	return nil
}

// DegradeLinks sets latency and loss (as connection resets) on every link
// between members, replacing the degradation in force and keeping every cut.
// Duplication and reordering cannot be done to a TCP byte stream: they are
// unsupported, and nothing changes.
func (r *realNet) DegradeLinks(l chaos.Links) error {
	if err := checkLinks(l); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	n, err := r.network()
	if err != nil {
		return err
	}
	r.deg = l
	r.flush(n)
	r.event(fmt.Sprintf("degrade links: %s", l))
	return nil
}

// DegradeLinksScoped adds a degradation of every link for one fault and
// returns the heal that removes it only (chaos.Scoped). The degradations in
// force combine (combineLinks).
func (r *realNet) DegradeLinksScoped(l chaos.Links) (func() error, error) {
	if err := checkLinks(l); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	n, err := r.network()
	if err != nil {
		return nil, err
	}
	d := &l
	r.degraded = append(r.degraded, d)
	r.deg = combineLinks(r.degraded)
	r.flush(n)
	r.event(fmt.Sprintf("degrade links: %s (in force: %s)", l, r.deg))
	return func() error {
		r.mu.Lock()
		defer r.mu.Unlock()
		i := slices.Index(r.degraded, d)
		if i < 0 {
			return nil // healed already (HealNetwork, or this heal ran)
		}
		n, err := r.network()
		if err != nil {
			return err
		}
		r.degraded = slices.Delete(r.degraded, i, i+1)
		r.deg = combineLinks(r.degraded)
		r.flush(n)
		r.event(fmt.Sprintf("restore links from %s (in force: %s)", l, r.deg))
		return nil
	}, nil
}

// combineLinks is the degradation of several in force together, on every
// backend (Sim too): losses compound, the highest duplication and reordering
// rates and the longest latency apply. None is no degradation.
func combineLinks(ds []*chaos.Links) chaos.Links {
	if len(ds) == 0 {
		return chaos.Links{}
	}
	var sum chaos.Links
	keep := 1.0
	for _, d := range ds {
		keep *= 1 - d.Loss
		sum.Duplicate = max(sum.Duplicate, d.Duplicate)
		sum.Reorder = max(sum.Reorder, d.Reorder)
		sum.LatencyMin = max(sum.LatencyMin, d.LatencyMin)
		sum.LatencyMax = max(sum.LatencyMax, d.LatencyMax)
	}
	sum.Loss = 1 - keep
	return sum
}

// HealNetwork makes every link healthy and ends every cause of a cut or a
// degradation: scoped heals that run later do nothing.
func (r *realNet) HealNetwork() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	n, err := r.network()
	if err != nil {
		return err
	}
	clear(r.cutSet)
	clear(r.cutRefs)
	r.degraded, r.deg = nil, chaos.Links{}
	clear(r.clientCuts)
	clear(r.clientStall)
	r.clientDeg = nil
	r.healGen++
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

var (
	_ chaos.Scoped = (*Process)(nil)
	_ chaos.Scoped = (*Docker)(nil)
	_ chaos.Scoped = (*Sim)(nil)
)
