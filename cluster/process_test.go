package cluster

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/havoclab/havoc/chaos"
)

// The test binary doubles as a fake member (HAVOC_FAKE_MEMBER=1: serve /health
// on the client URL, accept on the peer URL) and as a harness that starts a
// fake cluster and waits to be killed (HAVOC_FAKE_PARENT=1).
func TestMain(m *testing.M) {
	switch {
	case os.Getenv("HAVOC_FAKE_MEMBER") == "1":
		fakeMember(os.Args[1:])
	case os.Getenv("HAVOC_FAKE_PARENT") == "1":
		fakeParent()
	}
	os.Exit(m.Run())
}

func flagValue(args []string, name string) string {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

func fakeMember(args []string) {
	client := strings.TrimPrefix(flagValue(args, "--listen-client-urls"), "http://")
	peer := strings.TrimPrefix(flagValue(args, "--listen-peer-urls"), "http://")
	if err := os.MkdirAll(flagValue(args, "--data-dir"), 0o755); err != nil {
		os.Exit(3)
	}
	fmt.Println("fake member", flagValue(args, "--name"), "up")
	go func() {
		_ = http.ListenAndServe(peer, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	}()
	err := http.ListenAndServe(client, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/exit" {
			fmt.Fprintln(os.Stderr, "panic: fake member gave up\n\ngoroutine 1 [running]:\nmain.fakeMember()")
			os.Exit(7)
		}
		fmt.Fprint(w, `{"health":"true"}`)
	}))
	fmt.Println(err)
	os.Exit(4)
}

func fakeParent() {
	p := newFakeProcess(nil, os.Getenv("HAVOC_FAKE_DIR"))
	if err := p.Start(context.Background()); err != nil {
		fmt.Println("start:", err)
		os.Exit(5)
	}
	for _, n := range p.Members() {
		fmt.Println(p.PID(n))
	}
	fmt.Println("ready")
	select {}
}

func newFakeProcess(t *testing.T, dir string) *Process {
	exe, err := os.Executable()
	if err != nil {
		panic(err)
	}
	p, err := NewProcess(ProcessConfig{Target: TargetEtcd, Binary: exe, Dir: dir, Env: []string{"HAVOC_FAKE_MEMBER=1", "HAVOC_FAKE_PARENT="}, StartTimeout: 10 * time.Second})
	if err != nil {
		panic(err)
	}
	if t != nil {
		t.Cleanup(func() { _ = p.Close() })
	}
	return p
}

// pidAlive reports whether pid names a live (not zombie) process.
func pidAlive(pid int) bool {
	state, ok := procState(fmt.Sprintf("/proc/%d/stat", pid))
	return ok && state != 'Z' && state != 'X'
}

func healthy(url string) bool {
	c := http.Client{Timeout: 300 * time.Millisecond}
	resp, err := c.Get(url + "/health")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func portFree(url string) bool {
	ln, err := net.Listen("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

func TestProcessLifecycle(t *testing.T) {
	p := newFakeProcess(t, "")
	require.NoError(t, p.Start(context.Background()))
	dir := p.Dir()
	require.DirExists(t, dir)
	ms := p.Members()
	require.Equal(t, []string{"m1", "m2", "m3"}, ms)
	var pids []int
	var urls []string
	for _, m := range ms {
		require.Eventually(t, func() bool { return healthy(p.ClientURL(m)) }, 5*time.Second, 50*time.Millisecond)
		require.NotZero(t, p.MemberID(m))
		pids = append(pids, p.PID(m))
		urls = append(urls, p.ClientURL(m))
	}
	require.FileExists(t, filepath.Join(dir, "m1.log"))

	require.NoError(t, p.Crash("m1", true))
	require.False(t, pidAlive(pids[0]))
	require.Zero(t, p.PID("m1"))
	require.False(t, healthy(urls[0]))
	require.NoError(t, p.Restart("m1"))
	require.Eventually(t, func() bool { return healthy(urls[0]) }, 5*time.Second, 50*time.Millisecond)
	require.NotEqual(t, pids[0], p.PID("m1"))

	require.NoError(t, p.Pause("m2"))
	require.False(t, healthy(urls[1]), "a stopped process does not answer")
	require.NoError(t, p.Resume("m2"))
	require.Eventually(t, func() bool { return healthy(urls[1]) }, 5*time.Second, 50*time.Millisecond)

	require.NoError(t, p.Stop("m3"))
	require.False(t, pidAlive(pids[2]))
	require.NoError(t, p.Pause("m2"))
	require.NoError(t, p.HealAll(context.Background()))
	require.Eventually(t, func() bool { return healthy(urls[2]) && healthy(urls[1]) }, 5*time.Second, 50*time.Millisecond)

	require.ErrorIs(t, p.SetClock("m1", time.Second, 0), chaos.ErrUnsupported)
	require.ErrorIs(t, p.DegradeLinks(chaos.Links{Duplicate: 0.1}), chaos.ErrUnsupported)
	require.ErrorIs(t, p.DegradeLinks(chaos.Links{Reorder: 0.1}), chaos.ErrUnsupported)
	require.NoError(t, p.DegradeLinks(chaos.Links{LatencyMin: time.Millisecond, LatencyMax: 2 * time.Millisecond}))
	require.Equal(t, "", p.Leader(), "fake members have no raft status")

	var what []string
	for _, e := range p.Events() {
		what = append(what, e.Member+" "+e.What)
	}
	log := strings.Join(what, "\n")
	require.Contains(t, log, "m1 kill -9 (torn write not expressible")
	require.Contains(t, log, "m2 pause (SIGSTOP)")
	require.Contains(t, log, "m3 stop (SIGTERM)")

	require.NoError(t, p.Err(), "every exit so far was the harness's doing")
	_, _ = http.Get(urls[0] + "/exit")
	require.Eventually(t, func() bool { return p.Err() != nil }, 5*time.Second, 20*time.Millisecond)
	require.ErrorContains(t, p.Err(), "m1 (pid")
	require.ErrorContains(t, p.Err(), "exited on its own")
	require.ErrorContains(t, p.Err(), `log: "panic: fake member gave up"`, "the error quotes the panic from the member's log")
	require.NoError(t, p.Restart("m1"))
	require.Eventually(t, func() bool { return healthy(urls[0]) }, 5*time.Second, 50*time.Millisecond)

	live := []int{p.PID("m1"), p.PID("m2"), p.PID("m3")}
	peers := []string{p.PeerURL("m1"), p.PeerURL("m2"), p.PeerURL("m3")}
	require.NoError(t, p.Close())
	require.NoError(t, p.Close())
	for i, pid := range live {
		require.False(t, pidAlive(pid), "member %d survived Close", pid)
		require.True(t, portFree(urls[i]), "client port of %s still taken", ms[i])
		require.True(t, portFree(peers[i]), "proxy port of %s still taken", ms[i])
	}
	require.NoDirExists(t, dir, "a run dir Start created is removed")
}

func TestStartFailureCleansUp(t *testing.T) {
	dir := t.TempDir()
	p, err := NewProcess(ProcessConfig{Target: TargetEtcd, Binary: "/bin/false", Dir: dir, StartTimeout: 5 * time.Second})
	require.NoError(t, err)
	err = p.Start(context.Background())
	require.ErrorContains(t, err, "exited during start")
	require.DirExists(t, dir, "a given run dir is kept (it has the logs)")
	require.FileExists(t, filepath.Join(dir, "m1.log"))
	require.Error(t, p.Start(context.Background()), "no second start")

	// A cancelled context ends Start too, and kills what it launched.
	p2 := newFakeProcess(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.Error(t, p2.Start(ctx))
	for _, e := range p2.Events() {
		if pid, ok := strings.CutPrefix(e.What, "started pid "); ok {
			n, _ := strconv.Atoi(pid)
			require.False(t, pidAlive(n))
		}
	}
}

// TestPrepare checks that ProcessConfig.Prepare sees the peer URLs and data
// dirs the members start with, runs before any member launches, and that its
// error fails Start without leaving a process behind.
func TestPrepare(t *testing.T) {
	exe, err := os.Executable()
	require.NoError(t, err)
	var got ProcessSpec
	cfg := ProcessConfig{Target: TargetEtcd, Binary: exe, Token: "tok", Env: []string{"HAVOC_FAKE_MEMBER=1", "HAVOC_FAKE_PARENT="}, StartTimeout: 10 * time.Second}
	cfg.Prepare = func(spec ProcessSpec) error {
		got = spec
		for _, m := range spec.Members {
			if _, err := os.Stat(m.DataDir); !os.IsNotExist(err) {
				return fmt.Errorf("data dir %s exists before prepare: %v", m.DataDir, err)
			}
			if err := os.MkdirAll(m.DataDir, 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(m.DataDir, "restored"), []byte(m.Name), 0o644); err != nil {
				return err
			}
		}
		return nil
	}
	p, err := NewProcess(cfg)
	require.NoError(t, err)
	defer p.Close()
	require.NoError(t, p.Start(context.Background()))
	require.Equal(t, "tok", got.Token)
	require.Len(t, got.Members, 3)
	var initial []string
	for i, m := range got.Members {
		name := p.Members()[i]
		require.Equal(t, name, m.Name)
		require.Equal(t, p.PeerURL(name), m.PeerURL)
		require.Equal(t, filepath.Join(p.Dir(), name+".data"), m.DataDir)
		b, err := os.ReadFile(filepath.Join(m.DataDir, "restored"))
		require.NoError(t, err, "the member kept the prepared data dir")
		require.Equal(t, name, string(b))
		initial = append(initial, name+"="+m.PeerURL)
	}
	require.Equal(t, strings.Join(initial, ","), got.InitialCluster)
	for _, e := range p.Events() {
		require.NotContains(t, e.What, "exited")
	}

	cfg.Prepare = func(ProcessSpec) error { return fmt.Errorf("no snapshot") }
	p2, err := NewProcess(cfg)
	require.NoError(t, err)
	err = p2.Start(context.Background())
	require.ErrorContains(t, err, "prepare: no snapshot")
	require.Empty(t, p2.Events(), "nothing launched")
}

func TestValidate(t *testing.T) {
	for _, c := range []ProcessConfig{
		{Target: "zookeeper", Binary: "x"},
		{Target: TargetEtcd},
		{Binary: "x", Members: 10},
	} {
		_, err := NewProcess(c)
		require.Error(t, err, "%+v", c)
	}
}

// TestKilledHarnessLeavesNoMembers kills the harness with SIGKILL, which it
// cannot handle: the members must die with it (parent-death signal).
func TestKilledHarnessLeavesNoMembers(t *testing.T) {
	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), "HAVOC_FAKE_PARENT=1", "HAVOC_FAKE_DIR="+t.TempDir())
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	var pids []int
	sc := bufio.NewScanner(out)
	for sc.Scan() && sc.Text() != "ready" {
		n, err := strconv.Atoi(sc.Text())
		require.NoError(t, err, "parent said %q", sc.Text())
		pids = append(pids, n)
	}
	require.Len(t, pids, 3)
	for _, pid := range pids {
		require.True(t, pidAlive(pid))
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()
	require.Eventually(t, func() bool {
		for _, pid := range pids {
			if pidAlive(pid) {
				return false
			}
		}
		return true
	}, 5*time.Second, 20*time.Millisecond)
}

// buildEtcd builds the pinned etcd (a go.mod tool) once per test binary.
func buildEtcd(t *testing.T) string {
	t.Helper()
	etcdOnce.Do(func() {
		dir, err := os.MkdirTemp("", "havoc-etcd-bin-")
		if err != nil {
			etcdErr = err
			return
		}
		etcdBin = filepath.Join(dir, "etcd")
		out, err := exec.Command("go", "build", "-o", etcdBin, "go.etcd.io/etcd/server/v3").CombinedOutput()
		if err != nil {
			etcdErr = fmt.Errorf("build etcd: %v\n%s", err, out)
		}
	})
	require.NoError(t, etcdErr)
	return etcdBin
}

var (
	etcdOnce sync.Once
	etcdBin  string
	etcdErr  error
)

// TestRealEtcdFaults drives a real etcd cluster through the proxies: an
// isolated leader is replaced, a one-way cut and a crash are survived, and the
// members converge after HealAll.
func TestRealEtcdFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real etcd cluster")
	}
	bin := buildEtcd(t)
	dir := t.TempDir()
	if d := os.Getenv("HAVOC_KEEP_DIR"); d != "" {
		dir = d
	}
	p, err := NewProcess(ProcessConfig{Target: TargetEtcd, Binary: bin, Dir: dir, Seed: 1})
	require.NoError(t, err)
	defer p.Close()
	require.NoError(t, p.Start(context.Background()))

	var leader string
	require.Eventually(t, func() bool { leader = p.Leader(); return leader != "" }, 10*time.Second, 100*time.Millisecond)
	put := func(member, key string) error {
		c, err := p.Client(member)
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err = c.Put(ctx, key, "v")
		return err
	}
	require.NoError(t, put(leader, "a"))

	// Isolate the leader: the others elect a new one, the old one cannot write.
	var others []string
	for _, m := range p.Members() {
		if m != leader {
			others = append(others, m)
		}
	}
	require.NoError(t, p.Partition([]string{leader}, others))
	require.Eventually(t, func() bool {
		l := p.Leader()
		return l != "" && l != leader
	}, 15*time.Second, 200*time.Millisecond, "the majority elects a new leader")
	require.Error(t, put(leader, "b"), "the isolated member cannot commit")
	require.NoError(t, put(others[0], "c"))
	require.NoError(t, p.HealNetwork())

	// Crash a member, write without it, restart it.
	require.NoError(t, p.Crash(others[1], false))
	require.Eventually(t, func() bool { return put(others[0], "d") == nil }, 10*time.Second, 100*time.Millisecond,
		"the two left elect a leader (the crashed one may have led) and commit")
	require.NoError(t, p.HealAll(context.Background()))
	require.Eventually(t, func() bool { return healthy(p.ClientURL(others[1])) }, 15*time.Second, 100*time.Millisecond)
	require.Eventually(t, func() bool { return put(others[1], "e") == nil }, 10*time.Second, 100*time.Millisecond)
	pids := []int{p.PID("m1"), p.PID("m2"), p.PID("m3")}
	require.NoError(t, p.Close())
	for _, pid := range pids {
		require.False(t, pidAlive(pid))
	}
}

func TestLogExcerpt(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) string {
		p := filepath.Join(dir, "m.log")
		require.NoError(t, os.WriteFile(p, []byte(s), 0o644))
		return p
	}
	require.Equal(t, "", logExcerpt(filepath.Join(dir, "missing.log")))
	require.Equal(t, `last log lines: "b" | "c" | "d"`, logExcerpt(write("a\nb\n\nc\nd\n")))
	require.Equal(t, `log: "panic: new"`, logExcerpt(write("=== havoc: start\npanic: old\n=== havoc: start\nx\npanic: new\n\ngoroutine 1\nf()\n")))
	require.Equal(t, `last log lines: "y"`, logExcerpt(write("panic: old\n=== havoc: start\ny\n")))
	long := strings.Repeat("z", 300)
	require.Equal(t, `last log lines: "`+long[:200]+`..."`, logExcerpt(write(long+"\n")))
}
