package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/havoclab/havoc/chaos"
	"github.com/havoclab/havoc/cluster"
	"github.com/havoclab/havoc/cluster/etcdbin"
	"github.com/havoclab/havoc/scenarios"
	"github.com/havoclab/havoc/scenarios/bench"
	"github.com/havoclab/havoc/scenarios/report"
)

// benchFlags are the options of `harness bench`.
type benchFlags struct {
	cfg       bench.Config
	workload  string
	faults    []string
	endpoints string
	compare   string
	rounds    int
	nodes     int
	jsonPath  string
	junitPath string
	csvPath   string
	plotDir   string
	bf        backendFlags
	model     bench.Model
	zoneRTT   string
	sec       clientSecurity
}

func newBenchCmd() *cobra.Command {
	var f benchFlags
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure throughput and latency of a cluster (havoc's, a real etcd, or given endpoints)",
		Long: `Measure the throughput and latency of a cluster through the etcd v3 client, as
etcd's benchmark tool does: a closed loop of --clients concurrent requests, or an open
loop at --rate requests per second whose latency counts from when each request was due
(coordinated-omission correction). Latency percentiles come from HDR histograms.

The cluster is one the harness starts (--backend process or docker; --target havoc
runs this binary's serve, --target etcd a real etcd from --etcd-bin, PATH, or built
from go.mod's pinned module), or an existing one (--endpoints). --compare havoc,etcd
runs the same workload on both, alternating --rounds, and prints the ratio of every
figure. --fault KIND[:MEMBER]@AT[+FOR] (e.g. kill-leader@5s, pause:m2@3s+2s) injects a
fault during the measured part and reports the unavailability window, the latency
during the fault and the time to recover.

--backend sim answers what-if questions instead of measuring: havoc's store runs in
the deterministic simulator, in virtual time, where the network (--sim-rtt within a
zone, --sim-zone-rtt between the --sim-zones zones the members are spread over),
each fsync of a member's log (--sim-fsync) and each client request (--sim-service)
cost what the model says. The same flags and --seed give the same figures on any
machine; they come from the model, which leaves out CPU contention between members,
the Go runtime, bandwidth and the page cache. For example, commit latency across
three zones and failover time with a 1 s election timeout:

  harness bench --backend sim --sim-zones 3 --sim-zone-rtt 1-2=10ms,1-3=30ms,2-3=25ms --fault kill-leader@5s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return f.run(cmd.Context(), cmd.OutOrStdout()) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.endpoints, "endpoints", "", "comma list of client URLs of an existing cluster (instead of starting one)")
	f.sec.register(fl)
	fl.StringVar(&f.bf.backend, "backend", "process", "where the harness runs the members: process, docker, or sim (a model in virtual time)")
	fl.IntVar(&f.model.Zones, "sim-zones", 1, "--backend sim: zones the members are spread over round-robin (m1 in zone 1, m2 in zone 2, ...)")
	fl.IntVar(&f.model.ClientZone, "sim-client-zone", 1, "--backend sim: the clients' zone")
	fl.DurationVar(&f.model.RTT, "sim-rtt", bench.DefaultRTT, "--backend sim: round trip between two hosts of one zone")
	fl.StringVar(&f.zoneRTT, "sim-zone-rtt", bench.DefaultZoneRTT.String(), "--backend sim: round trip between zones: one duration, or per pair A-B=DURATION,... (e.g. 1-2=10ms,1-3=30ms,2-3=25ms)")
	fl.Float64Var(&f.model.Spread, "sim-spread", bench.DefaultSpread, "--backend sim: each one-way latency is drawn within this fraction of its mean")
	fl.DurationVar(&f.model.Fsync, "sim-fsync", bench.DefaultFsync, "--backend sim: latency of one fsync of a member's log")
	fl.Float64Var(&f.model.FsyncSpread, "sim-fsync-spread", bench.DefaultSpread, "--backend sim: fsync latency is drawn within this fraction of its mean")
	fl.DurationVar(&f.model.Service, "sim-service", bench.DefaultService, "--backend sim: a member's time per client request")
	fl.DurationVar(&f.model.TickInterval, "sim-tick", 100*time.Millisecond, "--backend sim: the members' heartbeat interval (etcd's --heartbeat-interval)")
	fl.IntVar(&f.model.ElectionTicks, "sim-election-ticks", 10, "--backend sim: election timeout in heartbeats (etcd's --election-timeout divided by --heartbeat-interval)")
	fl.StringVar(&f.bf.target, "target", "havoc", "store the members run: havoc or etcd")
	fl.StringVar(&f.bf.etcdBin, "etcd-bin", "", "etcd binary for target etcd (default: etcd on PATH, else go.mod's pinned release built by --etcd-version's cache)")
	fl.StringVar(&f.bf.etcdVersion, "etcd-version", "", etcdVersionUsage)
	fl.StringVar(&f.bf.runDir, "run-dir", "", "where the members keep data dirs and logs (default: a temporary directory, removed afterwards)")
	registerLazyFS(fl, &f.bf.lazyfs)
	f.bf.docker.register(fl)
	fl.IntVar(&f.nodes, "nodes", 3, "cluster members (1 to 9)")
	fl.StringVar(&f.compare, "compare", "", "two targets to compare in one run, e.g. havoc,etcd")
	fl.IntVar(&f.rounds, "rounds", 1, "rounds per target (with --compare the targets alternate)")
	fl.StringVar(&f.workload, "workload", "put", "what the clients send: put, get, range (one page), list (every page, pinned to a revision), txn (compare-and-set), watch (put to event latency), lease (keep-alive)")
	fl.IntVar(&f.cfg.Clients, "clients", 16, "concurrent requests (closed loop), or the bound on requests in flight (open loop)")
	fl.IntVar(&f.cfg.Conns, "conns", 1, "client connections the clients share")
	fl.Float64Var(&f.cfg.Rate, "rate", 0, "open-loop rate in requests per second (0: closed loop)")
	fl.DurationVar(&f.cfg.Warmup, "warmup", time.Second, "warm-up before the measured part, left out of every figure")
	fl.DurationVar(&f.cfg.Duration, "duration", 10*time.Second, "length of the measured part (0 with --total: until the total)")
	fl.Int64Var(&f.cfg.Total, "total", 0, "end the measured part after this many requests (0: at --duration)")
	fl.DurationVar(&f.cfg.Timeout, "timeout", 5*time.Second, "timeout of one request")
	fl.IntVar(&f.cfg.KeySize, "key-size", 8, "key size in bytes")
	fl.IntVar(&f.cfg.ValueSize, "value-size", 256, "value size in bytes")
	fl.IntVar(&f.cfg.KeySpace, "key-space", 1000, "number of distinct keys")
	fl.BoolVar(&f.cfg.Sequential, "sequential", false, "draw keys in order instead of at random")
	fl.BoolVar(&f.cfg.Serializable, "serializable", false, "get and range are serializable (no ReadIndex round)")
	fl.Int64Var(&f.cfg.Limit, "limit", 100, "range and list: keys per request (page)")
	fl.IntVar(&f.cfg.TxnOps, "txn-ops", 1, "txn: puts in the success branch (on consecutive keys)")
	fl.IntVar(&f.cfg.Watchers, "watchers", 1, "watch: watchers of the key prefix")
	fl.Uint64Var(&f.cfg.Seed, "seed", 1, "seed of the key draws and the link proxies")
	fl.StringArrayVar(&f.faults, "fault", nil, "fault during the measured part, KIND[:MEMBER]@AT[+FOR] (repeatable): kill-leader or a kind of --faults")
	fl.StringVar(&f.jsonPath, "json", "", "write the reports (figures and per-second series) to this JSON file")
	fl.StringVar(&f.junitPath, "junit", "", "write a JUnit XML report (one passing test case per target and round, its time the measured part) to this file")
	fl.StringVar(&f.csvPath, "csv", "", "write the figures of every run to this CSV file, and the per-second series next to it (NAME-series.csv)")
	fl.StringVar(&f.plotDir, "plot", "", "write PNG plots (latency and throughput over time, latency percentiles) and index.html joining them with the tables to this directory")
	return cmd
}

// target is one cluster to measure.
type benchTarget struct {
	name      string
	be        cluster.Backend // nil for --endpoints
	endpoints []string
}

// parse checks the flags and returns the benchmark and the targets' names.
func (f *benchFlags) parse() (bench.Config, []string, error) {
	cfg := f.cfg
	cfg.Workload = bench.Workload(f.workload)
	for _, s := range f.faults {
		fa, err := bench.ParseFault(s)
		if err != nil {
			return cfg, nil, err
		}
		cfg.Faults = append(cfg.Faults, fa)
	}
	if cfg.Duration == 0 && cfg.Total == 0 {
		return cfg, nil, errors.New("--duration 0 needs --total")
	}
	if err := cfg.Validate(); err != nil {
		return cfg, nil, err
	}
	if f.rounds < 1 {
		return cfg, nil, fmt.Errorf("--rounds %d: at least 1", f.rounds)
	}
	if f.nodes < 1 || f.nodes > 9 {
		return cfg, nil, fmt.Errorf("--nodes %d: a cluster has 1 to 9 members", f.nodes)
	}
	if f.endpoints != "" {
		if f.compare != "" || len(cfg.Faults) > 0 {
			return cfg, nil, errors.New("--endpoints measures a cluster the harness does not run: no --compare, no --fault")
		}
		var err error
		if cfg.TLS, err = f.sec.tls(); err != nil {
			return cfg, nil, err
		}
		if cfg.Username, cfg.Password, err = f.sec.credentials(); err != nil {
			return cfg, nil, err
		}
		return cfg, []string{"endpoints"}, nil
	}
	if f.sec != (clientSecurity{}) {
		return cfg, nil, errors.New("--cacert, --cert, --key, --user and --password are for --endpoints (the clusters the harness starts are not secured)")
	}
	if f.bf.backend == "sim" {
		if f.compare != "" {
			return cfg, nil, errors.New("--backend sim runs one model: no --compare (run it twice with other --sim-* flags)")
		}
		if d, err := time.ParseDuration(f.zoneRTT); err == nil {
			f.model.ZoneRTT = d
		} else if f.model.ZoneRTTs, err = bench.ParseZoneRTTs(f.zoneRTT); err != nil {
			return cfg, nil, err
		} else {
			f.model.ZoneRTT = bench.DefaultZoneRTT
		}
		f.model.Members = f.nodes
		if err := f.model.Validate(); err != nil {
			return cfg, nil, err
		}
		return cfg, []string{"sim"}, nil
	}
	if f.bf.backend != "process" && f.bf.backend != "docker" {
		return cfg, nil, fmt.Errorf("unknown --backend %q (want process, docker or sim)", f.bf.backend)
	}
	names := []string{f.bf.target}
	if f.compare != "" {
		names = strings.Split(f.compare, ",")
		if len(names) != 2 {
			return cfg, nil, fmt.Errorf("--compare %q: two targets, e.g. havoc,etcd", f.compare)
		}
	}
	for _, n := range names {
		if n != string(cluster.TargetHavoc) && n != string(cluster.TargetEtcd) {
			return cfg, nil, fmt.Errorf("unknown target %q (want havoc or etcd)", n)
		}
	}
	return cfg, names, nil
}

func (f *benchFlags) run(ctx context.Context, w io.Writer) error {
	cfg, names, err := f.parse()
	if err != nil {
		return usageError(err)
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	var targets []benchTarget
	defer func() {
		for _, t := range targets {
			if t.be != nil {
				if err := t.be.Close(); err != nil {
					fmt.Fprintln(os.Stderr, "harness: close backend:", err)
				}
			}
		}
	}()
	if f.endpoints != "" {
		targets = append(targets, benchTarget{name: "endpoints", endpoints: strings.Split(f.endpoints, ",")})
	}
	if f.bf.backend == "sim" {
		targets = append(targets, benchTarget{name: "sim"})
		fmt.Fprintf(w, "model: %s\n", f.model.String())
	}
	for _, name := range names {
		if f.endpoints != "" || f.bf.backend == "sim" {
			break
		}
		t, err := f.start(ctx, w, name, cfg.Seed)
		if t.be != nil {
			targets = append(targets, t)
		}
		if err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "bench %s: %s, warm-up %s, %s\n", cfg.Workload, cfg.Loop(), cfg.Warmup, measuredText(cfg))
	if st, err := os.Stderr.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
		cfg.Progress = os.Stderr // a terminal: one progress line, rewritten every second
	}
	perTarget := make([][]*bench.Report, len(targets))
	var all []*bench.Report
	for round := range f.rounds {
		for i, t := range targets {
			if ctx.Err() != nil {
				break
			}
			if round > 0 || i > 0 {
				if err := heal(ctx, t); err != nil {
					return err
				}
			}
			if f.rounds > 1 {
				fmt.Fprintf(w, "\nround %d of %d\n", round+1, f.rounds)
			}
			var r *bench.Report
			var err error
			if t.name == "sim" {
				rc := cfg
				rc.Seed += uint64(round) // each round its own draws
				r, err = bench.RunSim(rc, f.model)
			} else {
				r, err = bench.Run(ctx, t.name, cfg, t.endpoints, injector(t))
			}
			if err != nil {
				return err
			}
			r.WriteTable(w)
			perTarget[i] = append(perTarget[i], r)
			all = append(all, r)
		}
	}
	if ctx.Err() != nil {
		fmt.Fprintln(w, "interrupted: the figures cover what ran")
	}
	merged := make([]*bench.Report, 0, len(targets))
	for _, rs := range perTarget {
		if m := bench.Merge(rs); m != nil {
			merged = append(merged, m)
		}
	}
	if f.rounds > 1 {
		for _, m := range merged {
			fmt.Fprintf(w, "\nall %d rounds of ", f.rounds)
			m.WriteTable(w)
		}
	}
	if len(merged) == 2 {
		fmt.Fprintln(w)
		bench.WriteCompare(w, merged[0], merged[1])
	}
	if f.jsonPath != "" {
		if err := writeBenchJSON(f.jsonPath, all, merged); err != nil {
			return err
		}
		fmt.Fprintln(w, "json:", f.jsonPath)
	}
	if f.junitPath != "" {
		rep := reportFlags{junit: f.junitPath}
		if err := rep.write(benchResults(all, f.rounds, len(targets))); err != nil {
			return err
		}
		fmt.Fprintln(w, "junit:", f.junitPath)
	}
	if f.csvPath != "" {
		series, err := writeBenchCSV(f.csvPath, all)
		if err != nil {
			return err
		}
		fmt.Fprintln(w, "csv:", f.csvPath, series)
	}
	if f.plotDir != "" {
		files, err := bench.WritePlots(f.plotDir, all, merged)
		if err != nil {
			return err
		}
		page, err := bench.WriteHTML(f.plotDir, all, merged, files)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "plots: %s\nreport: %s\n", strings.Join(files, " "), page)
	}
	return nil
}

// injector is t's backend as a chaos.Injector, nil for endpoints.
func injector(t benchTarget) chaos.Injector {
	if t.be == nil {
		return nil
	}
	return t.be
}

func measuredText(cfg bench.Config) string {
	switch {
	case cfg.Total > 0 && cfg.Duration > 0:
		return fmt.Sprintf("%d requests or %s measured", cfg.Total, cfg.Duration)
	case cfg.Total > 0:
		return fmt.Sprintf("%d requests measured", cfg.Total)
	}
	return fmt.Sprintf("%s measured", cfg.Duration)
}

// start starts a cluster of target name on the backend the flags choose.
func (f *benchFlags) start(ctx context.Context, w io.Writer, name string, seed uint64) (benchTarget, error) {
	bf := f.bf
	bf.target = name
	if bf.runDir != "" && f.compare != "" {
		bf.runDir = filepath.Join(bf.runDir, name)
	}
	if name == string(cluster.TargetEtcd) && bf.backend == "process" {
		bin, err := etcdBinary(ctx, w, bf.etcdBin, bf.etcdVersion)
		if err != nil {
			return benchTarget{}, err
		}
		bf.etcdBin, bf.etcdVersion = bin, ""
	}
	be, err := bf.newBackend(scenarios.Config{Members: f.nodes, Seed: seed})
	if err != nil {
		return benchTarget{}, err
	}
	t := benchTarget{name: name, be: be}
	started := time.Now()
	if err := be.Start(ctx); err != nil {
		return t, err
	}
	for _, m := range be.Members() {
		t.endpoints = append(t.endpoints, be.ClientURL(m))
	}
	fmt.Fprintf(w, "%s: %d members on the %s backend up in %s\n", name, len(t.endpoints), bf.backend, time.Since(started).Round(time.Millisecond))
	return t, nil
}

// heal ends the faults a previous round left and waits until every member
// answers /health, so that every round starts from a whole cluster.
func heal(ctx context.Context, t benchTarget) error {
	if t.be == nil {
		return nil
	}
	if err := t.be.HealAll(ctx); err != nil {
		return fmt.Errorf("heal %s: %w", t.name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	hc := &http.Client{Timeout: time.Second}
	for _, ep := range t.endpoints {
		for {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ep+"/health", nil)
			resp, err := hc.Do(req)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("heal %s: %s not healthy: %w", t.name, ep, ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}

// etcdBinary is given, else the release version (built once and cached),
// else etcd on PATH, else go.mod's pinned release (etcdbin.Pinned) built into
// the same cache.
func etcdBinary(ctx context.Context, w io.Writer, given, version string) (string, error) {
	if given != "" && version != "" {
		return "", errors.New("--etcd-bin and --etcd-version both given: pass one")
	}
	if given != "" {
		return given, nil
	}
	if version == "" {
		if p, err := exec.LookPath("etcd"); err == nil {
			return p, nil
		}
		version = etcdbin.Pinned
	}
	rel, err := etcdbin.Get(ctx, w, version)
	if err != nil {
		return "", fmt.Errorf("no etcd on PATH, and building one failed (pass --etcd-bin): %w", err)
	}
	return rel.Etcd(), nil
}

// benchJSON is the --json file.
type benchJSON struct {
	// Runs are every round of every target, in the order they ran.
	Runs []*bench.Report `json:"runs"`
	// Targets are the rounds of each target merged.
	Targets []*bench.Report `json:"targets"`
}

func writeBenchJSON(path string, runs, merged []*bench.Report) error {
	b, err := json.MarshalIndent(benchJSON{Runs: runs, Targets: merged}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// writeBenchCSV writes the summary CSV to path and the series CSV next to it,
// and returns the series file's name.
func writeBenchCSV(path string, runs []*bench.Report) (string, error) {
	series := strings.TrimSuffix(path, ".csv") + "-series.csv"
	for _, out := range []struct {
		path  string
		write func(io.Writer, []*bench.Report) error
	}{{path, bench.WriteSummaryCSV}, {series, bench.WriteSeriesCSV}} {
		f, err := os.Create(out.path)
		if err != nil {
			return "", err
		}
		err = out.write(f, runs)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return "", err
		}
	}
	return series, nil
}

// benchResults are a benchmark's runs as report cases: a benchmark has no
// verdict, so each passes; its time is the measured part and its reason the
// operations measured.
func benchResults(all []*bench.Report, rounds, targets int) report.Results {
	res := report.Results{Command: "bench", Planned: rounds * targets}
	for i, r := range all {
		var ops []string
		var errs int64
		for _, o := range r.Ops {
			ops = append(ops, fmt.Sprintf("%s %d ok %.0f/s", o.Op, o.Count, o.Throughput))
			errs += o.Errors
		}
		c := report.Case{Suite: "bench", Name: fmt.Sprintf("%s round %d", r.Target, i/max(targets, 1)+1), Seed: r.Config.Seed,
			Verdict: scenarios.VerdictOK, Status: report.StatusPassed, Reason: fmt.Sprintf("%s; %d errors", strings.Join(ops, ", "), errs),
			WallSec: r.Measured.Seconds()}
		res.Cases = append(res.Cases, c)
		res.ElapsedSec += c.WallSec
	}
	return res
}
