// Package testhook lets a test reach inside a simulated run, also across the
// process boundary of a sweep worker (whose binary is the test binary): a test
// sets Sim before the run, and the run calls it once its cluster is set up.
// Nothing but tests sets it.
package testhook

import (
	"github.com/havoclab/havoc/cluster"
	"github.com/havoclab/havoc/sim"
)

// Sim is called, when set, by every simulated run once its cluster is set up
// and before the first event: it may schedule what no fault kind does (a
// member's panic, a corrupted replica).
var Sim func(w *sim.World, cl *cluster.Sim)
