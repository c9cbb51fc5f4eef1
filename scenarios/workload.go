package scenarios

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
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
	// Profile names the traffic profile (ProfileEtcd when empty): its mix
	// (when Mix is nil) and its keys.
	Profile string
	// Mix weighs the operation kinds (the Profile's mix when nil).
	Mix []Weight
	// PastFloor is the lowest revision a read at a past revision or a
	// compaction names (1 when zero): a history that starts from a restored
	// snapshot holds nothing about the revisions below it.
	PastFloor int64
}

// keyPrefix is the prefix of the workload's plain keys, which watchers watch.
const keyPrefix = "k/"

// Weight is the relative frequency of one kind of operation.
type Weight struct {
	Kind         linearizability.Kind
	Serializable bool
	// Variant picks how the operation is made (empty: the plain one).
	Variant Variant
	Weight  int
}

// Variant names a way of making an operation of a kind.
type Variant string

// The variants.
const (
	// VariantPast reads a get or range at a past revision: usually a recent
	// one, sometimes one near the last compaction (on either side of it)
	// or one in the future, on purpose.
	VariantPast Variant = "past"
	// VariantAPIServer compacts as kube-apiserver does: a cas on
	// compactRevKey, and if it succeeded, a compaction to the revision the
	// session saw at its previous cas (one period earlier).
	VariantAPIServer Variant = "apiserver"
	// VariantPaged lists a range page by page as kube-apiserver does: a
	// limit, the revision of the first page pinned for the others, each
	// page from the last key + "\x00", until the store says there is no
	// more (a page that fails ends the list).
	VariantPaged Variant = "paged"
	// VariantByMod makes a cas compare mod_revision, as kube-apiserver's
	// creates (mod_revision == 0) and updates (the mod_revision last seen)
	// do, instead of the value. The history keeps the value the session saw
	// with that mod_revision as Expect: values are unique, so the two
	// compares agree on a correct store, and the checker reads Expect.
	VariantByMod Variant = "by-mod"
	// VariantOptions reads a range, then the same range pinned to its
	// revision with options (count-only, keys-only, a sort order and
	// target, mod and create revision filters), which the checker
	// compares with what etcd makes of the first.
	VariantOptions Variant = "options"
)

// compactRevKey is the key kube-apiserver's compactors elect one of them with.
const compactRevKey = "compact_rev_key"

// DefaultMix is the operation mix of the default scenario.
var DefaultMix = []Weight{
	{Kind: linearizability.KindGet, Weight: 200},
	{Kind: linearizability.KindGet, Serializable: true, Weight: 50},
	{Kind: linearizability.KindPut, Weight: 250},
	{Kind: linearizability.KindDelete, Weight: 50},
	{Kind: linearizability.KindRange, Weight: 50},
	{Kind: linearizability.KindCAS, Weight: 200},
	{Kind: linearizability.KindLeaseGrant, Weight: 30},
	{Kind: linearizability.KindPutLease, Weight: 100},
	{Kind: linearizability.KindLeaseRevoke, Weight: 30},
	{Kind: linearizability.KindGet, Variant: VariantPast, Weight: 30},
	{Kind: linearizability.KindRange, Variant: VariantPast, Weight: 10},
	{Kind: linearizability.KindRange, Variant: VariantPaged, Weight: 5},
	{Kind: linearizability.KindRange, Variant: VariantOptions, Weight: 10},
	{Kind: linearizability.KindCompact, Weight: 1},
	{Kind: linearizability.KindCompact, Variant: VariantAPIServer, Weight: 2},
	{Kind: linearizability.KindDefrag, Weight: 1},
	{Kind: linearizability.KindTxn, Weight: 100},
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
	if w.Profile == "" {
		w.Profile = ProfileEtcd
	}
	if err := checkProfile(w.Profile); err != nil {
		return err
	}
	if w.Mix == nil {
		w.Mix = Profiles[w.Profile]
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
	lastMod  map[string]int64 // the mod_revision of lastSeen's value, if known
	// lastVer and lastCreate are the version and create_revision last seen
	// of a key (0 if absent), if known: txns compare them.
	lastVer, lastCreate map[string]int64

	// maxRev is the highest header revision the session has seen, compacted
	// the highest revision it knows was compacted: past reads and
	// compactions pick their revisions near them.
	maxRev, compacted int64
	// periodRev is the header revision of the session's last cas on
	// compactRevKey (kube-apiserver compacts to it one period later).
	periodRev int64
	// pending is an operation to issue next (the compaction after a won cas).
	pending *linearizability.Operation
	// wantOptions asks for a range with options after the range in flight.
	wantOptions bool
}

// NewSession returns the generator of client's operations, drawing from rnd.
func NewSession(w *Workload, client int, rnd *rand.Rand) *Session {
	total := 0
	for _, m := range w.Mix {
		total += m.Weight
	}
	return &Session{w: w, client: client, rnd: rnd, total: total, lastSeen: map[string]string{}, lastMod: map[string]int64{},
		lastVer: map[string]int64{}, lastCreate: map[string]int64{}}
}

// Next draws the session's next operation (request fields only).
func (s *Session) Next() linearizability.Operation {
	if p := s.pending; p != nil {
		s.pending = nil
		return *p
	}
	pick := s.rnd.IntN(s.total)
	var wt Weight
	for _, m := range s.w.Mix {
		if pick < m.Weight {
			wt = m
			break
		}
		pick -= m.Weight
	}
	key := s.w.key(s.rnd.IntN(s.w.Keys))
	op := linearizability.Operation{Kind: wt.Kind, Serializable: wt.Serializable}
	switch wt.Kind {
	case linearizability.KindGet, linearizability.KindDelete:
		op.Key = key
		if wt.Variant == VariantPast {
			op.Rev = s.pastRev()
		}
	case linearizability.KindPut:
		op.Key, op.Value = key, s.value()
	case linearizability.KindRange:
		op.Prefix = s.w.prefix()
		switch wt.Variant {
		case VariantPast:
			op.Rev = s.pastRev()
		case VariantPaged:
			op.Prefix = s.w.listPrefix(s.rnd.IntN(len(kubeResources)))
			op.Limit = 1 + s.rnd.Int64N(int64(s.w.Keys)/4+1)
		case VariantOptions:
			s.wantOptions = true
		}
	case linearizability.KindCompact:
		if wt.Variant == VariantAPIServer {
			op = s.apiserverCAS()
			break
		}
		op.Rev = s.compactRev()
	case linearizability.KindCAS:
		op.Key, op.Value = key, s.value()
		if v, ok := s.lastSeen[key]; ok && v != "" {
			op.Expect = v
		} else {
			op.ExpectAbsent = true
		}
		if wt.Variant == VariantByMod {
			mod, known := s.lastMod[key]
			op.ByMod = op.ExpectAbsent || known && mod != 0
			if op.ByMod && !op.ExpectAbsent {
				op.ExpectMod = mod
			}
		}
	case linearizability.KindTxn:
		op.Txn = s.txn()
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

// pastRev picks the revision of a read at a past revision: mostly one of
// the last 200, sometimes one next to the last compaction the session
// knows, sometimes a future one.
func (s *Session) pastRev() int64 {
	floor := max(1, s.w.PastFloor)
	switch p := s.rnd.IntN(20); {
	case p < 3:
		return max(floor, s.maxRev+50+s.rnd.Int64N(100))
	case p < 6 && s.compacted > 0:
		return max(floor, s.compacted-2+s.rnd.Int64N(5))
	}
	return max(floor, s.maxRev-s.rnd.Int64N(200))
}

// compactRev picks the revision of an etcd-style compaction: mostly one a
// little below the current one, sometimes a future one or one already
// compacted, on purpose.
func (s *Session) compactRev() int64 {
	floor := max(1, s.w.PastFloor)
	switch p := s.rnd.IntN(10); {
	case p == 0:
		return max(floor, s.maxRev+100+s.rnd.Int64N(100))
	case p == 1 && s.compacted > 0:
		return max(floor, s.compacted-s.rnd.Int64N(5))
	}
	return max(floor, s.maxRev-100-s.rnd.Int64N(1000))
}

// apiserverCAS is kube-apiserver's compactor election: a cas on
// compactRevKey from the value the session last saw.
func (s *Session) apiserverCAS() linearizability.Operation {
	op := linearizability.Operation{Kind: linearizability.KindCAS, Key: compactRevKey, Value: s.value()}
	if v := s.lastSeen[compactRevKey]; v != "" {
		op.Expect = v
	} else {
		op.ExpectAbsent = true
	}
	return op
}

func (s *Session) value() string {
	s.seq++
	return fmt.Sprintf("c%02d-%d", s.client, s.seq) // client c07 writes c07-1, c07-2, ...
}

// Observe updates the session's knowledge from an ended operation (errText
// is the client's error, if any).
func (s *Session) Observe(op linearizability.Operation, outcome linearizability.Outcome, r linearizability.Response, errText string) {
	if outcome == linearizability.OutcomeFail && strings.Contains(errText, linearizability.ErrTextCompacted) {
		s.compacted = max(s.compacted, op.Rev)
	}
	wantOptions := s.wantOptions && op.Kind == linearizability.KindRange
	if op.Kind == linearizability.KindRange {
		s.wantOptions = false
	}
	if outcome != linearizability.OutcomeOK {
		return
	}
	s.maxRev = max(s.maxRev, r.Revision)
	if wantOptions && op.Opts == nil && op.Limit == 0 && r.Revision != 0 {
		next := linearizability.Operation{Kind: linearizability.KindRange, Prefix: op.Prefix, Rev: r.Revision, Opts: s.rangeOptions(r.KVs)}
		if op.Rev != 0 {
			next.Rev = op.Rev
		}
		s.pending = &next
	}
	if op.Kind == linearizability.KindRange && op.Limit > 0 && r.More && len(r.KVs) > 0 {
		next := op
		next.From = r.KVs[len(r.KVs)-1].Key + "\x00"
		if next.Rev == 0 {
			next.Rev = r.Revision // the first page pins the list's revision
		}
		s.pending = &next
	}
	if op.Key == compactRevKey && op.Kind == linearizability.KindCAS {
		if r.Succeeded && s.periodRev > 0 {
			s.pending = &linearizability.Operation{Kind: linearizability.KindCompact, Rev: s.periodRev}
		}
		s.periodRev = r.Revision
	}
	if op.Kind == linearizability.KindCompact {
		s.compacted = max(s.compacted, op.Rev)
	}
	if op.Rev != 0 {
		return // what a past read saw is not the current value
	}
	seen := func(v string, mod int64) { s.lastSeen[op.Key], s.lastMod[op.Key] = v, mod }
	switch op.Kind {
	case linearizability.KindGet:
		seen(r.Value, r.ModRevision) // "" and 0 if absent
		s.lastVer[op.Key], s.lastCreate[op.Key] = r.Version, r.CreateRevision
	case linearizability.KindPut:
		seen(op.Value, r.Revision)
		s.wrote(op.Key, r.Revision)
	case linearizability.KindDelete:
		seen("", 0)
		s.lastVer[op.Key], s.lastCreate[op.Key] = 0, 0
	case linearizability.KindTxn:
		s.observeTxn(op, r)
	case linearizability.KindCAS:
		if r.Succeeded {
			seen(op.Value, r.Revision)
			s.wrote(op.Key, r.Revision)
		} else {
			seen(r.Value, r.ModRevision)
			s.lastVer[op.Key], s.lastCreate[op.Key] = r.Version, r.CreateRevision
		}
	case linearizability.KindLeaseGrant:
		if r.LeaseID != 0 {
			s.leases = append(s.leases, r.LeaseID)
		}
	}
}
