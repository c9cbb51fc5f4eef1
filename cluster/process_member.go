package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// The membership verbs of the process backend (chaos.Membership), as an
// operator with etcdctl would run them: each request goes to whichever member
// leads, through clientv3, and is retried (through leader changes, refusals
// and timeouts) for up to memberOpTimeout; each verb returns when its change
// is done. A member's slot keeps its name, client URL and link proxy (so its
// peer URL): a fresh member takes the slot with a new ID and an empty data
// dir, started with --initial-cluster-state existing.

// memberOpTimeout bounds one membership verb on a real backend.
const memberOpTimeout = 30 * time.Second

// memberRetry is the pause between two attempts of a membership request.
const memberRetry = 200 * time.Millisecond

// viaLeader calls fn with a client of the current leader until it returns nil
// or a permanent error (done says so), or ctx ends.
func (p *Process) viaLeader(ctx context.Context, what string, fn func(ctx context.Context, cli *clientv3.Client) (done bool, err error)) error {
	var last error
	for {
		if l := p.Leader(); l != "" {
			cli, err := p.Client(l)
			if err == nil {
				rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				var done bool
				done, err = fn(rctx, cli)
				cancel()
				if done {
					return err
				}
			}
			last = fmt.Errorf("through %s: %w", l, err)
		} else {
			last = errors.New("no leader")
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: %s: gave up after %s: %w", what, memberOpTimeout, last)
		case <-time.After(memberRetry):
		}
	}
}

// RemoveMember removes member's current member through the leader, then kills
// its process and deletes its data dir; its slot stays empty until AddMember
// (chaos.Membership).
func (p *Process) RemoveMember(name string) error {
	p.mu.Lock()
	m, err := p.member(name)
	if err == nil && m.removed {
		err = fmt.Errorf("cluster: %s was removed already", name)
	}
	var id uint64
	if err == nil {
		id = m.id
		m.expectExit = true // a removed member exits on its own
	}
	p.mu.Unlock()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), memberOpTimeout)
	defer cancel()
	err = p.viaLeader(ctx, "remove "+name, func(ctx context.Context, cli *clientv3.Client) (bool, error) {
		_, err := cli.MemberRemove(ctx, id)
		if err != nil && strings.Contains(err.Error(), "member not found") {
			return true, nil // an earlier attempt of unknown outcome removed it
		}
		return err == nil, err
	})
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		m.expectExit = false
		return err
	}
	p.eventLocked(name, "member %x removed", id)
	if m.running() {
		if m.paused {
			_ = m.cmd.Process.Signal(syscall.SIGCONT)
		}
		_ = m.cmd.Process.Kill()
		done := m.done
		p.mu.Unlock()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
		}
		p.mu.Lock()
	}
	m.removed, m.paused = true, false
	if err := os.RemoveAll(m.dataDir); err != nil {
		return fmt.Errorf("cluster: wipe %s: %w", name, err)
	}
	p.eventLocked(name, "data dir wiped")
	return nil
}

// AddMember adds a fresh member (a learner if asked) in member's empty slot
// through the leader and starts it, joining the existing cluster; it does not
// wait for the member to be healthy (chaos.Membership).
func (p *Process) AddMember(name string, learner bool) error {
	p.mu.Lock()
	m, err := p.member(name)
	if err == nil && !m.removed {
		err = fmt.Errorf("cluster: %s holds member %x; remove it first", name, m.id)
	}
	p.mu.Unlock()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), memberOpTimeout)
	defer cancel()
	var id uint64
	var members []memberURL
	err = p.viaLeader(ctx, "add "+name, func(ctx context.Context, cli *clientv3.Client) (bool, error) {
		add := cli.MemberAdd
		if learner {
			add = cli.MemberAddAsLearner
		}
		r, err := add(ctx, []string{m.proxyURL})
		if err != nil && strings.Contains(err.Error(), "Peer URLs already exists") {
			// An earlier attempt of unknown outcome added it: find its ID.
			l, lerr := cli.MemberList(ctx)
			if lerr != nil {
				return false, lerr
			}
			for _, pm := range l.Members {
				if slices.Contains(pm.PeerURLs, m.proxyURL) {
					id = pm.ID
				}
				members = append(members, memberURL{pm.ID, pm.Name, pm.PeerURLs})
			}
			return id != 0, err
		}
		if err != nil {
			return false, err
		}
		id = r.Member.ID
		for _, pm := range r.Members {
			members = append(members, memberURL{pm.ID, pm.Name, pm.PeerURLs})
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var initial []string
	for _, pm := range members {
		n := pm.name
		if pm.id == id {
			n = name
		} else if n == "" {
			n = p.byID[pm.id]
		}
		for _, u := range pm.peerURLs {
			initial = append(initial, n+"="+u)
		}
	}
	m.id, m.removed = id, false
	p.byID[id] = name
	m.args = p.memberArgs(m, strings.Join(initial, ","))
	for i, a := range m.args {
		if a == "--initial-cluster-state" {
			m.args[i+1] = "existing"
		}
	}
	p.eventLocked(name, "member %x added (learner=%v)", id, learner)
	return p.launchLocked(m)
}

// memberURL is a member as MemberAdd or MemberList lists it.
type memberURL struct {
	id       uint64
	name     string
	peerURLs []string
}

// PromoteMember promotes the learner in member's slot through the leader,
// retrying while the leader says it is not in sync (chaos.Membership).
func (p *Process) PromoteMember(name string) error {
	p.mu.Lock()
	m, err := p.member(name)
	var id uint64
	if err == nil {
		id = m.id
	}
	p.mu.Unlock()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), memberOpTimeout)
	defer cancel()
	err = p.viaLeader(ctx, "promote "+name, func(ctx context.Context, cli *clientv3.Client) (bool, error) {
		_, err := cli.MemberPromote(ctx, id)
		if err != nil && strings.Contains(err.Error(), "can only promote a learner member") &&
			!strings.Contains(err.Error(), "in sync") {
			return true, nil // promoted by an earlier attempt of unknown outcome
		}
		return err == nil, err
	})
	if err == nil {
		p.mu.Lock()
		p.eventLocked(name, "member %x promoted", id)
		p.mu.Unlock()
	}
	return err
}
