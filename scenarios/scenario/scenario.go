// Package scenario is the scenario file: one YAML document that holds
// everything a run depends on (cluster, target, workload, faults, phases,
// checks and the expected verdict), so that a run is data that can be stored,
// replayed and shared. A file maps to and from scenarios.Config (and, for a
// drill, drill.Config); decoding is strict, so a misspelt field is an
// error naming its line instead of a silently different run.
//
// Durations are written as Go durations ("60s", "1500ms"); members as m1..mN
// (the leader-relative kinds, such as kill-leader and pause-leader, name
// none: they find the leader when they start). Omitted fields take scenarios.Config's defaults, so the
// smallest scenario is a name.
package scenario

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/havoclab/havoc/chaos"
	"github.com/havoclab/havoc/linearizability"
	"github.com/havoclab/havoc/scenarios"
	"github.com/havoclab/havoc/scenarios/drill"
)

// ErrInvalid wraps every error Validate and Decode return for a scenario that
// is well-formed YAML but not a runnable scenario.
var ErrInvalid = errors.New("scenario: invalid")

// Scenario is one scenario file.
type Scenario struct {
	// Name identifies the scenario (a library scenario is run by it).
	Name string `yaml:"name"`
	// Description says in one line what the scenario exercises.
	Description string `yaml:"description,omitempty"`
	// Seed is the run's seed; 0 (or absent) draws a fresh one.
	Seed uint64 `yaml:"seed,omitempty"`
	// Backend is the backend the scenario runs on when no --backend is given:
	// sim (when empty), process or docker.
	Backend string `yaml:"backend,omitempty"`
	// Target is the store the real members run: havoc (when empty) or etcd.
	Target string `yaml:"target,omitempty"`
	// Drill, when set, runs the named drill (drill.Names) instead of
	// a fault run: it takes the cluster, workload, generator kinds, phases
	// (safety is the load phase, after the restored cluster's service) and
	// check budget from the file; the explicit schedule and the other checks
	// do not apply.
	Drill    string   `yaml:"drill,omitempty"`
	Cluster  Cluster  `yaml:"cluster,omitempty"`
	Workload Workload `yaml:"workload,omitempty"`
	Faults   Faults   `yaml:"faults,omitempty"`
	Phases   Phases   `yaml:"phases,omitempty"`
	Checks   Checks   `yaml:"checks,omitempty"`
	// Expect is the verdict the run should reach (scenarios.VerdictOK when
	// empty); the library's test holds every scenario to it.
	Expect string `yaml:"expect,omitempty"`
}

// Cluster is the members and their flags.
type Cluster struct {
	// Members is the cluster size, 1 to 9 (3 when zero).
	Members int `yaml:"members,omitempty"`
	// Tick is one raft tick, etcd's --heartbeat-interval (100ms when zero).
	Tick Duration `yaml:"tick,omitempty"`
	// ElectionTicks is the election timeout in ticks, at least 5 (10 when zero).
	ElectionTicks int `yaml:"election_ticks,omitempty"`
	// HeartbeatTicks is the heartbeat in ticks: the store beats every tick, so
	// it is 1 (or absent).
	HeartbeatTicks int `yaml:"heartbeat_ticks,omitempty"`
	// SnapshotCount is the applied entries between raft snapshots (1000 when zero).
	SnapshotCount uint64 `yaml:"snapshot_count,omitempty"`
	// CatchUpEntries is the log kept after a snapshot for slow followers
	// (5000 when zero): a follower further behind is sent a snapshot.
	CatchUpEntries uint64 `yaml:"catch_up_entries,omitempty"`
	// QuotaBackendBytes raises the NOSPACE alarm past this backend size
	// (2 GiB when zero, none when negative).
	QuotaBackendBytes int64 `yaml:"quota_backend_bytes,omitempty"`
}

// Workload is what the clients do.
type Workload struct {
	// Profile names the traffic (scenarios.Profiles: etcd when empty,
	// kubernetes, leases, admin); its mix is used unless Mix is given.
	Profile string `yaml:"profile,omitempty"`
	// Mix weighs the operation kinds (scenarios.DefaultMix when empty).
	Mix []Weight `yaml:"mix,omitempty"`
	// Clients is the number of sessions (16 when zero).
	Clients int `yaml:"clients,omitempty"`
	// Rate is the offered load in operations per second (1000 when zero).
	Rate float64 `yaml:"rate,omitempty"`
	// Keys and LeaseKeys are the key-space sizes (64 and 8 when zero).
	Keys      int `yaml:"keys,omitempty"`
	LeaseKeys int `yaml:"lease_keys,omitempty"`
	// ClientTimeout is how long a client waits for an answer (2s when zero).
	ClientTimeout Duration `yaml:"client_timeout,omitempty"`
	// LeaseTTL is the TTL of granted leases, whole seconds (1h when zero).
	LeaseTTL Duration `yaml:"lease_ttl,omitempty"`
}

// Weight is one entry of the operation mix.
type Weight struct {
	Kind         string `yaml:"kind"`
	Serializable bool   `yaml:"serializable,omitempty"`
	// Variant picks how the operation is made (scenarios.Variant: past,
	// apiserver, paged, by-mod, options; the plain one when empty).
	Variant string `yaml:"variant,omitempty"`
	Weight  int    `yaml:"weight"`
}

// Faults is either an explicit schedule or a generator; neither means no faults.
type Faults struct {
	Schedule  []Fault    `yaml:"schedule,omitempty"`
	Generator *Generator `yaml:"generator,omitempty"`
}

// Fault is one window of an explicit schedule.
type Fault struct {
	At       Duration `yaml:"at"`
	Duration Duration `yaml:"duration"`
	Kind     string   `yaml:"kind"`
	// Members are m1..mN: the cut-off side, the crashed or paused member, the
	// bridge first, the members a power loss takes.
	Members []string `yaml:"members,omitempty"`
	Params  Params   `yaml:"params,omitempty"`
}

// Params are a fault's parameters.
type Params struct {
	// Rate is the probability of loss, duplication or reordering.
	Rate float64 `yaml:"rate,omitempty"`
	// Latency is a delay's or reordering's added latency, or the gap between
	// a power loss's restarts (zero: together).
	Latency Duration `yaml:"latency,omitempty"`
	// Offset is a clock skew's or clock jump's step; DriftPPM a clock skew's
	// drift.
	Offset   Duration `yaml:"offset,omitempty"`
	DriftPPM int64    `yaml:"drift_ppm,omitempty"`
	// Torn makes a crash, kill-leader, power-loss or crash-at tear the last
	// unsynced write.
	Torn bool `yaml:"torn,omitempty"`
	// Point is crash-at's protocol step (chaos.CrashPoints).
	Point string `yaml:"point,omitempty"`
}

// Generator draws the schedule from the seed.
type Generator struct {
	// Kinds are the fault kinds drawn from ("all" expands to every kind).
	Kinds []string `yaml:"kinds"`
	// Warmup is the fault-free start (2s when zero); MaxFault the longest
	// window (5s when zero).
	Warmup   Duration `yaml:"warmup,omitempty"`
	MaxFault Duration `yaml:"max_fault,omitempty"`
}

// Phases are the lengths of the run's phases.
type Phases struct {
	// Safety is the fault phase, at least 1s (60s when zero; a drill's load
	// phase, 10s when zero).
	Safety Duration `yaml:"safety,omitempty"`
	// LivenessTimeout bounds the healed phase (30s when zero).
	LivenessTimeout Duration `yaml:"liveness_timeout,omitempty"`
	// After is how long a drill's restored cluster serves (5s when zero).
	After Duration `yaml:"after,omitempty"`
}

// Checks choose what is checked. A nil switch is on. Linearizability, the
// lease checks and convergence run in every run today: turning them off is
// refused rather than ignored.
type Checks struct {
	Linearizability *bool `yaml:"linearizability,omitempty"`
	// Watch checks the watch guarantees with Watchers sessions (2 when zero).
	Watch    *bool `yaml:"watch,omitempty"`
	Watchers int   `yaml:"watchers,omitempty"`
	Lease    *bool `yaml:"lease,omitempty"`
	// LeaseSafetyUnderSkew holds leases to never expiring early even under
	// clock skew (etcd does not promise it).
	LeaseSafetyUnderSkew bool  `yaml:"lease_safety_under_skew,omitempty"`
	Convergence          *bool `yaml:"convergence,omitempty"`
	// Budget is the checker's budget in model steps per partition
	// (linearizability.DefaultBudget when zero).
	Budget int64 `yaml:"budget,omitempty"`
}

// Duration is a time.Duration written as a Go duration string.
type Duration time.Duration

// MarshalYAML writes d in the largest whole unit of s, ms, µs that holds it
// exactly ("60s", "1500ms"), else as time.Duration.String.
func (d Duration) MarshalYAML() (any, error) {
	v := time.Duration(d)
	switch {
	case v%time.Second == 0:
		return strconv.FormatInt(int64(v/time.Second), 10) + "s", nil
	case v%time.Millisecond == 0:
		return strconv.FormatInt(int64(v/time.Millisecond), 10) + "ms", nil
	}
	return v.String(), nil
}

// UnmarshalYAML reads a Go duration string; a bare 0 is zero.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: a duration is a string like 5s", n.Line)
	}
	if n.Value == "0" {
		*d = 0
		return nil
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (write 5s, 1500ms)", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// Decode reads one scenario strictly (an unknown field is an error naming its
// line) and validates it.
func Decode(r io.Reader) (*Scenario, error) {
	dec := yaml.NewDecoder(r)
	dec.KnownFields(true)
	var s Scenario
	if err := dec.Decode(&s); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: the file is empty", ErrInvalid)
		}
		return nil, fmt.Errorf("scenario: %w", err)
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

// Load reads the scenario file at path.
func Load(path string) (*Scenario, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s, err := Decode(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// Encode writes s as YAML.
func (s *Scenario) Encode() ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(s); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Backends lists the backends that can run s: the simulator always; processes
// and Docker unless a fault needs the simulator (simOnlyKinds; overlapping
// windows, which a real run takes one at a time); not Docker if a fault is
// one of notOnDocker.
func (s *Scenario) Backends() []string {
	if s.Drill != "" {
		return []string{"sim", "process", "docker"}
	}
	if reason := s.SimOnly(); reason != "" {
		return []string{"sim"}
	}
	for _, f := range s.Faults.Schedule {
		if slices.Contains(notOnDocker, chaos.Kind(f.Kind)) {
			return []string{"sim", "process"}
		}
	}
	return []string{"sim", "process", "docker"}
}

// simOnlyKinds are the kinds real backends cannot express (as
// cluster.Process.Unsupported lists them).
var simOnlyKinds = append([]chaos.Kind{chaos.Duplicate, chaos.Reorder, chaos.ClockSkew, chaos.ClockJump, chaos.PartitionUntilSnapshot},
	chaos.DiskKinds...)

// notOnDocker are the kinds processes express but Docker does not (as
// cluster.Docker.Unsupported adds them): the membership changes.
var notOnDocker = []chaos.Kind{chaos.MemberReplace, chaos.LearnerPromote, chaos.RemoveVoter}

// SimOnly says why only the simulator can run s ("" if a real backend can).
func (s *Scenario) SimOnly() string {
	var kinds []string
	if s.Faults.Generator != nil {
		kinds = s.Faults.Generator.Kinds
	}
	var end time.Duration
	for _, f := range s.Faults.Schedule {
		kinds = append(kinds, f.Kind)
		if time.Duration(f.At) < end {
			return fmt.Sprintf("fault windows overlap at %s", time.Duration(f.At))
		}
		end = time.Duration(f.At + f.Duration)
	}
	for _, k := range kinds {
		if slices.Contains(simOnlyKinds, chaos.Kind(k)) {
			return fmt.Sprintf("fault %s needs the simulator", k)
		}
		if k == "all" {
			return "fault kinds include some only the simulator can express"
		}
	}
	return ""
}

// Summary is s on one line: members, workload, phases and faults.
func (s *Scenario) Summary() string {
	c, err := s.Config()
	if err != nil {
		return "invalid: " + err.Error()
	}
	faults := "no faults"
	switch {
	case len(s.Faults.Schedule) > 0:
		faults = fmt.Sprintf("%d scheduled faults", len(s.Faults.Schedule))
	case s.Faults.Generator != nil && len(s.Faults.Generator.Kinds) > 0:
		faults = "faults drawn from " + strings.Join(s.Faults.Generator.Kinds, ",")
	}
	head := ""
	if s.Drill != "" {
		head = "drill " + s.Drill + ", "
	}
	return fmt.Sprintf("%s%d members, %d clients at %s ops/s, %s safety, %s, expect %s", head, c.Members, c.Workload.Clients,
		strconv.FormatFloat(c.Workload.Rate, 'g', -1, 64), scenarios.Seconds(c.Duration), faults, s.expect())
}

func (s *Scenario) expect() string {
	if s.Expect == "" {
		return scenarios.VerdictOK
	}
	return s.Expect
}

// ExpectedVerdict is the verdict the scenario should reach.
func (s *Scenario) ExpectedVerdict() string { return s.expect() }

// mixKinds are the operation kinds a mix may weigh.
var mixKinds = []linearizability.Kind{linearizability.KindGet, linearizability.KindPut, linearizability.KindDelete,
	linearizability.KindRange, linearizability.KindCAS, linearizability.KindLeaseGrant, linearizability.KindPutLease,
	linearizability.KindLeaseRevoke, linearizability.KindCompact, linearizability.KindDefrag, linearizability.KindTxn}

// mixVariants are the variants a mix entry may name.
var mixVariants = []scenarios.Variant{"", scenarios.VariantPast, scenarios.VariantAPIServer, scenarios.VariantPaged, scenarios.VariantByMod, scenarios.VariantOptions}

// verdicts are the verdicts Expect may name.
var verdicts = []string{scenarios.VerdictOK, scenarios.VerdictIllegal, scenarios.VerdictNoLiveness, scenarios.VerdictInconclusive,
	scenarios.VerdictFailed, scenarios.VerdictWatch, scenarios.VerdictLease, scenarios.VerdictPanic, scenarios.VerdictDivergence}

// Validate checks s without changing it; the error names every problem, each
// by its field.
func (s *Scenario) Validate() error {
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if s.Name == "" {
		bad("name: required")
	}
	switch s.Backend {
	case "", "sim", "process", "docker":
	default:
		bad("backend: %q (want sim, process or docker)", s.Backend)
	}
	switch s.Target {
	case "", "havoc", "etcd":
	default:
		bad("target: %q (want havoc or etcd)", s.Target)
	}
	if s.Drill != "" && !slices.Contains(drill.Names, s.Drill) {
		bad("drill: %q (want one of %s)", s.Drill, strings.Join(drill.Names, ", "))
	}
	if s.Drill != "" && len(s.Faults.Schedule) > 0 {
		bad("faults.schedule: a drill draws its faults (use faults.generator)")
	}
	if !slices.Contains(verdicts, s.expect()) {
		bad("expect: %q (want one of %s)", s.Expect, strings.Join(verdicts, ", "))
	}
	cl := s.Cluster
	if cl.Members < 0 || cl.Members > 9 {
		bad("cluster.members: %d (want 1 to 9)", cl.Members)
	}
	if cl.Tick < 0 || cl.Tick > 0 && time.Duration(cl.Tick) < time.Millisecond {
		bad("cluster.tick: %s (want at least 1ms)", time.Duration(cl.Tick))
	}
	if cl.ElectionTicks != 0 && cl.ElectionTicks < 5 {
		bad("cluster.election_ticks: %d (want at least 5)", cl.ElectionTicks)
	}
	if cl.HeartbeatTicks != 0 && cl.HeartbeatTicks != 1 {
		bad("cluster.heartbeat_ticks: %d (the store sends a heartbeat every tick: 1)", cl.HeartbeatTicks)
	}
	w := s.Workload
	if w.Clients < 0 {
		bad("workload.clients: %d (want at least 1)", w.Clients)
	}
	if w.Rate < 0 {
		bad("workload.rate: %v (want positive)", w.Rate)
	}
	if w.Keys < 0 || w.LeaseKeys < 0 {
		bad("workload.keys %d, lease_keys %d (want at least 1)", w.Keys, w.LeaseKeys)
	}
	if w.ClientTimeout < 0 {
		bad("workload.client_timeout: %s (want positive)", time.Duration(w.ClientTimeout))
	}
	if w.LeaseTTL < 0 || time.Duration(w.LeaseTTL)%time.Second != 0 {
		bad("workload.lease_ttl: %s (want whole seconds)", time.Duration(w.LeaseTTL))
	}
	if _, ok := scenarios.Profiles[w.Profile]; w.Profile != "" && !ok {
		bad("workload.profile: %q is not a profile", w.Profile)
	}
	total := 0
	for i, m := range w.Mix {
		if !slices.Contains(mixKinds, linearizability.Kind(m.Kind)) {
			bad("workload.mix[%d].kind: %q is not an operation kind", i, m.Kind)
		}
		if !slices.Contains(mixVariants, scenarios.Variant(m.Variant)) {
			bad("workload.mix[%d].variant: %q is not a variant (past, apiserver, paged, by-mod, options)", i, m.Variant)
		}
		if m.Weight < 0 {
			bad("workload.mix[%d].weight: %d (want 0 or more)", i, m.Weight)
		}
		total += m.Weight
	}
	if len(w.Mix) > 0 && total == 0 {
		bad("workload.mix: every weight is zero")
	}
	ph := s.Phases
	if ph.Safety != 0 && time.Duration(ph.Safety) < time.Second {
		bad("phases.safety: %s (want at least 1s)", time.Duration(ph.Safety))
	}
	if ph.LivenessTimeout < 0 || ph.After < 0 {
		bad("phases: negative liveness_timeout or after")
	}
	ck := s.Checks
	for name, on := range map[string]*bool{"linearizability": ck.Linearizability, "lease": ck.Lease, "convergence": ck.Convergence} {
		if on != nil && !*on {
			bad("checks.%s: false is not supported (every run checks it)", name)
		}
	}
	if ck.Watchers < 0 {
		bad("checks.watchers: %d (want 1 or more; watch: false for none)", ck.Watchers)
	}
	if ck.Watch != nil && !*ck.Watch && ck.Watchers > 0 {
		bad("checks.watchers: %d with watch: false", ck.Watchers)
	}
	if ck.Budget < 0 {
		bad("checks.budget: %d (want positive)", ck.Budget)
	}
	errs = append(errs, s.validateFaults()...)
	if len(errs) == 0 {
		return nil
	}
	slices.Sort(errs)
	return fmt.Errorf("%w: %s: %s", ErrInvalid, s.Name, strings.Join(errs, "; "))
}

func (s *Scenario) validateFaults() []string {
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	f := s.Faults
	if f.Generator != nil && len(f.Schedule) > 0 {
		bad("faults: a schedule or a generator, not both")
	}
	if g := f.Generator; g != nil {
		if len(g.Kinds) != 1 || g.Kinds[0] != "all" && g.Kinds[0] != "none" {
			for _, k := range g.Kinds {
				if !slices.Contains(chaos.AllKinds, chaos.Kind(k)) {
					bad("faults.generator.kinds: %q (want all, none, or kinds of %s)", k, kindList())
				}
			}
		}
		if g.Warmup < 0 || g.MaxFault != 0 && time.Duration(g.MaxFault) < 500*time.Millisecond {
			bad("faults.generator: warmup %s, max_fault %s (want 0 or more, and at least 500ms)", time.Duration(g.Warmup), time.Duration(g.MaxFault))
		}
	}
	members := s.Cluster.Members
	if members == 0 {
		members = 3
	}
	safety := time.Duration(s.Phases.Safety)
	if safety == 0 {
		safety = 60 * time.Second
	}
	for i, ft := range f.Schedule {
		if _, err := ft.fault(members); err != nil {
			bad("faults.schedule[%d]: %v", i, err)
			continue
		}
		if i > 0 && ft.At < f.Schedule[i-1].At {
			bad("faults.schedule[%d]: at %s is before the previous fault's", i, time.Duration(ft.At))
		}
		if end := time.Duration(ft.At + ft.Duration); end > safety {
			bad("faults.schedule[%d]: ends at %s, after the safety phase (%s)", i, end, safety)
		}
	}
	return errs
}

// needsMembers lists the kinds whose members must be named, with what they are.
var needsMembers = map[chaos.Kind]string{
	chaos.PartitionMinority: "the cut-off side", chaos.Bridge: "the bridge, then one side",
	chaos.OneWay: "the senders", chaos.Crash: "one member", chaos.Pause: "one member", chaos.ClockSkew: "one member",
	chaos.ClockJump: "one member", chaos.PartitionUntilSnapshot: "one follower (the next member if it leads)",
	chaos.PowerLoss:       "the members that lose power",
	chaos.ClientPartition: "the members the clients are cut from", chaos.ClientStall: "the member the clients stop reading",
	chaos.MemberReplace: "one member", chaos.LearnerPromote: "one member", chaos.RemoveVoter: "one member",
	chaos.SlowFsync: "the members whose disks are slow", chaos.FsyncEIO: "one member", chaos.DiskFull: "one member",
	chaos.TornWrite: "one member",
}

// oneMember are the kinds that take exactly one member.
var oneMember = []chaos.Kind{chaos.Crash, chaos.Pause, chaos.ClockSkew, chaos.ClockJump, chaos.PartitionUntilSnapshot, chaos.ClientStall,
	chaos.MemberReplace, chaos.LearnerPromote, chaos.RemoveVoter,
	chaos.FsyncEIO, chaos.DiskFull, chaos.TornWrite}

// clockKinds take an offset; tornKinds may tear a write.
var (
	clockKinds = []chaos.Kind{chaos.ClockSkew, chaos.ClockJump}
	tornKinds  = []chaos.Kind{chaos.Crash, chaos.KillLeader, chaos.PowerLoss, chaos.CrashAt}
)

// fault is f as a chaos.Fault of a cluster of members.
func (f Fault) fault(members int) (chaos.Fault, error) {
	k := chaos.Kind(f.Kind)
	if !slices.Contains(chaos.AllKinds, k) {
		return chaos.Fault{}, fmt.Errorf("kind %q (want one of %s)", f.Kind, kindList())
	}
	if f.At < 0 || time.Duration(f.Duration) <= 0 {
		return chaos.Fault{}, fmt.Errorf("at %s for %s (want at >= 0 and a positive duration)", time.Duration(f.At), time.Duration(f.Duration))
	}
	out := chaos.Fault{At: time.Duration(f.At), Duration: time.Duration(f.Duration), Kind: k, Rate: f.Params.Rate,
		DriftPPM: f.Params.DriftPPM, Torn: f.Params.Torn, Point: f.Params.Point}
	switch {
	case k == chaos.CrashAt && !slices.Contains(chaos.CrashPoints, f.Params.Point):
		return chaos.Fault{}, fmt.Errorf("params.point: %q (want one of %s)", f.Params.Point, strings.Join(chaos.CrashPoints, ", "))
	case k != chaos.CrashAt && f.Params.Point != "":
		return chaos.Fault{}, fmt.Errorf("params.point: for crash-at only, not %s", k)
	}
	for _, m := range f.Members {
		i, err := strconv.Atoi(strings.TrimPrefix(m, "m"))
		if !strings.HasPrefix(m, "m") || err != nil || i < 1 || i > members {
			return chaos.Fault{}, fmt.Errorf("members: %q (want m1 to m%d)", m, members)
		}
		if slices.Contains(out.Members, i-1) {
			return chaos.Fault{}, fmt.Errorf("members: %s twice", m)
		}
		out.Members = append(out.Members, i-1)
	}
	want, needs := needsMembers[k]
	switch {
	case k == chaos.CrashAt && len(f.Members) > 1:
		return chaos.Fault{}, errors.New("crash-at takes one member, or none for any member")
	case k == chaos.CrashAt:
	case needs && len(f.Members) == 0:
		return chaos.Fault{}, fmt.Errorf("%s needs members: %s", k, want)
	case !needs && len(f.Members) > 0:
		return chaos.Fault{}, fmt.Errorf("%s takes no members", k)
	case slices.Contains(oneMember, k) && len(f.Members) != 1:
		return chaos.Fault{}, fmt.Errorf("%s takes one member", k)
	case k == chaos.Bridge && (len(f.Members) < 2 || len(f.Members) > members-1):
		return chaos.Fault{}, fmt.Errorf("bridge takes the bridge and one side (2 to %d members)", members-1)
	case k == chaos.PartitionMinority && len(f.Members) >= members:
		return chaos.Fault{}, errors.New("partition-minority: the cut-off side cannot be every member")
	}
	if f.Params.Latency != 0 && f.Params.Offset != 0 {
		return chaos.Fault{}, errors.New("params: latency or offset, not both")
	}
	out.Latency = time.Duration(f.Params.Latency + f.Params.Offset)
	if slices.Contains(clockKinds, k) && f.Params.Latency != 0 {
		return chaos.Fault{}, fmt.Errorf("params: %s takes offset, not latency", k)
	}
	if !slices.Contains(clockKinds, k) && f.Params.Offset != 0 || k != chaos.ClockSkew && f.Params.DriftPPM != 0 {
		return chaos.Fault{}, fmt.Errorf("params: offset is for clock-skew and clock-jump, drift_ppm for clock-skew, not %s", k)
	}
	if f.Params.Rate < 0 || f.Params.Rate > 1 {
		return chaos.Fault{}, fmt.Errorf("params.rate: %v (want 0 to 1)", f.Params.Rate)
	}
	if f.Params.Torn && !slices.Contains(tornKinds, k) {
		return chaos.Fault{}, errors.New("params.torn: for crash, kill-leader, power-loss and crash-at only")
	}
	return out, nil
}

func kindList() string {
	s := make([]string, len(chaos.AllKinds))
	for i, k := range chaos.AllKinds {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}
