package cluster

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/havoclab/havoc/chaos"
	"github.com/havoclab/havoc/cluster/lazyfs"
	"github.com/havoclab/havoc/cluster/linkproxy"
	"github.com/havoclab/havoc/store/membership"
)

// ProcessConfig configures a cluster of members running as OS processes on
// 127.0.0.1.
type ProcessConfig struct {
	// Target is the store the members run (TargetHavoc when empty).
	Target Target
	// Binary is the program: the harness binary for TargetHavoc (run as
	// `Binary serve ...`), an etcd binary for TargetEtcd. Required.
	Binary string
	// Members is the cluster size (3 when zero).
	Members int
	// Dir is the run directory: data dirs and <member>.log files. When empty a
	// temporary directory is created (on tmpfs when the machine has one) and
	// removed by Close; a given Dir is kept.
	Dir string
	// Token is --initial-cluster-token (a fresh random one when empty, so that
	// members of two runs never talk to each other).
	Token string
	// Seed seeds the link proxies' latency and loss draws.
	Seed uint64
	// StartTimeout bounds Start's wait for every member's /health (30 s when zero).
	StartTimeout time.Duration
	// ExtraArgs are appended to every member's command line.
	ExtraArgs []string
	// Env is added to the members' environment.
	Env []string
	// Security puts the cluster on TLS and enables auth (a plain cluster when
	// zero).
	Security Security
	// Prepare, if set, runs in Start once the link proxies exist (so the peer
	// URLs, and with them the member IDs, are known) and before any member
	// launches: a restore drill writes every member's data dir there (nil: the
	// members bootstrap empty data dirs).
	Prepare func(spec ProcessSpec) error
	// LazyFS puts every member's data dir on a lazy file system (package
	// lazyfs): a crash or power loss then also loses what the member had not
	// fsynced, torn if asked. It needs /dev/fuse and root or fusermount3
	// (Validate says what is missing).
	LazyFS bool
}

// ProcessSpec is the bootstrap configuration Start gives the members, handed
// to ProcessConfig.Prepare: what `etcdutl snapshot restore` needs per member.
type ProcessSpec struct {
	// InitialCluster is --initial-cluster: name=peerURL,... with the proxies' URLs.
	InitialCluster string
	// Token is --initial-cluster-token.
	Token string
	// Members are in name order.
	Members []MemberSpec
}

// MemberSpec is one member's part of a ProcessSpec.
type MemberSpec struct {
	Name    string
	PeerURL string // --initial-advertise-peer-urls: the member's link proxy
	DataDir string // --data-dir: does not exist yet when Prepare runs
}

// Validate fills defaults and checks the configuration.
func (c *ProcessConfig) Validate() error {
	if c.Target == "" {
		c.Target = TargetHavoc
	}
	if c.Members == 0 {
		c.Members = 3
	}
	if c.StartTimeout == 0 {
		c.StartTimeout = 30 * time.Second
	}
	if c.Token == "" {
		var b [6]byte
		_, _ = rand.Read(b[:])
		c.Token = fmt.Sprintf("havoc-%x", b)
	}
	switch {
	case c.Target != TargetHavoc && c.Target != TargetEtcd:
		return fmt.Errorf("cluster: unknown target %q (want havoc or etcd)", c.Target)
	case c.Binary == "":
		return fmt.Errorf("cluster: no binary for target %s", c.Target)
	case c.Members < 1 || c.Members > 9:
		return fmt.Errorf("cluster: %d members (want 1 to 9)", c.Members)
	}
	if c.LazyFS {
		return lazyfs.Check()
	}
	return nil
}

// Event is one thing that happened to a member process, with its wall time.
type Event struct {
	Time   time.Time
	Member string
	What   string
}

// Process is a cluster of members running as OS processes, with a link proxy
// (package linkproxy) in front of every member's peer listener so that the
// harness controls every peer link. It implements Backend.
//
// What a real process cannot do: a crash is kill -9, and the OS keeps the page
// cache of the dead process, so writes it did not fsync survive (the torn flag
// is noted and ignored), unless ProcessConfig.LazyFS puts the data dirs on a
// lazy file system that drops them; clocks cannot be set
// (SetClock is unsupported); duplication and reordering are not expressible on
// TCP links (see linkproxy).
type Process struct {
	// realNet gives the link-fault verbs (Partition, PartitionOneWay, Repair,
	// RepairOneWay, DegradeLinks, RestoreLinks, HealNetwork) and Leader.
	realNet

	cfg    ProcessConfig
	dir    string
	ownDir bool
	names  []string
	net    *linkproxy.Network
	sec    *secured // set by Start

	mu      sync.Mutex
	members map[string]*member
	byID    map[uint64]string
	clients map[string]*clientv3.Client
	events  []Event
	errs    []error
	started bool
	closed  bool
}

// member is one member process and the addresses it keeps across restarts.
type member struct {
	name      string
	id        uint64
	clientURL string
	peerAddr  string // the real peer listener
	proxyURL  string // the advertised peer URL: the member's link proxy
	dataDir   string
	logPath   string
	args      []string
	proxy     *linkproxy.Proxy
	lazy      *lazyfs.FS // the data dir's mount with ProcessConfig.LazyFS

	cmd    *exec.Cmd
	done   chan struct{} // closed when cmd has exited and been reaped
	paused bool
	// expectExit is set when the harness kills or stops the process; an exit
	// without it is a member failure (Err).
	expectExit bool
	// removed says the slot is empty: its member was removed and its data dir
	// wiped (process_member.go); crash, restart, pause and resume skip it.
	removed bool
}

func (m *member) running() bool {
	if m.cmd == nil {
		return false
	}
	select {
	case <-m.done:
		return false
	default:
		return true
	}
}

// NewProcess prepares a cluster; Start launches it.
func NewProcess(cfg ProcessConfig) (*Process, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &Process{cfg: cfg, dir: cfg.Dir, net: linkproxy.NewNetwork(cfg.Seed),
		members: map[string]*member{}, byID: map[uint64]string{}, clients: map[string]*clientv3.Client{}}
	p.realNet = realNet{eps: p,
		lnet: func() (*linkproxy.Network, error) { return p.net, nil },
		event: func(what string) {
			p.mu.Lock()
			defer p.mu.Unlock()
			p.eventLocked("net", "%s", what)
		}}
	for i := 1; i <= cfg.Members; i++ {
		p.names = append(p.names, fmt.Sprintf("m%d", i))
	}
	return p, nil
}

// Members returns the member names m1, m2, ...
func (p *Process) Members() []string { return slices.Clone(p.names) }

// Dir is the run directory.
func (p *Process) Dir() string { return p.dir }

// ClientURL returns member's client URL.
func (p *Process) ClientURL(name string) string {
	return memberField(p, name, func(m *member) string { return m.clientURL })
}

// PeerURL returns member's advertised peer URL: the address of its link proxy.
func (p *Process) PeerURL(name string) string {
	return memberField(p, name, func(m *member) string { return m.proxyURL })
}

// MemberID returns member's raft ID (computed from its advertised peer URL).
func (p *Process) MemberID(name string) uint64 {
	return memberField(p, name, func(m *member) uint64 { return m.id })
}

// memberField reads one field of a member under the lock; the zero value for an
// unknown member.
func memberField[T any](p *Process, name string, f func(*member) T) T {
	p.mu.Lock()
	defer p.mu.Unlock()
	if m, ok := p.members[name]; ok {
		return f(m)
	}
	var zero T
	return zero
}

// PID returns member's process ID, or 0 when it is not running.
func (p *Process) PID(name string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if m, ok := p.members[name]; ok && m.running() {
		return m.cmd.Process.Pid
	}
	return 0
}

// Network is the link proxies' network (for inspection; faults go through the
// Injector methods).
func (p *Process) Network() *linkproxy.Network { return p.net }

// Events returns what happened to the member processes so far, in order.
func (p *Process) Events() []Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.events)
}

// Err reports members that exited without the harness killing or stopping
// them (a crash of the store itself), nil if none did.
func (p *Process) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return errors.Join(p.errs...)
}

func (p *Process) eventLocked(name, format string, args ...any) {
	p.events = append(p.events, Event{Time: time.Now(), Member: name, What: fmt.Sprintf(format, args...)})
}

// freePorts reserves n distinct free TCP ports on 127.0.0.1. They are released
// before the members bind them, so they are drawn below the kernel's ephemeral
// range: there no listener on port 0 (our own proxies included) and no outgoing
// connection can take one in between. Another program choosing fixed ports in the
// same range still could; the member then fails to start and Start reports it.
func freePorts(n int) ([]int, error) {
	lo, hi := 10000, ephemeralLow()-1
	if hi-lo < 4*n {
		lo = 1024
	}
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			_ = ln.Close()
		}
	}()
	ports := make([]int, 0, n)
	for tries := 0; len(ports) < n; tries++ {
		if tries > 100*n {
			return nil, fmt.Errorf("cluster: no free port in %d-%d", lo, hi)
		}
		port := lo + mrand.IntN(hi-lo+1)
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		lns = append(lns, ln)
		ports = append(ports, port)
	}
	return ports, nil
}

// ephemeralLow is the first port of the kernel's ephemeral range (32768 when the
// range cannot be read).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) < 1 {
		return 32768
	}
	lo, err := strconv.Atoi(f[0])
	if err != nil || lo < 2048 {
		return 32768
	}
	return lo
}

// Start creates the run directory, the link proxies and the member processes,
// and waits until every member answers /health. On failure everything it
// created is gone again.
func (p *Process) Start(ctx context.Context) (err error) {
	p.mu.Lock()
	if p.started || p.closed {
		p.mu.Unlock()
		return errors.New("cluster: Process.Start called twice or after Close")
	}
	p.started = true
	p.mu.Unlock()
	defer func() {
		if err != nil {
			_ = p.Close()
		}
	}()
	if p.dir == "" {
		base := os.TempDir()
		if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
			base = "/dev/shm"
		}
		if p.dir, err = os.MkdirTemp(base, "havoc-proc-"); err != nil {
			return err
		}
		p.ownDir = true
	} else if err := os.MkdirAll(p.dir, 0o755); err != nil {
		return err
	}
	ports, err := freePorts(2 * len(p.names))
	if err != nil {
		return err
	}
	sec, err := newSecured(p.cfg.Security, p.dir, p.names)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.sec = sec
	p.mu.Unlock()
	scheme := sec.scheme()
	// 1. Proxies first: their addresses are the advertised peer URLs, which
	// decide the member IDs.
	var initial []string
	for i, name := range p.names {
		m := &member{
			name:      name,
			clientURL: fmt.Sprintf("%s://127.0.0.1:%d", scheme, ports[2*i]),
			peerAddr:  fmt.Sprintf("127.0.0.1:%d", ports[2*i+1]),
			dataDir:   filepath.Join(p.dir, name+".data"),
			logPath:   filepath.Join(p.dir, name+".log"),
		}
		if p.cfg.Security.TLS {
			m.proxy, err = p.net.ListenTLS("127.0.0.1:0", m.peerAddr, name, p.resolve, sec.proxyTLS(name))
		} else {
			m.proxy, err = p.net.Listen("127.0.0.1:0", m.peerAddr, name, p.resolve)
		}
		if err != nil {
			return err
		}
		m.proxyURL = scheme + "://" + m.proxy.Addr()
		m.id = membership.ComputeID([]string{m.proxyURL}, p.cfg.Token)
		p.mu.Lock()
		p.members[name] = m
		p.byID[m.id] = name
		p.mu.Unlock()
		initial = append(initial, name+"="+m.proxyURL)
	}
	if p.cfg.Prepare != nil {
		spec := ProcessSpec{InitialCluster: strings.Join(initial, ","), Token: p.cfg.Token}
		for _, name := range p.names {
			m := p.members[name]
			spec.Members = append(spec.Members, MemberSpec{Name: name, PeerURL: m.proxyURL, DataDir: m.dataDir})
		}
		if err := p.cfg.Prepare(spec); err != nil {
			return fmt.Errorf("cluster: prepare: %w", err)
		}
	}
	if p.cfg.LazyFS {
		for i, name := range p.names {
			m := p.members[name]
			l, err := mountLazy(m.dataDir, p.cfg.Seed+uint64(i))
			if err != nil {
				return err
			}
			p.mu.Lock()
			m.lazy = l
			p.mu.Unlock()
		}
	}
	// 2. Launch every member, then wait for all: a member is healthy only once
	// a quorum is up.
	p.mu.Lock()
	for _, name := range p.names {
		m := p.members[name]
		m.args = p.memberArgs(m, strings.Join(initial, ","))
		if err := p.launchLocked(m); err != nil {
			p.mu.Unlock()
			return err
		}
	}
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, p.cfg.StartTimeout)
	defer cancel()
	for _, name := range p.names {
		if err := p.waitHealthy(ctx, name); err != nil {
			return err
		}
	}
	if p.cfg.Security.Auth {
		return p.enableAuth(ctx)
	}
	return nil
}

// enableAuth turns auth on through the first member, then drops the clients
// made before, which hold no token.
func (p *Process) enableAuth(ctx context.Context) error {
	cli, err := p.Client(p.names[0])
	if err != nil {
		return err
	}
	if err := p.sec.enableAuth(ctx, cli); err != nil {
		return err
	}
	p.mu.Lock()
	clients := p.clients
	p.clients = map[string]*clientv3.Client{}
	p.eventLocked("net", "auth enabled: users %s (root) and %s (%s)", RootUser, WorkloadUser, WorkloadRole)
	p.mu.Unlock()
	for _, c := range clients {
		_ = c.Close()
	}
	return nil
}

// Dial returns a new client bound to member's endpoint acting as id, with
// the cluster's certificates and credentials (see Security).
func (p *Process) Dial(name string, id Identity) (*clientv3.Client, error) {
	p.mu.Lock()
	m, err := p.member(name)
	sec := p.sec
	p.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return clientv3.New(sec.clientConfig(m.clientURL, id))
}

// DialEndpoint returns a new client of endpoint (a member's client URL or a
// proxy in front of one) acting as id, with the cluster's certificates and
// credentials (Dialer).
func (p *Process) DialEndpoint(endpoint string, id Identity) (*clientv3.Client, error) {
	p.mu.Lock()
	sec := p.sec
	p.mu.Unlock()
	return clientv3.New(sec.clientConfig(endpoint, id))
}

// resolve maps an X-Server-From header to a member name for the proxies.
func (p *Process) resolve(hex string) (string, bool) {
	id, err := strconv.ParseUint(hex, 16, 64)
	if err != nil {
		return "", false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	name, ok := p.byID[id]
	return name, ok
}

// memberArgs is the command line of a member: etcd's flag names for both
// targets. A restart reuses it unchanged: both stores restart from their data
// dir and ignore the initial-cluster flags then.
func (p *Process) memberArgs(m *member, initial string) []string {
	var args []string
	if p.cfg.Target == TargetHavoc {
		args = append(args, "serve")
	}
	args = append(args,
		"--name", m.name,
		"--data-dir", m.dataDir,
		"--listen-client-urls", m.clientURL,
		"--advertise-client-urls", m.clientURL,
		"--listen-peer-urls", p.sec.scheme()+"://"+m.peerAddr,
		"--initial-advertise-peer-urls", m.proxyURL,
		"--initial-cluster", initial,
		"--initial-cluster-state", "new",
		"--initial-cluster-token", p.cfg.Token,
	)
	args = append(args, p.sec.memberArgs(m.name)...)
	return append(args, p.cfg.ExtraArgs...)
}

// launchLocked starts m's process. The process gets its own process group, so
// that the terminal's Ctrl-C reaches only the harness, which then closes the
// cluster; and a parent-death signal, so that a harness killed with -9 does
// not leave members behind.
func (p *Process) launchLocked(m *member) error {
	logf, err := os.OpenFile(m.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(logf, "=== havoc: %s start %s %s\n", time.Now().Format(time.RFC3339Nano), p.cfg.Binary, strings.Join(m.args, " "))
	cmd := exec.Command(p.cfg.Binary, m.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), p.cfg.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("cluster: start %s: %w", m.name, err)
	}
	m.cmd, m.paused, m.expectExit = cmd, false, false
	done := make(chan struct{})
	m.done = done
	p.eventLocked(m.name, "started pid %d", cmd.Process.Pid)
	go func() {
		err := cmd.Wait()
		logf.Close()
		p.mu.Lock()
		p.eventLocked(m.name, "pid %d exited: %v", cmd.Process.Pid, exitText(err))
		if !m.expectExit && p.started && !p.closed {
			p.errs = append(p.errs, fmt.Errorf("cluster: %s (pid %d) exited on its own: %v; %s (see %s)", m.name, cmd.Process.Pid, exitText(err), logExcerpt(m.logPath), m.logPath))
		}
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

func exitText(err error) string {
	if err == nil {
		return "status 0"
	}
	return err.Error()
}

// waitHealthy polls member's /health until it answers 200.
func (p *Process) waitHealthy(ctx context.Context, name string) error {
	p.mu.Lock()
	m := p.members[name]
	done := m.done
	hc := p.sec.httpClient()
	p.mu.Unlock()
	var last string
	err := PollUntil(ctx, Backoff{First: 20 * time.Millisecond, Max: 100 * time.Millisecond}, func() (bool, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, m.clientURL+"/health", nil)
		resp, err := hc.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true, nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-done:
			return false, fmt.Errorf("cluster: %s exited during start (see %s)", name, m.logPath)
		default:
			return false, nil
		}
	})
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("cluster: %s not healthy: %w (last: %s; see %s)", name, ctx.Err(), last, m.logPath)
	}
	return err
}

func (p *Process) member(name string) (*member, error) {
	m, ok := p.members[name]
	if !ok {
		return nil, fmt.Errorf("cluster: no member %q", name)
	}
	return m, nil
}

// signal sends sig to member's process if it runs.
func (p *Process) signal(name string, sig syscall.Signal, what string) (*member, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m, err := p.member(name)
	if err != nil {
		return nil, err
	}
	if m.removed {
		return m, fmt.Errorf("cluster: %s's slot is empty (its member was removed)", name)
	}
	if !m.running() {
		return m, fmt.Errorf("cluster: %s is not running", name)
	}
	if sig == syscall.SIGKILL || sig == syscall.SIGTERM {
		m.expectExit = true
	}
	if err := m.cmd.Process.Signal(sig); err != nil {
		return m, fmt.Errorf("cluster: %s %s: %w", what, name, err)
	}
	p.eventLocked(name, "%s (pid %d)", what, m.cmd.Process.Pid)
	return m, nil
}

// waitExit waits for m's process to be reaped.
func waitExit(m *member, d time.Duration) bool {
	select {
	case <-m.done:
		return true
	case <-time.After(d):
		return false
	}
}

// Crash kills member with SIGKILL. Without LazyFS torn cannot be honoured:
// the OS keeps the page cache of a killed process, so nothing it wrote is lost
// or torn. With LazyFS, once the process is gone, its data dir drops what it
// had not fsynced (tearing the last write if torn).
func (p *Process) Crash(name string, torn bool) error {
	what := "kill -9"
	if torn && !p.cfg.LazyFS {
		what = "kill -9 (torn write not expressible: the OS keeps the page cache)"
	}
	m, err := p.signal(name, syscall.SIGKILL, what)
	if err != nil {
		return err
	}
	if !waitExit(m, 10*time.Second) {
		return fmt.Errorf("cluster: %s survived SIGKILL", name)
	}
	if m.lazy == nil {
		return nil
	}
	rep, err := m.lazy.Crash(torn)
	p.mu.Lock()
	p.eventLocked(name, "lazyfs: %s", rep)
	p.mu.Unlock()
	return err
}

// Stop stops member gracefully with SIGTERM (SIGKILL after 10 s).
func (p *Process) Stop(name string) error {
	p.mu.Lock()
	if m, ok := p.members[name]; ok && m.paused && m.running() {
		_ = m.cmd.Process.Signal(syscall.SIGCONT) // a stopped process cannot handle SIGTERM
		m.paused = false
	}
	p.mu.Unlock()
	m, err := p.signal(name, syscall.SIGTERM, "stop (SIGTERM)")
	if err != nil {
		return err
	}
	if waitExit(m, 10*time.Second) {
		return nil
	}
	if _, err := p.signal(name, syscall.SIGKILL, "kill -9 after SIGTERM timeout"); err != nil {
		return err
	}
	if !waitExit(m, 10*time.Second) {
		return fmt.Errorf("cluster: %s survived SIGKILL", name)
	}
	return nil
}

// Restart starts a stopped or crashed member again with the same command line
// and data dir. It does not wait for /health: during a partition the member
// may not become healthy. Restarting a running member does nothing.
func (p *Process) Restart(name string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("cluster: closed")
	}
	m, err := p.member(name)
	if err != nil {
		return err
	}
	if m.running() || m.removed {
		return nil // an empty slot is filled by AddMember only
	}
	return p.launchLocked(m)
}

// Pause stops member with SIGSTOP and returns once every thread of the
// process has stopped: kill(2) only queues the signal, and a process still
// running on another core could otherwise answer a request sent after Pause
// returned.
func (p *Process) Pause(name string) error {
	m, err := p.signal(name, syscall.SIGSTOP, "pause (SIGSTOP)")
	if err != nil {
		return err
	}
	p.mu.Lock()
	m.paused = true
	pid := m.cmd.Process.Pid
	p.mu.Unlock()
	if !waitStopped(pid, 5*time.Second) {
		return fmt.Errorf("cluster: %s (pid %d) did not stop within 5s of SIGSTOP", name, pid)
	}
	return nil
}

// waitStopped waits until every thread of pid is in the stopped state, as
// /proc reports it. Without /proc (not Linux) it cannot tell and returns true.
func waitStopped(pid int, d time.Duration) bool {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return PollUntil(ctx, Backoff{First: time.Millisecond, Max: 10 * time.Millisecond}, func() (bool, error) {
		stopped, known := threadsStopped(pid)
		return stopped || !known, nil
	}) == nil
}

// threadsStopped reports whether all threads of pid are stopped ('T' or 't'
// in /proc/PID/task/TID/stat); known is false when /proc cannot say.
func threadsStopped(pid int) (stopped, known bool) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return false, false
	}
	for _, t := range tasks {
		state, ok := procState(filepath.Join(dir, t.Name(), "stat"))
		if !ok {
			continue // the thread exited
		}
		switch state {
		case 'T', 't', 'Z', 'X':
		default:
			return false, true
		}
	}
	return true, true
}

// procState reads the state letter (R, S, D, T, Z, ...) from a /proc stat
// file; ok is false when the file cannot be read or parsed.
func procState(statFile string) (state byte, ok bool) {
	b, err := os.ReadFile(statFile)
	if err != nil {
		return 0, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // the command name may hold spaces and ')'
	if i < 0 || i+2 >= len(s) {
		return 0, false
	}
	return s[i+2], true
}

// Resume continues a paused member with SIGCONT.
func (p *Process) Resume(name string) error {
	m, err := p.signal(name, syscall.SIGCONT, "resume (SIGCONT)")
	if err == nil {
		p.mu.Lock()
		m.paused = false
		p.mu.Unlock()
	}
	return err
}

// Unsupported lists the fault kinds a real process cannot suffer (chaos.Limited):
// its clock is the host's, its peer links are TCP streams, which neither
// duplicate nor reorder, and the harness cannot see a member's log compaction
// (partition-until-snapshot) nor stop it at a step of its protocol (crash-at).
func (p *Process) Unsupported() []chaos.Kind { return realUnsupported() }

func realUnsupported() []chaos.Kind {
	return append([]chaos.Kind{chaos.Duplicate, chaos.Reorder, chaos.ClockSkew, chaos.ClockJump, chaos.PartitionUntilSnapshot, chaos.CrashAt},
		chaos.DiskKinds...)
}

// SetClock is unsupported: the harness does not control a process's clock.
func (p *Process) SetClock(name string, offset time.Duration, driftPPM int64) error {
	return fmt.Errorf("%w: clock of a real process (%s)", chaos.ErrUnsupported, name)
}

// HealAll heals the network, resumes paused members and restarts stopped ones.
func (p *Process) HealAll(ctx context.Context) error {
	_ = p.HealNetwork()
	var errs []error
	for _, name := range p.names {
		p.mu.Lock()
		m := p.members[name]
		paused, running := m != nil && m.paused, m != nil && m.running()
		removed := m != nil && m.removed
		p.mu.Unlock()
		if m == nil || removed {
			continue
		}
		switch {
		case running && paused:
			errs = append(errs, p.Resume(name))
		case !running:
			errs = append(errs, p.Restart(name))
		}
	}
	return errors.Join(errs...)
}

// Client returns a clientv3 client bound to member's endpoint only, kept for
// the life of the cluster, acting as AsAdmin on a secured cluster. It never
// retries on its own (see NewClient).
func (p *Process) Client(name string) (*clientv3.Client, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.clients[name]; ok {
		return c, nil
	}
	m, err := p.member(name)
	if err != nil {
		return nil, err
	}
	c, err := clientv3.New(p.sec.clientConfig(m.clientURL, AsAdmin))
	if err != nil {
		return nil, err
	}
	p.clients[name] = c
	return c, nil
}

// NewClient returns a clientv3 client for one endpoint that makes exactly one
// attempt per unary RPC: MaxUnaryRetries 1 is one attempt in clientv3's retry
// interceptor (0 would mean its default of 100), and gRPC's own retries are off.
// A retried write whose first attempt took effect would confuse the checker.
func NewClient(endpoint string) (*clientv3.Client, error) {
	return clientv3.New(clientConfig(endpoint))
}

// clientConfig is NewClient's configuration.
func clientConfig(endpoint string) clientv3.Config {
	return clientv3.Config{
		Endpoints:            []string{endpoint},
		DialTimeout:          2 * time.Second,
		MaxUnaryRetries:      1,
		DialKeepAliveTime:    2 * time.Second,
		DialKeepAliveTimeout: 2 * time.Second,
		DialOptions:          []grpc.DialOption{grpc.WithDisableRetry()},
		Logger:               zap.NewNop(),
	}
}

// Close kills every member, closes the proxies and clients, and removes the
// run directory if Start created it.
func (p *Process) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	var live []*member
	for _, name := range p.names {
		if m, ok := p.members[name]; ok && m.running() {
			m.expectExit = true
			_ = m.cmd.Process.Signal(syscall.SIGKILL)
			p.eventLocked(name, "kill -9 (close)")
			live = append(live, m)
		}
	}
	clients := p.clients
	p.clients = map[string]*clientv3.Client{}
	var mounts []*lazyfs.FS
	for _, name := range p.names {
		if m, ok := p.members[name]; ok && m.lazy != nil {
			mounts = append(mounts, m.lazy)
		}
	}
	p.mu.Unlock()
	var errs []error
	for _, m := range live {
		if !waitExit(m, 10*time.Second) {
			errs = append(errs, fmt.Errorf("cluster: %s survived SIGKILL", m.name))
		}
	}
	for _, c := range clients {
		_ = c.Close()
	}
	errs = append(errs, p.net.Close())
	for _, l := range mounts {
		errs = append(errs, unmountLazy(l))
	}
	if p.ownDir && p.dir != "" {
		errs = append(errs, os.RemoveAll(p.dir))
	}
	return errors.Join(errs...)
}

var (
	_ Backend = (*Process)(nil)
	_ Dialer  = (*Process)(nil)
)
