package scenarios

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/havoclab/havoc/linearizability"
)

// Workload shapes the operations the simulated (or real) clients issue.
type Workload struct {
	// Clients is the number of concurrent client sessions (16 when zero).
	Clients int
	// Rate is the offered load in operations per second over all clients
	// (1000 when zero). Each session has at most one operation outstanding.
	Rate float64
	// Keys is the number of plain keys ("k/000"...; 64 when zero).
	Keys int
	// LeaseKeys is the number of keys written with leases ("lease/0"...; 8 when zero).
	LeaseKeys int
	// Timeout is how long a client waits for an answer (2 s when zero).
	Timeout time.Duration
	// LeaseTTL is the TTL of granted leases in seconds (3600 when zero: leases
	// end by revoke, not expiry, so the checker needs no clock).
	LeaseTTL int64
	// Mix weighs the operation kinds (DefaultMix when nil).
	Mix []Weight
}

// keyPrefix is the prefix of the workload's plain keys, which watchers watch.
const keyPrefix = "k/"

// Weight is the relative frequency of one kind of operation.
type Weight struct {
	Kind         linearizability.Kind
	Serializable bool
	Weight       int
}

// DefaultMix is the operation mix of the default scenario.
var DefaultMix = []Weight{
	{Kind: linearizability.KindGet, Weight: 20},
	{Kind: linearizability.KindGet, Serializable: true, Weight: 5},
	{Kind: linearizability.KindPut, Weight: 25},
	{Kind: linearizability.KindDelete, Weight: 5},
	{Kind: linearizability.KindRange, Weight: 5},
	{Kind: linearizability.KindCAS, Weight: 20},
	{Kind: linearizability.KindLeaseGrant, Weight: 3},
	{Kind: linearizability.KindPutLease, Weight: 10},
	{Kind: linearizability.KindLeaseRevoke, Weight: 3},
}

// Validate fills defaults and checks the workload.
func (w *Workload) Validate() error {
	if w.Clients == 0 {
		w.Clients = 16
	}
	if w.Rate == 0 {
		w.Rate = 1000
	}
	if w.Keys == 0 {
		w.Keys = 64
	}
	if w.LeaseKeys == 0 {
		w.LeaseKeys = 8
	}
	if w.Timeout == 0 {
		w.Timeout = 2 * time.Second
	}
	if w.LeaseTTL == 0 {
		w.LeaseTTL = 3600
	}
	if w.Mix == nil {
		w.Mix = DefaultMix
	}
	if w.Clients < 1 || w.Rate <= 0 || w.Keys < 1 || w.LeaseKeys < 1 || w.Timeout <= 0 {
		return fmt.Errorf("scenarios: invalid workload %+v", *w)
	}
	total := 0
	for _, m := range w.Mix {
		if m.Weight < 0 {
			return errors.New("scenarios: negative weight in mix")
		}
		total += m.Weight
	}
	if total == 0 {
		return errors.New("scenarios: the operation mix is empty")
	}
	return nil
}

// ThinkTime is the mean pause of a session between operations that gives the
// offered rate.
func (w *Workload) ThinkTime() time.Duration {
	return time.Duration(float64(w.Clients) / w.Rate * float64(time.Second))
}

// Session generates one client's operations. Values are unique across the run
// ("c<client>-<seq>"); a cas expects the value the session last saw for the key.
type Session struct {
	w        *Workload
	client   int
	rnd      *rand.Rand
	seq      int
	total    int
	leases   []int64
	lastSeen map[string]string
}

// NewSession returns the generator of client's operations, drawing from rnd.
func NewSession(w *Workload, client int, rnd *rand.Rand) *Session {
	total := 0
	for _, m := range w.Mix {
		total += m.Weight
	}
	return &Session{w: w, client: client, rnd: rnd, total: total, lastSeen: map[string]string{}}
}

// Next draws the session's next operation (request fields only).
func (s *Session) Next() linearizability.Operation {
	pick := s.rnd.IntN(s.total)
	var wt Weight
	for _, m := range s.w.Mix {
		if pick < m.Weight {
			wt = m
			break
		}
		pick -= m.Weight
	}
	key := fmt.Sprintf("%s%03d", keyPrefix, s.rnd.IntN(s.w.Keys))
	op := linearizability.Operation{Kind: wt.Kind, Serializable: wt.Serializable}
	switch wt.Kind {
	case linearizability.KindGet, linearizability.KindDelete:
		op.Key = key
	case linearizability.KindPut:
		op.Key, op.Value = key, s.value()
	case linearizability.KindRange:
		op.Prefix = keyPrefix
	case linearizability.KindCAS:
		op.Key, op.Value = key, s.value()
		if v, ok := s.lastSeen[key]; ok && v != "" {
			op.Expect = v
		} else {
			op.ExpectAbsent = true
		}
	case linearizability.KindLeaseGrant:
		op.TTL = s.w.LeaseTTL
	case linearizability.KindPutLease:
		if len(s.leases) == 0 {
			return linearizability.Operation{Kind: linearizability.KindLeaseGrant, TTL: s.w.LeaseTTL}
		}
		op.Key = fmt.Sprintf("lease/%d", s.rnd.IntN(s.w.LeaseKeys))
		op.Value = s.value()
		op.Lease = s.leases[s.rnd.IntN(len(s.leases))]
	case linearizability.KindLeaseRevoke:
		if len(s.leases) == 0 {
			return linearizability.Operation{Kind: linearizability.KindLeaseGrant, TTL: s.w.LeaseTTL}
		}
		i := s.rnd.IntN(len(s.leases))
		op.Lease = s.leases[i]
		s.leases = append(s.leases[:i], s.leases[i+1:]...)
	}
	return op
}

func (s *Session) value() string {
	s.seq++
	return fmt.Sprintf("c%02d-%d", s.client, s.seq) // client c07 writes c07-1, c07-2, ...
}

// Observe updates the session's knowledge from an ended operation.
func (s *Session) Observe(op linearizability.Operation, outcome linearizability.Outcome, r linearizability.Response) {
	if outcome != linearizability.OutcomeOK {
		return
	}
	switch op.Kind {
	case linearizability.KindGet:
		if r.Found {
			s.lastSeen[op.Key] = r.Value
		} else {
			s.lastSeen[op.Key] = ""
		}
	case linearizability.KindPut:
		s.lastSeen[op.Key] = op.Value
	case linearizability.KindDelete:
		s.lastSeen[op.Key] = ""
	case linearizability.KindCAS:
		if r.Succeeded {
			s.lastSeen[op.Key] = op.Value
		} else if r.Found {
			s.lastSeen[op.Key] = r.Value
		} else {
			s.lastSeen[op.Key] = ""
		}
	case linearizability.KindLeaseGrant:
		if r.LeaseID != 0 {
			s.leases = append(s.leases, r.LeaseID)
		}
	}
}
