package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/havoclab/havoc/chaos"
	"github.com/havoclab/havoc/internal/dockertest"
)

// requireDocker applies the project's rule for tests that need an engine.
func requireDocker(t *testing.T, slow bool) {
	t.Helper()
	dockertest.Require(t, slow, DockerAvailable)
}

func testRunID(t *testing.T) string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return "t" + hex.EncodeToString(b[:])
}

func TestDockerConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		cfg  DockerConfig
		ok   bool
	}{
		{"zero", DockerConfig{}, true},
		{"etcd", DockerConfig{Members: 5, Target: TargetEtcd, CPUs: 0.5, MemoryBytes: 256 << 20}, true},
		{"too many", DockerConfig{Members: 10}, false},
		{"target", DockerConfig{Target: "zookeeper"}, false},
		{"run id", DockerConfig{RunID: "Bad/ID"}, false},
		{"cpus", DockerConfig{CPUs: -1}, false},
		{"memory", DockerConfig{MemoryBytes: 1 << 20}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.cfg.Validate()
			if c.ok {
				require.NoError(t, err)
			} else {
				require.Error(t, err)
			}
		})
	}
}

func TestDockerUnsupportedFaults(t *testing.T) {
	d := &Docker{names: []string{"m1", "m2", "m3"}}
	require.ErrorIs(t, d.SetClock("m1", time.Second, 0), chaos.ErrUnsupported)
	require.NoError(t, d.SetClock("m1", 0, 0))
	require.ErrorIs(t, d.DegradeLinks(chaos.Links{Duplicate: 0.1}), chaos.ErrUnsupported)
	require.ErrorIs(t, d.DegradeLinks(chaos.Links{Reorder: 0.1, LatencyMax: time.Millisecond}), chaos.ErrUnsupported)
	require.Error(t, d.Partition([]string{"m1"}, []string{"m2"}), "a network fault before Start is an error")
}

func TestDockerAvailableWithoutEngine(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix://"+filepath.Join(t.TempDir(), "nothing.sock"))
	err := DockerAvailable(context.Background())
	require.ErrorIs(t, err, ErrNoDocker)
	require.NotContains(t, err.Error(), "\n", "one clear line")
	require.Contains(t, err.Error(), "start-docker.sh")
}

// TestDockerImageCache builds an image from a unique fake binary twice: the
// first call builds, the second finds the tag and does nothing.
func TestDockerImageCache(t *testing.T) {
	requireDocker(t, false)
	ctx := context.Background()
	cli, err := dockerClient(ctx)
	require.NoError(t, err)
	defer cli.Close()
	bin := filepath.Join(t.TempDir(), "fake")
	require.NoError(t, os.WriteFile(bin, []byte("not a binary "+testRunID(t)), 0o755))
	repo := "havoc/test-cache"
	tag, built, err := buildImage(ctx, cli, bin, repo, "fake")
	require.NoError(t, err)
	require.True(t, built, "first build of a new binary")
	require.True(t, strings.HasPrefix(tag, repo+":"))
	defer func() {
		_, err := cli.ImageRemove(context.Background(), tag, client.ImageRemoveOptions{Force: true, PruneChildren: true})
		assert.NoError(t, err)
	}()
	tag2, built, err := buildImage(ctx, cli, bin, repo, "fake")
	require.NoError(t, err)
	require.False(t, built, "second build must be a cache hit")
	require.Equal(t, tag, tag2)
}

func newTestDocker(t *testing.T, cfg DockerConfig) *Docker {
	t.Helper()
	if cfg.RunID == "" {
		cfg.RunID = testRunID(t)
	}
	dir, err := os.MkdirTemp("", "havoc-docker-test-")
	require.NoError(t, err)
	cfg.Dir = dir
	cfg.Log = testWriter{t}
	d, err := NewDocker(cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = d.Close()
		if t.Failed() {
			t.Logf("member logs kept in %s", dir)
			return
		}
		_ = os.RemoveAll(dir)
	})
	return d
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

func kvClient(t *testing.T, urls ...string) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: urls, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// get reads key linearizably through one member within timeout.
func get(c *clientv3.Client, key string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	r, err := c.Get(ctx, key)
	if err != nil {
		return "", err
	}
	if len(r.Kvs) == 0 {
		return "", nil
	}
	return string(r.Kvs[0].Value), nil
}

func put(c *clientv3.Client, key, val string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, err := c.Put(ctx, key, val)
	return err
}

// healOnFailure ends every fault if the (sub)test failed, so that one failed
// step does not leave a paused or crashed member to fail the next ones.
func healOnFailure(t *testing.T, d *Docker) {
	if t.Failed() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		assert.NoError(t, d.HealAll(ctx))
	}
}

// eventually retries f until it succeeds or wait passes.
func eventually(t *testing.T, wait time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, wait, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestDockerEtcdCluster(t *testing.T) {
	requireDocker(t, true)
	testCluster(t, TargetEtcd)
}

func TestDockerHavocCluster(t *testing.T) {
	requireDocker(t, true)
	testCluster(t, TargetHavoc)
}

// testCluster runs a 3-member cluster of target in containers through every
// fault the backend offers, then checks that Close leaves nothing behind.
func testCluster(t *testing.T, target Target) {
	t0 := time.Now()
	d := newTestDocker(t, DockerConfig{Target: target, CPUs: 1, MemoryBytes: 512 << 20})
	// A cold CI machine compiles etcd (or the harness) inside Start.
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	require.NoError(t, d.Start(ctx))
	t.Logf("started in %s (image %s built=%v)", time.Since(t0).Round(time.Millisecond), d.Image().Tag, d.Image().Built)
	ms := d.Members()
	require.Equal(t, []string{"m1", "m2", "m3"}, ms)
	urls := make([]string, len(ms))
	per := map[string]*clientv3.Client{}
	for i, m := range ms {
		urls[i] = d.ClientURL(m)
		require.True(t, strings.HasPrefix(urls[i], "http://127.0.0.1:"), urls[i])
		per[m] = kvClient(t, urls[i])
	}
	all := kvClient(t, urls...)

	require.NoError(t, put(all, "k", "v1", 10*time.Second))
	for _, m := range ms {
		v, err := get(per[m], "k", 5*time.Second)
		require.NoError(t, err, m)
		require.Equal(t, "v1", v, m)
	}
	var leader string
	eventually(t, 10*time.Second, "a leader", func() error {
		if leader = d.Leader(); leader == "" {
			return fmt.Errorf("no leader")
		}
		return nil
	})
	require.Contains(t, ms, leader)

	t.Run("crash and restart keep data", func(t *testing.T) {
		victim := ms[2]
		defer healOnFailure(t, d)
		require.NoError(t, d.Crash(victim, false))
		require.NoError(t, d.Err(), "a crash the harness made is not a failure")
		_, err := get(per[victim], "k", time.Second)
		require.Error(t, err, "a killed member answers nothing")
		// A write proposed to a leader that just died is lost (etcd does not
		// retry it), so retry until the two survivors commit.
		eventually(t, 20*time.Second, "two of three commit", func() error { return put(per[ms[0]], "k", "v2", 3*time.Second) })
		require.NoError(t, d.Restart(victim))
		require.NoError(t, d.WaitHealthy(ctx, victim))
		eventually(t, 20*time.Second, victim+" catches up", func() error {
			v, err := get(per[victim], "k", 2*time.Second)
			if err == nil && v != "v2" {
				err = fmt.Errorf("read %q", v)
			}
			return err
		})
	})

	t.Run("pause and resume", func(t *testing.T) {
		victim := ms[1]
		defer healOnFailure(t, d)
		require.NoError(t, d.Pause(victim))
		_, err := get(per[victim], "k", time.Second)
		require.Error(t, err, "a paused member answers nothing")
		eventually(t, 20*time.Second, "two of three commit", func() error { return put(per[ms[0]], "k", "v3", 3*time.Second) })
		require.NoError(t, d.Resume(victim))
		eventually(t, 20*time.Second, victim+" answers again", func() error {
			v, err := get(per[victim], "k", 2*time.Second)
			if err == nil && v != "v3" {
				err = fmt.Errorf("read %q", v)
			}
			return err
		})
	})

	t.Run("isolate one member", func(t *testing.T) {
		cut := ms[0]
		rest := ms[1:]
		defer healOnFailure(t, d)
		require.NoError(t, d.Partition([]string{cut}, rest))
		// Once the isolated member notices (election timeout), it cannot serve
		// linearizable reads; the majority keeps committing.
		eventually(t, 20*time.Second, "the majority commits", func() error {
			return put(per[rest[0]], "k", "v4", 3*time.Second)
		})
		eventually(t, 20*time.Second, cut+" refuses linearizable reads", func() error {
			if _, err := get(per[cut], "k", 2*time.Second); err == nil {
				return fmt.Errorf("isolated %s still served a linearizable read", cut)
			}
			return nil
		})
		require.NotEqual(t, cut, d.Leader(), "the isolated member cannot stay leader")
		require.NoError(t, d.HealNetwork())
		eventually(t, 20*time.Second, cut+" rejoins", func() error {
			v, err := get(per[cut], "k", 2*time.Second)
			if err == nil && v != "v4" {
				err = fmt.Errorf("read %q", v)
			}
			return err
		})
	})

	t.Run("one-way cut of the leader", func(t *testing.T) {
		var l string
		eventually(t, 10*time.Second, "a leader", func() error {
			if l = d.Leader(); l == "" {
				return fmt.Errorf("no leader")
			}
			return nil
		})
		var others []string
		for _, m := range ms {
			if m != l {
				others = append(others, m)
			}
		}
		defer healOnFailure(t, d)
		// The leader's messages (heartbeats, appends) no longer reach the
		// others, who elect a new leader among themselves.
		require.NoError(t, d.PartitionOneWay([]string{l}, others))
		eventually(t, 30*time.Second, "a new leader", func() error {
			if nl := d.Leader(); nl == "" || nl == l {
				return fmt.Errorf("leader %q", nl)
			}
			return nil
		})
		require.NoError(t, d.HealAll(ctx))
		eventually(t, 20*time.Second, "all members agree after healing", func() error {
			if err := put(all, "k", "v5", 3*time.Second); err != nil {
				return err
			}
			for _, m := range ms {
				if v, err := get(per[m], "k", 2*time.Second); err != nil || v != "v5" {
					return fmt.Errorf("%s read %q: %v", m, v, err)
				}
			}
			return nil
		})
	})

	t.Run("latency", func(t *testing.T) {
		defer healOnFailure(t, d)
		require.NoError(t, d.DegradeLinks(chaos.Links{LatencyMin: 50 * time.Millisecond, LatencyMax: 100 * time.Millisecond}))
		t1 := time.Now()
		eventually(t, 20*time.Second, "commit under latency", func() error { return put(all, "slow", "x", 5*time.Second) })
		require.GreaterOrEqual(t, time.Since(t1), 50*time.Millisecond, "a commit crosses at least one delayed link")
		require.NoError(t, d.HealNetwork())
	})

	t.Run("unsupported", func(t *testing.T) {
		require.ErrorIs(t, d.SetClock(ms[0], time.Second, 0), chaos.ErrUnsupported)
		require.ErrorIs(t, d.DegradeLinks(chaos.Links{Duplicate: 0.1}), chaos.ErrUnsupported)
	})

	// Logs follow the run (RunReal copies them into a failing run's artifacts
	// before Close); the crashed member's log holds both of its lives.
	logsBeforeClose := map[string][]byte{}
	eventually(t, 5*time.Second, "member logs during the run", func() error {
		for _, m := range ms {
			b, err := os.ReadFile(filepath.Join(d.Dir(), m+".log"))
			if err != nil || len(b) == 0 {
				return fmt.Errorf("%s: %d bytes, %v", m, len(b), err)
			}
			logsBeforeClose[m] = b
		}
		return nil
	})
	require.NoError(t, d.Close())
	require.NoError(t, d.Close(), "Close is idempotent")
	left, err := Leftovers(context.Background(), d.RunID())
	require.NoError(t, err)
	require.True(t, left.Empty(), "left behind: %+v", left)
	for _, m := range ms {
		b, err := os.ReadFile(filepath.Join(d.Dir(), m+".log"))
		require.NoError(t, err, "logs collected at Close")
		require.GreaterOrEqual(t, len(b), len(logsBeforeClose[m]), "%s: the log of the whole run", m)
		if target == TargetEtcd {
			lives := 1
			if m == "m3" {
				lives = 2 // crashed and restarted
			}
			require.Equal(t, lives, strings.Count(string(b), "starting an etcd server"), "%s: one log over every life", m)
		}
	}
	t.Logf("%s cluster test took %s", target, time.Since(t0).Round(time.Millisecond))
}

// TestDockerClean starts a one-member cluster, abandons it as a crashed harness
// would, and removes it by label.
func TestDockerClean(t *testing.T) {
	requireDocker(t, true)
	d := newTestDocker(t, DockerConfig{Target: TargetEtcd, Members: 1})
	// A cold CI machine compiles etcd (or the harness) inside Start.
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	require.NoError(t, d.Start(ctx))
	run := d.RunID()
	require.NoError(t, d.Err())

	// The store dying on its own (here: killed behind the harness's back) is a
	// failure Err reports; a crash the harness made is not.
	cli, err := dockerClient(ctx)
	require.NoError(t, err)
	defer cli.Close()
	_, err = cli.ContainerKill(ctx, "havoc-"+run+"-m1", client.ContainerKillOptions{Signal: "SIGKILL"})
	require.NoError(t, err)
	eventually(t, 10*time.Second, "Err reports the exit", func() error {
		if d.Err() == nil {
			return fmt.Errorf("no error yet")
		}
		return nil
	})
	require.Contains(t, d.Err().Error(), "m1 exited on its own")

	left, err := Leftovers(ctx, run)
	require.NoError(t, err)
	require.Len(t, left.Containers, 1)
	require.Len(t, left.Networks, 1)
	require.Len(t, left.Volumes, 1)

	rm, err := CleanDocker(ctx, run)
	require.NoError(t, err)
	require.Equal(t, Removed{
		Containers: []string{"havoc-" + run + "-m1"},
		Networks:   []string{"havoc-" + run},
		Volumes:    []string{"havoc-" + run + "-m1"},
	}, rm)
	left, err = Leftovers(ctx, run)
	require.NoError(t, err)
	require.True(t, left.Empty(), "%+v", left)
	rm, err = CleanDocker(ctx, run)
	require.NoError(t, err)
	require.True(t, rm.Empty(), "a second clean finds nothing")
	require.NoError(t, d.Close(), "Close after an outside clean")
}
