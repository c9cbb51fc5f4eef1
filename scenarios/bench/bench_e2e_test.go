package bench

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/havoclab/havoc/cluster"
)

// startHavoc builds the harness and starts three `harness serve` members.
func startHavoc(t *testing.T) (*cluster.Process, []string) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "harness")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/havoclab/havoc/cmd/harness").CombinedOutput()
	require.NoError(t, err, "build harness: %s", out)
	p, err := cluster.NewProcess(cluster.ProcessConfig{Binary: bin, Members: 3, Seed: 1})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, p.Start(ctx))
	var eps []string
	for _, m := range p.Members() {
		eps = append(eps, p.ClientURL(m))
	}
	return p, eps
}

// TestBenchHavocCluster runs every workload briefly against three havoc
// members, then 3 s of puts in open loop with the leader killed at 0.8 s and
// restarted at 1.8 s, and checks the figures make sense.
func TestBenchHavocCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the harness and runs a three-member cluster")
	}
	p, eps := startHavoc(t)
	ctx := context.Background()
	for _, tc := range []struct {
		cfg Config
		op  string
	}{
		{Config{Workload: WorkloadGet}, "get"},
		{Config{Workload: WorkloadGet, Serializable: true}, "get-serializable"},
		{Config{Workload: WorkloadRange, Limit: 10}, "range"},
		{Config{Workload: WorkloadList, Limit: 64, Clients: 4}, "list"},
		{Config{Workload: WorkloadTxn, KeySpace: 20}, "txn"},
		{Config{Workload: WorkloadTxn, TxnOps: 4}, "txn"},
		{Config{Workload: WorkloadWatch, Watchers: 2, Rate: 200}, "watch"},
		{Config{Workload: WorkloadLease, Clients: 4}, "keepalive"},
	} {
		t.Run(string(tc.cfg.Workload)+"-"+tc.op, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Duration, cfg.Warmup = 500*time.Millisecond, 100*time.Millisecond
			r, err := Run(ctx, "havoc", cfg, eps, nil)
			require.NoError(t, err)
			st, ok := r.Op(tc.op)
			require.True(t, ok, "%+v", r.Ops)
			assert.Positive(t, st.Count)
			assert.Zero(t, st.Errors)
			assert.Positive(t, st.Latency.At(0.5))
			if tc.op == "watch" {
				put, _ := r.Op("put")
				assert.InDelta(t, 2*put.Count, st.Count, float64(put.Count)/5, "two watchers see (about) every put")
			}
		})
	}

	cfg := Config{Workload: WorkloadPut, Clients: 8, Rate: 300, Warmup: 300 * time.Millisecond, Duration: 3 * time.Second,
		Faults: []Fault{{Kind: KillLeader, At: 800 * time.Millisecond, For: time.Second}}}
	r, err := Run(ctx, "havoc", cfg, eps, p)
	require.NoError(t, err)
	var b bytes.Buffer
	r.WriteTable(&b)
	t.Log("\n" + b.String())
	put, ok := r.Op("put")
	require.True(t, ok)
	assert.InDelta(t, 300, float64(put.Count+put.Errors)/3, 30, "the open loop sends at its rate")
	require.Len(t, r.Faults, 1)
	f := r.Faults[0]
	require.Empty(t, f.Err)
	assert.Contains(t, f.Desc, "crash")
	assert.InDelta(t, 800*time.Millisecond, f.At, float64(100*time.Millisecond))
	assert.InDelta(t, 1800*time.Millisecond, f.Healed, float64(200*time.Millisecond))
	assert.Positive(t, f.WriteUnavailable, "a write answered after the fault")
	assert.Less(t, f.WriteUnavailable, 2200*time.Millisecond)
	assert.Positive(t, f.ReadUnavailable)
	assert.Less(t, f.ReadUnavailable, 2200*time.Millisecond)
	assert.Positive(t, f.Baseline)
	require.NoError(t, p.Err(), "no member died on its own")

	dir := t.TempDir()
	files, err := WritePlots(dir, []*Report{r}, nil)
	require.NoError(t, err)
	require.Len(t, files, 3)
	for _, f := range files {
		st, err := os.Stat(f)
		require.NoError(t, err)
		assert.Greater(t, st.Size(), int64(5000), f)
	}
}
