package scenario

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/havoclab/havoc/chaos"
	"github.com/havoclab/havoc/scenarios"
)

// defaultRun is the configuration of `harness run --seed 7` with no other flag.
func defaultRun(t *testing.T) scenarios.Config {
	c := scenarios.Config{Seed: 7, Members: 3, Duration: 60 * time.Second, Faults: chaos.AllKinds,
		Workload: scenarios.Workload{Clients: 16, Rate: 1000}}
	require.NoError(t, c.Validate())
	return c
}

// roundTrip encodes c as a scenario file, decodes it and returns its Config.
func roundTrip(t *testing.T, c scenarios.Config) (scenarios.Config, []byte) {
	t.Helper()
	s, err := FromConfig("rt", c)
	require.NoError(t, err)
	b, err := s.Encode()
	require.NoError(t, err)
	back, err := Decode(bytes.NewReader(b))
	require.NoError(t, err, "%s", b)
	got, err := back.Config()
	require.NoError(t, err, "%s", b)
	return got, b
}

// normal is c as a run sees it: an empty schedule or kind list is none.
func normal(c scenarios.Config) scenarios.Config {
	if len(c.Schedule) == 0 {
		c.Schedule = nil
	}
	if len(c.Faults) == 0 {
		c.Faults = nil
	}
	return c
}

func TestDefaultRunRoundTrips(t *testing.T) {
	c := defaultRun(t)
	got, b := roundTrip(t, c)
	require.Equal(t, c, got, "%s", b)
	require.True(t, scenarios.FlagsExpress(got), "the default run is expressible as flags")
	require.Contains(t, string(b), "safety: 60s")
	require.Contains(t, string(b), "kinds:\n      - isolate-leader")
}

// randomConfig draws a valid configuration: any field a scenario file holds.
func randomConfig(r *rand.Rand) scenarios.Config {
	members := 1 + r.IntN(9)
	c := scenarios.Config{
		Seed: r.Uint64() >> 1, Members: members, Duration: time.Second + time.Duration(r.Int64N(int64(90*time.Second))),
		LivenessTimeout: time.Duration(1 + r.Int64N(int64(time.Minute))), SnapshotCount: uint64(1 + r.IntN(5000)),
		Watchers: r.IntN(5) - 1, LeaseSafetyUnderSkew: r.IntN(2) == 0, CheckBudget: 1 + r.Int64N(1e7),
		TickInterval: time.Millisecond * time.Duration(1+r.IntN(200)), ElectionTicks: 5 + r.IntN(20),
		QuotaBackendBytes: r.Int64N(1<<32) - 1<<20,
		Workload: scenarios.Workload{Clients: 1 + r.IntN(64), Rate: 1 + r.Float64()*5000, Keys: 1 + r.IntN(500),
			LeaseKeys: 1 + r.IntN(20), Timeout: time.Duration(1 + r.Int64N(int64(10*time.Second))), LeaseTTL: 1 + r.Int64N(7200)},
	}
	if c.Watchers == 0 {
		c.Watchers = -1
	}
	profiles := scenarios.ProfileNames()
	c.Workload.Profile = profiles[r.IntN(len(profiles))]
	if r.IntN(2) == 0 { // a mix of its own, from the operations the profiles make
		for range 1 + r.IntN(6) {
			mix := scenarios.Profiles[profiles[r.IntN(len(profiles))]]
			m := mix[r.IntN(len(mix))]
			m.Serializable, m.Weight = r.IntN(2) == 0, 1+r.IntN(30)
			c.Workload.Mix = append(c.Workload.Mix, m)
		}
	}
	kinds := []chaos.Kind{}
	for range r.IntN(6) {
		kinds = append(kinds, chaos.AllKinds[r.IntN(len(chaos.AllKinds))])
	}
	if r.IntN(2) == 0 || members < 3 {
		c.Faults = kinds
		c.FaultWarmup = time.Duration(r.Int64N(int64(5 * time.Second)))
		c.FaultMax = 500*time.Millisecond + time.Duration(r.Int64N(int64(10*time.Second)))
		return c
	}
	if len(kinds) > 0 {
		c.Schedule = chaos.Generate(r, chaos.GenerateOptions{Members: members, Duration: c.Duration, Kinds: kinds})
	}
	return c
}

// TestConfigRoundTrip: Config -> YAML -> Config is the identity (on the
// configuration as a run sees it, defaults filled).
func TestConfigRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	n := 300
	if testing.Short() {
		n = 50
	}
	for i := range n {
		c := randomConfig(r)
		require.NoError(t, c.Validate(), "config %d", i)
		got, b := roundTrip(t, c)
		require.Equal(t, normal(c), normal(got), "config %d:\n%s", i, b)
		// Once written, a file is a fixed point.
		again, b2 := roundTrip(t, got)
		require.Equal(t, normal(got), normal(again))
		require.Equal(t, string(b), string(b2))
	}
}

func TestDecodeIsStrict(t *testing.T) {
	_, err := Decode(strings.NewReader("name: x\ncluster:\n  members: 3\n  membrs: 5\n"))
	require.Error(t, err)
	require.Contains(t, err.Error(), "line 4")
	require.Contains(t, err.Error(), "membrs")

	_, err = Decode(strings.NewReader("name: x\nphases:\n  safety: ten\n"))
	require.ErrorContains(t, err, "line 3")

	_, err = Decode(strings.NewReader(""))
	require.ErrorIs(t, err, ErrInvalid)
}

func TestValidate(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"description: x\n", "name: required"},
		{"name: x\nbackend: vm\n", "backend"},
		{"name: x\ntarget: zk\n", "target"},
		{"name: x\ndrill: fire\n", "drill"},
		{"name: x\nexpect: fine\n", "expect"},
		{"name: x\ncluster: {members: 12}\n", "cluster.members"},
		{"name: x\ncluster: {election_ticks: 2}\n", "election_ticks"},
		{"name: x\ncluster: {heartbeat_ticks: 3}\n", "heartbeat_ticks"},
		{"name: x\nworkload: {profile: kube}\n", "workload.profile"},
		{"name: x\nworkload: {mix: [{kind: get, variant: sideways, weight: 1}]}\n", "mix[0].variant"},
		{"name: x\nworkload: {mix: [{kind: scan, weight: 1}]}\n", "mix[0].kind"},
		{"name: x\nworkload: {lease_ttl: 1500ms}\n", "lease_ttl"},
		{"name: x\nchecks: {linearizability: false}\n", "checks.linearizability"},
		{"name: x\nchecks: {watchers: -1}\n", "checks.watchers"},
		{"name: x\nchecks: {watch: false, watchers: 2}\n", "watch: false"},
		{"name: x\nfaults: {generator: {kinds: [meteor]}}\n", "meteor"},
		{"name: x\nfaults: {generator: {kinds: [crash]}, schedule: [{at: 1s, duration: 1s, kind: crash, members: [m1]}]}\n", "not both"},
		{"name: x\nfaults: {schedule: [{at: 1s, duration: 1s, kind: crash}]}\n", "needs members"},
		{"name: x\nfaults: {schedule: [{at: 1s, duration: 1s, kind: crash, members: [m4]}]}\n", "m1 to m3"},
		{"name: x\nfaults: {schedule: [{at: 1s, duration: 1s, kind: kill-leader, members: [m1]}]}\n", "takes no members"},
		{"name: x\nfaults: {schedule: [{at: 1s, duration: 1s, kind: clock-jump, members: [m1], params: {latency: 1s}}]}\n", "takes offset"},
		{"name: x\nfaults: {schedule: [{at: 1s, duration: 1s, kind: pause, members: [m1], params: {torn: true}}]}\n", "params.torn"},
		{"name: x\nfaults: {schedule: [{at: 1s, duration: 1s, kind: partition-minority, members: [m1, m2, m3]}]}\n", "every member"},
		{"name: x\nphases: {safety: 10s}\nfaults: {schedule: [{at: 9s, duration: 2s, kind: loss, params: {rate: 0.5}}]}\n", "after the safety phase"},
		{"name: x\nfaults: {schedule: [{at: 1s, duration: 1s, kind: delay, params: {offset: 1s}}]}\n", "clock-skew"},
		{"name: x\nfaults: {schedule: [{at: 1s, duration: 1s, kind: crash-at}]}\n", "params.point"},
		{"name: x\nfaults: {schedule: [{at: 1s, duration: 1s, kind: crash-at, params: {point: nowhere}}]}\n", "params.point"},
		{"name: x\nfaults: {schedule: [{at: 1s, duration: 1s, kind: crash, members: [m1], params: {point: apply-mid}}]}\n", "for crash-at only"},
		{"name: x\nfaults: {schedule: [{at: 1s, duration: 1s, kind: crash-at, members: [m1, m2], params: {point: apply-mid}}]}\n", "one member, or none"},
	} {
		_, err := Decode(strings.NewReader(c.yaml))
		require.ErrorIs(t, err, ErrInvalid, c.yaml)
		require.ErrorContains(t, err, c.want, c.yaml)
	}
}

func TestScheduleMapsToFaults(t *testing.T) {
	s, err := Decode(strings.NewReader("name: x\nfaults:\n  schedule:\n    - {at: 2s, duration: 3s, kind: pause-leader}\n" +
		"    - {at: 6s, duration: 1s, kind: power-loss, members: [m1, m3], params: {torn: true, latency: 300ms}}\n"))
	require.NoError(t, err)
	c, err := s.Config()
	require.NoError(t, err)
	require.Equal(t, chaos.Schedule{{At: 2 * time.Second, Duration: 3 * time.Second, Kind: chaos.PauseLeader},
		{At: 6 * time.Second, Duration: time.Second, Kind: chaos.PowerLoss, Members: []int{0, 2}, Torn: true, Latency: 300 * time.Millisecond}}, c.Schedule)
	require.Equal(t, []string{"sim", "process", "docker"}, s.Backends())
}

func TestBackends(t *testing.T) {
	s, err := Decode(strings.NewReader("name: x\nfaults:\n  generator: {kinds: [crash, clock-jump]}\n"))
	require.NoError(t, err)
	require.Equal(t, []string{"sim"}, s.Backends())
	s, err = Decode(strings.NewReader("name: x\nfaults:\n  schedule:\n    - {at: 2s, duration: 3s, kind: member-replace, members: [m2]}\n"))
	require.NoError(t, err)
	require.Equal(t, []string{"sim", "process"}, s.Backends(), "processes change membership, Docker does not")
	s, err = Decode(strings.NewReader("name: x\nfaults:\n  schedule:\n    - {at: 2s, duration: 3s, kind: crash, members: [m1]}\n    - {at: 2s, duration: 3s, kind: crash, members: [m2]}\n"))
	require.NoError(t, err)
	require.Equal(t, []string{"sim"}, s.Backends())
	require.Contains(t, s.SimOnly(), "overlap")
}

// FuzzDecode: no input makes Decode panic, and a file it accepts is a fixed
// point of Config -> FromConfig -> Encode -> Decode -> Config.
func FuzzDecode(f *testing.F) {
	f.Add([]byte("name: x\n"))
	f.Add([]byte("name: x\nfaults:\n  schedule:\n    - {at: 2s, duration: 3s, kind: pause-leader}\n"))
	f.Add([]byte("name: x\nworkload: {clients: 2, mix: [{kind: put, weight: 1}]}\nfaults: {generator: {kinds: [all]}}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Decode(bytes.NewReader(b))
		if err != nil {
			return
		}
		c, err := s.Config()
		if err != nil {
			return // a field Validate cannot see (a zero after an override) may still be refused
		}
		got, _ := roundTrip(t, c)
		require.Equal(t, normal(c), normal(got))
	})
}
