package cluster

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/havoclab/havoc/chaos"
	"github.com/havoclab/havoc/internal/detrand"
	"github.com/havoclab/havoc/sim"
	"github.com/havoclab/havoc/store"
)

// probe is a client host that sends puts and notes when each is answered.
type probe struct {
	h      *sim.Host
	next   uint64
	sentAt map[uint64]time.Duration
	took   map[uint64]time.Duration
	resps  map[uint64]store.Response
}

func (p *probe) Start(h *sim.Host) { p.h = h }

func (p *probe) Receive(_ string, payload any) {
	if r, ok := payload.(*ClientResponse); ok {
		p.took[r.ID] = p.h.World().Elapsed() - p.sentAt[r.ID]
		p.resps[r.ID] = r.Resp
	}
}

// put sends a put to member now and returns its ID.
func (p *probe) put(member, key string) uint64 {
	p.next++
	p.sentAt[p.next] = p.h.World().Elapsed()
	p.h.Send(member, &ClientRequest{ID: p.next, Req: store.Request{Put: &pb.PutRequest{Key: []byte(key), Value: []byte("v")}}})
	return p.next
}

// diskWorld is a 3-member simulated cluster with a leader and a probe client.
func diskWorld(t *testing.T, seed uint64) (*sim.World, *Sim, *probe) {
	t.Helper()
	release := detrand.Acquire(seed)
	t.Cleanup(release)
	w := sim.NewWorld(sim.Config{Seed: seed})
	c, err := NewSim(w, SimConfig{Members: 3, Dir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	p := &probe{sentAt: map[uint64]time.Duration{}, took: map[uint64]time.Duration{}, resps: map[uint64]store.Response{}}
	w.AddHost("c1", p)
	require.NoError(t, w.RunUntil(func() bool { return c.Leader() != "" }, 5*time.Second))
	return w, c, p
}

// TestSimFsyncEIOStopsTheMemberAndHealRestartsIt: a member whose fsync fails
// stops (its host goes down) without a member failure, answers no write it
// could not make durable, and the heal restarts it from its disk.
func TestSimFsyncEIOStopsTheMemberAndHealRestartsIt(t *testing.T) {
	w, c, p := diskWorld(t, 3)
	lead := c.Leader()
	heal, err := c.FailSyncs(lead)
	require.NoError(t, err)
	id := p.put(lead, "k")
	require.NoError(t, w.RunFor(time.Second))
	require.False(t, w.Host(lead).Up(), "the member stopped")
	require.Equal(t, 1, c.Stops())
	require.NoError(t, c.Err(), "stopping on an injected disk error is no member failure")
	if r, ok := p.resps[id]; ok {
		require.Error(t, r.Err, "a write the leader could not sync is not acknowledged")
		require.False(t, r.Definite)
	}
	require.NoError(t, heal())
	require.True(t, w.Host(lead).Up(), "the heal restarts the member")
	require.NoError(t, w.RunUntil(func() bool { ok, _ := c.Converged(); return ok }, 10*time.Second))
	require.NoError(t, c.Err())
}

// TestSimDiskFullStopsTheMember: the same with a full disk.
func TestSimDiskFullStopsTheMember(t *testing.T) {
	w, c, p := diskWorld(t, 4)
	heal, err := c.FillDisk("m2")
	require.NoError(t, err)
	for range 5 {
		p.put(c.Leader(), "k")
		require.NoError(t, w.RunFor(200*time.Millisecond))
	}
	require.False(t, w.Host("m2").Up())
	require.NoError(t, c.Err())
	require.NoError(t, heal())
	require.NoError(t, w.RunUntil(func() bool { ok, _ := c.Converged(); return ok }, 10*time.Second))
	require.NoError(t, c.Err())
}

// TestSimSlowFsyncDelaysAcknowledgement: with a slow disk the leader answers a
// write only once its sync completes; after the heal it answers at once.
func TestSimSlowFsyncDelaysAcknowledgement(t *testing.T) {
	w, c, p := diskWorld(t, 5)
	lead := c.Leader()
	heal, err := c.SlowDisk(lead, 400*time.Millisecond, 0, 0)
	require.NoError(t, err)
	slow := p.put(lead, "slow")
	require.NoError(t, w.RunFor(2*time.Second))
	require.Equal(t, lead, c.Leader(), "400 ms stalls stay below the election timeout")
	require.Contains(t, p.took, slow)
	require.NoError(t, p.resps[slow].Err)
	require.GreaterOrEqual(t, p.took[slow], 200*time.Millisecond, "not acknowledged before the sync completed")
	require.NoError(t, heal())
	require.NoError(t, w.RunFor(time.Second))
	fast := p.put(lead, "fast")
	require.NoError(t, w.RunFor(time.Second))
	require.Contains(t, p.took, fast)
	require.Less(t, p.took[fast], 100*time.Millisecond)
	require.NoError(t, c.Err())
}

// TestSimTornWriteCrashesInTheMiddleOfAWrite: torn-write crashes the member at
// its next sync of unsynced data; the heal restarts it and it catches up.
func TestSimTornWriteCrashesInTheMiddleOfAWrite(t *testing.T) {
	w, c, p := diskWorld(t, 6)
	heal, err := c.ArmCrash("m3", chaos.PointBeforeSync, true, 0)
	require.NoError(t, err)
	p.put(c.Leader(), "k")
	require.NoError(t, w.RunFor(time.Second))
	require.False(t, w.Host("m3").Up(), "m3 crashed at its sync")
	require.NoError(t, heal())
	require.True(t, w.Host("m3").Up())
	require.NoError(t, w.RunUntil(func() bool { ok, _ := c.Converged(); return ok }, 10*time.Second))
	require.NoError(t, c.Err())
}
