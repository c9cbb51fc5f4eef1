package cluster

// The Docker backend runs every member in its own container.
//
// Layout of a run with ID r and members m1..mN:
//
//	network  havoc-r            user-defined bridge, labelled havoc.run=r
//	volume   havoc-r-m1         the member's data (/data), survives kill and restart
//	container havoc-r-m1        client port 2379 published on 127.0.0.1:<c1>,
//	                            peer port 2380 published on 127.0.0.1:<p1>
//	proxy    <gateway>:<x1>     harness-owned linkproxy in this process -> 127.0.0.1:<p1>
//
// Peer traffic goes through the harness: member mi advertises the peer URL
// http://<gateway>:<xi>, where <gateway> is the bridge's address on the host, so
// every raft message to mi leaves a container, crosses the linkproxy.Proxy of mi
// on the host and comes back through mi's published peer port. That one choice
// expresses every network fault shape per direction — isolation, minority,
// majority and bridge partitions, one-way cuts, latency and loss — which
// disconnecting containers from Docker networks cannot (a disconnect cuts a
// member from everyone, in both directions). Client traffic (the harness) goes
// straight to the published client ports and is never cut, as in the simulator.
//
// Faults: crash is SIGKILL (the container's page cache survives, so a crash
// loses what the member had not written, not what it had not fsynced; torn
// writes are not expressible), restart starts the container again on its
// volume, pause and resume are the cgroup freezer (docker pause). Duplication,
// reordering and clock skew are not expressible and return errors wrapping
// chaos.ErrUnsupported.
//
// A restore fills the members' volumes before their first start through
// DockerConfig.Prepare (see docker_prepare.go).

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/havoclab/havoc/chaos"
	"github.com/havoclab/havoc/cluster/linkproxy"
	"github.com/havoclab/havoc/store/membership"
)

// Ports inside every member container.
const (
	dockerClientPort = 2379
	dockerPeerPort   = 2380
	dockerDataDir    = "/data"
)

var runIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)

// DockerConfig configures a Docker backend.
type DockerConfig struct {
	// Members is the cluster size (3 when zero). Members are named m1..mN.
	Members int
	// Target is the store the members run (TargetHavoc when empty).
	Target Target
	// Dir is the run directory for logs (a fresh temporary directory when empty).
	Dir string
	// RunID names the run's containers, network and volumes (havoc-<RunID>-...)
	// and labels them havoc.run=<RunID>. Random 8 hex digits when empty.
	RunID string
	// Seed seeds the link proxy's latency and loss draws.
	Seed uint64
	// CPUs limits each member's CPU (docker --cpus); zero means no limit.
	CPUs float64
	// MemoryBytes limits each member's memory (docker --memory); zero means no
	// limit, otherwise at least 6 MiB (the engine's minimum).
	MemoryBytes int64
	// ModuleDir is havoc's module root, where binaries are built. Empty: found by
	// walking up from the working directory to havoc's go.mod.
	ModuleDir string
	// CacheDir keeps built binaries. Empty: <user cache dir>/havoc/docker.
	CacheDir string
	// Binary is a prebuilt static Linux binary of the target (harness or etcd)
	// to use instead of building one.
	Binary string
	// StartTimeout bounds Start's wait for every member's /health (60 s when zero).
	StartTimeout time.Duration
	// Log receives one line per step (image build, start, cleanup); nil discards.
	Log io.Writer
	// ExtraArgs are appended to every member's command line (nil: none).
	ExtraArgs []string
	// Prepare, if set, runs in Start once the peer URLs (and with them the
	// member IDs) are known and the containers exist, before any starts: a
	// restore drill writes every member's data dir there, on the host, and
	// Start copies each into the member's volume (see docker_prepare.go). nil:
	// the members bootstrap empty data dirs.
	Prepare func(spec ProcessSpec) error
}

// Validate checks the configuration.
func (c DockerConfig) Validate() error {
	switch {
	case c.Members < 0 || c.Members > 9:
		return fmt.Errorf("cluster: docker: %d members (1..9)", c.Members)
	case c.Target != "" && c.Target != TargetHavoc && c.Target != TargetEtcd:
		return fmt.Errorf("cluster: docker: unknown target %q (havoc or etcd)", c.Target)
	case c.RunID != "" && !runIDPattern.MatchString(c.RunID):
		return fmt.Errorf("cluster: docker: run ID %q must match %s", c.RunID, runIDPattern)
	case c.CPUs < 0:
		return fmt.Errorf("cluster: docker: negative CPU limit %v", c.CPUs)
	case c.MemoryBytes != 0 && c.MemoryBytes < 6<<20:
		return fmt.Errorf("cluster: docker: memory limit %d bytes is under the engine's 6 MiB minimum", c.MemoryBytes)
	case c.StartTimeout < 0:
		return fmt.Errorf("cluster: docker: negative start timeout %s", c.StartTimeout)
	}
	return nil
}

func (c DockerConfig) target() Target {
	if c.Target == "" {
		return TargetHavoc
	}
	return c.Target
}

func (c DockerConfig) moduleDir() (string, error) {
	if c.ModuleDir != "" {
		return c.ModuleDir, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && strings.HasPrefix(string(b), "module github.com/havoclab/havoc\n") {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("cluster: docker: no havoc go.mod above %s (run from the repository, or set a prebuilt binary)", dir)
		}
	}
}

func (c DockerConfig) cacheDir() (string, error) {
	dir := c.CacheDir
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			base = os.TempDir()
		}
		dir = filepath.Join(base, "havoc", "docker")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("cluster: docker cache: %w", err)
	}
	return dir, nil
}

// Docker is the Docker backend: one container per member on a bridge network,
// peer links through harness-owned proxies. Its methods are safe for concurrent
// use.
type Docker struct {
	// realNet gives the link-fault verbs (Partition, PartitionOneWay, Repair,
	// RepairOneWay, DegradeLinks, RestoreLinks, HealNetwork) and Leader.
	realNet

	cfg    DockerConfig
	dir    string
	ownDir bool // dir is a temporary directory of ours: removed at Close unless Start failed
	names  []string
	byHex  map[string]string // member ID in hex (X-Server-From) -> name
	log    io.Writer

	mu      sync.Mutex
	cli     *client.Client
	image   ImageInfo
	netName string
	gateway netip.Addr
	lnet    *linkproxy.Network
	members map[string]*dockerMember
	etcd    map[string]*clientv3.Client
	down    map[string]bool // crashed by the harness, not yet restarted
	exited  map[string]bool // found stopped on its own (reported by Err)
	events  []Event
	errs    []error
	follow  context.CancelFunc // stops the log followers
	wg      sync.WaitGroup     // the log followers
	keepDir bool
	closed  bool
}

type dockerMember struct {
	name       string
	container  string // container and volume name: havoc-<run>-<member>
	clientPort int    // on 127.0.0.1
	peerPort   int    // on 127.0.0.1
	proxy      *linkproxy.Proxy
	// held keep clientPort and peerPort bound until just before the first
	// start (releaseHeld), so that no other run on the machine takes them
	// while the containers are created and prepared.
	held []net.Listener
}

var _ Backend = (*Docker)(nil)

// NewDocker checks cfg and that an engine answers; nothing is created until Start.
func NewDocker(cfg DockerConfig) (*Docker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Members == 0 {
		cfg.Members = 3
	}
	if cfg.RunID == "" {
		var b [4]byte
		_, _ = rand.Read(b[:])
		cfg.RunID = hex.EncodeToString(b[:])
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = 60 * time.Second
	}
	d := &Docker{cfg: cfg, dir: cfg.Dir, log: cfg.Log, members: map[string]*dockerMember{},
		etcd: map[string]*clientv3.Client{}, down: map[string]bool{}, exited: map[string]bool{}}
	if d.log == nil {
		d.log = io.Discard
	}
	d.realNet = realNet{eps: d, lnet: d.linkNet, event: func(what string) { d.event("net", "%s", what) }}
	for i := 1; i <= cfg.Members; i++ {
		d.names = append(d.names, fmt.Sprintf("m%d", i))
	}
	if d.dir == "" {
		dir, err := os.MkdirTemp("", "havoc-docker-"+cfg.RunID+"-")
		if err != nil {
			return nil, err
		}
		d.dir, d.ownDir = dir, true
	}
	cli, err := dockerClient(context.Background())
	if err != nil {
		return nil, err
	}
	d.cli = cli
	d.netName = "havoc-" + cfg.RunID
	return d, nil
}

// RunID returns the run's ID (the havoc.run label value).
func (d *Docker) RunID() string { return d.cfg.RunID }

// Image returns the image the run uses (valid after Start).
func (d *Docker) Image() ImageInfo {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.image
}

// Members returns m1..mN (chaos.Injector).
func (d *Docker) Members() []string { return slices.Clone(d.names) }

// Dir is the run directory (logs/ holds the container logs after Close).
func (d *Docker) Dir() string { return d.dir }

// ClientURL returns http://127.0.0.1:<published client port> of member.
func (d *Docker) ClientURL(member string) string {
	m := d.member(member)
	if m == nil {
		return ""
	}
	return fmt.Sprintf("http://127.0.0.1:%d", m.clientPort)
}

func (d *Docker) member(name string) *dockerMember {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.members[name]
}

// event records what the harness did to member (or "net").
func (d *Docker) event(member, format string, args ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.events = append(d.events, Event{Time: time.Now(), Member: member, What: fmt.Sprintf(format, args...)})
}

// Events returns what the harness did to the members so far, in order.
func (d *Docker) Events() []Event {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.events)
}

// Err reports members whose container stopped without the harness crashing it
// (the store itself died), nil if none did. It asks the engine, so it costs one
// inspect per member.
func (d *Docker) Err() error {
	d.mu.Lock()
	closed := d.closed
	d.mu.Unlock()
	if !closed {
		ctx, cancel := opCtx()
		defer cancel()
		for _, name := range d.names {
			m := d.member(name)
			d.mu.Lock()
			skip := m == nil || d.down[name] || d.exited[name]
			d.mu.Unlock()
			if skip {
				continue
			}
			ins, err := d.cli.ContainerInspect(ctx, m.container, client.ContainerInspectOptions{})
			if err != nil || ins.Container.State == nil {
				continue // not created yet, or the engine is busy: no evidence
			}
			if st := ins.Container.State; st.Status == container.StateExited || st.Status == container.StateDead {
				d.mu.Lock()
				d.exited[name] = true
				d.errs = append(d.errs, fmt.Errorf("member %s exited on its own with code %d at %s (%s); %s", name, st.ExitCode, st.FinishedAt, st.Error,
					logExcerpt(filepath.Join(d.dir, name+".log"))))
				d.mu.Unlock()
				d.event(name, "found exited with code %d", st.ExitCode)
			}
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return errors.Join(d.errs...)
}

func (d *Docker) logf(format string, args ...any) {
	fmt.Fprintf(d.log, "docker %s: "+format+"\n", append([]any{d.cfg.RunID}, args...)...)
}

// Start builds (or reuses) the image, creates the network, volumes, proxies
// and containers, starts the members and waits until each answers /health.
// On failure or cancellation it collects logs and removes everything it made.
func (d *Docker) Start(ctx context.Context) (err error) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return errors.New("cluster: docker: Start after Close")
	}
	d.mu.Unlock()
	defer func() {
		if err != nil {
			d.mu.Lock()
			d.keepDir = true
			d.mu.Unlock()
			if cerr := d.Close(); cerr != nil {
				err = errors.Join(err, cerr)
			}
		}
	}()
	t0 := time.Now()
	img, err := ensureImage(ctx, d.cli, d.cfg)
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.image = img
	d.mu.Unlock()
	if img.Built {
		d.logf("built image %s (go build %s, image %s)", img.Tag, img.BinaryWall.Round(time.Millisecond), img.ImageWall.Round(time.Millisecond))
	} else {
		d.logf("image %s cached", img.Tag)
	}
	labels := map[string]string{labelRun: d.cfg.RunID}
	nres, err := d.cli.NetworkCreate(ctx, d.netName, client.NetworkCreateOptions{Driver: "bridge", Labels: labels})
	if err != nil {
		return fmt.Errorf("cluster: docker: create network: %w", err)
	}
	ni, err := d.cli.NetworkInspect(ctx, nres.ID, client.NetworkInspectOptions{})
	if err != nil {
		return fmt.Errorf("cluster: docker: inspect network: %w", err)
	}
	var gw netip.Addr
	for _, c := range ni.Network.IPAM.Config {
		if c.Gateway.Is4() {
			gw = c.Gateway
		}
	}
	if !gw.IsValid() {
		return fmt.Errorf("cluster: docker: network %s has no IPv4 gateway", d.netName)
	}
	lnet := linkproxy.NewNetwork(d.cfg.Seed)
	d.mu.Lock()
	d.gateway, d.lnet = gw, lnet
	d.mu.Unlock()

	// Ports and proxies first: the peer URLs name the proxies.
	token := "havoc-" + d.cfg.RunID
	var peers []string
	ms := make([]*dockerMember, 0, len(d.names))
	for _, name := range d.names {
		m := &dockerMember{name: name, container: "havoc-" + d.cfg.RunID + "-" + name}
		for _, port := range []*int{&m.clientPort, &m.peerPort} {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return err
			}
			m.held = append(m.held, ln)
			*port = ln.Addr().(*net.TCPAddr).Port
		}
		m.proxy, err = lnet.Listen(net.JoinHostPort(gw.String(), "0"), fmt.Sprintf("127.0.0.1:%d", m.peerPort), name, d.resolve)
		if err != nil {
			return fmt.Errorf("cluster: docker: proxy for %s: %w", name, err)
		}
		peers = append(peers, name+"=http://"+m.proxy.Addr())
		ms = append(ms, m)
		d.mu.Lock()
		d.members[name] = m
		d.mu.Unlock()
	}
	initial := strings.Join(peers, ",")
	parsed, err := membership.ParseInitialCluster(initial, token)
	if err != nil {
		return err
	}
	byHex := map[string]string{}
	for _, p := range parsed {
		byHex[strconv.FormatUint(p.ID, 16)] = p.Name
	}
	d.mu.Lock()
	d.byHex = byHex
	d.mu.Unlock()

	for _, m := range ms {
		if err := d.createMember(ctx, m, initial, token); err != nil {
			return err
		}
	}
	if err := d.prepareMembers(ctx, ms, initial, token); err != nil {
		return err
	}
	fctx, stopFollow := context.WithCancel(context.Background())
	d.mu.Lock()
	d.follow = stopFollow
	d.mu.Unlock()
	for _, m := range ms {
		d.releaseHeld(m)
		if _, err := d.cli.ContainerStart(ctx, m.container, client.ContainerStartOptions{}); err != nil {
			return fmt.Errorf("cluster: docker: start %s: %w", m.name, err)
		}
		d.wg.Go(func() { d.followLogs(fctx, m) })
	}
	wctx, cancel := context.WithTimeout(ctx, d.cfg.StartTimeout)
	defer cancel()
	for _, m := range ms {
		if err := d.waitHealthy(wctx, m); err != nil {
			return err
		}
	}
	for _, m := range ms {
		d.event(m.name, "healthy (container %s, client 127.0.0.1:%d, peer proxy %s)", m.container, m.clientPort, m.proxy.Addr())
	}
	d.logf("%d %s members healthy in %s (network %s, gateway %s)", len(ms), d.cfg.target(), time.Since(t0).Round(time.Millisecond), d.netName, gw)
	return nil
}

// releaseHeld frees m's reserved host ports for the engine to publish.
func (d *Docker) releaseHeld(m *dockerMember) {
	d.mu.Lock()
	held := m.held
	m.held = nil
	d.mu.Unlock()
	for _, ln := range held {
		_ = ln.Close()
	}
}

func (d *Docker) resolve(serverFromHex string) (string, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	name, ok := d.byHex[strings.ToLower(serverFromHex)]
	return name, ok
}

// memberArgs are the command-line flags of a member: etcd's, which `harness
// serve` accepts too.
func (d *Docker) memberArgs(m *dockerMember, initial, token string) []string {
	args := []string{
		"--name", m.name,
		"--data-dir", dockerDataDir + "/" + m.name,
		"--listen-client-urls", fmt.Sprintf("http://0.0.0.0:%d", dockerClientPort),
		"--advertise-client-urls", fmt.Sprintf("http://127.0.0.1:%d", m.clientPort),
		"--listen-peer-urls", fmt.Sprintf("http://0.0.0.0:%d", dockerPeerPort),
		"--initial-advertise-peer-urls", "http://" + m.proxy.Addr(),
		"--initial-cluster", initial,
		"--initial-cluster-state", "new",
		"--initial-cluster-token", token,
	}
	if d.cfg.target() == TargetHavoc {
		args = append([]string{"serve"}, args...)
	}
	return append(args, d.cfg.ExtraArgs...)
}

func (d *Docker) createMember(ctx context.Context, m *dockerMember, initial, token string) error {
	labels := map[string]string{labelRun: d.cfg.RunID, labelMember: m.name}
	if _, err := d.cli.VolumeCreate(ctx, client.VolumeCreateOptions{Name: m.container, Labels: labels}); err != nil {
		return fmt.Errorf("cluster: docker: create volume for %s: %w", m.name, err)
	}
	cport, _ := network.PortFrom(dockerClientPort, network.TCP)
	pport, _ := network.PortFrom(dockerPeerPort, network.TCP)
	lo := netip.MustParseAddr("127.0.0.1")
	stop := 2
	_, err := d.cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name: m.container,
		Config: &container.Config{
			Image:        d.image.Tag,
			Cmd:          d.memberArgs(m, initial, token),
			Labels:       labels,
			ExposedPorts: network.PortSet{cport: {}, pport: {}},
			StopTimeout:  &stop,
		},
		HostConfig: &container.HostConfig{
			NetworkMode: container.NetworkMode(d.netName),
			PortBindings: network.PortMap{
				cport: {{HostIP: lo, HostPort: strconv.Itoa(m.clientPort)}},
				pport: {{HostIP: lo, HostPort: strconv.Itoa(m.peerPort)}},
			},
			Mounts: []mount.Mount{{Type: mount.TypeVolume, Source: m.container, Target: dockerDataDir}},
			Resources: container.Resources{
				NanoCPUs: int64(d.cfg.CPUs * 1e9),
				Memory:   d.cfg.MemoryBytes,
			},
		},
		NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			d.netName: {Aliases: []string{m.name}},
		}},
	})
	if err != nil {
		return fmt.Errorf("cluster: docker: create container for %s: %w", m.name, err)
	}
	return nil
}

// waitHealthy polls the member's /health until it answers 200, the container
// exits, or ctx ends.
func (d *Docker) waitHealthy(ctx context.Context, m *dockerMember) error {
	hc := &http.Client{Timeout: time.Second}
	url := fmt.Sprintf("http://127.0.0.1:%d/health", m.clientPort)
	var last error
	err := PollUntil(ctx, Backoff{First: 50 * time.Millisecond, Max: 200 * time.Millisecond}, func() (bool, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := hc.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true, nil
			}
			err = fmt.Errorf("/health answered %s", resp.Status)
		}
		last = err
		ins, ierr := d.cli.ContainerInspect(ctx, m.container, client.ContainerInspectOptions{})
		if ierr == nil && ins.Container.State != nil && ins.Container.State.Status == container.StateExited {
			return false, fmt.Errorf("cluster: docker: member %s exited with code %d before it was healthy (logs in %s)",
				m.name, ins.Container.State.ExitCode, d.dir)
		}
		return false, nil
	})
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("cluster: docker: member %s not healthy: %w (last: %v)", m.name, ctx.Err(), last)
	}
	return err
}

// WaitHealthy waits until member answers /health (after a Restart, say).
func (d *Docker) WaitHealthy(ctx context.Context, member string) error {
	m := d.member(member)
	if m == nil {
		return fmt.Errorf("cluster: docker: no member %q", member)
	}
	return d.waitHealthy(ctx, m)
}

// opCtx bounds one engine call made by a fault verb.
func opCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
}

func (d *Docker) containerOf(member string) (string, error) {
	m := d.member(member)
	if m == nil {
		return "", fmt.Errorf("cluster: docker: no member %q", member)
	}
	return m.container, nil
}

// Crash kills the member's container with SIGKILL. torn is ignored: a real
// disk cannot be told to tear a write.
func (d *Docker) Crash(member string, torn bool) error {
	c, err := d.containerOf(member)
	if err != nil {
		return err
	}
	ctx, cancel := opCtx()
	defer cancel()
	if _, err := d.cli.ContainerKill(ctx, c, client.ContainerKillOptions{Signal: "SIGKILL"}); err != nil {
		return fmt.Errorf("cluster: docker: crash %s: %w", member, err)
	}
	d.mu.Lock()
	d.down[member] = true
	d.mu.Unlock()
	d.event(member, "docker kill -s KILL (torn=%v ignored)", torn)
	// Wait until the engine has seen the exit, so that an immediate Restart
	// does not find the container still "running" and do nothing.
	wres := d.cli.ContainerWait(ctx, c, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
	select {
	case <-wres.Result:
	case err := <-wres.Error:
		return fmt.Errorf("cluster: docker: wait for %s to die: %w", member, err)
	}
	return nil
}

// Restart starts a crashed member's container again, on the same volume and
// ports. Starting a running member does nothing.
func (d *Docker) Restart(member string) error {
	c, err := d.containerOf(member)
	if err != nil {
		return err
	}
	ctx, cancel := opCtx()
	defer cancel()
	if _, err := d.cli.ContainerStart(ctx, c, client.ContainerStartOptions{}); err != nil {
		return fmt.Errorf("cluster: docker: restart %s: %w", member, err)
	}
	d.mu.Lock()
	delete(d.down, member)
	d.mu.Unlock()
	d.event(member, "docker start")
	return nil
}

// Pause freezes the member's processes (docker pause, the cgroup freezer).
func (d *Docker) Pause(member string) error {
	c, err := d.containerOf(member)
	if err != nil {
		return err
	}
	ctx, cancel := opCtx()
	defer cancel()
	if _, err := d.cli.ContainerPause(ctx, c, client.ContainerPauseOptions{}); err != nil {
		return fmt.Errorf("cluster: docker: pause %s: %w", member, err)
	}
	d.event(member, "docker pause")
	return nil
}

// Resume thaws a paused member.
func (d *Docker) Resume(member string) error {
	c, err := d.containerOf(member)
	if err != nil {
		return err
	}
	ctx, cancel := opCtx()
	defer cancel()
	if _, err := d.cli.ContainerUnpause(ctx, c, client.ContainerUnpauseOptions{}); err != nil {
		return fmt.Errorf("cluster: docker: resume %s: %w", member, err)
	}
	d.event(member, "docker unpause")
	return nil
}

// Unsupported lists the fault kinds a container cannot suffer (chaos.Limited):
// containers share the host kernel's clock, and peer links are TCP streams; the
// membership changes are not implemented for containers (a fresh member would
// need a new container and volume in its slot).
func (d *Docker) Unsupported() []chaos.Kind {
	return append(realUnsupported(), chaos.MemberReplace, chaos.LearnerPromote, chaos.RemoveVoter)
}

// SetClock is not expressible: containers share the host's kernel clock.
func (d *Docker) SetClock(member string, offset time.Duration, driftPPM int64) error {
	if offset == 0 && driftPPM == 0 {
		return nil // resetting an unskewed clock is a no-op, so HealAll can call it
	}
	return fmt.Errorf("%w: docker: clock skew (containers share the host kernel's clock)", chaos.ErrUnsupported)
}

func (d *Docker) linkNet() (*linkproxy.Network, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.lnet == nil || d.closed {
		return nil, errNotStarted
	}
	return d.lnet, nil
}

// HealAll heals the network, resumes paused members and starts stopped ones.
func (d *Docker) HealAll(ctx context.Context) error {
	if err := d.HealNetwork(); err != nil {
		return err
	}
	var errs []error
	for _, name := range d.names {
		c, err := d.containerOf(name)
		if err != nil {
			return err
		}
		ins, err := d.cli.ContainerInspect(ctx, c, client.ContainerInspectOptions{})
		if err != nil {
			errs = append(errs, fmt.Errorf("cluster: docker: inspect %s: %w", name, err))
			continue
		}
		st := ins.Container.State
		switch {
		case st == nil:
		case st.Paused:
			if _, err := d.cli.ContainerUnpause(ctx, c, client.ContainerUnpauseOptions{}); err != nil {
				errs = append(errs, fmt.Errorf("cluster: docker: resume %s: %w", name, err))
			} else {
				d.event(name, "docker unpause (heal)")
			}
		case !st.Running:
			if _, err := d.cli.ContainerStart(ctx, c, client.ContainerStartOptions{}); err != nil {
				errs = append(errs, fmt.Errorf("cluster: docker: restart %s: %w", name, err))
			} else {
				d.mu.Lock()
				delete(d.down, name)
				d.mu.Unlock()
				d.event(name, "docker start (heal)")
			}
		}
	}
	return errors.Join(errs...)
}

// statusClient returns a cached clientv3 client for one member.
func (d *Docker) statusClient(member string) (*clientv3.Client, string, error) {
	url := d.ClientURL(member)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, "", errors.New("cluster: docker: closed")
	}
	if c := d.etcd[member]; c != nil {
		return c, url, nil
	}
	c, err := NewClient(url) // one attempt per RPC: Client hands it to workloads too
	if err != nil {
		return nil, "", err
	}
	d.etcd[member] = c
	return c, url, nil
}

// Close collects every container's log into Dir()/logs, then removes the
// containers, volumes, network and proxies of the run. It is safe to call more
// than once and after a failed Start.
func (d *Docker) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	clients := d.etcd
	d.etcd = map[string]*clientv3.Client{}
	lnet, stopFollow := d.lnet, d.follow
	d.mu.Unlock()
	for _, name := range d.names {
		if m := d.member(name); m != nil {
			d.releaseHeld(m) // a Start that failed before starting m
		}
	}
	if stopFollow != nil {
		stopFollow()
		d.wg.Wait()
	}
	if d.cli == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var errs []error
	for _, c := range clients {
		_ = c.Close()
	}
	if err := d.collectLogs(ctx); err != nil {
		errs = append(errs, err)
	}
	if lnet != nil {
		_ = lnet.Close()
	}
	rm, err := cleanDocker(ctx, d.cli, d.cfg.RunID)
	if err != nil {
		errs = append(errs, err)
	}
	if !rm.Empty() {
		d.logf("removed %d containers, %d networks, %d volumes", len(rm.Containers), len(rm.Networks), len(rm.Volumes))
	}
	errs = append(errs, d.cli.Close())
	d.mu.Lock()
	keep := d.keepDir
	d.mu.Unlock()
	if d.ownDir && !keep {
		errs = append(errs, os.RemoveAll(d.dir))
	}
	return errors.Join(errs...)
}

// collectLogs writes each member container's stdout and stderr (all of its
// lives since creation) to Dir()/<member>.log.
func (d *Docker) collectLogs(ctx context.Context) error {
	var errs []error
	for _, name := range d.names {
		err := d.copyLogs(ctx, "havoc-"+d.cfg.RunID+"-"+name, filepath.Join(d.dir, name+".log"), false)
		if err != nil && !cerrdefs.IsNotFound(err) { // not found: never created
			errs = append(errs, fmt.Errorf("cluster: docker: logs of %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// copyLogs rewrites path with the container's whole log; with follow it keeps
// appending until the container stops or ctx ends.
func (d *Docker) copyLogs(ctx context.Context, container, path string, follow bool) error {
	rc, err := d.cli.ContainerLogs(ctx, container, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Timestamps: true, Follow: follow})
	if err != nil {
		return err
	}
	defer rc.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = stdcopy.StdCopy(f, f, rc)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if ctx.Err() != nil {
		return nil // cut short on purpose
	}
	return err
}

// followLogs keeps Dir()/<member>.log current while the run lasts, so that a
// failing run's artifacts (written before Close) include the member logs. A
// follow stream ends when the container stops; after a restart the whole log
// (every life of the container) is written again.
func (d *Docker) followLogs(ctx context.Context, m *dockerMember) {
	path := filepath.Join(d.dir, m.name+".log")
	for ctx.Err() == nil {
		_ = d.copyLogs(ctx, m.container, path, true)
		// Wait for the next life of the container (none: it was removed).
		err := PollUntil(ctx, Backoff{First: 250 * time.Millisecond}, func() (bool, error) {
			ins, err := d.cli.ContainerInspect(ctx, m.container, client.ContainerInspectOptions{})
			if cerrdefs.IsNotFound(err) {
				return false, err
			}
			return err == nil && ins.Container.State != nil && ins.Container.State.Running, nil
		})
		if err != nil {
			return
		}
	}
}
