package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/havoclab/havoc/chaos"
)

// The operation names of the samples.
const (
	opPut        = "put"
	opGet        = "get"
	opRange      = "range"
	opList       = "list"
	opTxn        = "txn"
	opWatch      = "watch"
	opKeepAlive  = "keepalive"
	opProbePut   = "probe-put"
	opProbeGet   = "probe-get"
	serializable = "-serializable"
)

// The fault probe: a put (each of a fresh key) and a linearizable get every
// probeEvery, each bounded by probeTimeout. probeInFlight (per kind) is enough
// for every probe of a timeout's length to hang without the probe skipping a
// beat: a smaller bound left the probe blind for a second after a leader kill
// (every probe sent during the election hung, and no new one went out until
// they timed out).
const (
	probeKey      = "bench-probe"
	probeEvery    = 10 * time.Millisecond
	probeTimeout  = time.Second
	probeInFlight = int32(2 * probeTimeout / probeEvery)
)

// stampSize is the bytes at the head of a watch workload's value: the send
// time, in nanoseconds from the start of the measured part.
const stampSize = 8

// watchDrain is how long the watchers keep listening after the last put.
const watchDrain = 500 * time.Millisecond

// leaseTTL is the TTL, in seconds, of the lease workload's leases.
const leaseTTL = 60

// Run runs cfg against the cluster at endpoints and reports what it measured.
// target names the cluster in the report. inj injects cfg.Faults (nil: the
// configuration must have none); a fault without a length is left in place.
// Cancelling ctx ends the run early; the report covers what ran.
func Run(ctx context.Context, target string, cfg Config, endpoints []string, inj chaos.Injector) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(cfg.Faults) > 0 && inj == nil {
		return nil, fmt.Errorf("%w: faults need a cluster the harness runs (not --endpoints)", ErrConfig)
	}
	if len(endpoints) == 0 {
		return nil, fmt.Errorf("%w: no endpoints", ErrConfig)
	}
	conns := make([]*clientv3.Client, 0, cfg.Conns)
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	for range cfg.Conns + 1 { // the last one is the probe's
		c, err := newClient(cfg, endpoints)
		if err != nil {
			return nil, fmt.Errorf("bench: connect to %s: %w", strings.Join(endpoints, ","), err)
		}
		conns = append(conns, c)
	}
	probeConn := conns[cfg.Conns]
	w := newWorkers(cfg)
	w.conns = conns[:cfg.Conns]
	if err := w.setup(ctx); err != nil {
		return nil, err
	}
	defer w.teardown()

	origin := time.Now().Add(cfg.Warmup)
	w.origin = origin
	var extra []Sample // the watchers' and the probe's
	var extraMu sync.Mutex
	add := func(s []Sample) {
		extraMu.Lock()
		extra = append(extra, s...)
		extraMu.Unlock()
	}
	var bg sync.WaitGroup
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	if cfg.Workload == WorkloadWatch {
		ready := make(chan error, cfg.Watchers)
		for i := range cfg.Watchers {
			bg.Go(func() { add(watch(watchCtx, w.conns[i%len(w.conns)], origin, ready)) })
		}
		for range cfg.Watchers {
			if err := <-ready; err != nil {
				stopWatch()
				bg.Wait()
				return nil, fmt.Errorf("bench: start watcher: %w", err)
			}
		}
	}
	runCtx, endRun := context.WithCancel(ctx)
	defer endRun()
	var records []FaultRecord
	if len(cfg.Faults) > 0 {
		put := func(ctx context.Context) error {
			_, err := probeConn.Put(ctx, probeKey+"/"+strconv.FormatInt(time.Now().UnixNano(), 10), "")
			return err
		}
		get := func(ctx context.Context) error {
			_, err := probeConn.Get(ctx, probeKey)
			return err
		}
		bg.Go(func() { add(probe(runCtx, put, get, origin)) })
		bg.Go(func() { records = inject(runCtx, inj, cfg.Faults, origin) })
	}
	load := Load{Clients: cfg.Clients, Rate: cfg.Rate, Warmup: cfg.Warmup, Duration: cfg.Duration, Total: cfg.Total, Timeout: cfg.Timeout}
	var answered, failed atomic.Int64
	req := func(ctx context.Context, worker int, seq int64) (string, error) {
		op, err := w.request(ctx, worker, seq)
		if err != nil {
			failed.Add(1)
		} else {
			answered.Add(1)
		}
		return op, err
	}
	if cfg.Progress != nil {
		bg.Go(func() { progress(runCtx, cfg, target, origin, &answered, &failed) })
	}
	samples, measured := Drive(ctx, load, origin, req)
	if cfg.Workload == WorkloadWatch {
		sleepUntil(ctx, time.Now().Add(watchDrain))
	}
	endRun()
	stopWatch()
	bg.Wait()
	for _, s := range extra {
		if s.Start >= 0 && s.Start < measured {
			samples = append(samples, s)
		}
	}
	SortSamples(samples)
	return Analyze(target, cfg, samples, measured, records), nil
}

// progress writes a line to cfg.Progress every second until ctx ends.
func progress(ctx context.Context, cfg Config, target string, origin time.Time, answered, failed *atomic.Int64) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			fmt.Fprint(cfg.Progress, "\r\033[K")
			return
		case <-tick.C:
			at := time.Since(origin)
			phase := fmt.Sprintf("%s of %s", at.Truncate(time.Second), cfg.Duration)
			if at < 0 {
				phase = "warm-up"
			} else if cfg.Duration == 0 {
				phase = fmt.Sprintf("%s, total %d", at.Truncate(time.Second), cfg.Total)
			}
			fmt.Fprintf(cfg.Progress, "\r\033[K%s %s: %s, %d answered, %d failed", target, cfg.Workload, phase, answered.Load(), failed.Load())
		}
	}
}

// newClient connects to endpoints with one attempt per request: a failure is
// a figure, not something to retry.
func newClient(cfg Config, endpoints []string) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints:            endpoints,
		TLS:                  cfg.TLS,
		Username:             cfg.Username,
		Password:             cfg.Password,
		DialTimeout:          5 * time.Second,
		MaxUnaryRetries:      1,
		DialKeepAliveTime:    2 * time.Second,
		DialKeepAliveTimeout: 2 * time.Second,
		DialOptions:          []grpc.DialOption{grpc.WithDisableRetry()},
		Logger:               zap.NewNop(),
	})
}

// workers issue the workload's requests.
type workers struct {
	cfg    Config
	conns  []*clientv3.Client
	state  []workerState
	next   atomic.Int64 // the next sequential key
	origin time.Time
}

// workerState is one worker's own: only its goroutine touches it.
type workerState struct {
	rnd   *rand.Rand
	value []byte
	revs  map[int]int64 // txn: the last mod revision seen per key
	lease clientv3.LeaseID
}

// newWorkers returns cfg.Clients workers, each with its own key draws
// (seeded by cfg.Seed and its number) and value.
func newWorkers(cfg Config) *workers {
	w := &workers{cfg: cfg, state: make([]workerState, cfg.Clients)}
	for i := range w.state {
		w.state[i] = workerState{rnd: rand.New(rand.NewPCG(cfg.Seed, uint64(i))), value: make([]byte, cfg.ValueSize), revs: map[int]int64{}}
		for j := range w.state[i].value {
			w.state[i].value[j] = 'a' + byte((i+j)%26)
		}
	}
	return w
}

// key is the name of key i: the prefix, then i zero-padded to KeySize.
func (w *workers) key(i int) string {
	digits := strconv.Itoa(i)
	width := max(w.cfg.KeySize-len(KeyPrefix), len(strconv.Itoa(w.cfg.KeySpace-1)))
	return KeyPrefix + strings.Repeat("0", width-len(digits)) + digits
}

// draw picks the next key index.
func (w *workers) draw(worker int) int {
	if w.cfg.Sequential {
		return int(w.next.Add(1)-1) % w.cfg.KeySpace
	}
	return w.state[worker].rnd.IntN(w.cfg.KeySpace)
}

// setup fills the key space for the workloads that read it and grants the
// lease workload's leases.
func (w *workers) setup(ctx context.Context) error {
	switch w.cfg.Workload {
	case WorkloadGet, WorkloadRange, WorkloadList, WorkloadTxn:
		var next atomic.Int64
		errs := make([]error, w.cfg.Clients)
		var wg sync.WaitGroup
		for c := range w.cfg.Clients {
			wg.Go(func() {
				cli := w.conns[c%len(w.conns)]
				for {
					i := int(next.Add(1) - 1)
					if i >= w.cfg.KeySpace || ctx.Err() != nil {
						return
					}
					rctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
					_, err := cli.Put(rctx, w.key(i), string(w.state[c].value))
					cancel()
					if err != nil {
						errs[c] = fmt.Errorf("bench: fill key space: %w", err)
						return
					}
				}
			})
		}
		wg.Wait()
		return errors.Join(errs...)
	case WorkloadLease:
		for c := range w.state {
			rctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
			resp, err := w.conns[c%len(w.conns)].Grant(rctx, leaseTTL)
			cancel()
			if err != nil {
				return fmt.Errorf("bench: grant lease: %w", err)
			}
			w.state[c].lease = resp.ID
		}
	}
	return nil
}

// teardown revokes the leases (best effort).
func (w *workers) teardown() {
	for c, st := range w.state {
		if st.lease != 0 {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, _ = w.conns[c%len(w.conns)].Revoke(ctx, st.lease)
			cancel()
		}
	}
}

// request is the workload's Request.
func (w *workers) request(ctx context.Context, worker int, _ int64) (string, error) {
	cli := w.conns[worker%len(w.conns)]
	st := &w.state[worker]
	var readOpts []clientv3.OpOption
	suffix := ""
	if w.cfg.Serializable {
		readOpts, suffix = append(readOpts, clientv3.WithSerializable()), serializable
	}
	switch w.cfg.Workload {
	case WorkloadPut, WorkloadWatch:
		if w.cfg.Workload == WorkloadWatch {
			binary.BigEndian.PutUint64(st.value, uint64(time.Since(w.origin)))
		}
		_, err := cli.Put(ctx, w.key(w.draw(worker)), string(st.value))
		return opPut, err
	case WorkloadGet:
		_, err := cli.Get(ctx, w.key(w.draw(worker)), readOpts...)
		return opGet + suffix, err
	case WorkloadRange:
		opts := append([]clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithLimit(w.cfg.Limit)}, readOpts...)
		_, err := cli.Get(ctx, KeyPrefix, opts...)
		return opRange + suffix, err
	case WorkloadList:
		err := w.list(ctx, cli, readOpts)
		return opList + suffix, err
	case WorkloadTxn:
		i := w.draw(worker)
		k := w.key(i)
		puts := make([]clientv3.Op, w.cfg.TxnOps)
		for j := range puts {
			puts[j] = clientv3.OpPut(w.key((i+j)%w.cfg.KeySpace), string(st.value))
		}
		resp, err := cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(k), "=", st.revs[i])).
			Then(puts...).
			Else(clientv3.OpGet(k)).
			Commit()
		if err != nil {
			return opTxn, err
		}
		if resp.Succeeded {
			st.revs[i] = resp.Header.Revision
		} else if rs := resp.Responses; len(rs) == 1 && len(rs[0].GetResponseRange().GetKvs()) == 1 {
			st.revs[i] = rs[0].GetResponseRange().GetKvs()[0].ModRevision
		}
		return opTxn, nil
	case WorkloadLease:
		_, err := cli.KeepAliveOnce(ctx, st.lease)
		return opKeepAlive, err
	}
	panic(fmt.Sprintf("bench: workload %q passed Validate", w.cfg.Workload))
}

// list reads the whole key prefix in pages of Limit keys, every page after
// the first pinned to the first page's revision, as kube-apiserver lists.
func (w *workers) list(ctx context.Context, cli *clientv3.Client, readOpts []clientv3.OpOption) error {
	end := clientv3.GetPrefixRangeEnd(KeyPrefix)
	from, rev := KeyPrefix, int64(0)
	for {
		opts := append([]clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(w.cfg.Limit)}, readOpts...)
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := cli.Get(ctx, from, opts...)
		if err != nil {
			return err
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// watch watches the key prefix until ctx ends and samples, for every put
// event, the time from the put's send (stamped in its value) to the event.
// It reports on ready once the watch is established (or failed).
func watch(ctx context.Context, cli *clientv3.Client, origin time.Time, ready chan<- error) []Sample {
	wch := cli.Watch(clientv3.WithRequireLeader(ctx), KeyPrefix, clientv3.WithPrefix(), clientv3.WithCreatedNotify())
	first, ok := <-wch
	switch {
	case !ok:
		ready <- errors.New("watch channel closed")
		return nil
	case first.Err() != nil:
		ready <- first.Err()
		return nil
	}
	ready <- nil
	var out []Sample
	for resp := range wch {
		now := time.Since(origin)
		for _, ev := range resp.Events {
			if ev.Type != clientv3.EventTypePut || len(ev.Kv.Value) < stampSize {
				continue
			}
			sent := time.Duration(int64(binary.BigEndian.Uint64(ev.Kv.Value)))
			out = append(out, Sample{Op: opWatch, Start: sent, Latency: now - sent})
		}
	}
	return out
}

// probe calls put and get every probeEvery until ctx ends, for the
// unavailability windows of the faults.
func probe(ctx context.Context, put, get func(context.Context) error, origin time.Time) []Sample {
	var (
		mu       sync.Mutex
		out      []Sample
		wg       sync.WaitGroup
		inflight [2]atomic.Int32
	)
	send := func(kind int) {
		defer inflight[kind].Add(-1)
		sent := time.Now()
		rctx, cancel := context.WithTimeout(ctx, probeTimeout)
		op, do := opProbePut, put
		if kind == 1 {
			op, do = opProbeGet, get
		}
		err := do(rctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		mu.Lock()
		out = append(out, Sample{Op: op, Start: sent.Sub(origin), Latency: time.Since(sent), Err: err != nil})
		mu.Unlock()
	}
	tick := time.NewTicker(probeEvery)
	defer tick.Stop()
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-tick.C:
			for kind := range 2 {
				if inflight[kind].Load() < probeInFlight {
					inflight[kind].Add(1)
					wg.Go(func() { send(kind) })
				}
			}
		}
	}
	wg.Wait()
	return out
}
