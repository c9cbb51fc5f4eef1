package scenarios

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/havoclab/havoc/chaos"
	"github.com/havoclab/havoc/cluster"
	"github.com/havoclab/havoc/linearizability"
	"github.com/havoclab/havoc/sim"
)

// The workload's client sessions as building blocks for other drivers (the
// drills in scenarios/drill): SimLoad on a simulated world, RealLoad on a
// real backend. Both are the sessions RunSim and RunReal use.

// SimLoad is a workload's client sessions on a simulated world, one host each.
type SimLoad struct {
	clients []*simClient
	rec     *linearizability.Recorder
}

// NewSimLoad adds wl.Clients sessions to w as hosts c<ID> with IDs from
// clientBase+1 (so that values stay unique across worlds); they start with
// the world. wl must be validated.
func NewSimLoad(w *sim.World, wl *Workload, clientBase int, members []string) *SimLoad {
	l := &SimLoad{rec: &linearizability.Recorder{}}
	for i := range wl.Clients {
		cc := newSimClient(clientBase+i+1, wl, l.rec, members)
		l.clients = append(l.clients, cc)
		w.AddHost(fmt.Sprintf("c%03d", clientBase+i+1), cc)
	}
	return l
}

// Stop stops every session from issuing new requests.
func (l *SimLoad) Stop() {
	for _, cc := range l.clients {
		cc.stopped = true
	}
}

// Idle reports whether no session has a request outstanding.
func (l *SimLoad) Idle() bool {
	for _, cc := range l.clients {
		if !cc.idle() {
			return false
		}
	}
	return true
}

// Acknowledged counts the operations acknowledged so far.
func (l *SimLoad) Acknowledged() int {
	n := 0
	for _, cc := range l.clients {
		n += cc.okCount
	}
	return n
}

// History is the sessions' history so far.
func (l *SimLoad) History() []linearizability.Operation { return l.rec.Operations() }

// RealLoad is a workload's client sessions (and optionally a fault schedule)
// on a real backend, on the wall clock, until Stop.
type RealLoad struct {
	r      *realRun
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// StartRealLoad starts wl's sessions on b with client IDs from clientBase+1
// and the history's clock at start, and applies faults until faultsEnd after
// start.
func StartRealLoad(ctx context.Context, b cluster.Backend, seed uint64, wl Workload, clientBase int, start time.Time, faults chaos.Schedule, faultsEnd time.Duration) *RealLoad {
	l := &RealLoad{r: &realRun{c: Config{Seed: seed, Workload: wl}, b: b, start: start, rec: &linearizability.Recorder{}}}
	l.r.healAt.Store(1)
	ctx, l.cancel = context.WithCancel(ctx)
	members := b.Members()
	for i := range wl.Clients {
		l.wg.Go(func() { l.r.client(ctx, clientBase+i+1, members) })
	}
	if len(faults) > 0 {
		l.wg.Go(func() { l.r.faults(ctx, &Result{Schedule: faults}, start.Add(faultsEnd)) })
	}
	return l
}

// History is the sessions' history so far.
func (l *RealLoad) History() []linearizability.Operation { return l.r.rec.Operations() }

// Stop ends the sessions (each finishes its outstanding request, or is
// cancelled after the workload's timeout and 5 s more) and returns the
// history.
func (l *RealLoad) Stop() []linearizability.Operation {
	l.r.stopping.Store(true)
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(l.r.c.Workload.Timeout + 5*time.Second):
		l.cancel()
		<-done
	}
	l.cancel()
	return l.r.rec.Operations()
}

// FaultLog is what the fault schedule did, one line each, with its time.
func (l *RealLoad) FaultLog() []string {
	l.r.mu.Lock()
	defer l.r.mu.Unlock()
	var out []string
	for _, f := range l.r.faultLog {
		out = append(out, fmt.Sprintf("%s %s", f.at.Sub(l.r.start).Round(time.Millisecond), f.line))
	}
	return out
}

// Convergence tells when every member of a real backend reports the same
// HashKV at one revision; keep one per wait (it remembers its target).
type Convergence struct{ cv convergence }

// Check reports whether the members agree now, or why not.
func (c *Convergence) Check(ctx context.Context, b cluster.Backend) (bool, string) {
	return c.cv.check(ctx, b, b.Members())
}

// TempDir is where runs keep their scratch files: /dev/shm when there is
// one, else the system's temporary directory.
func TempDir() string { return tmpfsDir() }
