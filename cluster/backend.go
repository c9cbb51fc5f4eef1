package cluster

import (
	"context"

	"github.com/havoclab/havoc/chaos"
)

// Backend runs a cluster of real members — OS processes on loopback or Docker
// containers — each running havoc's store (`harness serve`) or a real etcd. It
// offers the fault verbs of chaos.Injector; a fault the backend cannot express
// returns an error wrapping chaos.ErrUnsupported.
//
// The simulator (Sim) offers the same verbs inside a deterministic world; it is not
// a Backend because it has no wall clock and no sockets.
type Backend interface {
	chaos.Injector
	// Start launches every member and waits until each answers /health.
	Start(ctx context.Context) error
	// ClientURL returns the client URL the harness uses to reach member
	// (http://127.0.0.1:port).
	ClientURL(member string) string
	// HealAll ends every fault: network healed, members resumed and restarted,
	// clocks reset.
	HealAll(ctx context.Context) error
	// Dir is the run directory (data dirs, logs).
	Dir() string
	// Close stops every member and removes everything the backend created
	// (processes, proxies, containers, networks, volumes). It is safe to call
	// more than once and after a failed Start.
	Close() error
}

// Target names the store a real backend runs.
type Target string

// The targets.
const (
	TargetHavoc Target = "havoc" // havoc's store: `harness serve`
	TargetEtcd  Target = "etcd"  // a real etcd binary
)
