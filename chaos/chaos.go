package chaos

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// Kind names a fault, as a verb on the cluster.
type Kind string

// The fault kinds. Partitions cut both directions unless named one-way.
const (
	IsolateLeader     Kind = "isolate-leader"     // the current leader loses every link
	PartitionMinority Kind = "partition-minority" // a random minority is cut off from the rest
	PartitionMajority Kind = "partition-majority" // the leader lands in the minority side of a split
	Bridge            Kind = "bridge"             // two halves that only one member connects
	OneWay            Kind = "one-way"            // messages from a random member to the others are dropped, not back
	Loss              Kind = "loss"               // a fraction of messages on every link is dropped
	Delay             Kind = "delay"              // every link gets a long, variable latency
	Duplicate         Kind = "duplicate"          // messages are delivered twice
	Reorder           Kind = "reorder"            // messages may overtake each other
	Crash             Kind = "crash"              // kill -9 (losing unsynced writes), restart when the fault ends
	Pause             Kind = "pause"              // SIGSTOP, SIGCONT when the fault ends
	ClockSkew         Kind = "clock-skew"         // a member's clock jumps by an offset and drifts
	// KillLeader crashes whichever member leads when the fault starts (kill -9,
	// losing unsynced writes, torn if asked) and restarts it at the end.
	KillLeader Kind = "kill-leader"
	// PowerLoss crashes several members (a majority, or all) at the same
	// instant, each losing its unsynced writes (torn if asked); at the end they
	// restart together, or one by one Latency apart.
	PowerLoss Kind = "power-loss"
	// PartitionUntilSnapshot cuts a follower off from every other member and
	// keeps it cut, past the window's end, until the leader has compacted its
	// log past the follower's position, so that healing makes the leader send
	// it a snapshot (or gives up, with a note, after a bound).
	PartitionUntilSnapshot Kind = "partition-until-snapshot"
	// PauseLeader freezes the leader past the election timeout; it resumes as
	// a stale leader that has missed an election.
	PauseLeader Kind = "pause-leader"
	// ClockJump steps a member's clock forward or back by Latency (no drift)
	// and steps it back at the end.
	ClockJump Kind = "clock-jump"
	// CrashAt arms a crash point: the member (Members[0], or any member when
	// empty) crashes at the next step Point of its own protocol within the
	// window (torn if asked), and restarts when the window ends.
	CrashAt Kind = "crash-at"
	// ClientPartition cuts every client session (workload clients and
	// watchers) off from some members (Members, one to all but one): they must
	// find the others.
	ClientPartition Kind = "client-partition"
	// ClientDelay gives every link between a client session and a member a
	// long, variable latency (both directions).
	ClientDelay Kind = "client-delay"
	// ClientLoss loses a fraction of what crosses a client link (on a real
	// backend: connection resets).
	ClientLoss Kind = "client-loss"
	// ClientStall makes every client session stop reading what a member
	// (Members[0]) sends: on a real backend the HTTP/2 window fills and the
	// member's sends on a watch stream block (etcd's slow-watcher path).
	ClientStall Kind = "client-stall"
	// MemberReplace removes a member through the leader (MemberRemove, as an
	// operator would), wipes its data, adds it back with a new ID (MemberAdd)
	// and starts it fresh, joining the existing cluster. The window's end does
	// nothing: the replacement runs to completion on its own.
	MemberReplace Kind = "member-replace"
	// LearnerPromote removes a member and wipes it as member-replace does, adds
	// it back as a learner that catches up (by snapshot when the leader's log
	// is compacted), and promotes it to voter when the window ends.
	LearnerPromote Kind = "learner-promote"
	// RemoveVoter removes a voter and wipes it; when the window ends a fresh
	// member takes its place (a new ID, added as a voter), so that the cluster
	// has its size back by the end of the run.
	RemoveVoter Kind = "remove-voter"
	// SlowFsync makes the members' fsyncs (log and backend) slow for the
	// window: each takes a latency drawn per member from Latency (the base:
	// Base/2 to 3/2 Base) plus, with probability Rate, a heavy tail capped at
	// SlowFsyncTailMax; the member does nothing else until its sync completes.
	SlowFsync Kind = "slow-fsync"
	// FsyncEIO makes a member's fsyncs (log and backend) fail with EIO for the
	// window; the member must stop on the error (and is restarted from its
	// disk, losing its unsynced writes, when the window ends).
	FsyncEIO Kind = "fsync-eio"
	// DiskFull fills a member's disk for the window (writes that need space
	// fail with ENOSPC); the member must stop or refuse writes, and is
	// restarted from its disk if it stopped when space frees up.
	DiskFull Kind = "disk-full"
	// TornWrite crashes a member in the middle of its next write to disk (at
	// its next fsync of unsynced data, which is torn) and restarts it when
	// the window ends.
	TornWrite Kind = "torn-write"
)

// SlowFsyncTailMax caps one slow-fsync stall: past the default election
// timeout, so that a stalled leader loses its leadership now and then.
const SlowFsyncTailMax = 1500 * time.Millisecond

// PointBeforeSync is the crash point of torn-write: the member has written to
// its disk and is about to fsync it. It is not one of CrashPoints (crash-at
// does not draw it).
const PointBeforeSync = "before-sync"

// CrashPoints are the protocol steps crash-at may name: the store's observed
// points (store.Points) and two the runtime sees: after-append-response (the
// member crashes right after sending a MsgAppResp) and after-vote (right after
// sending its vote: a MsgVote as candidate, or a granted MsgVoteResp).
var CrashPoints = []string{"vote-persisted", "after-append-response", "snapshot-install", "apply-mid", "compaction",
	"before-commit", "after-commit", "log-compaction", PointAfterVote}

// PointAfterVote is the crash point right after a member sends its vote.
const PointAfterVote = "after-vote"

// afterVoteReboot is how soon a member crashed at PointAfterVote boots again
// in a drawn schedule: within the election it voted in (an election timeout
// is a second or more), so that a vote it lost can be cast again in that
// term, which raft's election safety forbids.
const afterVoteReboot = 30 * time.Millisecond

// AllKinds lists every fault kind in a fixed order.
var AllKinds = []Kind{IsolateLeader, PartitionMinority, PartitionMajority, Bridge, OneWay, Loss, Delay, Duplicate, Reorder, Crash, Pause, ClockSkew,
	KillLeader, PowerLoss, PartitionUntilSnapshot, PauseLeader, ClockJump, CrashAt,
	ClientPartition, ClientDelay, ClientLoss, ClientStall,
	MemberReplace, LearnerPromote, RemoveVoter,
	SlowFsync, FsyncEIO, DiskFull, TornWrite}

// Membership reports whether k changes the cluster's membership
// (member-replace, learner-promote, remove-voter). The generator draws these
// on a lane of their own, after every other draw, so that adding them to a
// list of kinds leaves the other faults of a seed's schedule as they were.
func (k Kind) Membership() bool {
	switch k {
	case MemberReplace, LearnerPromote, RemoveVoter:
		return true
	}
	return false
}

// DiskKinds are the kinds that fault a member's disk (the simulator's only).
var DiskKinds = []Kind{SlowFsync, FsyncEIO, DiskFull, TornWrite}

// Network reports whether k breaks links (partitions and degradations) rather
// than members (crashes, pauses, clocks). The generator draws the two classes
// on separate lanes, so a network fault can overlap a member fault.
func (k Kind) Network() bool {
	switch k {
	case IsolateLeader, PartitionMinority, PartitionMajority, Bridge, OneWay, Loss, Delay, Duplicate, Reorder, PartitionUntilSnapshot,
		ClientPartition, ClientDelay, ClientLoss, ClientStall:
		return true
	}
	return false
}

// SkewsClocks reports whether the schedule moves a member's clock (clock-skew
// or clock-jump), which voids the lease checks that assume clocks agree.
func (s Schedule) SkewsClocks() bool { return s.Has(ClockSkew) || s.Has(ClockJump) }

// ErrUnknownKind reports a fault name that is not a Kind.
var ErrUnknownKind = errors.New("chaos: unknown fault kind")

// ParseKinds parses a --faults value: "none", "all" (also "default"), or a comma
// separated list of kinds.
func ParseKinds(s string) ([]Kind, error) {
	switch strings.TrimSpace(s) {
	case "", "none":
		return nil, nil
	case "all", "default":
		return slices.Clone(AllKinds), nil
	}
	var out []Kind
	for part := range strings.SplitSeq(s, ",") {
		k := Kind(strings.TrimSpace(part))
		if !slices.Contains(AllKinds, k) {
			return nil, fmt.Errorf("%w %q (known: %s)", ErrUnknownKind, k, kindList())
		}
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out, nil
}

func kindList() string {
	s := make([]string, len(AllKinds))
	for i, k := range AllKinds {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}

// Fault is one fault window. Member indexes refer to the sorted member list.
type Fault struct {
	At       time.Duration `json:"at"`
	Duration time.Duration `json:"duration"`
	Kind     Kind          `json:"kind"`
	// Members are the targets (the cut-off side of a partition, the crashed or
	// paused member, the bridge member first). Empty for leader-relative and
	// network-wide faults.
	Members []int `json:"members,omitempty"`
	// Rate is the probability for loss, duplication and reordering, or of a
	// stall in the heavy tail for slow-fsync.
	Rate float64 `json:"rate,omitempty"`
	// Latency is the added delay, the clock offset for clock-skew and
	// clock-jump, the gap between restarts for power-loss (zero: together),
	// or the base fsync latency of slow-fsync.
	Latency time.Duration `json:"latency,omitempty"`
	// DriftPPM is the clock drift for clock-skew.
	DriftPPM int64 `json:"drift_ppm,omitempty"`
	// Torn makes a crash tear the last unsynced write instead of dropping it whole.
	Torn bool `json:"torn,omitempty"`
	// Point is the protocol step of crash-at (one of CrashPoints).
	Point string `json:"point,omitempty"`
}

// MemberName is the name of the member at index i of the sorted member list:
// m1 for index 0, as every backend names its members.
func MemberName(i int) string { return fmt.Sprintf("m%d", i+1) }

// String describes the fault on one line: times in seconds, members by name.
func (f Fault) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "at=%-8s for=%-7s %-18s", seconds(f.At), seconds(f.Duration), f.Kind)
	if len(f.Members) > 0 {
		names := make([]string, len(f.Members))
		for i, m := range f.Members {
			names[i] = MemberName(m)
		}
		fmt.Fprintf(&b, " members=[%s]", strings.Join(names, " "))
	}
	if f.Rate > 0 {
		fmt.Fprintf(&b, " rate=%.2f", f.Rate)
	}
	if f.Latency != 0 {
		fmt.Fprintf(&b, " latency=%s", seconds(f.Latency))
	}
	if f.DriftPPM != 0 {
		fmt.Fprintf(&b, " drift=%dppm", f.DriftPPM)
	}
	if f.Torn {
		b.WriteString(" torn")
	}
	if f.Point != "" {
		fmt.Fprintf(&b, " point=%s", f.Point)
	}
	return b.String()
}

// seconds renders d as seconds with millisecond precision ("2.762s").
func seconds(d time.Duration) string { return fmt.Sprintf("%.3fs", d.Seconds()) }

// Schedule is a run's fault plan, ordered by start time.
type Schedule []Fault

// String prints the schedule one fault per line.
func (s Schedule) String() string {
	if len(s) == 0 {
		return "(no faults)\n"
	}
	var b strings.Builder
	for _, f := range s {
		b.WriteString(f.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// Annotate is String with every fault of a kind in skip marked as skipped (the
// backend cannot express it), and a last line listing those kinds.
func (s Schedule) Annotate(skip []Kind) string {
	if len(s) == 0 || len(skip) == 0 {
		return s.String()
	}
	var b strings.Builder
	var skipped []string
	for _, f := range s {
		b.WriteString(f.String())
		if slices.Contains(skip, f.Kind) {
			b.WriteString("  (skipped: not expressible on this backend)")
			if !slices.Contains(skipped, string(f.Kind)) {
				skipped = append(skipped, string(f.Kind))
			}
		}
		b.WriteByte('\n')
	}
	if len(skipped) > 0 {
		fmt.Fprintf(&b, "skipped: %s (%d of %d faults)\n", strings.Join(skipped, ", "), s.count(skip), len(s))
	}
	return b.String()
}

func (s Schedule) count(kinds []Kind) int {
	n := 0
	for _, f := range s {
		if slices.Contains(kinds, f.Kind) {
			n++
		}
	}
	return n
}

// Has reports whether the schedule contains a fault of kind k.
func (s Schedule) Has(k Kind) bool {
	for _, f := range s {
		if f.Kind == k {
			return true
		}
	}
	return false
}

// MarshalJSON and UnmarshalJSON keep schedules replayable from a run directory.
func (s Schedule) MarshalJSON() ([]byte, error) { return json.Marshal([]Fault(s)) }

// UnmarshalJSON decodes a schedule and checks its kinds.
func (s *Schedule) UnmarshalJSON(b []byte) error {
	var fs []Fault
	if err := json.Unmarshal(b, &fs); err != nil {
		return fmt.Errorf("chaos: decode schedule: %w", err)
	}
	for _, f := range fs {
		if !slices.Contains(AllKinds, f.Kind) {
			return fmt.Errorf("%w %q", ErrUnknownKind, f.Kind)
		}
	}
	*s = fs
	return nil
}

// GenerateOptions shape a drawn schedule.
type GenerateOptions struct {
	Members  int           // cluster size (required)
	Duration time.Duration // length of the safety phase (required)
	Kinds    []Kind        // kinds to draw from; empty means no faults
	// Warmup is fault-free time at the start (2 s when zero).
	Warmup time.Duration
	// MaxFault is the longest fault window (5 s when zero).
	MaxFault time.Duration
	// Sequential draws one fault at a time, never overlapping. By default
	// (false) network faults and member faults are drawn on two lanes whose
	// windows overlap (a crash during a partition), and one network fault in
	// four gets a second, overlapping network fault (a partition under loss):
	// each fault heals only what it broke (see Scoped).
	//
	// Membership kinds (Kind.Membership) are drawn on a third lane after
	// every other draw, sparser than the others (one change every 3 to 13 s),
	// overlapping both other lanes; with Sequential they join the one lane.
	Sequential bool
}

// Generate draws a schedule from rnd, ordered by start time.
func Generate(rnd *rand.Rand, o GenerateOptions) Schedule {
	if len(o.Kinds) == 0 || o.Members < 1 {
		return nil
	}
	if o.Warmup == 0 {
		o.Warmup = 2 * time.Second
	}
	if o.MaxFault == 0 {
		o.MaxFault = 5 * time.Second
	}
	if o.Sequential {
		return lane(rnd, o, o.Kinds)
	}
	var net, node, member []Kind
	for _, k := range o.Kinds {
		switch {
		case k.Network():
			net = append(net, k)
		case k.Membership():
			member = append(member, k)
		default:
			node = append(node, k)
		}
	}
	s := lane(rnd, o, net)
	for _, f := range slices.Clone(s) {
		if rnd.IntN(4) != 0 {
			continue
		}
		g := Fault{At: f.At + time.Duration(rnd.Int64N(int64(f.Duration))), Kind: net[rnd.IntN(len(net))]}
		g.Duration = drawDuration(rnd, g.Kind, o.MaxFault)
		if g.At+g.Duration > o.Duration-time.Second {
			continue
		}
		drawTargets(rnd, &g, o.Members)
		s = append(s, g)
	}
	s = append(s, lane(rnd, o, node)...)
	s = append(s, memberLane(rnd, o, member)...)
	slices.SortStableFunc(s, func(a, b Fault) int { return cmp.Compare(a.At, b.At) })
	return s
}

// lane draws non-overlapping windows of kinds from the warm-up on, each
// 0.2 to 3 s after the last.
func lane(rnd *rand.Rand, o GenerateOptions, kinds []Kind) Schedule {
	if len(kinds) == 0 {
		return nil
	}
	return drawLane(rnd, o, kinds, o.Warmup, 200, 2800)
}

// memberLane draws non-overlapping membership changes, one every 3 to 13 s
// (each re-adds a member that must catch up, so they come sparser than the
// other faults). Nothing is drawn for a cluster of one member.
func memberLane(rnd *rand.Rand, o GenerateOptions, kinds []Kind) Schedule {
	if len(kinds) == 0 || o.Members < 2 {
		return nil
	}
	start := o.Warmup + time.Duration(rnd.IntN(3000))*time.Millisecond
	return drawLane(rnd, o, kinds, start, 3000, 10000)
}

// drawLane draws windows of kinds from start until the run's last second, the
// next one gapMs plus up to spanMs milliseconds after each ends.
func drawLane(rnd *rand.Rand, o GenerateOptions, kinds []Kind, start time.Duration, gapMs, spanMs int) Schedule {
	var s Schedule
	t := start
	for {
		f := Fault{At: t, Kind: kinds[rnd.IntN(len(kinds))]}
		f.Duration = drawDuration(rnd, f.Kind, o.MaxFault)
		if t+f.Duration > o.Duration-time.Second {
			break
		}
		drawTargets(rnd, &f, o.Members)
		s = append(s, f)
		t += f.Duration + time.Duration(gapMs+rnd.IntN(spanMs))*time.Millisecond
	}
	return s
}

// drawDuration draws a window: 0.5 s to maxFault, but past the election
// timeout (1 s by default) for pause-leader, and short for
// partition-until-snapshot, whose window is only its minimum (it waits for a
// compaction past it).
func drawDuration(rnd *rand.Rand, k Kind, maxFault time.Duration) time.Duration {
	ms := int(maxFault / time.Millisecond)
	switch k {
	case PauseLeader:
		return time.Duration(1500+rnd.IntN(max(ms-1499, 1))) * time.Millisecond
	case PartitionUntilSnapshot:
		return time.Duration(500+rnd.IntN(1500)) * time.Millisecond
	}
	return time.Duration(500+rnd.IntN(ms-499)) * time.Millisecond
}

func drawTargets(rnd *rand.Rand, f *Fault, n int) {
	perm := rnd.Perm(n)
	minority := (n - 1) / 2
	switch f.Kind {
	case PartitionMinority:
		k := 1 + rnd.IntN(max(minority, 1))
		f.Members = sortedInts(perm[:k])
	case Bridge:
		// members[0] is the bridge; the rest of members is one side.
		if n >= 3 {
			side := 1 + rnd.IntN(n-2)
			f.Members = append([]int{perm[0]}, sortedInts(perm[1:1+side])...)
		}
	case OneWay, Crash, Pause, ClockSkew, ClockJump, PartitionUntilSnapshot, ClientStall, MemberReplace, LearnerPromote, RemoveVoter, FsyncEIO, DiskFull, TornWrite:
		f.Members = []int{perm[0]}
	case ClientPartition:
		f.Members = sortedInts(perm[:1+rnd.IntN(max(n-1, 1))])
	case SlowFsync:
		// One slow disk, or (one time in four) every member's.
		k := 1
		if rnd.IntN(4) == 0 {
			k = n
		}
		f.Members = sortedInts(perm[:k])
	case CrashAt:
		if rnd.IntN(2) == 0 {
			f.Members = []int{perm[0]}
		}
	case PowerLoss:
		k := n
		if rnd.IntN(2) == 0 {
			k = n/2 + 1
		}
		f.Members = sortedInts(perm[:k])
	}
	switch f.Kind {
	case Loss:
		f.Rate = 0.05 + 0.25*rnd.Float64()
	case Duplicate:
		f.Rate = 0.05 + 0.3*rnd.Float64()
	case Reorder:
		f.Rate = 0.1 + 0.5*rnd.Float64()
		f.Latency = time.Duration(1+rnd.IntN(20)) * time.Millisecond
	case Delay, ClientDelay:
		f.Latency = time.Duration(20+rnd.IntN(300)) * time.Millisecond
	case ClientLoss:
		f.Rate = 0.05 + 0.25*rnd.Float64()
	case Crash, KillLeader:
		f.Torn = rnd.IntN(2) == 0
	case CrashAt:
		f.Torn = rnd.IntN(2) == 0
		f.Point = CrashPoints[rnd.IntN(len(CrashPoints))]
		if f.Point == PointAfterVote {
			// A member that lost a vote it sent must boot again while the
			// election it voted in still runs, or it can never vote twice
			// in one term (no draw: other faults' draws stay as they were).
			f.Latency = afterVoteReboot
		}
	case PowerLoss:
		f.Torn = rnd.IntN(2) == 0
		if rnd.IntN(2) == 0 {
			f.Latency = time.Duration(200+rnd.IntN(1800)) * time.Millisecond
		}
	case ClockSkew:
		f.Latency = time.Duration(rnd.IntN(20000)-10000) * time.Millisecond
		f.DriftPPM = int64(rnd.IntN(2001) - 1000)
	case SlowFsync:
		f.Latency = time.Duration(2+rnd.IntN(49)) * time.Millisecond
		f.Rate = 0.01 + 0.09*rnd.Float64()
	case ClockJump:
		// 5 s to 2 min, forward or back: past leases and election timeouts.
		f.Latency = time.Duration(5000+rnd.IntN(115000)) * time.Millisecond
		if rnd.IntN(2) == 0 {
			f.Latency = -f.Latency
		}
	}
}

func sortedInts(s []int) []int {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}
