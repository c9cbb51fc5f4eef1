package main

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/havoclab/havoc/cluster"
	"github.com/havoclab/havoc/internal/dockertest"
)

// dockerContext requires a Docker engine (see internal/dockertest) and gives
// the test 8 minutes: a cold CI machine compiles etcd or the harness into an
// image first.
func dockerContext(t *testing.T) context.Context {
	t.Helper()
	dockertest.Require(t, true, cluster.DockerAvailable)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// TestDockerCleanCommand abandons a one-member etcd cluster, as a killed
// harness would, and removes it with `harness docker clean --run`.
func TestDockerCleanCommand(t *testing.T) {
	ctx := dockerContext(t)
	run := "tcmd" + time.Now().Format("150405")
	d, err := cluster.NewDocker(cluster.DockerConfig{Target: cluster.TargetEtcd, Members: 1, RunID: run, Dir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close() })
	require.NoError(t, d.Start(ctx))

	clean := func() string {
		var out bytes.Buffer
		cmd := newDockerCmd()
		cmd.SetOut(&out)
		cmd.SetArgs([]string{"clean", "--run", run})
		require.NoError(t, cmd.ExecuteContext(ctx))
		return out.String()
	}
	require.Equal(t, "removed container havoc-"+run+"-m1\nremoved network havoc-"+run+"\nremoved volume havoc-"+run+"-m1\n", clean())
	left, err := cluster.Leftovers(ctx, run)
	require.NoError(t, err)
	require.True(t, left.Empty(), "%+v", left)
	require.Equal(t, "nothing to clean\n", clean())
}

func TestParseBytes(t *testing.T) {
	cases := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"", 0, true},
		{"100", 100, true},
		{"100b", 100, true},
		{"4k", 4 << 10, true},
		{"512m", 512 << 20, true},
		{"2G", 2 << 30, true},
		{"m", 0, false},
		{"-1m", 0, false},
		{"1.5g", 0, false},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, err := parseBytes(c.in)
			if !c.ok {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, c.want, got)
		})
	}
}

// TestRunDockerBackend runs `harness run --backend docker` end to end on a
// short real-etcd scenario with crashes, pauses and partitions.
func TestRunDockerBackend(t *testing.T) {
	ctx := dockerContext(t)
	var out bytes.Buffer
	cmd := newRunCmd()
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"--backend", "docker", "--target", "etcd", "--seed", "5", "--duration", "10s",
		"--faults", "crash,pause,partition-majority,one-way", "--clients", "4", "--rate", "200",
		"--out", t.TempDir(), "--run-dir", t.TempDir()})
	err := cmd.ExecuteContext(ctx)
	t.Log(out.String())
	require.NoError(t, err)
	require.Contains(t, out.String(), "docker backend, target etcd: 3 members up")
	require.Contains(t, out.String(), "PASS seed=5")
}

// TestDockerImageCommand builds the harness's own image and prints its tag.
func TestDockerImageCommand(t *testing.T) {
	ctx := dockerContext(t)
	var out bytes.Buffer
	cmd := newDockerCmd()
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"image"})
	require.NoError(t, cmd.ExecuteContext(ctx))
	require.Regexp(t, `^havoc/member:[0-9a-f]{12}\n$`, out.String())
}
