package chaos

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
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
		return Generate(rand.New(rand.NewPCG(seed, 0)), GenerateOptions{Members: 5, Duration: 60 * time.Second, Kinds: AllKinds})
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
