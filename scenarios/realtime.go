package scenarios

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/havoclab/havoc/chaos"
	"github.com/havoclab/havoc/cluster"
	"github.com/havoclab/havoc/linearizability"
	"github.com/havoclab/havoc/store"
)

// RunReal runs c against a started real backend on the wall clock: the same
// workload sessions, fault schedule (Plan) and checker as RunSim, with one
// goroutine per client session and wall-clock timestamps. The safety phase
// lasts c.Duration; then everything is healed and, within c.LivenessTimeout,
// every member must answer, all members must report the same HashKV at one
// revision, and a write issued after the heal must succeed.
//
// A fault the backend cannot express (chaos.ErrUnsupported) is skipped with a
// line in the fault log. RunReal does not start or close the backend. A run is
// not replayable: the schedule is, the interleaving is not. A failing run
// writes its artifacts to c.Out, with the member logs copied in.
func RunReal(ctx context.Context, b cluster.Backend, c Config) (*Result, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	r := &realRun{c: c, b: b, start: time.Now(), rec: &linearizability.Recorder{}}
	res, err := r.run(ctx)
	if err != nil {
		return nil, err
	}
	if (!res.Passed() || c.Keep) && c.Out != "" {
		dir, werr := writeArtifacts(c, res, c.SummaryOnly)
		if werr != nil {
			return res, werr
		}
		res.Dir = dir
		if werr := r.writeRealArtifacts(dir, res); werr != nil {
			return res, werr
		}
	}
	return res, nil
}

// realRun is the state of one RunReal.
type realRun struct {
	c     Config
	b     cluster.Backend
	start time.Time
	rec   *linearizability.Recorder

	mu       sync.Mutex
	faultLog []timedLine

	healAt   atomic.Int64 // elapsed ns when the liveness phase began (0 before)
	served   atomic.Int64 // writes acknowledged that were issued after healAt
	stopping atomic.Bool
}

type timedLine struct {
	at   time.Time
	line string
}

func (r *realRun) now() int64 { return int64(time.Since(r.start)) }

func (r *realRun) logf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.faultLog = append(r.faultLog, timedLine{time.Now(), fmt.Sprintf(format, args...)})
}

func (r *realRun) run(ctx context.Context) (*Result, error) {
	c := r.c
	res := &Result{Seed: c.Seed, Schedule: Plan(c)}
	members := r.b.Members()

	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// Clients.
	var clientsWG sync.WaitGroup
	for i := range c.Workload.Clients {
		clientsWG.Add(1)
		go func() {
			defer clientsWG.Done()
			r.client(ctx, i+1, members)
		}()
	}

	// Watchers, until the members have converged after the heal.
	wctx, stopWatchers := context.WithCancel(ctx)
	defer stopWatchers()
	watchers := make([]*realWatcher, max(c.Watchers, 0))
	var watchersWG sync.WaitGroup
	for i := range watchers {
		watchers[i] = &realWatcher{r: r, id: i + 1, members: members, rnd: rand.New(rand.NewPCG(c.Seed, uint64(1000+i)))}
		watchersWG.Go(func() { watchers[i].run(wctx) })
	}

	// Faults, on the wall clock. Each heal runs before the next fault starts
	// (windows do not overlap); the safety phase's end heals what is active.
	safetyEnd := r.start.Add(c.Duration)
	faultsDone := make(chan struct{})
	go func() {
		defer close(faultsDone)
		r.faults(ctx, res, safetyEnd)
	}()

	wait := func(until time.Time) bool {
		t := time.NewTimer(time.Until(until))
		defer t.Stop()
		select {
		case <-t.C:
			return true
		case <-ctx.Done():
			return false
		}
	}
	interrupted := !wait(safetyEnd)
	<-faultsDone

	// Liveness phase.
	var liveErr error
	divergence := ""
	if !interrupted {
		r.logf("heal all; liveness phase")
		r.healAt.Store(r.now())
		res.healedAll(time.Duration(r.now()))
		if err := r.b.HealAll(ctx); err != nil {
			r.logf("heal all: %v", err)
		}
		deadline := time.Now().Add(c.LivenessTimeout)
		var conv convergence
		liveErr = r.until(ctx, deadline, func() (bool, string) {
			ok, why := conv.check(ctx, r.b, members)
			if !ok {
				return false, why
			}
			if r.served.Load() == 0 {
				return false, "no write issued after the heal has succeeded"
			}
			return true, ""
		})
		r.stopping.Store(true)
		clientsWG.Wait()
		if liveErr == nil {
			// With the clients quiet, the members must agree once more, and
			// every watcher must have seen up to their revision.
			var final convergence
			liveErr = r.until(ctx, deadline.Add(c.Workload.Timeout), func() (bool, string) {
				if ok, why := final.check(ctx, r.b, members); !ok {
					return false, why
				}
				return watchersCaughtUp(watchers, final.target)
			})
		}
		r.logf("liveness phase ended: %v", errOrOK(liveErr))
		if liveErr != nil && ctx.Err() == nil {
			divergence = r.diagnose(ctx, members)
		}
	}
	r.stopping.Store(true)
	stopWatchers()
	watchersWG.Wait()
	cancel()
	clientsWG.Wait()
	if interrupted || parent.Err() != nil {
		return nil, fmt.Errorf("scenarios: run interrupted: %w", context.Cause(parent))
	}

	res.Virtual = time.Since(r.start)
	res.History = r.rec.Operations()
	reached := map[int]int64{}
	for _, w := range watchers {
		res.Watch = append(res.Watch, w.events...)
		reached[w.id] = w.lastRev
	}
	res.Trace = r.trace()
	r.mu.Lock()
	for _, l := range r.faultLog {
		res.FaultLog = append(res.FaultLog, fmt.Sprintf("%.3fs %s", l.at.Sub(r.start).Seconds(), l.line))
	}
	r.mu.Unlock()
	res.tally()
	type failer interface{ Err() error }
	if f, ok := r.b.(failer); ok && f.Err() != nil {
		res.addFinding(VerdictFailed, f.Err().Error())
	}
	switch {
	case divergence != "":
		res.addFinding(VerdictDivergence, "replicas diverged: "+divergence)
	case liveErr != nil:
		res.addFinding(VerdictNoLiveness, fmt.Sprintf("%v (seed %d)", liveErr, c.Seed))
	}
	res.check(c, true, &linearizability.WatchOptions{Prefix: c.Workload.prefix(), Reached: reached, IsCreate: true, PrevKV: true})
	res.finish()
	res.Wall = time.Since(r.start)
	return res, nil
}

// watchersCaughtUp reports whether every watcher has seen up to rev.
func watchersCaughtUp(watchers []*realWatcher, rev int64) (bool, string) {
	for _, w := range watchers {
		if got := w.reached(); got < rev {
			return false, fmt.Sprintf("watcher %d has seen up to revision %d, behind %d", w.id, got, rev)
		}
	}
	return true, ""
}

func errOrOK(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

// until polls cond every 250 ms until it holds or deadline passes.
func (r *realRun) until(ctx context.Context, deadline time.Time, cond func() (bool, string)) error {
	dctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	var why string
	err := cluster.PollUntil(dctx, cluster.Backoff{First: 250 * time.Millisecond}, func() (ok bool, _ error) {
		ok, why = cond()
		return ok, nil
	})
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("not converged %s after the heal: %s", time.Duration(r.now()-r.healAt.Load()).Round(time.Millisecond), why)
	}
	return err
}

// faults applies res.Schedule on the wall clock until safetyEnd, recording
// what it applied in res.
func (r *realRun) faults(ctx context.Context, res *Result, safetyEnd time.Time) {
	s := res.Schedule
	sleepUntil := func(t time.Time) bool {
		if t.After(safetyEnd) {
			t = safetyEnd
		}
		tm := time.NewTimer(time.Until(t))
		defer tm.Stop()
		select {
		case <-tm.C:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for _, f := range s {
		at := r.start.Add(f.At)
		if !at.Before(safetyEnd) || !sleepUntil(at) {
			return
		}
		heal, desc, err := chaos.Apply(r.b, f)
		switch {
		case errors.Is(err, chaos.ErrUnsupported):
			r.logf("skip %s: %v", f.Kind, err)
			if !slices.Contains(res.Skipped, f.Kind) {
				res.Skipped = append(res.Skipped, f.Kind)
			}
			continue
		case err != nil:
			r.logf("start %s failed: %v", f.Kind, err)
		default:
			r.logf("start %s", desc)
			res.FaultsApplied++
		}
		if heal == nil {
			continue
		}
		win := res.faultStarted(time.Duration(r.now()), desc)
		sleepUntil(at.Add(f.Duration))
		if err := heal(); err != nil {
			r.logf("end %s failed: %v", desc, err)
		} else {
			r.logf("end %s", desc)
		}
		res.faultEnded(win, time.Duration(r.now()))
		if ctx.Err() != nil || !time.Now().Before(safetyEnd) {
			return
		}
	}
}

// realConn is a session's connection to one member.
type realConn struct {
	cli   *clientv3.Client
	kv    pb.KVClient
	lease pb.LeaseClient
	maint pb.MaintenanceClient
}

// client runs one session: one request outstanding, paced like the simulated
// client, a deadline of Workload.Timeout per request, no retries, and a move
// to another member after an error or timeout.
func (r *realRun) client(ctx context.Context, id int, members []string) {
	w := &r.c.Workload
	rnd := rand.New(rand.NewPCG(r.c.Seed, uint64(id)))
	sess := NewSession(w, id, rnd)
	target := rnd.IntN(len(members))
	conns := map[string]*realConn{}
	defer func() {
		for _, cn := range conns {
			_ = cn.cli.Close()
		}
	}()
	think := w.ThinkTime()
	var nextDue time.Duration
	for !r.stopping.Load() && ctx.Err() == nil {
		nextDue += time.Duration(rnd.Int64N(int64(2*think) + 1))
		if now := time.Since(r.start); nextDue < now {
			nextDue = now
		} else {
			select {
			case <-time.After(nextDue - now):
			case <-ctx.Done():
				return
			}
		}
		if r.stopping.Load() {
			return
		}
		member := members[target]
		cn, ok := conns[member]
		if !ok {
			cli, err := r.dial(fmt.Sprintf("c%02d", id), member)
			if err != nil {
				// Dialing is non-blocking; an error here is a bad URL.
				r.logf("client %d: connect %s: %v", id, member, err)
				return
			}
			cn = &realConn{cli: cli, kv: pb.NewKVClient(cli.ActiveConnection()), lease: pb.NewLeaseClient(cli.ActiveConnection()),
				maint: pb.NewMaintenanceClient(cli.ActiveConnection())}
			conns[member] = cn
		}
		op := sess.Next()
		call := r.now()
		opID := r.rec.Begin(id, member, op, call)
		rctx, cancel := context.WithTimeout(ctx, w.Timeout)
		var (
			resp store.Response
			err  error
		)
		if op.Kind == linearizability.KindDefrag {
			_, err = cn.maint.Defragment(rctx, &pb.DefragmentRequest{})
		} else {
			resp, err = cn.do(rctx, ToRequest(op))
		}
		cancel()
		var (
			outcome linearizability.Outcome
			out     linearizability.Response
			errText string
		)
		if err != nil {
			outcome, errText = realOutcome(op, err), err.Error()
		} else {
			outcome, out, errText = FromResponse(op, resp)
		}
		r.rec.End(opID, outcome, out, errText, r.now())
		sess.Observe(op, outcome, out, errText)
		if outcome == linearizability.OutcomeOK && !isRead(op.Kind) {
			if h := r.healAt.Load(); h != 0 && call >= h {
				r.served.Add(1)
			}
		}
		if outcome != linearizability.OutcomeOK && len(members) > 1 {
			target = (target + 1 + rnd.IntN(len(members)-1)) % len(members)
		}
	}
}

// sessionURLs is a backend whose client sessions reach the members through
// links of their own (the real backends: client-link faults act on them).
type sessionURLs interface {
	SessionURL(session, member string) (string, error)
}

// dial connects client session (c01..., w01... as the simulator names its
// client hosts) to member, through the session's own link when the backend
// has client links.
func (r *realRun) dial(session, member string) (*clientv3.Client, error) {
	u := r.b.ClientURL(member)
	if s, ok := r.b.(sessionURLs); ok {
		var err error
		if u, err = s.SessionURL(session, member); err != nil {
			return nil, err
		}
	}
	return cluster.DialEndpoint(r.b, u, cluster.AsWorkload)
}

// do sends one request as a single gRPC call.
func (cn *realConn) do(ctx context.Context, q store.Request) (store.Response, error) {
	var resp store.Response
	var err error
	switch {
	case q.Range != nil:
		resp.Range, err = cn.kv.Range(ctx, q.Range)
	case q.Put != nil:
		resp.Put, err = cn.kv.Put(ctx, q.Put)
	case q.DeleteRange != nil:
		resp.DeleteRange, err = cn.kv.DeleteRange(ctx, q.DeleteRange)
	case q.Txn != nil:
		resp.Txn, err = cn.kv.Txn(ctx, q.Txn)
	case q.LeaseGrant != nil:
		resp.LeaseGrant, err = cn.lease.LeaseGrant(ctx, q.LeaseGrant)
	case q.LeaseRevoke != nil:
		resp.LeaseRevoke, err = cn.lease.LeaseRevoke(ctx, q.LeaseRevoke)
	case q.Compaction != nil:
		resp.Compaction, err = cn.kv.Compact(ctx, q.Compaction)
	default:
		return resp, fmt.Errorf("scenarios: no real call for %+v", q)
	}
	return resp, err
}

// realOutcome classifies a failed request. A read that failed had no effect. A
// write failed definitely only on a status that etcd returns when it rejects
// the request as invalid, or when applying it changed nothing (a missing or
// existing lease, a full database, too many requests), or when gRPC could
// not dial the member at all; anything else —
// timeouts, lost connections, "no leader", "leader changed", "request timed
// out" — may have been proposed and stays unknown.
func realOutcome(op linearizability.Operation, err error) linearizability.Outcome {
	if readOnly(op) {
		return linearizability.OutcomeFail
	}
	if st, ok := status.FromError(err); ok {
		// gRPC fails a call it could not put on any connection (the member
		// is down: the dial was refused) with the dial error: nothing was sent.
		if st.Code() == codes.Unavailable && strings.Contains(st.Message(), "Error while dialing") {
			return linearizability.OutcomeFail
		}
		switch st.Code() {
		case codes.InvalidArgument, codes.NotFound, codes.FailedPrecondition, codes.OutOfRange,
			codes.ResourceExhausted, codes.PermissionDenied, codes.Unauthenticated:
			return linearizability.OutcomeFail
		}
	}
	return linearizability.OutcomeUnknown
}

// convergence checks that the members agree: every member answers Status, all
// have applied up to a common revision, their HashKV at it are equal, and
// they list the same members (after membership changes: the current ones). The
// revision is the highest one seen on the previous check, so that members
// under load are compared at a revision all of them have reached.
type convergence struct {
	target int64
	// mismatch is set when the last check found every member at the target
	// revision but with different HashKVs.
	mismatch *hashMismatch
}

// hashMismatch is two members whose HashKV differs at one revision.
type hashMismatch struct {
	rev  int64
	a, b string
}

// diagnose looks closer at a healed cluster that did not converge in time
// (the clients are stopped): it gives the members realQuietSettle without
// traffic, and if they still answer at one revision with different HashKVs,
// bisects for the first revision where two of them differ. It returns ""
// when the replicas do not (visibly) differ.
func (r *realRun) diagnose(ctx context.Context, members []string) string {
	var q convergence
	if err := r.until(ctx, time.Now().Add(realQuietSettle), func() (bool, string) { return q.check(ctx, r.b, members) }); err == nil || q.mismatch == nil {
		return ""
	}
	m := q.mismatch
	first, ha, hb, err := firstDifference(ctx, r.b, m.a, m.b, m.rev)
	if err != nil {
		return fmt.Sprintf("HashKV at revision %d differs between %s and %s (bisecting for the first difference failed: %v)", m.rev, m.a, m.b, err)
	}
	return fmt.Sprintf("%s and %s first differ at revision %d (HashKV %08x vs %08x); with no traffic both stay at revision %d", m.a, m.b, first, ha, hb, m.rev)
}

// realQuietSettle is how long a real cluster gets, with no traffic, before its
// replicas are compared.
const realQuietSettle = 5 * time.Second

// firstDifference bisects HashKV of members a and b over the revisions both
// hold up to rev (whose hashes differ) for the first revision at which they
// differ, and returns it with both hashes there.
func firstDifference(ctx context.Context, b cluster.Backend, a, c string, rev int64) (int64, uint32, uint32, error) {
	ca, err := cluster.Dial(b, a, cluster.AsAdmin)
	if err != nil {
		return 0, 0, 0, err
	}
	defer ca.Close()
	cc, err := cluster.Dial(b, c, cluster.AsAdmin)
	if err != nil {
		return 0, 0, 0, err
	}
	defer cc.Close()
	hash := func(cli *clientv3.Client, m string, at int64) (uint32, int64, error) {
		hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		h, err := cli.HashKV(hctx, b.ClientURL(m), at)
		if err != nil {
			return 0, 0, err
		}
		return h.Hash, h.CompactRevision, nil
	}
	differs := func(at int64) (bool, uint32, uint32, int64, error) {
		x, compX, err := hash(ca, a, at)
		if err != nil {
			return false, 0, 0, 0, err
		}
		y, compY, err := hash(cc, c, at)
		if err != nil {
			return false, 0, 0, 0, err
		}
		return x != y, x, y, max(compX, compY), nil
	}
	d, x, y, comp, err := differs(rev)
	if err != nil || !d {
		return rev, x, y, err
	}
	lo, hi := max(comp, 1), rev
	for lo < hi {
		mid := lo + (hi-lo)/2
		d, _, _, _, err := differs(mid)
		if err != nil {
			return 0, 0, 0, err
		}
		if d {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	_, x, y, _, err = differs(hi)
	return hi, x, y, err
}

func (cv *convergence) check(ctx context.Context, b cluster.Backend, members []string) (bool, string) {
	cv.mismatch = nil
	type state struct {
		rev  int64
		hash uint32
		comp int64
		err  error
	}
	states := make([]state, len(members))
	clients := make([]*clientv3.Client, len(members))
	defer func() {
		for _, c := range clients {
			if c != nil {
				_ = c.Close()
			}
		}
	}()
	var wg sync.WaitGroup
	for i, m := range members {
		wg.Go(func() {
			cli, err := cluster.Dial(b, m, cluster.AsAdmin)
			if err != nil {
				states[i].err = err
				return
			}
			clients[i] = cli
			sctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			st, err := cli.Status(sctx, b.ClientURL(m))
			if err != nil {
				states[i].err = fmt.Errorf("status: %w", err)
				return
			}
			states[i].rev = st.Header.GetRevision()
		})
	}
	wg.Wait()
	maxRev := int64(0)
	for i, s := range states {
		if s.err != nil {
			return false, fmt.Sprintf("%s does not answer: %v", members[i], s.err)
		}
		maxRev = max(maxRev, s.rev)
	}
	target := cv.target
	cv.target = maxRev
	if target == 0 {
		return false, "first look at the revisions"
	}
	for i, s := range states {
		if s.rev < target {
			return false, fmt.Sprintf("%s is at revision %d, behind %d", members[i], s.rev, target)
		}
	}
	for i, m := range members {
		wg.Go(func() {
			hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			h, err := clients[i].HashKV(hctx, b.ClientURL(m), target)
			if err != nil {
				states[i].err = fmt.Errorf("hashkv at %d: %w", target, err)
				return
			}
			states[i].hash, states[i].comp = h.Hash, h.CompactRevision
		})
	}
	wg.Wait()
	for i, s := range states {
		if s.err != nil {
			return false, fmt.Sprintf("%s: %v", members[i], s.err)
		}
		if s.hash != states[0].hash || s.comp != states[0].comp {
			cv.mismatch = &hashMismatch{rev: target, a: members[0], b: members[i]}
			return false, fmt.Sprintf("HashKV at revision %d differs: %s has %08x (compacted %d), %s has %08x (compacted %d)",
				target, members[0], states[0].hash, states[0].comp, members[i], s.hash, s.comp)
		}
	}
	return membersAgree(ctx, clients, members)
}

// membersAgree reports whether every member lists the same members (IDs and
// learner flags), as it must once membership changes are done; otherwise it
// says how two lists differ. A member that has not applied the last change
// yet differs for a moment: convergence asks again.
func membersAgree(ctx context.Context, clients []*clientv3.Client, members []string) (bool, string) {
	lists := make([]string, len(members))
	for i, cli := range clients {
		lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		r, err := cli.MemberList(lctx)
		cancel()
		if err != nil {
			return false, fmt.Sprintf("%s: member list: %v", members[i], err)
		}
		var ids []string
		for _, m := range r.Members {
			id := fmt.Sprintf("%x", m.ID)
			if m.IsLearner {
				id += "(learner)"
			}
			ids = append(ids, id)
		}
		slices.Sort(ids)
		lists[i] = "[" + strings.Join(ids, " ") + "]"
		if lists[i] != lists[0] {
			return false, fmt.Sprintf("member lists differ: %s=%s %s=%s", members[0], lists[0], members[i], lists[i])
		}
	}
	return true, ""
}

// trace merges the fault log and the backend's member events, one line each
// with its offset from the start of the run.
func (r *realRun) trace() []byte {
	r.mu.Lock()
	lines := slices.Clone(r.faultLog)
	r.mu.Unlock()
	type eventSource interface{ Events() []cluster.Event }
	if es, ok := r.b.(eventSource); ok {
		for _, e := range es.Events() {
			lines = append(lines, timedLine{e.Time, e.Member + ": " + e.What})
		}
	}
	slices.SortStableFunc(lines, func(a, b timedLine) int { return a.at.Compare(b.at) })
	var sb strings.Builder
	for _, l := range lines {
		fmt.Fprintf(&sb, "%012.6f %s\n", l.at.Sub(r.start).Seconds(), l.line)
	}
	return []byte(sb.String())
}

// writeRealArtifacts adds what a real run has beyond the simulator's
// artifacts: the member logs, and a note that the repro line replays the
// schedule, not the interleaving.
func (r *realRun) writeRealArtifacts(dir string, res *Result) error {
	src := r.b.Dir()
	note := fmt.Sprintf("backend run dir: %s\nmembers: %s\nThis run used real processes: the seed fixes the workload and the fault schedule, not the\ninterleaving, so a rerun may not fail the same way. Member logs are copied here.\n",
		src, strings.Join(r.b.Members(), ", "))
	if err := os.WriteFile(filepath.Join(dir, "real.txt"), []byte(note), 0o644); err != nil {
		return err
	}
	if src == "" {
		return nil
	}
	for _, m := range r.b.Members() {
		if err := copyFile(filepath.Join(src, m+".log"), filepath.Join(dir, m+".log")); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
