package chaos

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseKinds(t *testing.T) {
	ks, err := ParseKinds("crash, loss,crash")
	require.NoError(t, err)
	require.Equal(t, []Kind{Crash, Loss}, ks)
	ks, err = ParseKinds("all")
	require.NoError(t, err)
	require.Equal(t, AllKinds, ks)
	ks, err = ParseKinds("none")
	require.NoError(t, err)
	require.Empty(t, ks)
	_, err = ParseKinds("crash,meteor")
	require.ErrorIs(t, err, ErrUnknownKind)
	require.Contains(t, err.Error(), "meteor")
}

func TestGenerateIsDeterministicAndWellFormed(t *testing.T) {
	gen := func(seed uint64) Schedule {
		return Generate(rand.New(rand.NewPCG(seed, 0)), GenerateOptions{Members: 5, Duration: 60 * time.Second, Kinds: AllKinds, Sequential: true})
	}
	a, b := gen(1), gen(1)
	require.Equal(t, a, b)
	require.NotEqual(t, a, gen(2))
	require.NotEmpty(t, a)
	end := time.Duration(0)
	for _, f := range a {
		require.GreaterOrEqual(t, f.At, end, "windows must not overlap: %s", f)
		require.Less(t, f.At+f.Duration, 60*time.Second)
		for _, m := range f.Members {
			require.Less(t, m, 5)
		}
		if f.Kind == PartitionMinority {
			require.LessOrEqual(t, len(f.Members), 2, "a minority of 5 is at most 2")
		}
		end = f.At + f.Duration
	}
	require.Empty(t, Generate(rand.New(rand.NewPCG(1, 0)), GenerateOptions{Members: 3, Duration: time.Minute}))
}

func TestScheduleJSONRoundTrip(t *testing.T) {
	s := Generate(rand.New(rand.NewPCG(3, 0)), GenerateOptions{Members: 3, Duration: 30 * time.Second, Kinds: AllKinds})
	b, err := json.Marshal(s)
	require.NoError(t, err)
	var back Schedule
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, s, back)
	require.Error(t, json.Unmarshal([]byte(`[{"kind":"meteor"}]`), &back))
	require.Equal(t, len(s), strings.Count(s.String(), "\n"))
	require.True(t, Schedule{{Kind: Crash}}.Has(Crash))
	require.False(t, Schedule{{Kind: Crash}}.Has(Pause))
}

// recorder is a fake Injector that logs calls.
type recorder struct {
	leader string
	calls  []string
}

func (r *recorder) Members() []string { return []string{"a", "b", "c", "d", "e"} }
func (r *recorder) Leader() string    { return r.leader }
func (r *recorder) Partition(a, b []string) error {
	r.calls = append(r.calls, fmt.Sprintf("partition %v %v", a, b))
	return nil
}
func (r *recorder) PartitionOneWay(a, b []string) error {
	r.calls = append(r.calls, fmt.Sprintf("oneway %v %v", a, b))
	return nil
}
func (r *recorder) DegradeLinks(l Links) error {
	r.calls = append(r.calls, fmt.Sprintf("links %+v", l))
	return nil
}
func (r *recorder) HealNetwork() error { r.calls = append(r.calls, "heal"); return nil }
func (r *recorder) Crash(m string, torn bool) error {
	r.calls = append(r.calls, fmt.Sprintf("crash %s %v", m, torn))
	return nil
}
func (r *recorder) Restart(m string) error { r.calls = append(r.calls, "restart "+m); return nil }
func (r *recorder) Pause(m string) error   { r.calls = append(r.calls, "pause "+m); return nil }
func (r *recorder) Resume(m string) error  { r.calls = append(r.calls, "resume "+m); return nil }
func (r *recorder) SetClock(m string, o time.Duration, d int64) error {
	r.calls = append(r.calls, fmt.Sprintf("clock %s %s %d", m, o, d))
	return nil
}

func TestApplyResolvesTargets(t *testing.T) {
	cases := []struct {
		f     Fault
		want  string
		after string
	}{
		{Fault{Kind: IsolateLeader}, "partition [c] [a b d e]", "heal"},
		{Fault{Kind: PartitionMinority, Members: []int{1, 4}}, "partition [b e] [a c d]", "heal"},
		{Fault{Kind: PartitionMajority}, "partition [c a] [b d e]", "heal"},
		{Fault{Kind: Bridge, Members: []int{0, 1, 2}}, "partition [b c] [d e]", "heal"},
		{Fault{Kind: OneWay, Members: []int{3}}, "oneway [d] [a b c e]", "heal"},
		{Fault{Kind: Crash, Members: []int{2}, Torn: true}, "crash c true", "restart c"},
		{Fault{Kind: Pause, Members: []int{0}}, "pause a", "resume a"},
		{Fault{Kind: ClockSkew, Members: []int{1}, Latency: time.Second, DriftPPM: 5}, "clock b 1s 5", "clock b 0s 0"},
		{Fault{Kind: Loss, Rate: 0.5}, "links loss=0.500", "heal"},
		{Fault{Kind: KillLeader, Torn: true}, "crash c true", "restart c"},
		{Fault{Kind: PauseLeader}, "pause c", "resume c"},
		{Fault{Kind: ClockJump, Members: []int{3}, Latency: -time.Minute}, "clock d -1m0s 0", "clock d 0s 0"},
	}
	for _, c := range cases {
		t.Run(string(c.f.Kind), func(t *testing.T) {
			r := &recorder{leader: "c"}
			heal, desc, err := Apply(r, c.f)
			require.NoError(t, err)
			require.NotEmpty(t, desc)
			require.Equal(t, []string{c.want}, r.calls)
			require.NoError(t, heal())
			require.Equal(t, c.after, r.calls[1])
		})
	}
	_, _, err := Apply(&recorder{}, Fault{Kind: "meteor"})
	require.ErrorIs(t, err, ErrUnknownKind)
}

// TestNaming: schedules and fault descriptions name members m1..mN and give
// times in seconds.
func TestNaming(t *testing.T) {
	f := Fault{At: 61500 * time.Millisecond, Duration: 2 * time.Second, Kind: Bridge, Members: []int{2, 0}}
	require.Equal(t, "at=61.500s  for=2.000s  bridge             members=[m3 m1]", f.String())
	require.Equal(t, "m1", MemberName(0))
	require.Equal(t, "loss=0.070 latency=0.010s-0.020s", Links{Loss: 0.07, LatencyMin: 10 * time.Millisecond, LatencyMax: 20 * time.Millisecond}.String())
	require.Equal(t, "(none)", Links{}.String())
}

func TestAnnotateMarksSkippedFaults(t *testing.T) {
	s := Schedule{{At: time.Second, Duration: time.Second, Kind: Crash, Members: []int{1}},
		{At: 3 * time.Second, Duration: time.Second, Kind: Duplicate, Rate: 0.1},
		{At: 5 * time.Second, Duration: time.Second, Kind: Reorder, Rate: 0.1},
		{At: 7 * time.Second, Duration: time.Second, Kind: Duplicate, Rate: 0.2}}
	require.Equal(t, s.String(), s.Annotate(nil))
	out := s.Annotate([]Kind{Duplicate, Reorder, ClockSkew})
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	require.Len(t, lines, 5)
	require.NotContains(t, lines[0], "skipped")
	for _, l := range lines[1:4] {
		require.Contains(t, l, "(skipped: not expressible on this backend)")
	}
	require.Equal(t, "skipped: duplicate, reorder (3 of 4 faults)", lines[4])
}

// TestGenerateOverlaps: by default network and member faults are drawn on two
// lanes that overlap; each lane alone never overlaps itself except for the
// companion network faults; the schedule is ordered by start time and stays
// inside the safety phase.
func TestGenerateOverlaps(t *testing.T) {
	overlapNetNode, overlapNetNet := 0, 0
	for seed := uint64(1); seed <= 20; seed++ {
		s := Generate(rand.New(rand.NewPCG(seed, 0)), GenerateOptions{Members: 5, Duration: 60 * time.Second, Kinds: AllKinds})
		require.Equal(t, s, Generate(rand.New(rand.NewPCG(seed, 0)), GenerateOptions{Members: 5, Duration: 60 * time.Second, Kinds: AllKinds}))
		var nodeEnd, memberEnd time.Duration
		for i, f := range s {
			require.Less(t, f.At+f.Duration, 59*time.Second+time.Millisecond)
			if i > 0 {
				require.GreaterOrEqual(t, f.At, s[i-1].At, "ordered by start")
			}
			switch {
			case f.Kind.Membership():
				require.GreaterOrEqual(t, f.At, memberEnd, "membership changes never overlap each other: %s", f)
				memberEnd = f.At + f.Duration
			case !f.Kind.Network():
				require.GreaterOrEqual(t, f.At, nodeEnd, "member faults never overlap each other: %s", f)
				nodeEnd = f.At + f.Duration
			}
			for _, g := range s[i+1:] {
				if g.At < f.At+f.Duration {
					switch {
					case f.Kind.Network() && g.Kind.Network():
						overlapNetNet++
					case f.Kind.Network() != g.Kind.Network():
						overlapNetNode++
					}
				}
			}
			if f.Kind == PauseLeader {
				require.GreaterOrEqual(t, f.Duration, 1500*time.Millisecond, "past the election timeout")
			}
			if f.Kind == PowerLoss {
				require.GreaterOrEqual(t, len(f.Members), 3, "a majority of 5")
			}
		}
	}
	require.Positive(t, overlapNetNode)
	require.Positive(t, overlapNetNet)
	// A single lane's kinds draw the same schedule as Sequential.
	o := GenerateOptions{Members: 3, Duration: 60 * time.Second, Kinds: []Kind{Crash, Pause}}
	seq := o
	seq.Sequential = true
	require.Equal(t, Generate(rand.New(rand.NewPCG(7, 0)), seq), Generate(rand.New(rand.NewPCG(7, 0)), o))
}

// scoped is a recorder with owned network faults and a clock.
type scoped struct {
	recorder
	later []func()
	notes []string
	snap  bool
}

func (s *scoped) CutLinks(a, b []string, both bool) (func() error, error) {
	s.calls = append(s.calls, fmt.Sprintf("cut %v %v %v", a, b, both))
	return func() error { s.calls = append(s.calls, fmt.Sprintf("uncut %v %v", a, b)); return nil }, nil
}
func (s *scoped) DegradeLinksScoped(l Links) (func() error, error) {
	s.calls = append(s.calls, fmt.Sprintf("degrade %s", l))
	return func() error { s.calls = append(s.calls, fmt.Sprintf("undegrade %s", l)); return nil }, nil
}
func (s *scoped) AfterFunc(d time.Duration, fn func()) {
	s.calls = append(s.calls, fmt.Sprintf("after %s", d))
	s.later = append(s.later, fn)
}
func (s *scoped) Notef(format string, args ...any) {
	s.notes = append(s.notes, fmt.Sprintf(format, args...))
}
func (s *scoped) NeedsSnapshot(m string) bool { return s.snap }

// TestApplyScopedHealsOnlyItsOwn: with a Scoped injector two overlapping
// network faults each undo only their own cut or degradation, never the
// whole network.
func TestApplyScopedHealsOnlyItsOwn(t *testing.T) {
	s := &scoped{recorder: recorder{leader: "c"}}
	h1, _, err := Apply(s, Fault{Kind: IsolateLeader})
	require.NoError(t, err)
	h2, _, err := Apply(s, Fault{Kind: Loss, Rate: 0.5})
	require.NoError(t, err)
	require.NoError(t, h1())
	require.NoError(t, h2())
	require.Equal(t, []string{"cut [c] [a b d e] true", "degrade loss=0.500", "uncut [c] [a b d e]", "undegrade loss=0.500"}, s.calls)
}

func TestApplyPowerLoss(t *testing.T) {
	r := &recorder{}
	heal, desc, err := Apply(r, Fault{Kind: PowerLoss, Members: []int{0, 2, 4}, Torn: true})
	require.NoError(t, err)
	require.Contains(t, desc, "restart together")
	require.NoError(t, heal())
	require.Equal(t, []string{"crash a true", "crash c true", "crash e true", "restart a", "restart c", "restart e"}, r.calls)

	s := &scoped{}
	heal, desc, err = Apply(s, Fault{Kind: PowerLoss, Members: []int{0, 1, 2, 3, 4}, Latency: time.Second})
	require.NoError(t, err)
	require.Contains(t, desc, "1.000s apart")
	require.NoError(t, heal())
	require.Equal(t, []string{"crash a false", "crash b false", "crash c false", "crash d false", "crash e false",
		"restart a", "after 1s", "after 2s", "after 3s", "after 4s"}, s.calls)
	for _, fn := range s.later {
		fn()
	}
	require.Equal(t, []string{"restart b", "restart c", "restart d", "restart e"}, s.calls[10:])
}

// TestApplyPartitionUntilSnapshot: the follower stays cut past the window's
// end until the probe says a snapshot is needed; the leader is never picked.
func TestApplyPartitionUntilSnapshot(t *testing.T) {
	_, _, err := Apply(&recorder{leader: "c"}, Fault{Kind: PartitionUntilSnapshot})
	require.ErrorIs(t, err, ErrUnsupported, "needs a clock and a probe")

	s := &scoped{recorder: recorder{leader: "c"}}
	heal, desc, err := Apply(s, Fault{Kind: PartitionUntilSnapshot, Members: []int{2}})
	require.NoError(t, err)
	require.Contains(t, desc, "partition d until")
	require.NoError(t, heal())
	require.Equal(t, []string{"cut [d] [a b c e] true", "after 100ms"}, s.calls)
	s.later[0]()
	require.Len(t, s.later, 2, "still waiting")
	s.snap = true
	s.later[1]()
	require.Equal(t, "uncut [d] [a b c e]", s.calls[len(s.calls)-1])
	require.Contains(t, s.notes[0], "compacted past d")

	// No compaction: it gives up after SnapshotWaitMax with a note.
	s = &scoped{recorder: recorder{leader: "a"}}
	heal, _, err = Apply(s, Fault{Kind: PartitionUntilSnapshot})
	require.NoError(t, err)
	require.NoError(t, heal())
	for i := 0; i < len(s.later); i++ {
		s.later[i]()
	}
	require.Equal(t, "uncut [b] [a c d e]", s.calls[len(s.calls)-1])
	require.Contains(t, s.notes[0], "no compaction")
	require.Len(t, s.later, int(SnapshotWaitMax/snapshotPoll))
}

// pointed is a recorder that can arm crash points.
type pointed struct{ recorder }

func (p *pointed) ArmCrash(m, point string, torn bool, reboot time.Duration) (func() error, error) {
	p.calls = append(p.calls, fmt.Sprintf("arm %q %s %v %v", m, point, torn, reboot))
	return func() error { p.calls = append(p.calls, "disarm "+point); return nil }, nil
}

func TestApplyCrashAt(t *testing.T) {
	_, _, err := Apply(&recorder{}, Fault{Kind: CrashAt, Point: "apply-mid"})
	require.ErrorIs(t, err, ErrUnsupported)
	p := &pointed{}
	heal, desc, err := Apply(p, Fault{Kind: CrashAt, Point: "apply-mid", Members: []int{1}, Torn: true})
	require.NoError(t, err)
	require.Equal(t, "crash b at apply-mid (torn=true)", desc)
	require.NoError(t, heal())
	_, desc, err = Apply(p, Fault{Kind: CrashAt, Point: "before-commit"})
	require.NoError(t, err)
	require.Equal(t, "crash any member at before-commit (torn=false)", desc)
	_, desc, err = Apply(p, Fault{Kind: CrashAt, Point: PointAfterVote, Latency: 30 * time.Millisecond})
	require.NoError(t, err)
	require.Equal(t, "crash any member at after-vote (torn=false), boot again 30ms later", desc)
	require.Equal(t, []string{`arm "b" apply-mid true 0s`, "disarm apply-mid", `arm "" before-commit false 0s`, `arm "" after-vote false 30ms`}, p.calls)
	s := Generate(rand.New(rand.NewPCG(1, 0)), GenerateOptions{Members: 3, Duration: 10 * time.Minute, Kinds: []Kind{CrashAt}})
	require.NotEmpty(t, s)
	afterVote := 0
	for _, f := range s {
		require.Contains(t, CrashPoints, f.Point)
		require.Contains(t, f.String(), " point="+f.Point)
		if f.Point == PointAfterVote {
			// It boots again within the election it voted in.
			require.Equal(t, afterVoteReboot, f.Latency)
			afterVote++
		} else {
			require.Zero(t, f.Latency, "%s boots at the fault's end", f.Point)
		}
	}
	require.Positive(t, afterVote)
}

// membered is a recorder that changes membership.
type membered struct{ recorder }

func (m *membered) RemoveMember(name string) error {
	m.calls = append(m.calls, "remove "+name)
	return nil
}
func (m *membered) AddMember(name string, learner bool) error {
	m.calls = append(m.calls, fmt.Sprintf("add %s learner=%v", name, learner))
	return nil
}
func (m *membered) PromoteMember(name string) error {
	m.calls = append(m.calls, "promote "+name)
	return nil
}

// TestApplyMembership: each membership kind removes its member at the start
// and has a member back in the slot by the end of its window.
func TestApplyMembership(t *testing.T) {
	cases := []struct {
		kind        Kind
		start, heal []string
	}{
		{MemberReplace, []string{"remove b", "add b learner=false"}, nil},
		{LearnerPromote, []string{"remove b", "add b learner=true"}, []string{"promote b"}},
		{RemoveVoter, []string{"remove b"}, []string{"add b learner=false"}},
	}
	for _, c := range cases {
		t.Run(string(c.kind), func(t *testing.T) {
			require.True(t, c.kind.Membership())
			require.False(t, c.kind.Network())
			_, _, err := Apply(&recorder{}, Fault{Kind: c.kind, Members: []int{1}})
			require.ErrorIs(t, err, ErrUnsupported)
			m := &membered{}
			heal, desc, err := Apply(m, Fault{Kind: c.kind, Members: []int{1}})
			require.NoError(t, err)
			require.Contains(t, desc, "b")
			require.Equal(t, c.start, m.calls)
			require.NoError(t, heal())
			require.Equal(t, append(slices.Clone(c.start), c.heal...), m.calls)
		})
	}
	require.False(t, Crash.Membership())
}

// TestGenerateMembershipLane: membership kinds are drawn last, on a lane of
// their own, so that adding them to the kinds leaves every other fault of a
// seed's schedule as it was; a one-member cluster gets none.
func TestGenerateMembershipLane(t *testing.T) {
	var before []Kind
	for _, k := range AllKinds {
		if !k.Membership() {
			before = append(before, k)
		}
	}
	drawn := 0
	for seed := uint64(1); seed <= 20; seed++ {
		o := GenerateOptions{Members: 3, Duration: 60 * time.Second, Kinds: before}
		old := Generate(rand.New(rand.NewPCG(seed, 0)), o)
		o.Kinds = AllKinds
		all := Generate(rand.New(rand.NewPCG(seed, 0)), o)
		var rest Schedule
		for _, f := range all {
			if f.Kind.Membership() {
				drawn++
				require.Len(t, f.Members, 1)
				require.Less(t, f.Members[0], 3)
				continue
			}
			rest = append(rest, f)
		}
		require.Equal(t, old, rest, "seed %d: the other faults moved", seed)
		o.Members = 1
		for _, f := range Generate(rand.New(rand.NewPCG(seed, 0)), o) {
			require.False(t, f.Kind.Membership(), "seed %d: %s on one member", seed, f)
		}
	}
	require.Greater(t, drawn, 20, "a few membership changes a run")
	_, _, err := Apply(&membered{}, Fault{Kind: MemberReplace})
	require.NoError(t, err)
	one := &membered{}
	_, _, err = Apply(&oneMember{one}, Fault{Kind: MemberReplace})
	require.ErrorContains(t, err, "at least 2 members")
}

// oneMember is a membered injector with a single member.
type oneMember struct{ *membered }

func (o *oneMember) Members() []string { return []string{"a"} }

// disked is a recorder whose disks can be faulted.
type disked struct{ pointed }

func (d *disked) SlowDisk(m string, base time.Duration, tail float64, tailMax time.Duration) (func() error, error) {
	d.calls = append(d.calls, fmt.Sprintf("slow %s %s %.2f %s", m, base, tail, tailMax))
	return func() error { d.calls = append(d.calls, "fast "+m); return nil }, nil
}

func (d *disked) FailSyncs(m string) (func() error, error) {
	d.calls = append(d.calls, "eio "+m)
	return func() error { d.calls = append(d.calls, "no eio "+m); return nil }, nil
}

func (d *disked) FillDisk(m string) (func() error, error) {
	d.calls = append(d.calls, "fill "+m)
	return func() error { d.calls = append(d.calls, "free "+m); return nil }, nil
}

func TestApplyDiskFaults(t *testing.T) {
	for _, k := range DiskKinds {
		_, _, err := Apply(&recorder{}, Fault{Kind: k, Members: []int{0}})
		require.ErrorIs(t, err, ErrUnsupported, "%s on a backend without disks", k)
	}
	d := &disked{}
	for _, f := range []Fault{
		{Kind: SlowFsync, Members: []int{0, 2}, Latency: 5 * time.Millisecond, Rate: 0.25},
		{Kind: FsyncEIO, Members: []int{1}},
		{Kind: DiskFull, Members: []int{3}},
		{Kind: TornWrite, Members: []int{4}},
	} {
		heal, _, err := Apply(d, f)
		require.NoError(t, err, "%s", f.Kind)
		require.NoError(t, heal())
	}
	require.Equal(t, []string{
		"slow a 5ms 0.25 1.5s", "slow c 5ms 0.25 1.5s", "fast a", "fast c",
		"eio b", "no eio b", "fill d", "free d",
		`arm "e" before-sync true 0s`, "disarm before-sync",
	}, d.calls)
}

func TestGenerateDiskFaults(t *testing.T) {
	s := Generate(rand.New(rand.NewPCG(5, 0)), GenerateOptions{Members: 3, Duration: 120 * time.Second, Kinds: DiskKinds})
	seen := map[Kind]bool{}
	for _, f := range s {
		seen[f.Kind] = true
		require.False(t, f.Kind.Network())
		require.NotEmpty(t, f.Members, "%v", f)
		if f.Kind == SlowFsync {
			require.Positive(t, f.Latency)
			require.Positive(t, f.Rate)
		} else {
			require.Len(t, f.Members, 1, "%v", f)
		}
	}
	require.Len(t, seen, len(DiskKinds), "every disk kind is drawn: %v", s)
}
