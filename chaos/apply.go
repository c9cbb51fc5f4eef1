package chaos

import (
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
	switch f.Kind {
	case IsolateLeader:
		l := leaderOr0()
		return inj.HealNetwork, fmt.Sprintf("isolate leader %s", l), inj.Partition([]string{l}, rest([]string{l}))
	case PartitionMinority:
		side := pick(f.Members)
		return inj.HealNetwork, fmt.Sprintf("partition %v | %v", side, rest(side)), inj.Partition(side, rest(side))
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
		return inj.HealNetwork, fmt.Sprintf("split %v | %v", side, rest(side)), inj.Partition(side, rest(side))
	case Bridge:
		if len(f.Members) < 2 || len(ms) < 3 {
			return nil, "", fmt.Errorf("chaos: bridge needs 3 members and a side: %v", f)
		}
		bridge := ms[f.Members[0]%len(ms)]
		a := pick(f.Members[1:])
		b := rest(append(slices.Clone(a), bridge))
		return inj.HealNetwork, fmt.Sprintf("bridge %s between %v and %v", bridge, a, b), inj.Partition(a, b)
	case OneWay:
		from := pick(f.Members)
		return inj.HealNetwork, fmt.Sprintf("drop %v -> %v", from, rest(from)), inj.PartitionOneWay(from, rest(from))
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
		return inj.HealNetwork, fmt.Sprintf("%s %s", f.Kind, l), inj.DegradeLinks(l)
	case Crash:
		m := pick(f.Members)[0]
		return func() error { return inj.Restart(m) }, fmt.Sprintf("crash %s (torn=%v)", m, f.Torn), inj.Crash(m, f.Torn)
	case Pause:
		m := pick(f.Members)[0]
		return func() error { return inj.Resume(m) }, fmt.Sprintf("pause %s", m), inj.Pause(m)
	case ClockSkew:
		m := pick(f.Members)[0]
		return func() error { return inj.SetClock(m, 0, 0) },
			fmt.Sprintf("clock %s offset %s drift %dppm", m, seconds(f.Latency), f.DriftPPM), inj.SetClock(m, f.Latency, f.DriftPPM)
	}
	return nil, "", fmt.Errorf("%w %q", ErrUnknownKind, f.Kind)
}
