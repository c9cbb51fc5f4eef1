package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/havoclab/havoc/cluster/lazyfs"
)

// TestLazyFSPowerLossMidLoad runs a real etcd and havoc's store on lazyfs data
// dirs, cuts the power of every member (torn) in the middle of a put load,
// restarts them, and checks that they recover with every acknowledged put:
// unsynced writes are lost, acknowledged ones were fsynced first.
func TestLazyFSPowerLossMidLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real clusters")
	}
	if err := lazyfs.Check(); err != nil {
		t.Skip(err)
	}
	for _, target := range []Target{TargetEtcd, TargetHavoc} {
		t.Run(string(target), func(t *testing.T) {
			bin := buildEtcd(t)
			if target == TargetHavoc {
				bin = buildHarness(t)
			}
			dir := t.TempDir()
			if d := os.Getenv("HAVOC_KEEP_DIR"); d != "" {
				dir = filepath.Join(d, string(target))
			}
			p, err := NewProcess(ProcessConfig{Target: target, Binary: bin, Dir: dir, Seed: 3, LazyFS: true})
			require.NoError(t, err)
			defer p.Close()
			require.NoError(t, p.Start(context.Background()))
			for _, m := range p.Members() {
				ok, err := lazyfs.Mounted(filepath.Join(dir, m+".data"))
				require.NoError(t, err)
				require.True(t, ok, "%s's data dir is a lazyfs mount", m)
			}

			acked := load(t, p, 1500*time.Millisecond, func() {
				for _, m := range p.Members() {
					require.NoError(t, p.Crash(m, true))
				}
			})
			require.NotEmpty(t, acked)
			require.NoError(t, p.HealAll(context.Background()))
			for _, m := range p.Members() {
				require.Eventually(t, func() bool { return healthy(p.ClientURL(m)) }, 20*time.Second, 100*time.Millisecond, "%s recovers", m)
			}
			c, err := p.Client(p.Members()[0])
			require.NoError(t, err)
			for k, v := range acked {
				var got string
				require.Eventually(t, func() bool {
					ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
					defer cancel()
					resp, err := c.Get(ctx, k)
					if err != nil || len(resp.Kvs) != 1 {
						return false
					}
					got = string(resp.Kvs[0].Value)
					return true
				}, 10*time.Second, 100*time.Millisecond, "acknowledged key %s is there", k)
				require.Equal(t, v, got)
			}
			require.NoError(t, p.Err())
			var reports []string
			for _, e := range p.Events() {
				if strings.HasPrefix(e.What, "lazyfs:") {
					reports = append(reports, e.Member+" "+e.What)
				}
			}
			require.Len(t, reports, 3, "one crash report per member")
			t.Logf("%d acknowledged puts survived; %s", len(acked), strings.Join(reports, "; "))
			require.NoError(t, p.Close())
			for _, m := range p.Members() {
				ok, err := lazyfs.Mounted(filepath.Join(dir, m+".data"))
				require.NoError(t, err)
				require.False(t, ok, "Close unmounts %s", m)
				_, err = os.Stat(filepath.Join(dir, m+".data", "member"))
				require.NoError(t, err, "the kept run dir holds %s's data where it was", m)
			}
		})
	}
}

// TestLazyFSCatchesUnsafeNoFsync: an etcd that never fsyncs
// (--unsafe-no-fsync) loses acknowledged puts, or cannot restart, after a
// power loss on lazyfs; on a plain data dir it keeps them (the kernel keeps
// a killed process's page cache), which is why lazyfs exists.
func TestLazyFSCatchesUnsafeNoFsync(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real clusters")
	}
	if err := lazyfs.Check(); err != nil {
		t.Skip(err)
	}
	bin := buildEtcd(t)
	for _, lazy := range []bool{true, false} {
		t.Run(fmt.Sprintf("lazyfs=%v", lazy), func(t *testing.T) {
			dir := t.TempDir()
			if d := os.Getenv("HAVOC_KEEP_DIR"); d != "" {
				dir = filepath.Join(d, fmt.Sprint("unsafe-lazyfs-", lazy))
			}
			p, err := NewProcess(ProcessConfig{Target: TargetEtcd, Binary: bin, Dir: dir, Seed: 4, LazyFS: lazy,
				ExtraArgs: []string{"--unsafe-no-fsync"}})
			require.NoError(t, err)
			defer p.Close()
			require.NoError(t, p.Start(context.Background()))
			acked := load(t, p, time.Second, func() {
				for _, m := range p.Members() {
					require.NoError(t, p.Crash(m, false))
				}
			})
			require.NotEmpty(t, acked)
			require.NoError(t, p.HealAll(context.Background()))
			lost := lostPuts(p, acked)
			t.Logf("%d acknowledged puts; after the power loss: %s", len(acked), lost)
			if lazy {
				require.NotEmpty(t, lost, "lazyfs dropped the unsynced writes")
			} else {
				require.Empty(t, lost, "the page cache kept them")
			}
		})
	}
}

// lostPuts waits for the cluster to serve after a restart and returns what
// went wrong: a member that exited, a cluster that does not serve within 20 s,
// or the number of acknowledged puts missing; empty when nothing did.
func lostPuts(p *Process, acked map[string]string) string {
	c, err := p.Client(p.Members()[0])
	if err != nil {
		return err.Error()
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if err := p.Err(); err != nil {
			return "a member exited: " + strings.SplitN(err.Error(), "\n", 2)[0]
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		resp, err := c.Get(ctx, "k", clientv3.WithPrefix())
		cancel()
		if err == nil {
			have := map[string]string{}
			for _, kv := range resp.Kvs {
				have[string(kv.Key)] = string(kv.Value)
			}
			missing := 0
			for k, v := range acked {
				if have[k] != v {
					missing++
				}
			}
			if missing == 0 {
				return ""
			}
			return fmt.Sprintf("%d of them missing", missing)
		}
		if time.Now().After(deadline) {
			return "no member serves within 20s: " + err.Error()
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// load puts unique keys through every member from one client each until d
// has passed, then calls cut while the puts are still running, and returns
// the puts that were acknowledged.
func load(t *testing.T, p *Process, d time.Duration, cut func()) map[string]string {
	var (
		mu    sync.Mutex
		acked = map[string]string{}
		stop  atomic.Bool
		wg    sync.WaitGroup
	)
	for i, m := range p.Members() {
		c, err := p.Client(m)
		require.NoError(t, err)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; !stop.Load(); n++ {
				k, v := fmt.Sprintf("k%d-%d", i, n), fmt.Sprintf("v%d-%d", i, n)
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				_, err := c.Put(ctx, k, v)
				cancel()
				if err == nil {
					mu.Lock()
					acked[k] = v
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(d)
	cut()
	stop.Store(true)
	wg.Wait()
	return acked
}

// buildHarness builds the harness (havoc's store is `harness serve`) once per
// test binary.
func buildHarness(t *testing.T) string {
	harnessOnce.Do(func() {
		dir, err := os.MkdirTemp("", "havoc-harness-bin-")
		if err != nil {
			harnessErr = err
			return
		}
		harnessBin = filepath.Join(dir, "harness")
		out, err := exec.Command("go", "build", "-o", harnessBin, "github.com/havoclab/havoc/cmd/harness").CombinedOutput()
		if err != nil {
			harnessErr = fmt.Errorf("build harness: %v\n%s", err, out)
		}
	})
	require.NoError(t, harnessErr)
	return harnessBin
}

var (
	harnessOnce sync.Once
	harnessBin  string
	harnessErr  error
)

// TestMountLazyDirs: what a restore's Prepare wrote into the data dir, or a
// backing dir a killed harness left, is what the member sees through the
// mount; unmounting puts it back as the data dir.
func TestMountLazyDirs(t *testing.T) {
	if err := lazyfs.Check(); err != nil {
		t.Skip(err)
	}
	for _, left := range []string{"m1.data", "m1.disk"} {
		dir := t.TempDir()
		data := filepath.Join(dir, "m1.data")
		require.NoError(t, os.Mkdir(filepath.Join(dir, left), 0o700))
		require.NoError(t, os.WriteFile(filepath.Join(dir, left, "db"), []byte("x"), 0o600))
		l, err := mountLazy(data, 1)
		require.NoError(t, err)
		got, err := os.ReadFile(filepath.Join(data, "db"))
		require.NoError(t, err, "written in %s", left)
		require.Equal(t, "x", string(got))
		require.NoError(t, os.WriteFile(filepath.Join(data, "wal"), []byte("unsynced"), 0o600))
		require.NoError(t, unmountLazy(l))
		got, err = os.ReadFile(filepath.Join(data, "wal"))
		require.NoError(t, err)
		require.Equal(t, "unsynced", string(got), "a clean unmount syncs")
		_, err = os.Stat(filepath.Join(dir, "m1.disk"))
		require.ErrorIs(t, err, os.ErrNotExist)
	}
}
