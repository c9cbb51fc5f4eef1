package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/havoclab/havoc/cluster/etcdbin"
)

// TestDrillProcessEtcd runs `harness drill save-restore --backend process
// --target etcd --etcd-version` as a user would: the release (go.mod's, built
// once into the user's cache by cluster/etcdbin) brings its own etcdutl.
func TestDrillProcessEtcd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds etcd and runs a real drill")
	}
	bin := t.TempDir()
	out, err := exec.Command("go", "build", "-o", filepath.Join(bin, "harness"), "github.com/havoclab/havoc/cmd/harness").CombinedOutput()
	require.NoError(t, err, "build harness: %s", out)
	start := time.Now()
	cmd := exec.Command(filepath.Join(bin, "harness"), "drill", "save-restore", "--backend", "process", "--target", "etcd",
		"--etcd-version", etcdbin.Pinned, "--duration", "10s", "--after", "3s", "--clients", "8", "--rate", "400", "--seed", "5")
	out, err = cmd.CombinedOutput()
	t.Logf("%s(wall %s)", out, time.Since(start).Round(time.Millisecond))
	require.NoError(t, err)
	s := string(out)
	require.Contains(t, s, "drill save-restore seed 5 on process/etcd: ok")
	require.Contains(t, s, "restored cluster: ")
	require.False(t, strings.Contains(s, "lost "), "save-restore reports no lost writes")

	// A wrong backend is refused before anything runs.
	out, err = exec.Command(filepath.Join(bin, "harness"), "drill", "save-restore", "--backend", "zookeeper").CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), "want sim, process or docker")
}
