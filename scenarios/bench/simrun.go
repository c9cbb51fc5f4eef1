package bench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/havoclab/havoc/chaos"
	"github.com/havoclab/havoc/cluster"
	"github.com/havoclab/havoc/internal/detrand"
	"github.com/havoclab/havoc/sim"
	"github.com/havoclab/havoc/store"
)

// clientHost is the simulated host of every client, watcher and probe.
const clientHost = "client"

// simSetupLimit bounds the virtual time the cluster may take to elect a
// leader and the setup (filling the key space, granting leases) to finish.
const simSetupLimit = 5 * time.Minute

// RunSim runs cfg against havoc's store in the deterministic simulator under
// model, in virtual time: the same configuration, model and cfg.Seed give
// the same report on any machine. Faults are injected at their virtual
// times. The report's Model line says that its figures come from the model.
func RunSim(cfg Config, model Model) (*Report, error) {
	r, _, err := runSim(cfg, model)
	return r, err
}

// runSim is RunSim, also returning the member that led when the load began.
func runSim(cfg Config, model Model) (*Report, string, error) {
	if err := cfg.Validate(); err != nil {
		return nil, "", err
	}
	if err := model.Validate(); err != nil {
		return nil, "", err
	}
	release := detrand.Acquire(cfg.Seed)
	defer release()
	dir := os.TempDir()
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		dir = "/dev/shm"
	}
	dbDir, err := os.MkdirTemp(dir, "havoc-bench-sim-")
	if err != nil {
		return nil, "", err
	}
	defer os.RemoveAll(dbDir)

	w := sim.NewWorld(sim.Config{Seed: cfg.Seed})
	scfg := cluster.SimConfig{Members: model.Members, Dir: dbDir, TickInterval: model.TickInterval, ElectionTicks: model.ElectionTicks,
		Model: &cluster.SimModel{Service: model.Service}}
	if model.Fsync > 0 {
		scfg.Model.Fsync = model.fsync
	}
	cl, err := cluster.NewSim(w, scfg)
	if err != nil {
		return nil, "", err
	}
	defer cl.Close()
	b := &simBench{cfg: cfg, w: w, cl: cl, members: cl.Members(), wk: newWorkers(cfg), inflight: map[uint64]*simReq{}}
	w.AddHost(clientHost, b)
	setLinks(w, &model, b.members)

	if err := w.RunUntil(func() bool { return cl.Leader() != "" }, simSetupLimit); err != nil {
		return nil, "", fmt.Errorf("bench: simulated cluster elected no leader: %w", err)
	}
	b.setup()
	if err := w.RunUntil(func() bool { return b.ready }, simSetupLimit); err != nil {
		return nil, "", fmt.Errorf("bench: simulated setup did not finish: %w", err)
	}
	b.leader = cl.Leader()
	b.start()
	limit := cfg.Warmup + cfg.Duration + cfg.Timeout + watchDrain + time.Minute
	if cfg.Duration == 0 {
		limit = simSetupLimit + time.Duration(cfg.Total)*cfg.Timeout
	}
	if err := w.RunUntil(func() bool { return b.finished() }, limit); err != nil {
		return nil, "", fmt.Errorf("bench: simulated run did not finish: %w", err)
	}
	if err := cl.Err(); err != nil {
		return nil, "", fmt.Errorf("bench: simulated member failed: %w", err)
	}
	measured := cfg.Duration
	if measured == 0 {
		measured = b.lastAnswer - b.origin
	}
	var samples []Sample
	for _, s := range b.samples {
		if s.Start >= 0 && s.Start < measured {
			samples = append(samples, s)
		}
	}
	SortSamples(samples)
	r := Analyze("havoc (sim)", cfg, samples, measured, b.records)
	r.Model = model.String() + "; " + Caveat
	return r, b.leader, nil
}

// setLinks gives every link the model's latency: half the round trip of the
// two hosts' zones each way, spread.
func setLinks(w *sim.World, m *Model, members []string) {
	zone := map[string]int{clientHost: m.ClientZone}
	for i, name := range members {
		zone[name] = m.zoneOf(i)
	}
	hosts := append([]string{clientHost}, members...)
	for _, a := range hosts {
		for _, b := range hosts {
			if a == b {
				continue
			}
			lo, hi := spread(m.rtt(zone[a], zone[b])/2, m.Spread)
			w.Net().SetLink(a, b, sim.LinkConfig{LatencyMin: lo, LatencyMax: hi})
		}
	}
}

// simBench is the client side of a simulated benchmark: one host holding
// every worker, watcher and the fault probe, as one client machine would.
type simBench struct {
	cfg     Config
	w       *sim.World
	cl      *cluster.Sim
	host    *sim.Host
	members []string
	next    int    // round-robin member choice
	leader  string // the leader when the load began

	wk       *workers // keys, draws and each worker's state
	inflight map[uint64]*simReq
	lastID   uint64
	busy     int // worker requests in flight

	// setup
	ready   bool
	filled  int // keys written (or leases granted)
	toFill  int // next key to hand out
	setupOp func(worker int)

	// the measured run, in virtual time since the world began
	origin, end time.Duration
	started     bool
	claimed     int64 // requests handed out for the measured part (Total)
	pending     []time.Duration
	free        []int
	lastAnswer  time.Duration
	probeLive   [2]int32
	samples     []Sample
	records     []FaultRecord
	watchIDs    uint64
}

// simReq is one request in flight.
type simReq struct {
	worker int // -1: the probe
	op     string
	due    time.Duration // when it was due (virtual, since the world began)
	timer  sim.TimerID
	setup  bool
	probe  int // probe kind (0 put, 1 get) when worker is -1
	key    int // txn: the compared key
	// list: the next page's start and the pinned revision
	listEnd []byte
	listRev int64
}

// Start implements sim.Process.
func (b *simBench) Start(h *sim.Host) { b.host = h }

// now is the world's virtual time.
func (b *simBench) now() time.Duration { return b.w.Elapsed() }

// member picks the member of the next request: round-robin over the members
// that are up, as gRPC's round-robin balancer picks among ready connections
// (a partitioned or paused member still looks ready).
func (b *simBench) member() string {
	for range b.members {
		m := b.members[b.next%len(b.members)]
		b.next++
		if b.cl.Node(m) != nil {
			return m
		}
	}
	return b.members[0]
}

// send sends req to a member with the request's timeout.
func (b *simBench) send(r *simReq, req store.Request) { b.sendWithin(r, req, b.cfg.Timeout) }

// sendWithin sends req to a member; it fails if unanswered after timeout.
func (b *simBench) sendWithin(r *simReq, req store.Request, timeout time.Duration) {
	b.lastID++
	id := b.lastID
	b.inflight[id] = r
	r.timer = b.host.After(timeout, func() { b.answer(id, nil, errors.New("timeout")) })
	to := b.member()
	if req.LeaseKeepAlive != nil {
		// Only the leader renews a lease; havoc's server forwards a
		// keep-alive there, a hop the model leaves out.
		if l := b.cl.Leader(); l != "" {
			to = l
		}
	}
	b.host.Send(to, &cluster.ClientRequest{ID: id, Req: req})
}

// setup fills the key space (get, range, list, txn) or grants one lease per
// worker (lease), every worker in closed loop.
func (b *simBench) setup() {
	switch b.cfg.Workload {
	case WorkloadGet, WorkloadRange, WorkloadList, WorkloadTxn:
		b.setupOp = func(worker int) {
			if b.toFill >= b.cfg.KeySpace {
				return
			}
			i := b.toFill
			b.toFill++
			b.send(&simReq{worker: worker, setup: true, key: i}, store.Request{Put: &pb.PutRequest{Key: []byte(b.wk.key(i)), Value: b.wk.state[worker].value}})
		}
		for i := range b.wk.state {
			b.setupOp(i)
		}
	case WorkloadLease:
		b.setupOp = func(worker int) {
			b.send(&simReq{worker: worker, setup: true}, store.Request{LeaseGrant: &pb.LeaseGrantRequest{TTL: leaseTTL}})
		}
		for i := range b.wk.state {
			b.setupOp(i)
		}
	default:
		b.ready = true
	}
}

// setupDone handles the answer of a setup request.
func (b *simBench) setupDone(r *simReq, resp *store.Response, failed bool) {
	switch {
	case failed && b.cfg.Workload == WorkloadLease:
		b.setupOp(r.worker) // grant another
		return
	case failed: // write the key again: a put is idempotent
		b.send(&simReq{worker: r.worker, setup: true, key: r.key}, store.Request{Put: &pb.PutRequest{Key: []byte(b.wk.key(r.key)), Value: b.wk.state[r.worker].value}})
		return
	case b.cfg.Workload == WorkloadLease:
		b.wk.state[r.worker].lease = clientv3.LeaseID(resp.LeaseGrant.GetID())
	}
	b.filled++
	want := b.cfg.KeySpace
	if b.cfg.Workload == WorkloadLease {
		want = len(b.wk.state)
	}
	if b.filled >= want {
		b.ready = true
		return
	}
	if b.cfg.Workload != WorkloadLease {
		b.setupOp(r.worker)
	}
}

// start begins the warm-up and the measured part, the watchers, the faults
// and the probe.
func (b *simBench) start() {
	b.started = true
	b.origin = b.now() + b.cfg.Warmup
	if b.cfg.Duration > 0 {
		b.end = b.origin + b.cfg.Duration
	}
	if b.cfg.Workload == WorkloadWatch {
		for i := range b.cfg.Watchers {
			b.watchIDs++
			prefix := []byte(KeyPrefix)
			b.host.Send(b.members[i%len(b.members)], &cluster.ClientWatch{ID: b.watchIDs, Key: prefix, End: prefixEnd(prefix)})
		}
	}
	for i, f := range b.cfg.Faults {
		b.records = append(b.records, FaultRecord{Fault: f})
		b.w.ScheduleAt(b.origin+f.At, "bench-fault", func() { b.inject(i) })
	}
	if len(b.cfg.Faults) > 0 {
		b.host.After(probeEvery, b.probeTick)
	}
	if b.cfg.Rate > 0 {
		for i := range b.wk.state {
			b.free = append(b.free, i)
		}
		b.arrive(0)
		return
	}
	for i := range b.wk.state {
		b.issue(i, b.now())
	}
}

// inject applies fault i and schedules its heal.
func (b *simBench) inject(i int) {
	rec := &b.records[i]
	cf, err := rec.Fault.chaosFault(b.cl)
	if err != nil {
		rec.Err = err
		return
	}
	rec.Start = b.now() - b.origin
	heal, desc, err := chaos.Apply(b.cl, cf)
	rec.Desc = desc
	if err != nil {
		rec.Err = err
		return
	}
	if rec.Fault.For > 0 {
		b.w.Schedule(rec.Fault.For, "bench-heal", func() {
			rec.Healed = b.now() - b.origin
			if err := heal(); err != nil {
				rec.Err = fmt.Errorf("heal: %w", err)
			}
		})
	}
}

// open reports whether a request due at t belongs to the run (the warm-up
// or the measured part, not past its end or its total).
func (b *simBench) open(due time.Duration) bool {
	if b.end > 0 && due >= b.end {
		return false
	}
	if b.cfg.Total > 0 && due >= b.origin && b.claimed >= b.cfg.Total {
		return false
	}
	return true
}

// arrive is the open loop's request k, due at start + k/Rate.
func (b *simBench) arrive(k int64) {
	due := b.origin - b.cfg.Warmup + time.Duration(float64(k)*float64(time.Second)/b.cfg.Rate)
	if !b.open(due) {
		return
	}
	if due > b.now() {
		b.host.After(due-b.now(), func() { b.arrive(k) })
		return
	}
	b.pending = append(b.pending, due)
	b.dispatch()
	next := b.origin - b.cfg.Warmup + time.Duration(float64(k+1)*float64(time.Second)/b.cfg.Rate)
	b.host.After(max(next-b.now(), 0), func() { b.arrive(k + 1) })
}

// dispatch hands the oldest due requests to free workers (open loop).
func (b *simBench) dispatch() {
	for len(b.pending) > 0 && len(b.free) > 0 {
		due := b.pending[0]
		b.pending = b.pending[1:]
		w := b.free[0]
		b.free = b.free[1:]
		if !b.issue(w, due) {
			b.free = append(b.free, w)
			b.pending = nil
		}
	}
}

// issue sends worker's next request, due at due; false when the run is over.
func (b *simBench) issue(worker int, due time.Duration) bool {
	if !b.open(due) {
		return false
	}
	if due >= b.origin {
		b.claimed++
	}
	st := &b.wk.state[worker]
	b.busy++
	r := &simReq{worker: worker, due: due}
	cfg := b.cfg
	var req store.Request
	switch cfg.Workload {
	case WorkloadPut, WorkloadWatch:
		r.op = opPut
		if cfg.Workload == WorkloadWatch {
			binary.BigEndian.PutUint64(st.value, uint64(b.now()-b.origin))
		}
		req.Put = &pb.PutRequest{Key: []byte(b.wk.key(b.wk.draw(worker))), Value: slices.Clone(st.value)}
	case WorkloadGet:
		r.op = opGet + b.suffix()
		req.Range = &pb.RangeRequest{Key: []byte(b.wk.key(b.wk.draw(worker))), Serializable: cfg.Serializable}
	case WorkloadRange:
		r.op = opRange + b.suffix()
		prefix := []byte(KeyPrefix)
		req.Range = &pb.RangeRequest{Key: prefix, RangeEnd: prefixEnd(prefix), Limit: cfg.Limit, Serializable: cfg.Serializable}
	case WorkloadList:
		r.op = opList + b.suffix()
		prefix := []byte(KeyPrefix)
		r.listEnd = prefixEnd(prefix)
		req.Range = &pb.RangeRequest{Key: prefix, RangeEnd: r.listEnd, Limit: cfg.Limit, Serializable: cfg.Serializable}
	case WorkloadTxn:
		r.op = opTxn
		i := b.wk.draw(worker)
		r.key = i
		k := []byte(b.wk.key(i))
		puts := make([]*pb.RequestOp, cfg.TxnOps)
		for j := range puts {
			puts[j] = &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(b.wk.key((i + j) % cfg.KeySpace)), Value: st.value}}}
		}
		req.Txn = &pb.TxnRequest{
			Compare: []*pb.Compare{{Key: k, Target: pb.Compare_MOD, Result: pb.Compare_EQUAL,
				TargetUnion: &pb.Compare_ModRevision{ModRevision: st.revs[i]}}},
			Success: puts,
			Failure: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: k}}}},
		}
	case WorkloadLease:
		r.op = opKeepAlive
		req.LeaseKeepAlive = &pb.LeaseKeepAliveRequest{ID: int64(st.lease)}
	}
	b.send(r, req)
	return true
}

func (b *simBench) suffix() string {
	if b.cfg.Serializable {
		return serializable
	}
	return ""
}

// Receive implements sim.Process: the members' answers and watch events.
func (b *simBench) Receive(_ string, payload any) {
	switch p := payload.(type) {
	case *cluster.ClientResponse:
		resp := p.Resp
		var err error
		if resp.Err != nil {
			err = resp.Err
		}
		b.answer(p.ID, &resp, err)
	case *cluster.ClientWatchEvents:
		for _, r := range p.Responses {
			for _, ev := range r.Events {
				if ev.GetType() != mvccpb.PUT || len(ev.GetKv().GetValue()) < stampSize {
					continue
				}
				sent := time.Duration(int64(binary.BigEndian.Uint64(ev.GetKv().GetValue())))
				now := b.now() - b.origin
				b.samples = append(b.samples, Sample{Op: opWatch, Start: sent, Latency: now - sent})
			}
		}
	}
}

// answer ends request id with resp (nil on a timeout) or err.
func (b *simBench) answer(id uint64, resp *store.Response, err error) {
	r, ok := b.inflight[id]
	if !ok {
		return // answered after its timeout
	}
	delete(b.inflight, id)
	if resp != nil {
		b.host.Cancel(r.timer)
	}
	if r.setup {
		b.setupDone(r, resp, err != nil)
		return
	}
	if r.worker < 0 {
		b.probeLive[r.probe]--
		b.samples = append(b.samples, Sample{Op: r.op, Start: r.due - b.origin, Latency: b.now() - r.due, Err: err != nil})
		return
	}
	if err == nil && b.cfg.Workload == WorkloadList {
		rr := resp.Range
		if r.listRev == 0 {
			r.listRev = rr.GetHeader().GetRevision()
		}
		if kvs := rr.GetKvs(); rr.GetMore() && len(kvs) > 0 {
			from := append(slices.Clone(kvs[len(kvs)-1].GetKey()), 0)
			b.send(r, store.Request{Range: &pb.RangeRequest{Key: from, RangeEnd: r.listEnd, Limit: b.cfg.Limit, Revision: r.listRev, Serializable: b.cfg.Serializable}})
			return
		}
	}
	if err == nil && b.cfg.Workload == WorkloadTxn {
		st := &b.wk.state[r.worker]
		if tr := resp.Txn; tr.GetSucceeded() {
			st.revs[r.key] = tr.GetHeader().GetRevision()
		} else if rs := tr.GetResponses(); len(rs) == 1 && len(rs[0].GetResponseRange().GetKvs()) == 1 {
			st.revs[r.key] = rs[0].GetResponseRange().GetKvs()[0].GetModRevision()
		}
	}
	now := b.now()
	b.samples = append(b.samples, Sample{Op: r.op, Start: r.due - b.origin, Latency: now - r.due, Err: err != nil})
	if r.due >= b.origin {
		b.lastAnswer = max(b.lastAnswer, now)
	}
	b.busy--
	if b.cfg.Rate > 0 {
		b.free = append(b.free, r.worker)
		b.dispatch()
		return
	}
	next := now
	if err != nil && resp != nil {
		next += errorPause // a refusal comes back at once: do not spin
		b.host.After(errorPause, func() { b.issue(r.worker, next) })
		return
	}
	b.issue(r.worker, next)
}

// probeTick sends the fault probe's put and linearizable get.
func (b *simBench) probeTick() {
	if b.end > 0 && b.now() >= b.end {
		return
	}
	for kind := range 2 {
		if b.probeLive[kind] >= probeInFlight {
			continue
		}
		b.probeLive[kind]++
		r := &simReq{worker: -1, probe: kind, due: b.now()}
		req := store.Request{Range: &pb.RangeRequest{Key: []byte(probeKey)}}
		r.op = opProbeGet
		if kind == 0 {
			r.op = opProbePut
			req = store.Request{Put: &pb.PutRequest{Key: []byte(probeKey), Value: []byte("x")}}
		}
		b.sendWithin(r, req, probeTimeout)
	}
	b.host.After(probeEvery, b.probeTick)
}

// finished reports whether the run is over: past its end (and the watch
// drain) or its total, with no worker request in flight.
func (b *simBench) finished() bool {
	if !b.started {
		return false
	}
	now := b.now()
	switch {
	case b.end > 0 && now < b.end:
		return false
	case b.end == 0 && b.claimed < b.cfg.Total:
		return false
	case b.cfg.Workload == WorkloadWatch && b.end > 0 && now < b.end+watchDrain:
		return false
	}
	return b.busy == 0
}

// prefixEnd is the end of the range of every key with prefix p.
func prefixEnd(p []byte) []byte {
	end := slices.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return []byte{0}
}
