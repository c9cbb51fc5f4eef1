package scenarios

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/havoclab/havoc/chaos"
	"github.com/havoclab/havoc/cluster"
	"github.com/havoclab/havoc/internal/detrand"
	"github.com/havoclab/havoc/internal/tamper"
	"github.com/havoclab/havoc/internal/testhook"
	"github.com/havoclab/havoc/linearizability"
	"github.com/havoclab/havoc/sim"
	"github.com/havoclab/havoc/store"
)

// Config is a simulated run. Everything it does follows from these values, so the
// same Config replays the same run byte for byte.
type Config struct {
	Seed     uint64        `json:"seed"`
	Members  int           `json:"members"`  // 3 when zero
	Duration time.Duration `json:"duration"` // safety phase, 60 s when zero
	// Faults are the kinds drawn into the schedule (none when empty).
	Faults []chaos.Kind `json:"faults"`
	// Schedule, when set, replaces the drawn schedule (replaying a run).
	Schedule chaos.Schedule `json:"schedule,omitempty"`
	Workload Workload       `json:"workload"`
	// LivenessTimeout bounds the healed phase (30 s when zero).
	LivenessTimeout time.Duration `json:"liveness_timeout"`
	// SnapshotCount is the members' raft snapshot interval (1000 when zero, so
	// that snapshots and log compaction happen within a minute of load).
	SnapshotCount uint64 `json:"snapshot_count"`
	// CatchUpEntries is the members' log kept after a snapshot for slow
	// followers (store.Config's 5000 when zero): a follower further behind is
	// sent a snapshot.
	CatchUpEntries uint64 `json:"catch_up_entries,omitempty"`
	// Watchers is the number of watch sessions checked for watch guarantees (2
	// when zero, none when negative, which Validate keeps).
	Watchers int `json:"watchers"`
	// LeaseSafetyUnderSkew checks that leases never expire early even when the
	// schedule skews clocks (etcd does not promise it: lease expiry follows the
	// leader's clock). Off by default.
	LeaseSafetyUnderSkew bool `json:"lease_safety_under_skew,omitempty"`
	// CheckBudget is the checker's budget in model steps per partition
	// (linearizability.DefaultBudget when zero): work, not time, so that
	// the verdict is a function of the seed.
	CheckBudget int64 `json:"check_budget"`
	// TickInterval is the members' raft tick, etcd's --heartbeat-interval
	// (100 ms when zero).
	TickInterval time.Duration `json:"tick_interval,omitempty"`
	// ElectionTicks is the election timeout in ticks (10 when zero).
	ElectionTicks int `json:"election_ticks,omitempty"`
	// QuotaBackendBytes is the members' backend quota (2 GiB when zero, none
	// when negative).
	QuotaBackendBytes int64 `json:"quota_backend_bytes,omitempty"`
	// FaultWarmup is the fault-free start of a drawn schedule (2 s when zero);
	// FaultMax its longest fault window (5 s when zero).
	FaultWarmup time.Duration `json:"fault_warmup,omitempty"`
	FaultMax    time.Duration `json:"fault_max,omitempty"`
	// Scenario is the effective scenario file of the run (package
	// scenarios/scenario), written to the artifacts as scenario.yaml when set.
	Scenario []byte `json:"-"`
	// Trace records the one-line-per-event trace in Result.Trace.
	Trace bool `json:"-"`
	// Out is the directory that receives a failing run's artifacts ("" = none).
	Out string `json:"-"`
	// Keep writes the artifacts of a passing run too.
	Keep bool `json:"-"`
	// SummaryOnly writes only the small artifacts (seed, config, schedule,
	// summary) of a failing run: a sweep past its budget of full artifacts.
	SummaryOnly bool `json:"-"`
}

// Validate fills defaults and checks the configuration.
func (c *Config) Validate() error {
	if c.Members == 0 {
		c.Members = 3
	}
	if c.Duration == 0 {
		c.Duration = 60 * time.Second
	}
	if c.LivenessTimeout == 0 {
		c.LivenessTimeout = 30 * time.Second
	}
	if c.SnapshotCount == 0 {
		c.SnapshotCount = 1000
	}
	if c.CheckBudget == 0 {
		c.CheckBudget = linearizability.DefaultBudget
	}
	if c.TickInterval == 0 {
		c.TickInterval = 100 * time.Millisecond
	}
	if c.ElectionTicks == 0 {
		c.ElectionTicks = 10
	}
	if c.QuotaBackendBytes == 0 {
		c.QuotaBackendBytes = 2 << 30
	}
	if c.FaultWarmup == 0 {
		c.FaultWarmup = 2 * time.Second
	}
	if c.FaultMax == 0 {
		c.FaultMax = 5 * time.Second
	}
	if c.Watchers == 0 {
		c.Watchers = 2 // a negative count (none) stays negative, so Validate can run again
		if c.Workload.Profile == ProfileWatchHeavy {
			c.Watchers = watchHeavyWatchers
		}
	}
	if c.Members < 1 || c.Members > 9 {
		return fmt.Errorf("scenarios: %d members (want 1 to 9)", c.Members)
	}
	if c.Duration < time.Second {
		return fmt.Errorf("scenarios: duration %s is shorter than a second", c.Duration)
	}
	if c.TickInterval < time.Millisecond || c.ElectionTicks < 5 {
		return fmt.Errorf("scenarios: tick %s and %d election ticks (want at least 1ms and 5)", c.TickInterval, c.ElectionTicks)
	}
	if c.FaultWarmup < 0 || c.FaultMax < 500*time.Millisecond {
		return fmt.Errorf("scenarios: fault warmup %s, longest fault %s (want at least 0 and 500ms)", c.FaultWarmup, c.FaultMax)
	}
	return c.Workload.Validate()
}

// Verdicts of a run.
const (
	VerdictOK           = "ok"
	VerdictIllegal      = "not-linearizable"
	VerdictNoLiveness   = "no-liveness"
	VerdictInconclusive = "inconclusive"
	VerdictFailed       = "member-failure"
	VerdictWatch        = "watch-violation"
	VerdictLease        = "lease-violation"
	// VerdictPanic: a member (or another host of the world) panicked.
	VerdictPanic = "member-panic"
	// VerdictDivergence: the members' replicas differ (same applied index but
	// different keyspaces, or applied indexes that stay apart on a quiet,
	// healed cluster): a safety bug, not a liveness one.
	VerdictDivergence = "divergence"
)

// Result is the outcome of one run. Verdict and Reason are the headline: the
// most severe of Findings, which holds everything the run found wrong (every
// check runs even when an earlier one failed).
type Result struct {
	Seed                uint64                       `json:"seed"`
	Verdict             string                       `json:"verdict"`
	Reason              string                       `json:"reason,omitempty"`
	Findings            []Finding                    `json:"findings,omitempty"`
	Operations          int                          `json:"operations"`
	OK, Failed, Unknown int                          `json:"-"`
	Schedule            chaos.Schedule               `json:"schedule"`
	Virtual             time.Duration                `json:"virtual"`
	Wall, CheckWall     time.Duration                `json:"-"`
	Events              int64                        `json:"events"`
	Dir                 string                       `json:"dir,omitempty"`
	History             []linearizability.Operation  `json:"-"`
	Trace               []byte                       `json:"-"`
	Watch               []linearizability.WatchEvent `json:"-"`
	// LeasesGranted and LeaseReads count the lease checker's grants and the
	// reads that found a protected key.
	LeasesGranted, LeaseReads int      `json:"-"`
	FaultLog                  []string `json:"-"`
	// Panic is the stack of a host's recovered panic (VerdictPanic), for
	// summary.txt and panic.txt; empty otherwise.
	Panic string `json:"-"`

	// LeaseRenewalsRefused counts the lease checker's keep-alives answered
	// TTL 0: a renewal after expiry, refused.
	LeaseRenewalsRefused int `json:"-"`
	// FaultsApplied counts the faults of the schedule that were applied;
	// Skipped lists, once each, the kinds the backend could not express
	// (their faults were skipped). See Caveat.
	FaultsApplied int          `json:"faults_applied"`
	Skipped       []chaos.Kind `json:"skipped,omitempty"`

	windows []faultWindow // the faults as applied, for the reasons
}

// Passed reports whether the run found nothing wrong.
func (r *Result) Passed() bool { return r.Verdict == VerdictOK }

// scheduleRand is the stream the fault schedule is drawn from: separate from the
// world's, so that the schedule does not depend on what the run does.
func scheduleRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x5eed5c4ed)) }

// untilSnapshotCatchUp and untilSnapshotCount are the members' CatchUpEntries
// and (at most) SnapshotCount in a run whose schedule holds
// partition-until-snapshot (a default run commits about 100 entries a second).
const (
	untilSnapshotCatchUp = 100
	untilSnapshotCount   = 300
)

// Plan returns the fault schedule a configuration will run.
func Plan(c Config) chaos.Schedule {
	if c.Schedule != nil {
		return c.Schedule
	}
	return chaos.Generate(scheduleRand(c.Seed), chaos.GenerateOptions{Members: c.Members, Duration: c.Duration, Kinds: c.Faults,
		Warmup: c.FaultWarmup, MaxFault: c.FaultMax})
}

// RunSim runs one seed in the deterministic simulator: a safety phase with
// faults, then a liveness phase that heals everything and requires the members to
// converge; then checks the history. A failing run (every run with c.Keep)
// writes its artifacts to c.Out, re-running the seed with tracing on if it
// was off (determinism makes that exact).
func RunSim(c Config) (*Result, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	res, err := safeRunSim(c, c.Trace || (c.Keep && c.Out != "" && !c.SummaryOnly))
	if err != nil {
		return nil, err
	}
	if (!res.Passed() || c.Keep) && c.Out != "" {
		traced := res
		if res.Trace == nil && !c.SummaryOnly {
			if traced, err = safeRunSim(c, true); err != nil {
				return nil, err
			}
		}
		dir, werr := writeArtifacts(c, traced, c.SummaryOnly)
		if werr != nil {
			return res, werr
		}
		res.Dir = dir
	}
	return res, nil
}

// ErrHarnessPanic is returned (wrapped, with the panic's first line) by
// RunSim when the harness itself panicked outside any simulated host (in the
// checker, say): a bug of the harness, reported as an error with the stack on
// stderr rather than by crashing the caller (a sweep worker).
var ErrHarnessPanic = errors.New("scenarios: the harness panicked")

// safeRunSim is runSim with a panic that escaped the world (a member's panic
// does not: the world recovers it) turned into an ErrHarnessPanic error.
func safeRunSim(c Config, trace bool) (res *Result, err error) {
	defer func() {
		if v := recover(); v != nil {
			first, _, _ := strings.Cut(fmt.Sprint(v), "\n")
			fmt.Fprintf(os.Stderr, "havoc: seed %d: the harness panicked: %v\n%s\n", c.Seed, v, debug.Stack())
			res, err = nil, fmt.Errorf("%w (seed %d): %s", ErrHarnessPanic, c.Seed, first)
		}
	}()
	return runSim(c, trace)
}

func runSim(c Config, trace bool) (*Result, error) {
	start := time.Now()
	release := detrand.Acquire(c.Seed)
	defer release()
	dbDir, err := os.MkdirTemp(tmpfsDir(), "havoc-sim-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dbDir)

	traceBuf := &cappedBuffer{limit: TraceLimitBytes}
	wcfg := sim.Config{Seed: c.Seed, MaxEvents: 500_000_000}
	if trace {
		wcfg.Trace = traceBuf
	}
	w := sim.NewWorld(wcfg)
	sched := Plan(c)
	scfg := cluster.SimConfig{Members: c.Members, Dir: dbDir, SnapshotCount: c.SnapshotCount,
		TickInterval: c.TickInterval, ElectionTicks: c.ElectionTicks, QuotaBackendBytes: c.QuotaBackendBytes,
		CatchUpEntries: c.CatchUpEntries}
	if sched.Has(chaos.PartitionUntilSnapshot) {
		// Frequent snapshots and a short log after each, so that a follower cut
		// off for a few seconds falls behind it and must be sent a snapshot.
		scfg.CatchUpEntries = untilSnapshotCatchUp
		if c.CatchUpEntries > 0 {
			scfg.CatchUpEntries = min(c.CatchUpEntries, untilSnapshotCatchUp)
		}
		scfg.SnapshotCount = min(scfg.SnapshotCount, untilSnapshotCount)
	}
	cl, err := cluster.NewSim(w, scfg)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	rec := &linearizability.Recorder{}
	rec.Reserve(int(c.Workload.Rate * (c.Duration + c.LivenessTimeout/4).Seconds()))
	clients := make([]*simClient, c.Workload.Clients)
	for i := range clients {
		clients[i] = newSimClient(i+1, &c.Workload, rec, cl.Members())
		w.AddHost(fmt.Sprintf("c%02d", i+1), clients[i])
	}
	var watchEvents []linearizability.WatchEvent
	watchers := make([]*simWatcher, max(c.Watchers, 0))
	for i := range watchers {
		watchers[i] = &simWatcher{id: i + 1, prefix: c.Workload.prefix(), members: cl.Members(), events: &watchEvents,
			slow: c.Workload.Profile == ProfileWatchHeavy && i%2 == 1}
		w.AddHost(fmt.Sprintf("w%02d", i+1), watchers[i])
	}
	// Short watches beside the long-lived watchers (one session of them).
	var short *simShortWatcher
	if len(watchers) > 0 {
		short = &simShortWatcher{prefix: c.Workload.prefix(), members: cl.Members(), events: &watchEvents, reached: map[int]int64{}}
		w.AddHost("ws1", short)
	}
	res := &Result{Seed: c.Seed, Schedule: sched}
	var skewed func(from, to time.Duration) bool
	if !c.LeaseSafetyUnderSkew {
		skewed = clockFaulted(res.Schedule)
	}
	leases := newSimLeaseClient(cl.Members(), 3, skewed)
	w.AddHost("l01", leases)
	for _, f := range res.Schedule {
		w.Schedule(f.At, "fault", func() {
			heal, desc, err := chaos.Apply(cl, f)
			if err != nil {
				desc = fmt.Sprintf("%s failed: %v", f.Kind, err)
			} else {
				res.FaultsApplied++
			}
			res.FaultLog = append(res.FaultLog, fmt.Sprintf("%.3fs start %s", w.Elapsed().Seconds(), desc))
			w.Tracef("chaos", "start %s", desc)
			if heal == nil {
				return
			}
			win := res.faultStarted(w.Elapsed(), desc)
			w.Schedule(f.Duration, "heal", func() {
				_ = heal()
				res.faultEnded(win, w.Elapsed())
				res.FaultLog = append(res.FaultLog, fmt.Sprintf("%.3fs end %s", w.Elapsed().Seconds(), desc))
				w.Tracef("chaos", "end %s", desc)
			})
		})
	}

	if testhook.Sim != nil {
		testhook.Sim(w, cl)
	}

	// Safety phase.
	runErr := w.RunFor(c.Duration)
	divergence := ""
	// Liveness phase: heal everything; the cluster must converge and serve.
	if runErr == nil {
		w.Tracef("chaos", "heal all; liveness phase")
		cl.HealAll()
		res.healedAll(w.Elapsed())
		okBefore := 0
		for _, cc := range clients {
			okBefore += cc.okCount
		}
		served := func() bool {
			n := 0
			for _, cc := range clients {
				n += cc.okCount
			}
			return n > okBefore
		}
		watchersCaughtUp := func() bool {
			rev := cl.Revision()
			for _, wt := range watchers {
				if wt.lastRev < rev {
					return false
				}
			}
			return true
		}
		runErr = w.RunUntil(func() bool {
			conv, _ := cl.Converged()
			return conv && served()
		}, c.LivenessTimeout)
		for _, cc := range clients {
			cc.stopped = true
		}
		leases.stop()
		if runErr == nil {
			runErr = w.RunUntil(func() bool {
				for _, cc := range clients {
					if !cc.idle() {
						return false
					}
				}
				conv, _ := cl.Converged()
				return conv && watchersCaughtUp() && leases.empty
			}, c.LivenessTimeout+clockStepMax(res.Schedule))
		}
		for _, wt := range watchers {
			wt.stopped = true
		}
		if short != nil {
			short.stop()
		}
		if errors.Is(runErr, sim.ErrTimeout) {
			divergence, runErr = diagnose(w, cl, runErr)
		}
	}
	unnoticed := ""
	if runErr == nil {
		unnoticed = probeCorruption(w, cl)
	}
	res.Virtual = w.Elapsed()
	res.Events = w.Events()
	res.History = rec.Operations()
	if trace {
		res.Trace = traceBuf.Bytes()
	}
	res.Watch = watchEvents
	reached := map[int]int64{}
	for _, wt := range watchers {
		reached[wt.id] = wt.lastRev
	}
	if short != nil {
		for id, r := range short.reached {
			reached[id] = r
		}
	}
	res.tally()
	res.LeasesGranted, res.LeaseReads, res.LeaseRenewalsRefused = leases.granted, leases.verified, leases.refused
	var p *sim.Panic
	if errors.As(runErr, &p) {
		role := "host"
		switch {
		case slices.Contains(cl.Members(), p.Host):
			role = "member"
		case strings.HasPrefix(p.Host, "c"):
			role = "client"
		}
		res.addFinding(VerdictPanic, fmt.Sprintf("%s %s panicked at %.3fs (%s): %s", role, p.Host, p.At.Seconds(), res.activeAt(p.At), p.FirstLine()))
		res.Panic = fmt.Sprintf("%s %s panicked at %s (virtual): %v\n\n%s", role, p.Host, p.At, p.Value, p.Stack)
	}
	if err := cl.Err(); err != nil {
		res.addFinding(VerdictFailed, err.Error())
	}
	if len(leases.errs) > 0 {
		reason, detail := listReasonOf(leases.errs, "lease violations")
		res.addDetailed(VerdictLease, reason, detail)
	}
	switch {
	case p != nil:
	case errors.Is(runErr, sim.ErrNoProgress):
		res.addFinding(VerdictNoLiveness, fmt.Sprintf("event budget exhausted at %s (seed %d)", w.Elapsed(), c.Seed))
	case divergence != "":
		res.addFinding(VerdictDivergence, "replicas diverged: "+divergence)
	case unnoticed != "":
		res.addFinding(VerdictDivergence, unnoticed)
	case runErr != nil:
		_, why := cl.Converged()
		if why == "" {
			why = settleWhy(clients, watchers, leases, cl.Revision())
		}
		res.addFinding(VerdictNoLiveness, fmt.Sprintf("%v (seed %d): %s", runErr, c.Seed, why))
	}
	res.check(c, trace, &linearizability.WatchOptions{Prefix: c.Workload.prefix(), Reached: reached, IsCreate: true, PrevKV: true})
	res.finish()
	res.Wall = time.Since(start)
	return res, nil
}

// quietSettle is how long a healed cluster that did not converge gets, with no
// traffic, to bring its applied indexes together before its replicas are
// compared.
const quietSettle = 5 * time.Second

// diagnose looks closer at a healed cluster that did not converge in time (the
// clients are stopped): it lets the members settle without traffic, then
// compares their replicas. It returns how they diverged ("" if they did not,
// or if a member is down: then the cluster is not live, which err says), and
// err, or the panic that happened while settling.
func diagnose(w *sim.World, cl *cluster.Sim, err error) (string, error) {
	settled := func() bool {
		var applied uint64
		for i, name := range cl.Members() {
			n := cl.Node(name)
			if n == nil {
				return false
			}
			if a := n.Status().Applied; i == 0 {
				applied = a
			} else if a != applied {
				return false
			}
		}
		return true
	}
	if serr := w.RunUntil(settled, quietSettle); errors.Is(serr, sim.ErrPanic) || errors.Is(serr, sim.ErrNoProgress) {
		return "", serr
	}
	return cl.Divergence(), err
}

// probeCorruption tests the replicas' corruption check on a converged,
// quiet cluster, as Jepsen's bitflip nemesis does: it flips one bit of the
// newest put in the last member's backend (crashing and restarting it around
// the change) and requires HashKV, which the convergence check and etcd's
// corruption check compare, to tell that member from the first one at the same
// revision. It returns what went unnoticed, or "" (also when there is nothing
// to flip or compare: one member, no put, or the member not back in time).
func probeCorruption(w *sim.World, cl *cluster.Sim) string {
	names := cl.Members()
	if len(names) < 2 {
		return ""
	}
	ref, m := names[0], names[len(names)-1]
	w.Tracef("chaos", "corruption probe: crash %s, flip a value in its backend, restart it", m)
	var rev int64
	if err := cl.Corrupt(m, func(db string) (err error) { rev, err = tamper.FlipNewestValue(db); return err }); err != nil {
		w.Tracef("chaos", "corruption probe: %v", err)
		return ""
	}
	w.Tracef("chaos", "corruption probe: flipped the value of revision %d on %s", rev, m)
	var a, b store.Status
	back := func() bool {
		n, r := cl.Node(m), cl.Node(ref)
		if n == nil || r == nil {
			return false
		}
		a, b = r.Status(), n.Status()
		return a.Applied == b.Applied && a.Revision == b.Revision
	}
	if err := w.RunUntil(back, quietSettle); err != nil {
		return ""
	}
	ha, _, _, errA := cl.Node(ref).HashKV(0)
	hb, _, _, errB := cl.Node(m).HashKV(0)
	if errA != nil || errB != nil || ha != hb {
		return ""
	}
	return fmt.Sprintf("corruption unnoticed: a bit flipped in the value of revision %d in %s's backend leaves its HashKV equal to %s's (%08x at revision %d)",
		rev, m, ref, ha, a.Revision)
}

// tmpfsDir is where the members' bbolt files go: tmpfs when the machine has it.
func tmpfsDir() string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		return "/dev/shm"
	}
	return os.TempDir()
}

// settleWhy says what kept a converged cluster from settling after the heal:
// clients still waiting for answers, watchers behind the revision, lease keys
// that never expired.
func settleWhy(clients []*simClient, watchers []*simWatcher, leases *simLeaseClient, rev int64) string {
	var parts []string
	busy := 0
	for _, cc := range clients {
		if !cc.idle() {
			busy++
		}
	}
	if busy > 0 {
		parts = append(parts, fmt.Sprintf("%d clients still waiting for an answer", busy))
	}
	behind, lowest := 0, rev
	for _, wt := range watchers {
		if wt.lastRev < rev {
			behind++
			lowest = min(lowest, wt.lastRev)
		}
	}
	if behind > 0 {
		parts = append(parts, fmt.Sprintf("%d watchers behind revision %d (the furthest at %d)", behind, rev, lowest))
	}
	if !leases.empty {
		parts = append(parts, fmt.Sprintf("%d lease keys (%s) never expired", leases.left, leasePrefix))
	}
	if len(parts) == 0 {
		return "the members converged but the run did not settle"
	}
	return strings.Join(parts, "; ")
}

// clockStepMax is the largest step a clock fault of s makes a member's clock
// take, forward or back (a jump steps back by as much when it ends). A lease
// whose expiry a leader set before its clock stepped back expires that much
// later in true time, so the wait for every lease to expire grows by it.
// clockFaulted reports whether a clock fault of s (clock-skew or clock-jump)
// was in force at some time between from and to (virtual times of the run).
// A fault's window ends when it heals, at At+Duration: the member's clock is
// right again from then on.
func clockFaulted(s chaos.Schedule) func(from, to time.Duration) bool {
	return func(from, to time.Duration) bool {
		for _, f := range s {
			if (f.Kind == chaos.ClockJump || f.Kind == chaos.ClockSkew) && f.At <= to && from <= f.At+f.Duration {
				return true
			}
		}
		return false
	}
}

func clockStepMax(s chaos.Schedule) time.Duration {
	var step time.Duration
	for _, f := range s {
		if f.Kind == chaos.ClockJump || f.Kind == chaos.ClockSkew {
			step = max(step, f.Latency, -f.Latency)
		}
	}
	return step
}
