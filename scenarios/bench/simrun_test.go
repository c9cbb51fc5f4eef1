package bench

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/havoclab/havoc/chaos"
)

// exact is a model without spread or service time, so that every latency is
// a sum of the model's round trips and fsyncs.
func exact(members int) Model {
	return Model{Members: members, RTT: 10 * time.Millisecond, Fsync: 2 * time.Millisecond}
}

func simPut(clients int) Config {
	return Config{Workload: WorkloadPut, Clients: clients, Duration: 3 * time.Second, Warmup: 500 * time.Millisecond, Seed: 1}
}

// With one member, a put costs exactly one round trip from the client plus
// one fsync of the member's log.
func TestSimModelOneMemberIsRoundTripPlusFsync(t *testing.T) {
	r, err := RunSim(simPut(1), exact(1))
	require.NoError(t, err)
	require.Len(t, r.Ops, 1)
	l := r.Ops[0].Latency
	// The histograms keep three significant digits.
	assert.InEpsilon(t, 12.0, l.Min, 1e-3)
	assert.InEpsilon(t, 12.0, l.Max, 1e-3)
	assert.InDelta(t, 1000/12.0, r.Ops[0].Throughput, 1)
}

// With three members, a put the leader serves costs the client's round trip,
// one round trip to the nearest follower (the nearest quorum of three) and
// one fsync: the leader sends its append before it writes its own log (as
// etcd's does), so its fsync overlaps the follower's. Checked for the leader
// each seed elects, across three zones of unequal distance.
func TestSimModelCommitIsNearestQuorumRoundTripPlusFsyncs(t *testing.T) {
	m := Model{Members: 3, Zones: 3, ClientZone: 1, RTT: 0, Fsync: 2 * time.Millisecond,
		ZoneRTTs: []ZoneRTT{{1, 2, 10 * time.Millisecond}, {1, 3, 30 * time.Millisecond}, {2, 3, 24 * time.Millisecond}}}
	require.NoError(t, m.Validate())
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	leaders := map[string]bool{}
	for seed := uint64(1); seed <= 6; seed++ {
		cfg := simPut(1)
		cfg.Seed = seed
		r, leader, err := runSim(cfg, m)
		require.NoError(t, err)
		leaders[leader] = true
		lz := map[string]int{"m1": 1, "m2": 2, "m3": 3}[leader]
		nearest := time.Duration(1 << 62)
		for z := 1; z <= 3; z++ {
			if z != lz {
				nearest = min(nearest, m.rtt(lz, z))
			}
		}
		want := ms(m.rtt(m.ClientZone, lz) + nearest + m.Fsync)
		require.Len(t, r.Ops, 1)
		assert.InEpsilon(t, want, r.Ops[0].Latency.Min, 1e-3, "seed %d, leader %s", seed, leader)
	}
	assert.Greater(t, len(leaders), 1, "the seeds elect different leaders, so the zones matter")
}

// The same configuration, model and seed give the same report; another seed
// draws other latencies.
func TestSimBenchIsDeterministic(t *testing.T) {
	m := Model{}
	require.NoError(t, m.Validate())
	m.RTT, m.Spread, m.Fsync, m.FsyncSpread, m.Service = DefaultRTT, DefaultSpread, DefaultFsync, DefaultSpread, DefaultService
	run := func(seed uint64) []byte {
		cfg := simPut(8)
		cfg.Seed = seed
		r, err := RunSim(cfg, m)
		require.NoError(t, err)
		b, err := json.Marshal(r)
		require.NoError(t, err)
		return b
	}
	a := run(7)
	require.Equal(t, a, run(7))
	require.NotEqual(t, a, run(8))
}

// Every workload runs in the simulator and answers without errors.
func TestSimBenchWorkloads(t *testing.T) {
	m := Model{RTT: DefaultRTT, Fsync: DefaultFsync, Service: DefaultService}
	for _, wl := range Workloads {
		t.Run(string(wl), func(t *testing.T) {
			cfg := Config{Workload: wl, Clients: 4, Duration: 2 * time.Second, Warmup: 200 * time.Millisecond, KeySpace: 300, Limit: 50, Watchers: 2, Seed: 3}
			r, err := RunSim(cfg, m)
			require.NoError(t, err)
			require.NotEmpty(t, r.Ops)
			for _, op := range r.Ops {
				assert.Zero(t, op.Errors, "%s", op.Op)
				assert.Positive(t, op.Count, "%s", op.Op)
			}
			if wl == WorkloadWatch {
				var names []string
				for _, op := range r.Ops {
					names = append(names, op.Op)
				}
				assert.Contains(t, names, opWatch)
			}
		})
	}
}

// An open loop at a rate the cluster sustains answers about that rate.
func TestSimBenchOpenLoop(t *testing.T) {
	cfg := simPut(32)
	cfg.Rate = 200
	r, err := RunSim(cfg, Model{RTT: DefaultRTT, Fsync: DefaultFsync})
	require.NoError(t, err)
	assert.InDelta(t, 200, r.Ops[0].Throughput, 5)
}

// Killing the leader makes writes unavailable for about an election timeout
// (1 s to 2 s with raft's randomized timeout and 100 ms ticks, counted from
// the last heartbeat, up to a tick before the kill), then the workload
// recovers (the requests the dead leader held time out after a second).
func TestSimBenchFailover(t *testing.T) {
	cfg := simPut(8)
	cfg.Duration = 7 * time.Second
	cfg.Timeout = time.Second
	cfg.Faults = []Fault{{Kind: KillLeader, At: 2 * time.Second, For: 3 * time.Second}}
	r, err := RunSim(cfg, Model{RTT: DefaultRTT, Fsync: DefaultFsync})
	require.NoError(t, err)
	require.Len(t, r.Faults, 1)
	f := r.Faults[0]
	assert.Empty(t, f.Err)
	assert.Contains(t, f.Desc, string(chaos.Crash))
	assert.Greater(t, f.WriteUnavailable, 900*time.Millisecond)
	assert.Less(t, f.WriteUnavailable, 2500*time.Millisecond)
	assert.GreaterOrEqual(t, f.Recovered, f.WriteUnavailable-time.Second)
	assert.Positive(t, f.Recovered)
}

func TestModelRefusesBadInput(t *testing.T) {
	for _, m := range []Model{
		{Members: 10},
		{Members: 3, Zones: 4},
		{Members: 3, Zones: 2, ClientZone: 3},
		{Spread: 1},
		{Fsync: -time.Second},
		{Members: 3, Zones: 2, ZoneRTTs: []ZoneRTT{{1, 1, time.Millisecond}}},
	} {
		err := m.Validate()
		require.ErrorIs(t, err, ErrConfig, "%+v", m)
	}
	z, err := ParseZoneRTTs("z2-z3=25ms, 1-2=10ms")
	require.NoError(t, err)
	require.Equal(t, []ZoneRTT{{1, 2, 10 * time.Millisecond}, {2, 3, 25 * time.Millisecond}}, z)
	for _, bad := range []string{"1-2", "1=5ms", "a-b=1ms", "1-2=fast"} {
		_, err := ParseZoneRTTs(bad)
		require.ErrorIs(t, err, ErrConfig, bad)
	}
}
