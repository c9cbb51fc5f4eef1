package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// testCluster is n members in this process on loopback ports, each with its own
// temporary data dir, and fast ticks (10 ms heartbeat, 100 ms election).
type testCluster struct {
	t       testing.TB
	members []*Member
	cfgs    []Config
}

// configHook, when set, changes every config testConfig makes.
var configHook func(*Config)

func testConfig(t testing.TB, name string, cl, pl net.Listener, initial, state string) Config {
	cfg := Config{
		Name: name, DataDir: t.TempDir(),
		ListenClientURLs: []string{"http://" + cl.Addr().String()}, AdvertiseClientURLs: []string{"http://" + cl.Addr().String()},
		ListenPeerURLs: []string{"http://" + pl.Addr().String()}, InitialAdvertisePeerURLs: []string{"http://" + pl.Addr().String()},
		InitialCluster: initial, InitialClusterState: state, InitialClusterToken: "test-token", BcryptCost: 4,
		HeartbeatInterval: 10 * time.Millisecond, ElectionTimeout: 100 * time.Millisecond,
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
		ClientListener: cl, PeerListener: pl,
	}
	if configHook != nil {
		configHook(&cfg)
	}
	return cfg
}

func listen(t testing.TB) net.Listener {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	return l
}

func startCluster(t testing.TB, n int) *testCluster {
	t.Helper()
	c := &testCluster{t: t}
	var cls, pls []net.Listener
	var parts []string
	for i := range n {
		cls, pls = append(cls, listen(t)), append(pls, listen(t))
		parts = append(parts, fmt.Sprintf("m%d=http://%s", i, pls[i].Addr()))
	}
	for i := range n {
		cfg := testConfig(t, fmt.Sprintf("m%d", i), cls[i], pls[i], strings.Join(parts, ","), StateNew)
		m, err := Start(cfg)
		require.NoError(t, err)
		c.members, c.cfgs = append(c.members, m), append(c.cfgs, cfg)
	}
	t.Cleanup(c.close)
	c.waitLeader()
	return c
}

func (c *testCluster) close() {
	for _, m := range c.members {
		if m != nil {
			_ = m.Close()
		}
	}
}

// waitLeader waits until every running member sees the same leader, and every
// member has published its client URLs.
func (c *testCluster) waitLeader() uint64 {
	c.t.Helper()
	var lead uint64
	require.Eventually(c.t, func() bool {
		lead = 0
		for _, m := range c.members {
			if m == nil {
				continue
			}
			l := m.Leader()
			if l == 0 || (lead != 0 && l != lead) {
				return false
			}
			lead = l
			for _, mem := range m.Members() {
				if len(mem.ClientURLs) == 0 {
					return false
				}
			}
		}
		return lead != 0 && c.index(lead) >= 0
	}, 10*time.Second, 10*time.Millisecond)
	return lead
}

func (c *testCluster) index(id uint64) int {
	for i, m := range c.members {
		if m != nil && m.ID() == id {
			return i
		}
	}
	return -1
}

func (c *testCluster) endpoints() []string {
	var eps []string
	for i, m := range c.members {
		if m != nil {
			eps = append(eps, c.cfgs[i].AdvertiseClientURLs[0])
		}
	}
	return eps
}

// client connects to the given members (all running ones when none given).
func (c *testCluster) client(which ...int) *clientv3.Client {
	c.t.Helper()
	eps := c.endpoints()
	if len(which) > 0 {
		eps = nil
		for _, i := range which {
			eps = append(eps, c.cfgs[i].AdvertiseClientURLs[0])
		}
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	require.NoError(c.t, err)
	c.t.Cleanup(func() { _ = cli.Close() })
	return cli
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}
