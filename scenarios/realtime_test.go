package scenarios

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/havoclab/havoc/chaos"
	"github.com/havoclab/havoc/cluster"
	"github.com/havoclab/havoc/cluster/etcdbin"
	"github.com/havoclab/havoc/linearizability"
)

func TestRealOutcome(t *testing.T) {
	put := linearizability.Operation{Kind: linearizability.KindPut}
	get := linearizability.Operation{Kind: linearizability.KindGet}
	cases := []struct {
		op   linearizability.Operation
		err  error
		want linearizability.Outcome
	}{
		{get, context.DeadlineExceeded, linearizability.OutcomeFail},
		{get, status.Error(codes.Unavailable, "etcdserver: no leader"), linearizability.OutcomeFail},
		{put, context.DeadlineExceeded, linearizability.OutcomeUnknown},
		{put, status.Error(codes.DeadlineExceeded, "context deadline exceeded"), linearizability.OutcomeUnknown},
		{put, status.Error(codes.Unavailable, "etcdserver: no leader"), linearizability.OutcomeUnknown},
		{put, status.Error(codes.Unavailable, "etcdserver: request timed out"), linearizability.OutcomeUnknown},
		{put, status.Error(codes.Unavailable, "error reading from server: EOF"), linearizability.OutcomeUnknown},
		{put, status.Error(codes.InvalidArgument, "etcdserver: key is not provided"), linearizability.OutcomeFail},
		{put, status.Error(codes.NotFound, "etcdserver: requested lease not found"), linearizability.OutcomeFail},
		{put, errors.New("something else"), linearizability.OutcomeUnknown},
		{put, status.Error(codes.Unavailable, `connection error: desc = "transport: Error while dialing: dial tcp 127.0.0.1:1: connect: connection refused"`), linearizability.OutcomeFail},
		{put, status.Error(codes.Unavailable, "connection error: desc = \"error reading server preface: EOF\""), linearizability.OutcomeUnknown},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s/%v", c.op.Kind, c.err), func(t *testing.T) {
			require.Equal(t, c.want, realOutcome(c.op, c.err))
		})
	}
}

var (
	binOnce  sync.Once
	binDir   string
	binErr   error
	binBuilt = map[string]string{}
)

// buildBin builds a binary of this module once per test process (havoc's harness).
func buildBin(t *testing.T, name, pkg string) string {
	t.Helper()
	binOnce.Do(func() { binDir, binErr = os.MkdirTemp("", "havoc-real-bin-") })
	require.NoError(t, binErr)
	if p, ok := binBuilt[name]; ok {
		return p
	}
	out := filepath.Join(binDir, name)
	b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput()
	require.NoError(t, err, "build %s: %s", pkg, b)
	binBuilt[name] = out
	return out
}

// pinnedEtcd is go.mod's etcd release (etcd, etcdctl, etcdutl), built once
// into the user's cache by cluster/etcdbin and reused by later test runs.
func pinnedEtcd(t *testing.T) etcdbin.Release {
	t.Helper()
	rel, err := etcdbin.Get(context.Background(), nil, etcdbin.Pinned)
	require.NoError(t, err)
	return rel
}

// realSchedule exercises partitions, kill -9, SIGSTOP, latency and two faults a
// process backend must skip.
var realSchedule = chaos.Schedule{
	{At: 2 * time.Second, Duration: 2 * time.Second, Kind: chaos.IsolateLeader},
	{At: 4500 * time.Millisecond, Duration: 1500 * time.Millisecond, Kind: chaos.Crash, Members: []int{1}, Torn: true},
	{At: 6500 * time.Millisecond, Duration: 1500 * time.Millisecond, Kind: chaos.Pause, Members: []int{2}},
	{At: 8500 * time.Millisecond, Duration: 1500 * time.Millisecond, Kind: chaos.OneWay, Members: []int{0}},
	{At: 10500 * time.Millisecond, Duration: 1000 * time.Millisecond, Kind: chaos.PartitionMajority},
	{At: 11800 * time.Millisecond, Duration: 500 * time.Millisecond, Kind: chaos.Duplicate, Rate: 0.2},
	{At: 12400 * time.Millisecond, Duration: 500 * time.Millisecond, Kind: chaos.ClockSkew, Members: []int{0}, Latency: time.Second},
	{At: 13 * time.Second, Duration: 1500 * time.Millisecond, Kind: chaos.Delay, Latency: 60 * time.Millisecond},
}

func runRealCluster(t *testing.T, target cluster.Target, bin string) {
	dir := t.TempDir()
	p, err := cluster.NewProcess(cluster.ProcessConfig{Target: target, Binary: bin, Dir: filepath.Join(dir, "run"), Seed: 7})
	require.NoError(t, err)
	defer p.Close()
	require.NoError(t, p.Start(context.Background()))

	c := Config{
		Seed: 7, Duration: 15 * time.Second, Schedule: realSchedule,
		Workload: Workload{Clients: 8, Rate: 400}, LivenessTimeout: 20 * time.Second, Out: filepath.Join(dir, "out"),
	}
	start := time.Now()
	res, err := RunReal(context.Background(), p, c)
	require.NoError(t, err)
	t.Logf("%s: verdict=%s ops=%d ok=%d fail=%d unknown=%d wall=%s check=%s", target, res.Verdict, res.Operations, res.OK, res.Failed, res.Unknown,
		time.Since(start).Round(time.Millisecond), res.CheckWall.Round(time.Millisecond))
	log := strings.Join(res.FaultLog, "\n")
	t.Logf("faults:\n%s", log)
	require.True(t, res.Passed(), "%s: %s (artifacts %s)", res.Verdict, res.Reason, res.Dir)
	require.Greater(t, res.OK, 500)
	require.Contains(t, log, "start isolate leader")
	require.Contains(t, log, "start crash m2 (torn=true)")
	require.Contains(t, log, "end pause m3")
	require.Contains(t, log, "skip duplicate")
	require.Contains(t, log, "skip clock-skew")
	require.Contains(t, log, "liveness phase ended: ok")
	require.Contains(t, string(res.Trace), "m2: kill -9")
	require.Contains(t, string(res.Trace), "m3: pause (SIGSTOP)")
	// Both watchers ran through the faults, saw the writes and got progress
	// notifications; the watch checks (res.Passed) held over their events.
	events, progress := map[int]int{}, map[int]int{}
	for _, e := range res.Watch {
		switch e.Type {
		case "put", "delete":
			events[e.Watcher]++
		case linearizability.WatchProgress:
			progress[e.Watcher]++
		}
	}
	t.Logf("watch events per watcher: %v, progress notifications: %v", events, progress)
	for w := 1; w <= 2; w++ {
		require.Greater(t, events[w], 200, "watcher %d", w)
		require.Positive(t, progress[w], "watcher %d", w)
	}
	// Every peer link was seen through the proxies with its sender identified,
	// so the partitions cut what they claim to.
	acc := p.Network().Accepted()
	t.Logf("proxied connections: %v", acc)
	for _, a := range p.Members() {
		for _, b := range p.Members() {
			if a != b {
				require.Positive(t, acc[a+"->"+b], "no identified connection %s->%s", a, b)
			}
		}
	}
	// Clients and watchers reach the members through client links of their own.
	sessions := map[string]bool{}
	for k := range acc {
		if from, _, _ := strings.Cut(k, "->"); strings.HasPrefix(from, "c") || strings.HasPrefix(from, "w") {
			sessions[from] = true
		}
	}
	require.True(t, sessions["c01"] && sessions["c08"] && sessions["w01"] && sessions["w02"], "client sessions on client links: %v", acc)
}

// TestRealEtcdUnderFaults runs the workload against a real etcd cluster under
// partitions, kill -9 and SIGSTOP: etcd must pass the checker (and if it does
// not, the harness is wrong).
func TestRealEtcdUnderFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a real etcd cluster for 15 s")
	}
	runRealCluster(t, cluster.TargetEtcd, pinnedEtcd(t).Etcd())
}

// TestRealHavocUnderFaults is the same run against havoc's own store
// (`harness serve`).
func TestRealHavocUnderFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a real havoc cluster for 15 s")
	}
	runRealCluster(t, cluster.TargetHavoc, buildBin(t, "harness", "github.com/havoclab/havoc/cmd/harness"))
}

// deadBackend is a Backend whose members never answer: the run must end with
// no-liveness and leave its artifacts, member logs included.
type deadBackend struct {
	dir    string
	healed bool
}

func (d *deadBackend) Members() []string                   { return []string{"m1", "m2", "m3"} }
func (d *deadBackend) Leader() string                      { return "" }
func (d *deadBackend) Partition(a, b []string) error       { return nil }
func (d *deadBackend) PartitionOneWay(a, b []string) error { return nil }
func (d *deadBackend) DegradeLinks(chaos.Links) error      { return chaos.ErrUnsupported }
func (d *deadBackend) HealNetwork() error                  { return nil }
func (d *deadBackend) Crash(string, bool) error            { return nil }
func (d *deadBackend) Restart(string) error                { return nil }
func (d *deadBackend) Pause(string) error                  { return nil }
func (d *deadBackend) Resume(string) error                 { return nil }
func (d *deadBackend) SetClock(string, time.Duration, int64) error {
	return fmt.Errorf("%w: no clocks", chaos.ErrUnsupported)
}
func (d *deadBackend) Start(context.Context) error   { return nil }
func (d *deadBackend) ClientURL(m string) string     { return "http://127.0.0.1:1" }
func (d *deadBackend) HealAll(context.Context) error { d.healed = true; return nil }
func (d *deadBackend) Dir() string                   { return d.dir }
func (d *deadBackend) Close() error                  { return nil }

func TestRealNoLivenessLeavesArtifacts(t *testing.T) {
	b := &deadBackend{dir: t.TempDir()}
	require.NoError(t, os.WriteFile(filepath.Join(b.dir, "m2.log"), []byte("member log\n"), 0o644))
	out := t.TempDir()
	c := Config{Seed: 5, Duration: 1500 * time.Millisecond, LivenessTimeout: 500 * time.Millisecond, Out: out,
		Schedule: chaos.Schedule{{At: 100 * time.Millisecond, Duration: 200 * time.Millisecond, Kind: chaos.Loss, Rate: 0.1},
			{At: 400 * time.Millisecond, Duration: 200 * time.Millisecond, Kind: chaos.Crash, Members: []int{1}}},
		Workload: Workload{Clients: 2, Rate: 20, Timeout: 200 * time.Millisecond}}
	res, err := RunReal(context.Background(), b, c)
	require.NoError(t, err)
	require.True(t, b.healed)
	require.Equal(t, VerdictNoLiveness, res.Verdict)
	require.Contains(t, res.Reason, "does not answer")
	require.Positive(t, res.Operations)
	require.Zero(t, res.OK)
	for _, f := range []string{"summary.txt", "history.json.gz", "trace.log.gz", "schedule.txt", "real.txt", "m2.log"} {
		require.FileExists(t, filepath.Join(res.Dir, f))
	}
	trace := readGzip(t, filepath.Join(res.Dir, "trace.log.gz"))
	require.Contains(t, string(trace), "skip loss")
	require.Contains(t, string(trace), "start crash m2")
	require.Contains(t, string(trace), "end crash m2")

	// A cancelled context ends the run early with an error, not a verdict.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = RunReal(ctx, b, c)
	require.ErrorIs(t, err, context.Canceled)
}

// memberSchedule replaces m2, replaces m3 by a learner promoted 3 s later,
// and removes m1, adding a fresh one back 2 s later.
var memberSchedule = chaos.Schedule{
	{At: 2 * time.Second, Duration: 2 * time.Second, Kind: chaos.MemberReplace, Members: []int{1}},
	{At: 5 * time.Second, Duration: 3 * time.Second, Kind: chaos.LearnerPromote, Members: []int{2}},
	{At: 10 * time.Second, Duration: 2 * time.Second, Kind: chaos.RemoveVoter, Members: []int{0}},
}

// runRealMembership runs memberSchedule under load on processes: every check
// holds and every slot ends with a member of a new ID.
func runRealMembership(t *testing.T, target cluster.Target, bin string) {
	dir := t.TempDir()
	p, err := cluster.NewProcess(cluster.ProcessConfig{Target: target, Binary: bin, Dir: filepath.Join(dir, "run"), Seed: 7})
	require.NoError(t, err)
	defer p.Close()
	require.NoError(t, p.Start(context.Background()))
	first := map[string]uint64{}
	for _, m := range p.Members() {
		first[m] = p.MemberID(m)
	}
	c := Config{Seed: 7, Duration: 15 * time.Second, Schedule: memberSchedule,
		Workload: Workload{Clients: 8, Rate: 400}, LivenessTimeout: 30 * time.Second, Out: filepath.Join(dir, "out")}
	res, err := RunReal(context.Background(), p, c)
	require.NoError(t, err)
	log := strings.Join(res.FaultLog, "\n")
	t.Logf("%s: verdict=%s ops=%d ok=%d fail=%d unknown=%d\nfaults:\n%s", target, res.Verdict, res.Operations, res.OK, res.Failed, res.Unknown, log)
	require.True(t, res.Passed(), "%s: %s (artifacts %s)", res.Verdict, res.Reason, res.Dir)
	require.Equal(t, 3, res.FaultsApplied)
	require.Contains(t, log, "end replace m3 by a learner")
	require.NotContains(t, log, "failed")
	for _, m := range p.Members() {
		require.NotEqual(t, first[m], p.MemberID(m), "%s has a member with a new ID", m)
	}
	require.Contains(t, string(res.Trace), "m3: member")
}

// TestRealHavocMembership runs the membership changes on havoc's processes.
func TestRealHavocMembership(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a real havoc cluster for 15 s")
	}
	runRealMembership(t, cluster.TargetHavoc, buildBin(t, "harness", "github.com/havoclab/havoc/cmd/harness"))
}

// TestRealEtcdMembership runs them on a real etcd cluster.
func TestRealEtcdMembership(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a real etcd cluster for 15 s")
	}
	runRealMembership(t, cluster.TargetEtcd, pinnedEtcd(t).Etcd())
}
