package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/havoclab/havoc/cluster"
	"github.com/havoclab/havoc/internal/tamper"
	"github.com/havoclab/havoc/scenarios"
)

// TestRealDivergenceIsAVerdict: on the process backend, a member whose
// backend was changed behind its back (one value flipped while it was down)
// makes the run fail as divergence naming the first differing revision, not
// as a lack of liveness. The members are this test binary running `harness
// serve` (TestMain).
func TestRealDivergenceIsAVerdict(t *testing.T) {
	t.Setenv("HAVOC_HARNESS_MAIN", "1")
	exe, err := os.Executable()
	require.NoError(t, err)
	dir := t.TempDir()
	p, err := cluster.NewProcess(cluster.ProcessConfig{Target: cluster.TargetHavoc, Binary: exe, Members: 3, Dir: dir, Seed: 1})
	require.NoError(t, err)
	defer p.Close()
	ctx := context.Background()
	require.NoError(t, p.Start(ctx))

	cli, err := cluster.NewClient(p.ClientURL("m1"))
	require.NoError(t, err)
	var last int64
	for i := range 20 {
		resp, err := cli.Put(ctx, fmt.Sprintf("/pre/%02d", i), fmt.Sprintf("value-%02d", i))
		require.NoError(t, err)
		last = resp.Header.Revision
	}
	_ = cli.Close()
	m2, err := cluster.NewClient(p.ClientURL("m2"))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		st, err := m2.Status(ctx, p.ClientURL("m2"))
		return err == nil && st.Header.Revision >= last
	}, 10*time.Second, 50*time.Millisecond)
	_ = m2.Close()

	require.NoError(t, p.Stop("m2")) // a clean stop commits the backend
	flipped, err := tamper.FlipNewestValue(filepath.Join(dir, "m2.data", "member", "snap", "db"))
	require.NoError(t, err)
	require.NoError(t, p.Restart("m2"))

	c := scenarios.Config{Seed: 1, Duration: 2 * time.Second, LivenessTimeout: 4 * time.Second,
		Workload: scenarios.Workload{Clients: 2, Rate: 20}}
	res, err := scenarios.RunReal(ctx, p, c)
	require.NoError(t, err)
	t.Log(res.Reason)
	require.Equal(t, scenarios.VerdictDivergence, res.Verdict)
	require.Contains(t, res.Reason, fmt.Sprintf("first differ at revision %d ", flipped))
}
