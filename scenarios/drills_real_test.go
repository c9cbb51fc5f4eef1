package scenarios

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/havoclab/havoc/chaos"
	"github.com/havoclab/havoc/cluster"
)

// testDrillConfig is a drill short enough for a test (< 60 s each) on
// backend with the given member binary; etcd drills restore with etcdutl.
func testDrillConfig(t *testing.T, backend string, target cluster.Target, binary, name string) RealDrillConfig {
	c := RealDrillConfig{DrillConfig: DrillConfig{Seed: 11, Duration: 6 * time.Second, After: 3 * time.Second,
		Workload: Workload{Clients: 8, Rate: 400}}, Backend: backend, Target: target, Binary: binary,
		Dir: filepath.Join(t.TempDir(), "drill")}
	if target == cluster.TargetEtcd {
		c.Etcdutl = buildBin(t, "etcdutl", "go.etcd.io/etcd/etcdutl/v3")
	}
	switch name {
	case DrillSaveRestore:
		c.Faults = chaos.AllKinds
	case DrillFollowerCatchUp:
		c.Workload = Workload{Clients: 16, Rate: 2000}
	}
	return c
}

// realDrillConfig is testDrillConfig on process clusters.
func realDrillConfig(t *testing.T, target cluster.Target, name string) RealDrillConfig {
	var binary string
	if target == cluster.TargetEtcd {
		binary = buildBin(t, "etcd", "go.etcd.io/etcd/server/v3")
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
		for _, name := range DrillNames {
			t.Run(string(target)+"/"+name, func(t *testing.T) {
				c := realDrillConfig(t, target, name)
				start := time.Now()
				r, err := RunRealDrill(context.Background(), name, c)
				require.NoError(t, err)
				t.Logf("%s\n  (wall %s)", r, time.Since(start).Round(time.Millisecond))
				require.True(t, r.Passed(), "%s", r)
				require.Equal(t, "process/"+string(target), r.Backend)
				switch name {
				case DrillSaveRestore, DrillDisasterRecovery:
					require.Positive(t, r.SnapshotBytes)
					require.Positive(t, r.SnapshotRevision)
					require.Positive(t, r.KeysChecked)
					require.Positive(t, r.RevisionsChecked)
					require.Positive(t, r.RestoreWall)
					require.Positive(t, r.ServeWall)
				case DrillRollingRestart:
					require.Positive(t, r.SnapshotBytes)
				case DrillFollowerCatchUp:
					require.Positive(t, r.ServeWall)
				}
				if name == DrillDisasterRecovery {
					require.NotEmpty(t, r.Lost, "writes after the backup must be reported lost")
					require.Positive(t, r.RecoveryWall)
				}
			})
		}
	}
}

// TestRealDrillCatchesTamperedRestore proves the real save-restore can fail:
// every restored member loses the newest revision of its key bucket before it
// starts, and the drill must say so.
func TestRealDrillCatchesTamperedRestore(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real clusters")
	}
	c := realDrillConfig(t, cluster.TargetHavoc, DrillSaveRestore)
	c.Faults = nil
	c.tamper = dropNewestRevision
	r, err := RunRealDrill(context.Background(), DrillSaveRestore, c)
	require.NoError(t, err)
	t.Log(r)
	require.Equal(t, VerdictFailed, r.Verdict)
	require.Contains(t, r.Reason, "revision")
}
