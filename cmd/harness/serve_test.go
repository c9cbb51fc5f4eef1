package main

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/havoclab/havoc/cluster"
	"github.com/havoclab/havoc/internal/testhook"
	"github.com/havoclab/havoc/sim"
	"github.com/havoclab/havoc/store"
	"github.com/havoclab/havoc/store/membership"
	"github.com/havoclab/havoc/vfs"
)

// TestMain lets a test run the harness command itself in a child process (the
// test binary re-executed with HARNESS_TEST_MAIN set), so exit codes, crashes
// and every line on stdout and stderr are the real command's.
//
// With HAVOC_HARNESS_MAIN=1 it runs main with its own arguments (a sweep's
// workers are os.Executable), and with HAVOC_TEST_PANIC=<member> that member
// panics 2 virtual seconds into every simulated run; with
// HAVOC_TEST_PANIC_ON_CRASH=1 a member panics while another is down (an
// injected bug that only a crash reaches, for harness shrink).
func TestMain(m *testing.M) {
	if os.Getenv("HAVOC_HARNESS_MAIN") == "1" {
		if member := os.Getenv("HAVOC_TEST_PANIC"); member != "" {
			testhook.Sim = func(w *sim.World, _ *cluster.Sim) {
				w.ScheduleAt(2*time.Second, "inject", func() {
					w.Host(member).After(0, func() { panic("tocommit(3492) is out of range [lastIndex(3491)]") })
				})
			}
		}
		if os.Getenv("HAVOC_TEST_PANIC_ON_CRASH") == "1" {
			testhook.Sim = panicOnCrash
		}
		main()
		os.Exit(0)
	}
	if args, ok := os.LookupEnv("HARNESS_TEST_MAIN"); ok {
		os.Args = append([]string{"harness"}, strings.Split(args, "\x1f")...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// panicOnCrash makes the first member that is up panic once, as soon as a
// member is down (it polls every 100ms of virtual time).
func panicOnCrash(w *sim.World, cl *cluster.Sim) {
	var poll func()
	poll = func() {
		members := cl.Members()
		for _, m := range members {
			if w.Host(m).Up() {
				continue
			}
			for _, up := range members {
				if w.Host(up).Up() {
					w.Host(up).After(0, func() { panic("injected: " + m + " is down") })
					return
				}
			}
		}
		w.Schedule(100*time.Millisecond, "inject", poll)
	}
	w.Schedule(100*time.Millisecond, "inject", poll)
}

// runHarness runs the harness with args and returns its combined output and
// exit code.
func runHarness(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "HARNESS_TEST_MAIN="+strings.Join(args, "\x1f"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	done := make(chan error, 1)
	require.NoError(t, cmd.Start())
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return out.String(), ee.ExitCode()
		}
		require.NoError(t, err)
		return out.String(), 0
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("harness %v still running after 30s; output:\n%s", args, out.String())
		return "", -1
	}
}

// treeDigest hashes every name and file content under dir ("" if dir is missing).
func treeDigest(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\n", p)
		if !d.IsDir() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h.Write(b)
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return ""
	}
	require.NoError(t, err)
	return fmt.Sprintf("%x", h.Sum(nil))
}

// freePort returns a loopback address no one listens on (right now).
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// initDataDir writes a data dir for the one-member cluster "default" as harness
// serve lays it out, with a few keys in it.
func initDataDir(t *testing.T, peer string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "default.etcd")
	initial, err := membership.ParseInitialCluster("default="+peer, "etcd-cluster")
	require.NoError(t, err)
	member := filepath.Join(dir, "member")
	require.NoError(t, os.MkdirAll(filepath.Join(member, "snap"), 0o700))
	n, err := store.Open(store.Config{Name: "default", InitialCluster: initial, FS: vfs.OS(),
		WALDir: filepath.Join(member, "wal"), DBPath: filepath.Join(member, "snap", "db"), Clock: wallClock{}})
	require.NoError(t, err)
	for range 50 {
		n.Tick()
		n.Drain()
	}
	for i := range 100 {
		n.Submit(uint64(i+1), store.Request{Put: &pb.PutRequest{Key: fmt.Appendf(nil, "k%03d", i), Value: bytes.Repeat([]byte{'v'}, 300)}})
		n.Drain()
	}
	n.Tick()
	n.Drain()
	require.NoError(t, n.Close())
	return dir
}

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

// requireRefused checks the contract of a refused start: exit 1, one line that
// says want, no panic or stack trace, and the data dir as it was.
func requireRefused(t *testing.T, out string, code int, dir, digest string, want ...string) {
	t.Helper()
	require.Equal(t, 1, code, "exit code; output:\n%s", out)
	require.NotContains(t, out, "goroutine ")
	require.NotContains(t, out, "panic")
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	require.Len(t, lines, 1, "one line of output, got:\n%s", out)
	for _, w := range want {
		require.Contains(t, out, w)
	}
	require.Equal(t, digest, treeDigest(t, dir), "the data dir must be unchanged")
}

func serveArgs(dir, peer, client string) []string {
	return []string{"serve", "--data-dir", dir, "--log-level", "error",
		"--listen-peer-urls", "http://" + peer, "--initial-advertise-peer-urls", "http://" + peer,
		"--initial-cluster", "default=http://" + peer,
		"--listen-client-urls", "http://" + client, "--advertise-client-urls", "http://" + client}
}

func TestServeRefusesTruncatedBackend(t *testing.T) {
	peer, client := freePort(t), freePort(t)
	dir := initDataDir(t, "http://"+peer)
	require.NoError(t, os.Truncate(filepath.Join(dir, "member", "snap", "db"), 8<<10))
	digest := treeDigest(t, dir)
	out, code := runHarness(t, serveArgs(dir, peer, client)...)
	requireRefused(t, out, code, dir, digest, "backend", "corrupt", "truncated", filepath.Join("snap", "db"), "snapshot restore", "member remove")
}

func TestServeRefusesCorruptLog(t *testing.T) {
	for _, withBackend := range []bool{true, false} {
		t.Run(fmt.Sprintf("backend=%v", withBackend), func(t *testing.T) {
			peer, client := freePort(t), freePort(t)
			dir := initDataDir(t, "http://"+peer)
			if !withBackend {
				// Nothing may be created either: no backend, no snap dir.
				require.NoError(t, os.RemoveAll(filepath.Join(dir, "member", "snap")))
			}
			segs, err := filepath.Glob(filepath.Join(dir, "member", "wal", "*.wal"))
			require.NoError(t, err)
			require.NotEmpty(t, segs)
			b, err := os.ReadFile(segs[0])
			require.NoError(t, err)
			b[len(b)/3] ^= 0x40
			require.NoError(t, os.WriteFile(segs[0], b, 0o600))
			digest := treeDigest(t, dir)
			out, code := runHarness(t, serveArgs(dir, peer, client)...)
			requireRefused(t, out, code, dir, digest, "corrupt", filepath.Base(segs[0]), "offset", "snapshot restore", "member remove")
			require.NotContains(t, out, "not written by this havoc member")
		})
	}
}

func TestServePortInUseLeavesNoDataDir(t *testing.T) {
	for _, which := range []string{"peer", "client"} {
		t.Run(which, func(t *testing.T) {
			busy, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			defer busy.Close()
			peer, client := freePort(t), freePort(t)
			if which == "peer" {
				peer = busy.Addr().String()
			} else {
				client = busy.Addr().String()
			}
			dir := filepath.Join(t.TempDir(), "new.etcd")
			out, code := runHarness(t, serveArgs(dir, peer, client)...)
			requireRefused(t, out, code, dir, "", busy.Addr().String())
			_, err = os.Stat(dir)
			require.ErrorIs(t, err, fs.ErrNotExist)
		})
	}
}
