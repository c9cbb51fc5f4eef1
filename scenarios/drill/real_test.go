package drill

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/havoclab/havoc/chaos"
	"github.com/havoclab/havoc/cluster"
	"github.com/havoclab/havoc/cluster/etcdbin"
	"github.com/havoclab/havoc/scenarios"
)

// realDrill is a drill's configuration with its backend.
type realDrill struct {
	Config
	Backend
}

// testDrillConfig is a drill short enough for a test (< 60 s each) on
// backend with the given member binary; etcd drills restore with etcdutl.
func testDrillConfig(t *testing.T, backend string, target cluster.Target, binary, name string) realDrill {
	c := realDrill{Config: Config{Seed: 11, Duration: 6 * time.Second, After: 3 * time.Second,
		Workload: scenarios.Workload{Clients: 8, Rate: 400}}, Backend: Backend{Kind: backend, Target: target, Binary: binary,
		Dir: filepath.Join(t.TempDir(), "drill")}}
	if target == cluster.TargetEtcd {
		c.Etcdutl = pinnedEtcd(t).Etcdutl()
	}
	switch name {
	case SaveRestore:
		c.Faults = chaos.AllKinds
	case FollowerCatchUp:
		c.Workload = scenarios.Workload{Clients: 16, Rate: 2000}
	}
	return c
}

// realDrillConfig is testDrillConfig on process clusters.
func realDrillConfig(t *testing.T, target cluster.Target, name string) realDrill {
	var binary string
	if target == cluster.TargetEtcd {
		binary = pinnedEtcd(t).Etcd()
	} else {
		binary = buildBin(t, "harness", "github.com/havoclab/havoc/cmd/harness")
	}
	return testDrillConfig(t, BackendProcess, target, binary, name)
}

// TestRealDrills runs every drill on process clusters of havoc and of etcd.
func TestRealDrills(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real clusters for minutes")
	}
	for _, target := range []cluster.Target{cluster.TargetHavoc, cluster.TargetEtcd} {
		for _, name := range Names {
			t.Run(string(target)+"/"+name, func(t *testing.T) {
				c := realDrillConfig(t, target, name)
				start := time.Now()
				r, err := Run(context.Background(), name, c.Config, c.Backend)
				require.NoError(t, err)
				t.Logf("%s\n  (wall %s)", r, time.Since(start).Round(time.Millisecond))
				require.True(t, r.Passed(), "%s", r)
				requireRealReport(t, name, "process/"+string(target), r)
			})
		}
	}
}

// requireRealReport requires what every real drill reports on backend.
func requireRealReport(t *testing.T, name, backend string, r *Report) {
	t.Helper()
	require.Equal(t, backend, r.Backend)
	switch name {
	case SaveRestore, DisasterRecovery:
		require.Positive(t, r.SnapshotBytes)
		require.Positive(t, r.SnapshotRevision)
		require.Positive(t, r.KeysChecked, "the restored members served the saved keys")
		require.Positive(t, r.RevisionsChecked)
		require.Positive(t, r.RestoreWall)
		require.Positive(t, r.ServeWall)
	case RollingRestart:
		require.Positive(t, r.SnapshotBytes)
	case FollowerCatchUp:
		require.Positive(t, r.ServeWall)
	}
	if name == DisasterRecovery {
		require.NotEmpty(t, r.Lost, "writes after the backup must be reported lost")
		require.Positive(t, r.RecoveryWall)
	}
}

// TestRealDrillCatchesTamperedRestore proves the real save-restore can fail:
// every restored member loses the newest revision of its key bucket before it
// starts, and the drill must say so.
func TestRealDrillCatchesTamperedRestore(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real clusters")
	}
	c := realDrillConfig(t, cluster.TargetHavoc, SaveRestore)
	c.Faults = nil
	c.tamper = dropNewestRevision
	r, err := Run(context.Background(), SaveRestore, c.Config, c.Backend)
	require.NoError(t, err)
	t.Log(r)
	require.Equal(t, scenarios.VerdictFailed, r.Verdict)
	require.Contains(t, r.Reason, "revision")
}

var (
	binOnce  sync.Once
	binDir   string
	binErr   error
	binMu    sync.Mutex
	binBuilt = map[string]string{}
)

// pinnedEtcd is go.mod's etcd release (etcd, etcdctl, etcdutl), built once
// into the user's cache by cluster/etcdbin and reused by later test runs.
func pinnedEtcd(t *testing.T) etcdbin.Release {
	t.Helper()
	rel, err := etcdbin.Get(context.Background(), nil, etcdbin.Pinned)
	require.NoError(t, err)
	return rel
}

// buildBin builds a main package of this module once per test process.
func buildBin(t *testing.T, name, pkg string) string {
	t.Helper()
	binOnce.Do(func() { binDir, binErr = os.MkdirTemp("", "havoc-drill-bin-") })
	require.NoError(t, binErr)
	binMu.Lock()
	defer binMu.Unlock()
	if p, ok := binBuilt[name]; ok {
		return p
	}
	out := filepath.Join(binDir, name)
	b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput()
	require.NoError(t, err, "build %s: %s", pkg, b)
	binBuilt[name] = out
	return out
}
