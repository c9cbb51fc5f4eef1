package cluster

// Client links of the real backends: every client session reaches every
// member through a proxy of its own, so that a client partition, latency,
// loss and a client that stops reading are faults of the links between
// client sessions and members (chaos.ClientLinker), as the simulator's
// client hosts have links of their own.

import (
	"fmt"
	"net/url"

	"github.com/havoclab/havoc/chaos"
	"github.com/havoclab/havoc/cluster/linkproxy"
)

// SessionURL returns the client URL by which client session (a name such as
// c01 or w01, unique in the run) reaches member: a proxy on the links
// session -> member and back, made on first use. The client-link faults in
// force apply to it at once.
func (r *realNet) SessionURL(session, member string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n, err := r.network([]string{member})
	if err != nil {
		return "", err
	}
	u, err := url.Parse(r.eps.ClientURL(member))
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("cluster: client URL of %s: %q", member, r.eps.ClientURL(member))
	}
	key := [2]string{session, member}
	p, ok := r.sessions[key]
	if !ok {
		if p, err = n.ListenFixed("127.0.0.1:0", u.Host, session, member); err != nil {
			return "", err
		}
		r.sessions[key] = p
		r.flushClients(n)
	}
	return u.Scheme + "://" + p.Addr(), nil
}

// flushClients writes the state of every client link to the proxies. r.mu is
// held.
func (r *realNet) flushClients(n *linkproxy.Network) {
	deg := combineLinks(r.clientDeg)
	for key := range r.sessions {
		s, m := key[0], key[1]
		to := linkproxy.LinkState{Cut: r.clientCuts[m] > 0, Loss: deg.Loss, LatencyMin: deg.LatencyMin, LatencyMax: deg.LatencyMax}
		back := to
		back.Stall = r.clientStall[m] > 0
		if n.Link(s, m) != to {
			n.SetLink(s, m, to)
		}
		if n.Link(m, s) != back {
			n.SetLink(m, s, back)
		}
	}
}

// clientFault applies one client-link fault: do changes the counts, undo
// reverts them; the heal runs undo once, unless HealNetwork came first.
func (r *realNet) clientFault(members []string, what string, do, undo func()) (func() error, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n, err := r.network(members)
	if err != nil {
		return nil, err
	}
	do()
	r.flushClients(n)
	r.event(what)
	return r.healOnce(func(n *linkproxy.Network) {
		undo()
		r.flushClients(n)
		r.event("end " + what)
	}), nil
}

// CutClients cuts every client session, present and future, off from
// members, both directions (chaos.ClientLinker).
func (r *realNet) CutClients(members []string) (func() error, error) {
	return r.clientFault(members, fmt.Sprintf("clients cut from %v", members),
		func() { add(r.clientCuts, members, 1) }, func() { add(r.clientCuts, members, -1) })
}

// StallClients makes every client session stop reading what members send
// (chaos.ClientLinker): the proxies stop reading from the members, whose
// sends block once the socket buffers and HTTP/2 windows are full.
func (r *realNet) StallClients(members []string) (func() error, error) {
	return r.clientFault(members, fmt.Sprintf("clients stop reading %v", members),
		func() { add(r.clientStall, members, 1) }, func() { add(r.clientStall, members, -1) })
}

// DegradeClientLinks adds latency and loss (as connection resets) to every
// client link (chaos.ClientLinker); degradations in force combine as those of
// the peer links do.
func (r *realNet) DegradeClientLinks(l chaos.Links) (func() error, error) {
	if err := checkLinks(l); err != nil {
		return nil, err
	}
	d := &l
	return r.clientFault(nil, fmt.Sprintf("degrade client links: %s", l),
		func() { r.clientDeg = append(r.clientDeg, d) },
		func() {
			for i, x := range r.clientDeg {
				if x == d {
					r.clientDeg = append(r.clientDeg[:i], r.clientDeg[i+1:]...)
					break
				}
			}
		})
}

func add(m map[string]int, keys []string, d int) {
	for _, k := range keys {
		m[k] += d
	}
}

var (
	_ chaos.ClientLinker = (*Process)(nil)
	_ chaos.ClientLinker = (*Docker)(nil)
)
