package chaos

import (
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
)

// AllKinds lists every fault kind in a fixed order.
var AllKinds = []Kind{IsolateLeader, PartitionMinority, PartitionMajority, Bridge, OneWay, Loss, Delay, Duplicate, Reorder, Crash, Pause, ClockSkew}

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
	// Rate is the probability for loss, duplication and reordering.
	Rate float64 `json:"rate,omitempty"`
	// Latency is the added delay, or the clock offset for clock-skew.
	Latency time.Duration `json:"latency,omitempty"`
	// DriftPPM is the clock drift for clock-skew.
	DriftPPM int64 `json:"drift_ppm,omitempty"`
	// Torn makes a crash tear the last unsynced write instead of dropping it whole.
	Torn bool `json:"torn,omitempty"`
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
}

// Generate draws a schedule of non-overlapping fault windows from rnd.
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
	var s Schedule
	t := o.Warmup
	for {
		d := time.Duration(500+rnd.IntN(int(o.MaxFault/time.Millisecond)-499)) * time.Millisecond
		if t+d > o.Duration-time.Second {
			break
		}
		f := Fault{At: t, Duration: d, Kind: o.Kinds[rnd.IntN(len(o.Kinds))]}
		drawTargets(rnd, &f, o.Members)
		s = append(s, f)
		t += d + time.Duration(200+rnd.IntN(2800))*time.Millisecond
	}
	return s
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
	case OneWay, Crash, Pause, ClockSkew:
		f.Members = []int{perm[0]}
	}
	switch f.Kind {
	case Loss:
		f.Rate = 0.05 + 0.25*rnd.Float64()
	case Duplicate:
		f.Rate = 0.05 + 0.3*rnd.Float64()
	case Reorder:
		f.Rate = 0.1 + 0.5*rnd.Float64()
		f.Latency = time.Duration(1+rnd.IntN(20)) * time.Millisecond
	case Delay:
		f.Latency = time.Duration(20+rnd.IntN(300)) * time.Millisecond
	case Crash:
		f.Torn = rnd.IntN(2) == 0
	case ClockSkew:
		f.Latency = time.Duration(rnd.IntN(20000)-10000) * time.Millisecond
		f.DriftPPM = int64(rnd.IntN(2001) - 1000)
	}
}

func sortedInts(s []int) []int {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}
