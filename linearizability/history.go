package linearizability

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
)

// ErrMalformed reports a history that breaks the format contract (unknown
// kind, return before call, a written value used twice, ...). A malformed
// history is a bug in the client that recorded it, not a verdict on the store.
var ErrMalformed = errors.New("linearizability: malformed history")

// Kind names a client request.
type Kind string

// The request kinds a history may hold.
const (
	KindGet         Kind = "get"          // read Key
	KindPut         Kind = "put"          // write Value to Key, detaching any lease
	KindDelete      Kind = "delete"       // delete Key
	KindRange       Kind = "range"        // read every key starting with Prefix
	KindCAS         Kind = "cas"          // txn: if Key == Expect (or absent) then put Value else get Key
	KindLeaseGrant  Kind = "lease-grant"  // grant lease Lease (or the server's choice, in Resp.LeaseID) with TTL
	KindPutLease    Kind = "put-lease"    // write Value to Key attached to Lease
	KindLeaseRevoke Kind = "lease-revoke" // revoke Lease, deleting every key attached to it
	KindCompact     Kind = "compact"      // compact the keyspace history up to revision Rev
	KindDefrag      Kind = "defrag"       // defragment Member's backend (no effect on the keyspace)
	KindTxn         Kind = "txn"          // a multi-operation transaction, Txn
)

var knownKinds = []Kind{KindGet, KindPut, KindDelete, KindRange, KindCAS, KindLeaseGrant, KindPutLease, KindLeaseRevoke, KindCompact, KindDefrag, KindTxn}

// The error texts of a read or compaction the store refused because of the
// revision it named (etcd's mvcc.ErrCompacted and mvcc.ErrFutureRev). The
// checker finds them in Operation.Error of a failed operation, whatever
// prefix the transport added.
const (
	ErrTextCompacted = "required revision has been compacted"
	ErrTextFutureRev = "required revision is a future revision"
)

// Outcome says what the client knows about whether a request took effect.
type Outcome string

// The outcomes of a request.
const (
	OutcomeOK      Outcome = "ok"      // took effect; Resp holds the answer
	OutcomeFail    Outcome = "fail"    // definitely did not take effect (e.g. rejected before proposal)
	OutcomeUnknown Outcome = "unknown" // timed out or connection lost: may take effect at any later time, or never
)

// Operation is one client request in a history. See the package comment for
// the meaning of every field.
type Operation struct {
	ID           int64  `json:"id"`
	Client       int    `json:"client"`
	Member       string `json:"member"`
	Kind         Kind   `json:"kind"`
	Serializable bool   `json:"serializable,omitempty"`
	Key          string `json:"key,omitempty"`
	Prefix       string `json:"prefix,omitempty"`
	Value        string `json:"value,omitempty"`
	Expect       string `json:"expect,omitempty"`
	ExpectAbsent bool   `json:"expect_absent,omitempty"`
	ByMod        bool   `json:"by_mod,omitempty"`
	ExpectMod    int64  `json:"expect_mod,omitempty"`
	Lease        int64  `json:"lease,omitempty"`
	TTL          int64  `json:"ttl,omitempty"`
	Rev          int64  `json:"at_rev,omitempty"`
	From         string `json:"from,omitempty"`
	Limit        int64  `json:"limit,omitempty"`
	Txn          *Txn   `json:"txn,omitempty"`
	// Opts are a range's options (count-only, keys-only, sort, filters).
	Opts    *RangeOptions `json:"opts,omitempty"`
	Call    int64         `json:"call"`
	Return  int64         `json:"return"`
	Outcome Outcome       `json:"outcome"`
	Error   string        `json:"error,omitempty"`
	Resp    Response      `json:"resp"`
}

// Response is what the store answered to an acknowledged (OutcomeOK) request.
type Response struct {
	// Revision is the header revision; for a write it is the revision the
	// write created. Zero means "not recorded" and disables revision checks
	// for that operation.
	Revision int64 `json:"rev,omitempty"`
	// Found, Value, ModRevision, CreateRevision, Version and Lease describe
	// the key read by a get, or by the else branch of a failed cas.
	Found          bool   `json:"found,omitempty"`
	Value          string `json:"value,omitempty"`
	ModRevision    int64  `json:"mod_rev,omitempty"`
	CreateRevision int64  `json:"create_rev,omitempty"`
	Version        int64  `json:"version,omitempty"`
	Lease          int64  `json:"lease,omitempty"`
	// KVs are the keys a range returned, sorted by key.
	KVs []KV `json:"kvs,omitempty"`
	// Succeeded reports whether a cas took its then branch (the put).
	Succeeded bool `json:"succeeded,omitempty"`
	// More reports that a range cut by its Limit left keys out.
	More bool `json:"more,omitempty"`
	// Count is the number of keys in a range's span (recorded for ranges
	// with Opts only).
	Count int64 `json:"count,omitempty"`
	// Deleted is the number of keys a delete removed (0 or 1).
	Deleted int64 `json:"deleted,omitempty"`
	// LeaseID is the lease a lease-grant created.
	LeaseID int64 `json:"lease_id,omitempty"`
	// Results are what the ops of the branch a txn took returned, one each
	// (Succeeded says which branch it took).
	Results []TxnResult `json:"results,omitempty"`
}

// KV is one key returned by a range.
type KV struct {
	Key            string `json:"key"`
	Value          string `json:"value"`
	ModRevision    int64  `json:"mod_rev"`
	CreateRevision int64  `json:"create_rev"`
	Version        int64  `json:"version"`
	Lease          int64  `json:"lease,omitempty"`
}

// refused reports whether op failed because of the revision it named:
// compacted, or in the future.
func (op *Operation) refused(text string) bool {
	return op.Outcome == OutcomeFail && strings.Contains(op.Error, text)
}

// isWrite reports whether the kind can change the keyspace.
func (k Kind) isWrite() bool {
	switch k {
	case KindPut, KindPutLease, KindCAS, KindDelete, KindLeaseRevoke, KindTxn:
		return true
	}
	return false
}

// values returns the values op may write: its Value, or a txn's puts'.
func (op *Operation) values() []string {
	switch {
	case op.Kind == KindTxn && op.Txn != nil:
		return txnValues(op.Txn)
	case op.Kind.writesValue():
		return []string{op.Value}
	}
	return nil
}

// writesValue reports whether the kind writes Value (which must then be unique).
func (k Kind) writesValue() bool {
	return k == KindPut || k == KindPutLease || k == KindCAS
}

// validate checks the shape of one operation.
func (op *Operation) validate() error {
	if !slices.Contains(knownKinds, op.Kind) {
		return fmt.Errorf("%w: op %d: unknown kind %q", ErrMalformed, op.ID, op.Kind)
	}
	switch op.Outcome {
	case OutcomeOK, OutcomeFail, OutcomeUnknown:
	default:
		return fmt.Errorf("%w: op %d: unknown outcome %q", ErrMalformed, op.ID, op.Outcome)
	}
	if op.Return < op.Call {
		return fmt.Errorf("%w: op %d: return %d before call %d", ErrMalformed, op.ID, op.Return, op.Call)
	}
	if op.Kind == KindPutLease && op.Lease == 0 {
		return fmt.Errorf("%w: op %d: put-lease without lease", ErrMalformed, op.ID)
	}
	if op.Kind == KindLeaseRevoke && op.Lease == 0 {
		return fmt.Errorf("%w: op %d: lease-revoke without lease", ErrMalformed, op.ID)
	}
	if (op.From != "" || op.Limit != 0) && op.Kind != KindRange || op.Limit < 0 {
		return fmt.Errorf("%w: op %d: from %q, limit %d on a %s", ErrMalformed, op.ID, op.From, op.Limit, op.Kind)
	}
	if op.ByMod && (op.Kind != KindCAS || op.ExpectAbsent && op.ExpectMod != 0) || !op.ByMod && op.ExpectMod != 0 {
		return fmt.Errorf("%w: op %d: a %s compares mod_revision %d (by_mod %t, expect_absent %t)", ErrMalformed, op.ID, op.Kind, op.ExpectMod, op.ByMod, op.ExpectAbsent)
	}
	if (op.Kind == KindTxn) != (op.Txn != nil) {
		return fmt.Errorf("%w: op %d: a %s with txn %t", ErrMalformed, op.ID, op.Kind, op.Txn != nil)
	}
	if op.Txn != nil {
		if err := op.Txn.validate(op.ID, op.Outcome == OutcomeOK, op.Resp.Succeeded, op.Resp.Results); err != nil {
			return err
		}
	}
	if op.Opts != nil {
		if op.Kind != KindRange {
			return fmt.Errorf("%w: op %d: range options on a %s", ErrMalformed, op.ID, op.Kind)
		}
		if err := op.Opts.validate(op.ID); err != nil {
			return err
		}
	}
	if op.Kind == KindCompact && op.Rev <= 0 {
		return fmt.Errorf("%w: op %d: compact without a revision", ErrMalformed, op.ID)
	}
	if op.Rev < 0 || op.Rev != 0 && op.Kind != KindGet && op.Kind != KindRange && op.Kind != KindCompact {
		return fmt.Errorf("%w: op %d: revision %d on a %s", ErrMalformed, op.ID, op.Rev, op.Kind)
	}
	return nil
}

// Validate checks that a history keeps the format contract: known kinds and
// outcomes, Return >= Call, distinct IDs, unique written values, and one
// outstanding request per client (an unknown request frees its client at its
// Return, when the client gave up). Check calls it first.
func Validate(ops []Operation) error {
	ids := make(map[int64]struct{}, len(ops))
	values := make(map[string]int64)
	for i := range ops {
		op := &ops[i]
		if err := op.validate(); err != nil {
			return err
		}
		if _, dup := ids[op.ID]; dup {
			return fmt.Errorf("%w: duplicate operation id %d", ErrMalformed, op.ID)
		}
		ids[op.ID] = struct{}{}
		for _, v := range op.values() {
			if prev, dup := values[v]; dup {
				return fmt.Errorf("%w: value %q written by ops %d and %d (written values must be unique)", ErrMalformed, v, prev, op.ID)
			}
			values[v] = op.ID
		}
	}
	byClient := make([]int32, len(ops)) // indices: Operation is large to move
	for i := range byClient {
		byClient[i] = int32(i)
	}
	slices.SortFunc(byClient, func(x, y int32) int {
		a, b := &ops[x], &ops[y]
		if a.Client != b.Client {
			return a.Client - b.Client
		}
		if a.Call != b.Call {
			return cmp.Compare(a.Call, b.Call)
		}
		return cmp.Compare(a.ID, b.ID)
	})
	for i := 1; i < len(byClient); i++ {
		a, b := &ops[byClient[i-1]], &ops[byClient[i]]
		if a.Client == b.Client && b.Call < a.Return {
			return fmt.Errorf("%w: client %d has ops %d and %d outstanding at once", ErrMalformed, a.Client, a.ID, b.ID)
		}
	}
	return nil
}

// WriteHistory writes ops as JSON lines, one Operation per line.
func WriteHistory(w io.Writer, ops []Operation) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for i := range ops {
		if err := enc.Encode(&ops[i]); err != nil {
			return fmt.Errorf("linearizability: write op %d: %w", ops[i].ID, err)
		}
	}
	return bw.Flush()
}

// maxLine bounds one JSON line (a range over a large keyspace is long).
const maxLine = 64 << 20

// ReadHistory reads a JSON-lines history written by WriteHistory. Blank
// lines are skipped. A malformed line is reported with its line number and
// wraps ErrMalformed.
func ReadHistory(r io.Reader) ([]Operation, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	var ops []Operation
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var op Operation
		dec := json.NewDecoder(bytes.NewReader(b))
		if err := dec.Decode(&op); err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrMalformed, line, err)
		}
		if dec.More() {
			return nil, fmt.Errorf("%w: line %d: trailing data after the operation", ErrMalformed, line)
		}
		if err := op.validate(); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		ops = append(ops, op)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: line %d: %v", ErrMalformed, line+1, err)
	}
	return ops, nil
}

// Recorder builds a history while clients run. It is safe for concurrent
// use because clients of real backends run on their own goroutines; the
// simulator calls it from one goroutine and gets the same bytes every run,
// since IDs come from call order and times from the caller.
type Recorder struct {
	mu     sync.Mutex
	ops    []Operation
	index  map[int64]int
	nextID int64
	last   int64 // latest time seen, the give-up time of requests never ended
}

// Reserve makes room for n more operations, so that a long run does not keep
// regrowing the history.
func (r *Recorder) Reserve(n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ops = slices.Grow(r.ops, n)
}

// Begin records the call of op by client on member at time now (nanoseconds)
// and returns the operation's ID. Only the request fields of op are used.
func (r *Recorder) Begin(client int, member string, op Operation, now int64) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.index == nil {
		r.index = make(map[int64]int)
	}
	op.ID = r.nextID
	r.nextID++
	op.Client = client
	op.Member = member
	op.Call = now
	op.Return = now
	op.Outcome = ""
	op.Error = ""
	op.Resp = Response{}
	r.index[op.ID] = len(r.ops)
	r.ops = append(r.ops, op)
	r.last = max(r.last, now)
	return op.ID
}

// End records the return of request id at time now. errText is the client's
// error, if any (kept for the reader of the history). Ending an unknown or
// already ended id panics: it is a bug in the client.
func (r *Recorder) End(id int64, outcome Outcome, resp Response, errText string, now int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	i, ok := r.index[id]
	if !ok || r.ops[i].Outcome != "" {
		panic(fmt.Sprintf("linearizability: End(%d) of an unknown or ended operation", id))
	}
	op := &r.ops[i]
	op.Outcome = outcome
	op.Resp = resp
	op.Error = errText
	op.Return = max(now, op.Call)
	r.last = max(r.last, now)
}

// Operations returns the history so far sorted by (Call, ID). Requests that
// never ended are reported as unknown, given up at the latest time seen.
func (r *Recorder) Operations() []Operation {
	r.mu.Lock()
	defer r.mu.Unlock()
	ops := slices.Clone(r.ops)
	for i := range ops {
		if ops[i].Outcome == "" {
			ops[i].Outcome = OutcomeUnknown
			ops[i].Return = max(r.last, ops[i].Call)
		}
	}
	sortOps(ops)
	return ops
}

// sortOps sorts by (Call, ID), the canonical order of a history.
func sortOps(ops []Operation) { slices.SortFunc(ops, compareOps) }

// compareOps orders operations by call time, then ID.
func compareOps(a, b Operation) int {
	if c := cmp.Compare(a.Call, b.Call); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}
