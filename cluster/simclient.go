package cluster

// Client-link faults in the simulator (chaos.ClientLinker): the links between
// the world's client hosts (every host that is not a member: workload clients,
// watchers, the lease client) and the members.

import (
	"slices"

	"github.com/havoclab/havoc/chaos"
)

// clientHosts are the world's hosts that are not members, in name order.
func (c *Sim) clientHosts() []string {
	var out []string
	for _, h := range c.w.Hosts() {
		if !slices.Contains(c.names, h.Name()) {
			out = append(out, h.Name())
		}
	}
	return out
}

// CutClients cuts both directions between every client host and members
// (chaos.ClientLinker); the heal releases this cut only.
func (c *Sim) CutClients(members []string) (func() error, error) {
	release := c.w.Net().Cut(c.clientHosts(), members, true)
	return func() error { release(); return nil }, nil
}

// DegradeClientLinks adds latency, loss, duplication or reordering to every
// link between a client host and a member, both directions
// (chaos.ClientLinker). Degradations in force together combine as those of
// the member links do.
func (c *Sim) DegradeClientLinks(l chaos.Links) (func() error, error) {
	return addDegradation(&c.clientDeg, l, c.applyClientDeg)
}

func (c *Sim) applyClientDeg() error {
	net := c.w.Net()
	clients := c.clientHosts()
	if len(c.clientDeg) == 0 {
		for _, a := range clients {
			for _, m := range c.names {
				net.ResetLink(a, m)
				net.ResetLink(m, a)
			}
		}
		return nil
	}
	cfg, err := degradedLink(net.Default(), combineLinks(c.clientDeg))
	if err != nil {
		return err
	}
	for _, a := range clients {
		for _, m := range c.names {
			net.SetLink(a, m, cfg)
			net.SetLink(m, a, cfg)
		}
	}
	return nil
}

// StallClients makes every client host stop taking what members send
// (chaos.ClientLinker): the links from members to the clients hold their
// messages until the heal, which delivers them in order. A held link keeps
// at most its queue limit in flight (sim.LinkConfig.QueueLimit); beyond it a
// message is dropped, which a watcher sees as a broken stream and re-watches
// from the last revision it saw, as a client whose stream was cancelled for
// being slow must.
func (c *Sim) StallClients(members []string) (func() error, error) {
	if c.stalls == nil {
		c.stalls = map[string]int{}
	}
	clients := c.clientHosts()
	for _, m := range members {
		if c.stalls[m]++; c.stalls[m] == 1 {
			for _, a := range clients {
				c.w.Net().Hold(m, a)
			}
		}
	}
	healed, gen := false, c.healGen
	return func() error {
		if healed || gen != c.healGen {
			return nil // healed already (this heal, or HealNetwork)
		}
		healed = true
		for _, m := range members {
			if c.stalls[m]--; c.stalls[m] == 0 {
				for _, a := range clients {
					c.w.Net().Release(m, a)
				}
			}
		}
		return nil
	}, nil
}

var _ chaos.ClientLinker = (*Sim)(nil)
