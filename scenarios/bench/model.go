package bench

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Model is the cluster a simulated benchmark (harness bench --backend sim)
// measures: havoc's store in the deterministic simulator, where the network,
// the disk and the members' CPU cost what the model says, in virtual time.
// It answers what-if questions (commit latency across zones, failover time
// for an election timeout) for a topology nobody has built yet. What it
// leaves out is said by Caveat.
type Model struct {
	// Members is the cluster size (3 when zero).
	Members int
	// Zones spreads the members round-robin over zones z1..zN (m1 in z1, m2
	// in z2, ...); the clients sit in ClientZone. 1 when zero.
	Zones int
	// ClientZone is the clients' zone (1 when zero).
	ClientZone int
	// RTT is the round trip between two hosts of one zone.
	RTT time.Duration
	// ZoneRTT is the round trip between two zones, unless ZoneRTTs names
	// the pair.
	ZoneRTT time.Duration
	// ZoneRTTs gives the round trip of particular zone pairs.
	ZoneRTTs []ZoneRTT
	// Spread draws each one-way latency uniformly within ±Spread of its mean
	// (a fraction in [0, 1)).
	Spread float64
	// Fsync is the mean latency of one fsync of a member's log; FsyncSpread
	// spreads it as Spread does the network's.
	Fsync       time.Duration
	FsyncSpread float64
	// Service is a member's time per client request (one queue per member).
	Service time.Duration
	// TickInterval and ElectionTicks are the members' raft timing (100 ms and
	// 10 when zero).
	TickInterval  time.Duration
	ElectionTicks int
}

// ZoneRTT is the round trip between zones A and B (numbered from 1).
type ZoneRTT struct {
	A, B int
	RTT  time.Duration
}

// The model's defaults: one data centre with a fast SSD.
const (
	DefaultRTT     = 500 * time.Microsecond
	DefaultZoneRTT = 10 * time.Millisecond
	DefaultSpread  = 0.2
	DefaultFsync   = 2 * time.Millisecond
	DefaultService = 50 * time.Microsecond
)

// Caveat says what the model's figures are and what they leave out.
const Caveat = "figures from a model in virtual time, not a measurement: " +
	"network latency, fsync latency and a fixed service time per client request are modelled; " +
	"CPU contention between members, the Go runtime, bandwidth and the page cache are not"

// Validate fills defaults and refuses what cannot run.
func (m *Model) Validate() error {
	if m.Members == 0 {
		m.Members = 3
	}
	if m.Zones == 0 {
		m.Zones = 1
	}
	if m.ClientZone == 0 {
		m.ClientZone = 1
	}
	var bad []string
	if m.Members < 1 || m.Members > 9 {
		bad = append(bad, fmt.Sprintf("members %d (want 1 to 9)", m.Members))
	}
	if m.Zones < 1 || m.Zones > m.Members {
		bad = append(bad, fmt.Sprintf("zones %d (want 1 to the member count)", m.Zones))
	}
	if m.ClientZone < 1 || m.ClientZone > m.Zones {
		bad = append(bad, fmt.Sprintf("client zone %d (want 1 to %d)", m.ClientZone, m.Zones))
	}
	if m.RTT < 0 || m.ZoneRTT < 0 || m.Fsync < 0 || m.Service < 0 || m.TickInterval < 0 || m.ElectionTicks < 0 {
		bad = append(bad, "latencies, service time and timing must not be negative")
	}
	if m.Spread < 0 || m.Spread >= 1 || m.FsyncSpread < 0 || m.FsyncSpread >= 1 {
		bad = append(bad, "spreads are fractions in [0, 1)")
	}
	for _, z := range m.ZoneRTTs {
		if z.A < 1 || z.B < 1 || z.A > m.Zones || z.B > m.Zones || z.A == z.B || z.RTT < 0 {
			bad = append(bad, fmt.Sprintf("zone round trip z%d-z%d=%s (want two distinct zones of 1 to %d)", z.A, z.B, z.RTT, m.Zones))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w: model: %s", ErrConfig, strings.Join(bad, "; "))
	}
	return nil
}

// zoneOf is the zone of member i (from 0).
func (m *Model) zoneOf(i int) int { return i%m.Zones + 1 }

// rtt is the round trip between zones a and b.
func (m *Model) rtt(a, b int) time.Duration {
	if a == b {
		return m.RTT
	}
	for _, z := range m.ZoneRTTs {
		if (z.A == a && z.B == b) || (z.A == b && z.B == a) {
			return z.RTT
		}
	}
	return m.ZoneRTT
}

// spread returns [mean(1-s), mean(1+s)].
func spread(mean time.Duration, s float64) (lo, hi time.Duration) {
	d := time.Duration(float64(mean) * s)
	return mean - d, mean + d
}

// fsync draws one fsync's latency.
func (m *Model) fsync(r *rand.Rand) time.Duration {
	lo, hi := spread(m.Fsync, m.FsyncSpread)
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(r.Int64N(int64(hi-lo)+1))
}

// String describes the model in one line, in the flags' terms.
func (m *Model) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d members", m.Members)
	if m.Zones > 1 {
		fmt.Fprintf(&b, " in %d zones (clients in z%d, zone rtt %s", m.Zones, m.ClientZone, m.ZoneRTT)
		for _, z := range m.ZoneRTTs {
			fmt.Fprintf(&b, ", z%d-z%d %s", z.A, z.B, z.RTT)
		}
		b.WriteString(")")
	}
	fmt.Fprintf(&b, ", rtt %s ±%g%%, fsync %s ±%g%%, service %s per request", m.RTT, m.Spread*100, m.Fsync, m.FsyncSpread*100, m.Service)
	return b.String()
}

// ParseZoneRTTs parses "1-2=10ms,1-3=30ms" (zone numbers, or z1-z2).
func ParseZoneRTTs(s string) ([]ZoneRTT, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []ZoneRTT
	for _, part := range strings.Split(s, ",") {
		pair, d, ok := strings.Cut(strings.TrimSpace(part), "=")
		a, b, ok2 := strings.Cut(pair, "-")
		if !ok || !ok2 {
			return nil, fmt.Errorf("%w: zone round trip %q (want A-B=DURATION, e.g. 1-2=10ms)", ErrConfig, part)
		}
		za, errA := strconv.Atoi(strings.TrimPrefix(a, "z"))
		zb, errB := strconv.Atoi(strings.TrimPrefix(b, "z"))
		rtt, errD := time.ParseDuration(d)
		if errA != nil || errB != nil || errD != nil {
			return nil, fmt.Errorf("%w: zone round trip %q (want A-B=DURATION, e.g. 1-2=10ms)", ErrConfig, part)
		}
		out = append(out, ZoneRTT{A: za, B: zb, RTT: rtt})
	}
	slices.SortFunc(out, func(x, y ZoneRTT) int {
		if x.A != y.A {
			return x.A - y.A
		}
		return x.B - y.B
	})
	return out, nil
}
