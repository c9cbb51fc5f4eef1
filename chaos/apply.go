package chaos

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Links describes a degraded network for every link between members.
type Links struct {
	Loss, Duplicate, Reorder float64
	LatencyMin, LatencyMax   time.Duration
}

// String describes the degradation on one line: the non-zero rates, and the
// latency range in seconds.
func (l Links) String() string {
	var parts []string
	for _, r := range []struct {
		name string
		v    float64
	}{{"loss", l.Loss}, {"duplicate", l.Duplicate}, {"reorder", l.Reorder}} {
		if r.v != 0 {
			parts = append(parts, fmt.Sprintf("%s=%.3f", r.name, r.v))
		}
	}
	if l.LatencyMin != 0 || l.LatencyMax != 0 {
		parts = append(parts, fmt.Sprintf("latency=%s-%s", seconds(l.LatencyMin), seconds(l.LatencyMax)))
	}
	if len(parts) == 0 {
		return "(none)"
	}
	return strings.Join(parts, " ")
}

// Injector is what a backend offers to chaos. Members are named; the order of
// Members() is the index order of Fault.Members.
type Injector interface {
	Members() []string
	// Leader returns the current leader's name, or "" if none is known.
	Leader() string
	Partition(a, b []string) error
	PartitionOneWay(from, to []string) error
	DegradeLinks(l Links) error
	HealNetwork() error
	Crash(member string, torn bool) error
	Restart(member string) error
	Pause(member string) error
	Resume(member string) error
	SetClock(member string, offset time.Duration, driftPPM int64) error
}

// ErrUnsupported is returned by an Injector for a fault its backend cannot express.
var ErrUnsupported = fmt.Errorf("chaos: fault not supported by this backend")

// Limited is an Injector that can say before a run which fault kinds it cannot
// express (Apply of such a fault returns ErrUnsupported), so that a schedule
// can be printed with what will be skipped.
type Limited interface {
	Unsupported() []Kind
}

// Unsupported returns the kinds inj says it cannot express (nil when it is not
// Limited: then only Apply tells).
func Unsupported(inj Injector) []Kind {
	if l, ok := inj.(Limited); ok {
		return l.Unsupported()
	}
	return nil
}

// Scoped is an Injector whose network faults can be undone one at a time:
// each verb returns the function that heals only what that call broke (a link
// stays cut while any fault holds it; degradations combine while they
// overlap). Apply uses it when the Injector offers it; otherwise the end of a
// network fault heals the whole network (HealNetwork), and overlapping network
// faults end together.
type Scoped interface {
	CutLinks(from, to []string, both bool) (heal func() error, err error)
	DegradeLinksScoped(l Links) (heal func() error, err error)
}

// Clocked is an Injector with a clock of its own (the simulator's virtual
// time): Apply uses it for faults that unfold over time (members of a power
// loss restarting one by one, a partition that lasts until a snapshot).
type Clocked interface {
	// AfterFunc calls fn once d has passed.
	AfterFunc(d time.Duration, fn func())
	// Notef records a note about a fault in the run's trace.
	Notef(format string, args ...any)
}

// SnapshotProbe is an Injector that can tell whether a member cut off from the
// leader can only be caught up by a snapshot (the leader has compacted its log
// past the member's position). partition-until-snapshot needs it.
type SnapshotProbe interface {
	NeedsSnapshot(member string) bool
}

// Pointed is an Injector that can crash a member at a step of its own
// protocol. crash-at needs it.
type Pointed interface {
	// ArmCrash makes member (any member when "") crash, torn if asked, at its
	// next pass through point. The member boots again reboot after its crash
	// (zero: at the heal). The returned heal disarms the point if it has not
	// fired, and restarts the member that crashed if it is still down.
	ArmCrash(member, point string, torn bool, reboot time.Duration) (heal func() error, err error)
}

// ClientLinker is an Injector whose client sessions (workload clients and
// watchers) reach the members over links it controls. The client-* kinds
// need it. Each verb acts on every client session, present and future, and
// returns the heal that undoes that call only.
type ClientLinker interface {
	// CutClients cuts both directions between every client and members.
	CutClients(members []string) (heal func() error, err error)
	// DegradeClientLinks adds latency and loss to every client link, both
	// directions.
	DegradeClientLinks(l Links) (heal func() error, err error)
	// StallClients makes every client stop reading what members send: the
	// bytes wait (and the members' sends block once the windows are full)
	// until the heal.
	StallClients(members []string) (heal func() error, err error)
}

// Membership is an Injector that can change the cluster's membership as an
// operator does, through the leader's API. Member names stay the same: a
// name is a slot that a member leaves and a fresh member (with a new ID, an
// empty data dir) later fills. The membership kinds need it.
//
// Each verb may complete later than it returns (an operator retries through
// leader changes and partitions): the verbs of one Injector take effect in
// the order they were called, and while a slot is empty the other verbs on it
// (crash, restart, pause, clock) do nothing.
type Membership interface {
	// RemoveMember removes member from the cluster (MemberRemove through the
	// leader), then stops it and wipes its data dir; its slot is empty.
	RemoveMember(member string) error
	// AddMember fills member's empty slot: MemberAdd (as a learner if asked)
	// through the leader, then a fresh member with the new ID starts, joining
	// the existing cluster.
	AddMember(member string, learner bool) error
	// PromoteMember promotes the learner in member's slot to voter
	// (MemberPromote through the leader, retried until the learner is in sync).
	PromoteMember(member string) error
}

// Disked is an Injector that can fault its members' disks: slow-fsync,
// fsync-eio and disk-full need it (torn-write needs Pointed). Each verb
// returns the heal that undoes only what it broke; when the fault made the
// member stop (a store stops on a failed fsync or a full log disk, as etcd
// exits), the heal also restarts it from its disk.
type Disked interface {
	// SlowDisk makes member's fsyncs take base/2 to 3/2 base, plus, with
	// probability tail, a heavy-tailed stall of up to tailMax.
	SlowDisk(member string, base time.Duration, tail float64, tailMax time.Duration) (heal func() error, err error)
	// FailSyncs makes member's fsyncs fail with EIO.
	FailSyncs(member string) (heal func() error, err error)
	// FillDisk makes member's disk full (ENOSPC).
	FillDisk(member string) (heal func() error, err error)
}

// SnapshotWaitMax bounds how long partition-until-snapshot keeps its follower
// cut off past the window's end, waiting for the leader to compact its log;
// then it heals and notes that no snapshot was forced.
const SnapshotWaitMax = 10 * time.Second

// snapshotPoll is how often partition-until-snapshot checks the leader's log.
const snapshotPoll = 100 * time.Millisecond

// Apply starts fault f and returns the function that ends it and a description of
// what was done (with the leader resolved).
func Apply(inj Injector, f Fault) (heal func() error, desc string, err error) {
	ms := inj.Members()
	pick := func(idx []int) []string {
		out := make([]string, 0, len(idx))
		for _, i := range idx {
			out = append(out, ms[i%len(ms)])
		}
		return out
	}
	rest := func(sel []string) []string {
		var out []string
		for _, m := range ms {
			if !slices.Contains(sel, m) {
				out = append(out, m)
			}
		}
		return out
	}
	leaderOr0 := func() string {
		if l := inj.Leader(); l != "" {
			return l
		}
		return ms[0]
	}
	sc, scoped := inj.(Scoped)
	cut := func(a, b []string, both bool) (func() error, error) {
		if scoped {
			return sc.CutLinks(a, b, both)
		}
		if both {
			return inj.HealNetwork, inj.Partition(a, b)
		}
		return inj.HealNetwork, inj.PartitionOneWay(a, b)
	}
	switch f.Kind {
	case IsolateLeader:
		l := leaderOr0()
		heal, err := cut([]string{l}, rest([]string{l}), true)
		return heal, fmt.Sprintf("isolate leader %s", l), err
	case PartitionMinority:
		side := pick(f.Members)
		heal, err := cut(side, rest(side), true)
		return heal, fmt.Sprintf("partition %v | %v", side, rest(side)), err
	case PartitionMajority:
		// The leader and just under half of the others on one side: the leader is
		// cut off from the majority that must elect a new leader.
		l := leaderOr0()
		side := []string{l}
		for _, m := range ms {
			if len(side) >= len(ms)/2 {
				break
			}
			if m != l {
				side = append(side, m)
			}
		}
		heal, err := cut(side, rest(side), true)
		return heal, fmt.Sprintf("split %v | %v", side, rest(side)), err
	case Bridge:
		if len(f.Members) < 2 || len(ms) < 3 {
			return nil, "", fmt.Errorf("chaos: bridge needs 3 members and a side: %v", f)
		}
		bridge := ms[f.Members[0]%len(ms)]
		a := pick(f.Members[1:])
		b := rest(append(slices.Clone(a), bridge))
		heal, err := cut(a, b, true)
		return heal, fmt.Sprintf("bridge %s between %v and %v", bridge, a, b), err
	case OneWay:
		from := pick(f.Members)
		heal, err := cut(from, rest(from), false)
		return heal, fmt.Sprintf("drop %v -> %v", from, rest(from)), err
	case Loss, Delay, Duplicate, Reorder:
		l := Links{}
		switch f.Kind {
		case Loss:
			l.Loss = f.Rate
		case Delay:
			l.LatencyMin, l.LatencyMax = f.Latency/2, f.Latency
		case Duplicate:
			l.Duplicate = f.Rate
		case Reorder:
			l.Reorder, l.LatencyMax = f.Rate, f.Latency
		}
		desc := fmt.Sprintf("%s %s", f.Kind, l)
		if scoped {
			heal, err := sc.DegradeLinksScoped(l)
			return heal, desc, err
		}
		return inj.HealNetwork, desc, inj.DegradeLinks(l)
	case Crash, KillLeader:
		var m string
		if f.Kind == KillLeader {
			m = leaderOr0()
		} else {
			m = pick(f.Members)[0]
		}
		return func() error { return inj.Restart(m) }, fmt.Sprintf("%s %s (torn=%v)", f.Kind, m, f.Torn), inj.Crash(m, f.Torn)
	case PowerLoss:
		return applyPowerLoss(inj, f, pick(f.Members))
	case Pause, PauseLeader:
		var m string
		if f.Kind == PauseLeader {
			m = leaderOr0()
		} else {
			m = pick(f.Members)[0]
		}
		return func() error { return inj.Resume(m) }, fmt.Sprintf("%s %s", f.Kind, m), inj.Pause(m)
	case ClockSkew:
		m := pick(f.Members)[0]
		return func() error { return inj.SetClock(m, 0, 0) },
			fmt.Sprintf("clock %s offset %s drift %dppm", m, seconds(f.Latency), f.DriftPPM), inj.SetClock(m, f.Latency, f.DriftPPM)
	case ClockJump:
		m := pick(f.Members)[0]
		return func() error { return inj.SetClock(m, 0, 0) },
			fmt.Sprintf("clock %s jumps %s", m, seconds(f.Latency)), inj.SetClock(m, f.Latency, 0)
	case PartitionUntilSnapshot:
		return applyUntilSnapshot(inj, f, ms, leaderOr0(), cut, rest)
	case ClientPartition, ClientDelay, ClientLoss, ClientStall:
		return applyClient(inj, f, pick(f.Members))
	case MemberReplace, LearnerPromote, RemoveVoter:
		return applyMembership(inj, f, pick)
	case CrashAt:
		p, ok := inj.(Pointed)
		if !ok {
			return nil, "", fmt.Errorf("%w: %s", ErrUnsupported, f.Kind)
		}
		m, who := "", "any member"
		if len(f.Members) > 0 {
			m = pick(f.Members)[0]
			who = m
		}
		heal, err := p.ArmCrash(m, f.Point, f.Torn, f.Latency)
		desc := fmt.Sprintf("crash %s at %s (torn=%v)", who, f.Point, f.Torn)
		if f.Latency > 0 {
			desc += fmt.Sprintf(", boot again %s later", f.Latency)
		}
		return heal, desc, err
	case SlowFsync, FsyncEIO, DiskFull:
		return applyDisk(inj, f, pick(f.Members))
	case TornWrite:
		p, ok := inj.(Pointed)
		if !ok || len(f.Members) == 0 {
			return nil, "", fmt.Errorf("%w: %s", ErrUnsupported, f.Kind)
		}
		m := pick(f.Members)[0]
		heal, err := p.ArmCrash(m, PointBeforeSync, true, 0)
		return heal, fmt.Sprintf("tear %s's next write (crash before its sync)", m), err
	}
	return nil, "", fmt.Errorf("%w %q", ErrUnknownKind, f.Kind)
}

// applyClient starts a client-link fault on ms (the cut-off or stalled members).
func applyClient(inj Injector, f Fault, ms []string) (func() error, string, error) {
	cl, ok := inj.(ClientLinker)
	if !ok {
		return nil, "", fmt.Errorf("%w: %s (no client links)", ErrUnsupported, f.Kind)
	}
	if len(ms) == 0 {
		ms = inj.Members()[:1]
	}
	switch f.Kind {
	case ClientPartition:
		heal, err := cl.CutClients(ms)
		return heal, fmt.Sprintf("clients cut from %v", ms), err
	case ClientStall:
		heal, err := cl.StallClients(ms[:min(len(ms), 1)])
		return heal, fmt.Sprintf("clients stop reading %v", ms[:min(len(ms), 1)]), err
	}
	l := Links{Loss: f.Rate}
	if f.Kind == ClientDelay {
		l = Links{LatencyMin: f.Latency / 2, LatencyMax: f.Latency}
	}
	heal, err := cl.DegradeClientLinks(l)
	return heal, fmt.Sprintf("%s %s", f.Kind, l), err
}

// applyMembership starts a membership change on f.Members[0]: remove it, and
// add a fresh member back at once (member-replace), as a learner promoted at
// the window's end (learner-promote), or at the window's end (remove-voter).
func applyMembership(inj Injector, f Fault, pick func([]int) []string) (func() error, string, error) {
	mb, ok := inj.(Membership)
	if !ok {
		return nil, "", fmt.Errorf("%w: %s", ErrUnsupported, f.Kind)
	}
	if len(inj.Members()) < 2 {
		return nil, "", fmt.Errorf("chaos: %s needs at least 2 members", f.Kind)
	}
	idx := f.Members
	if len(idx) == 0 {
		idx = []int{0}
	}
	m := pick(idx)[0]
	if err := mb.RemoveMember(m); err != nil {
		return nil, "", err
	}
	noop := func() error { return nil }
	switch f.Kind {
	case MemberReplace:
		return noop, fmt.Sprintf("replace %s (remove, wipe, add with a new ID)", m), mb.AddMember(m, false)
	case LearnerPromote:
		return func() error { return mb.PromoteMember(m) },
			fmt.Sprintf("replace %s by a learner, promoted at the end", m), mb.AddMember(m, true)
	default:
		return func() error { return mb.AddMember(m, false) }, fmt.Sprintf("remove voter %s, a fresh one added at the end", m), nil
	}
}

// applyDisk starts a disk fault on every member of ms; its heal ends each.
func applyDisk(inj Injector, f Fault, ms []string) (func() error, string, error) {
	d, ok := inj.(Disked)
	if !ok || len(ms) == 0 {
		return nil, "", fmt.Errorf("%w: %s", ErrUnsupported, f.Kind)
	}
	var heals []func() error
	var desc string
	for _, m := range ms {
		var heal func() error
		var err error
		switch f.Kind {
		case SlowFsync:
			heal, err = d.SlowDisk(m, f.Latency, f.Rate, SlowFsyncTailMax)
			desc = fmt.Sprintf("slow fsync on %v (base %s, tail %.3f up to %s)", ms, seconds(f.Latency), f.Rate, seconds(SlowFsyncTailMax))
		case FsyncEIO:
			heal, err = d.FailSyncs(m)
			desc = fmt.Sprintf("fsync fails with EIO on %v", ms)
		case DiskFull:
			heal, err = d.FillDisk(m)
			desc = fmt.Sprintf("disk full on %v", ms)
		}
		if err != nil {
			for _, h := range heals {
				_ = h()
			}
			return nil, "", err
		}
		heals = append(heals, heal)
	}
	return func() error {
		var errs []error
		for _, h := range heals {
			errs = append(errs, h())
		}
		return errors.Join(errs...)
	}, desc, nil
}

// applyPowerLoss crashes every member of ms at once; its heal restarts them
// together, or (with a Clocked injector and f.Latency > 0) one by one.
func applyPowerLoss(inj Injector, f Fault, ms []string) (func() error, string, error) {
	var errs []error
	for _, m := range ms {
		errs = append(errs, inj.Crash(m, f.Torn))
	}
	desc := fmt.Sprintf("power loss %v (torn=%v", ms, f.Torn)
	clk, clocked := inj.(Clocked)
	if f.Latency > 0 && clocked {
		desc += fmt.Sprintf(", restart %s apart)", seconds(f.Latency))
	} else {
		desc += ", restart together)"
	}
	heal := func() error {
		if f.Latency <= 0 || !clocked {
			var errs []error
			for _, m := range ms {
				errs = append(errs, inj.Restart(m))
			}
			return errors.Join(errs...)
		}
		for i, m := range ms {
			if i == 0 {
				if err := inj.Restart(m); err != nil {
					return err
				}
				continue
			}
			clk.AfterFunc(time.Duration(i)*f.Latency, func() {
				if err := inj.Restart(m); err != nil {
					clk.Notef("power loss: restart %s: %v", m, err)
				}
			})
		}
		return nil
	}
	return heal, desc, errors.Join(errs...)
}

// applyUntilSnapshot cuts a follower (f.Members[0], or the next member if that
// one leads) off from the others. Its heal does not heal at once: it polls
// until the leader's log is compacted past the follower's position and only
// then restores the links, so the leader must send a snapshot; after
// SnapshotWaitMax it heals anyway and notes that no compaction came.
func applyUntilSnapshot(inj Injector, f Fault, ms []string, leader string,
	cut func(a, b []string, both bool) (func() error, error), rest func([]string) []string) (func() error, string, error) {
	clk, clocked := inj.(Clocked)
	probe, probed := inj.(SnapshotProbe)
	if !clocked || !probed || len(ms) < 2 {
		return nil, "", fmt.Errorf("%w: %s", ErrUnsupported, f.Kind)
	}
	i := 0
	if len(f.Members) > 0 {
		i = f.Members[0] % len(ms)
	}
	if ms[i] == leader {
		i = (i + 1) % len(ms)
	}
	m := ms[i]
	undo, err := cut([]string{m}, rest([]string{m}), true)
	desc := fmt.Sprintf("partition %s until the leader's log is compacted past it", m)
	if err != nil {
		return nil, desc, err
	}
	heal := func() error {
		var waited time.Duration
		var poll func()
		poll = func() {
			switch {
			case probe.NeedsSnapshot(m):
				clk.Notef("%s: the leader compacted past %s after %s more; healing (a snapshot must follow)", f.Kind, m, seconds(waited))
			case waited >= SnapshotWaitMax:
				clk.Notef("%s: no compaction past %s within %s; healing without forcing a snapshot", f.Kind, m, seconds(waited))
			default:
				waited += snapshotPoll
				clk.AfterFunc(snapshotPoll, poll)
				return
			}
			if err := undo(); err != nil {
				clk.Notef("%s: heal %s: %v", f.Kind, m, err)
			}
		}
		poll()
		return nil
	}
	return heal, desc, nil
}
