package drill

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/havoclab/havoc/cluster"
	"github.com/havoclab/havoc/internal/dockertest"
)

// requireDocker applies the project's rule for tests that need an engine; the
// drills are slow.
func requireDocker(t *testing.T) {
	t.Helper()
	dockertest.Require(t, true, cluster.DockerAvailable)
}

var (
	dockerImagesMu sync.Mutex
	dockerImages   = map[cluster.Target]string{}
)

// dockerBinary builds the static member binary and its image once per test
// process, so that a drill's time is the drill's (a cold machine compiles
// etcd or the harness here, up to minutes).
func dockerBinary(t *testing.T, target cluster.Target) string {
	t.Helper()
	dockerImagesMu.Lock()
	defer dockerImagesMu.Unlock()
	if bin, ok := dockerImages[target]; ok {
		return bin
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	t0 := time.Now()
	img, err := cluster.EnsureImage(ctx, cluster.DockerConfig{Target: target})
	require.NoError(t, err)
	t.Logf("image %s (built %v) in %s", img.Tag, img.Built, time.Since(t0).Round(time.Millisecond))
	dockerImages[target] = img.Binary
	return img.Binary
}

type logWriter struct{ t *testing.T }

func (w logWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// dockerDrillConfig is realDrillConfig's drill on Docker: the same durations
// and workloads, members in containers, etcd restored by the host's etcdutl.
func dockerDrillConfig(t *testing.T, target cluster.Target, name string) realDrill {
	var b [3]byte
	_, _ = rand.Read(b[:])
	c := testDrillConfig(t, BackendDocker, target, dockerBinary(t, target), name)
	c.Docker = cluster.DockerConfig{RunID: "d" + hex.EncodeToString(b[:]), Log: logWriter{t}}
	return c
}

// TestDockerDrills runs all four drills on Docker clusters of havoc and of
// etcd. Each must pass in under a minute and leave no container, network or
// volume of its runs behind.
func TestDockerDrills(t *testing.T) {
	requireDocker(t)
	cases := []struct {
		target cluster.Target
		names  []string
	}{
		{cluster.TargetHavoc, Names},
		{cluster.TargetEtcd, Names},
	}
	for _, tc := range cases {
		for _, name := range tc.names {
			t.Run(string(tc.target)+"/"+name, func(t *testing.T) {
				c := dockerDrillConfig(t, tc.target, name)
				start := time.Now()
				r, err := Run(context.Background(), name, c.Config, c.Backend)
				wall := time.Since(start)
				for _, sub := range []string{"c1", "restored"} {
					left, lerr := cluster.Leftovers(context.Background(), c.Docker.RunID+"-"+sub)
					require.NoError(t, lerr)
					require.True(t, left.Empty(), "run %s-%s left behind %+v", c.Docker.RunID, sub, left)
				}
				require.NoError(t, err)
				t.Logf("%s\n  (wall %s)", r, wall.Round(time.Millisecond))
				require.True(t, r.Passed(), "%s", r)
				require.Less(t, wall, time.Minute)
				requireRealReport(t, name, "docker/"+string(tc.target), r)
			})
		}
	}
}
