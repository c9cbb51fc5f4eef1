package cluster

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/havoclab/havoc/chaos"
	"github.com/havoclab/havoc/internal/detrand"
	"github.com/havoclab/havoc/sim"
)

// recorder is a client host that counts what it receives, by sender.
type recorder struct{ got map[string]int }

func (r *recorder) Start(*sim.Host)            { r.got = map[string]int{} }
func (r *recorder) Receive(from string, _ any) { r.got[from]++ }

// TestSimClientLinks: the client-link verbs act on the links between the
// world's non-member hosts and the members, each heal undoing its own fault;
// a stall holds what a member sends and its heal delivers it; HealNetwork
// voids the heals still pending.
func TestSimClientLinks(t *testing.T) {
	release := detrand.Acquire(3)
	defer release()
	w := sim.NewWorld(sim.Config{Seed: 3})
	c, err := NewSim(w, SimConfig{Members: 3, Dir: t.TempDir()})
	require.NoError(t, err)
	defer c.Close()
	rec := &recorder{}
	w.AddHost("c01", rec)
	require.NoError(t, w.RunFor(100*time.Millisecond))
	require.Equal(t, []string{"c01"}, c.clientHosts())

	var ci chaos.ClientLinker = c
	heal1, err := ci.CutClients([]string{"m1", "m2"})
	require.NoError(t, err)
	heal2, err := ci.CutClients([]string{"m2"})
	require.NoError(t, err)
	require.Equal(t, 1, w.Net().Cuts("c01", "m1"))
	require.Equal(t, 2, w.Net().Cuts("m2", "c01"))
	require.Zero(t, w.Net().Cuts("c01", "m3"))
	require.Zero(t, w.Net().Cuts("m1", "m2"), "member links are not client links")
	require.NoError(t, heal1())
	require.NoError(t, heal1())
	require.Zero(t, w.Net().Cuts("c01", "m1"))
	require.Equal(t, 1, w.Net().Cuts("c01", "m2"))
	require.NoError(t, heal2())
	require.Zero(t, w.Net().Cuts("c01", "m2"))

	undeg, err := ci.DegradeClientLinks(chaos.Links{Loss: 0.5, LatencyMin: 100 * time.Millisecond, LatencyMax: 200 * time.Millisecond})
	require.NoError(t, err)
	require.Equal(t, 0.5, w.Net().Link("m3", "c01").Loss)
	require.Equal(t, 200*time.Millisecond, w.Net().Link("c01", "m3").LatencyMax)
	require.Zero(t, w.Net().Link("m1", "m3").Loss)
	require.NoError(t, undeg())
	require.Equal(t, w.Net().Default(), w.Net().Link("m3", "c01"))

	unstall, err := ci.StallClients([]string{"m1"})
	require.NoError(t, err)
	w.Host("m1").Send("c01", "x")
	w.Host("m2").Send("c01", "y")
	require.NoError(t, w.RunFor(time.Second))
	require.Equal(t, map[string]int{"m2": 1}, rec.got, "m1's message waits")
	require.NoError(t, unstall())
	require.NoError(t, w.RunFor(100*time.Millisecond))
	require.Equal(t, map[string]int{"m1": 1, "m2": 1}, rec.got, "the heal delivers it")

	// After HealNetwork a pending heal does nothing, even to a later stall.
	stale, err := ci.StallClients([]string{"m1"})
	require.NoError(t, err)
	require.NoError(t, c.HealNetwork())
	fresh, err := ci.StallClients([]string{"m1"})
	require.NoError(t, err)
	require.NoError(t, stale())
	w.Host("m1").Send("c01", "z")
	require.NoError(t, w.RunFor(time.Second))
	require.Equal(t, 1, rec.got["m1"], "the later stall still holds")
	require.NoError(t, fresh())
	require.NoError(t, w.RunFor(100*time.Millisecond))
	require.Equal(t, 2, rec.got["m1"])
}
