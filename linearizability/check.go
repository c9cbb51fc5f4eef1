package linearizability

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// DefaultTimeout is the budget of a check whose Options.Timeout is zero.
const DefaultTimeout = 10 * time.Second

// Options tune a check.
type Options struct {
	// Timeout bounds the whole check; past it the verdict is VerdictUnknown.
	// Zero means DefaultTimeout. Writing the visualization gets its own
	// budget of a quarter of it (at least a second) on top.
	Timeout time.Duration
	// VisualizePath, if not empty, is where Porcupine's HTML visualization
	// of the offending partition is written when the verdict is not ok.
	VisualizePath string
}

// Validate reports options that make no sense.
func (o Options) Validate() error {
	if o.Timeout < 0 {
		return fmt.Errorf("linearizability: negative timeout %v", o.Timeout)
	}
	return nil
}

func (o Options) timeout() time.Duration {
	if o.Timeout == 0 {
		return DefaultTimeout
	}
	return o.Timeout
}

// Verdict is the answer of a check.
type Verdict string

// The verdicts.
const (
	VerdictOK      Verdict = "ok"      // linearizable
	VerdictIllegal Verdict = "illegal" // not linearizable: Reason says why
	VerdictUnknown Verdict = "unknown" // the budget ran out first
)

// Result is the outcome of a check.
type Result struct {
	Verdict Verdict
	// Reason explains an illegal or unknown verdict: the rule broken, the
	// keys (partition) and the operations involved.
	Reason string
	// Keys and OpIDs are the keys and operation IDs Reason names.
	Keys  []string
	OpIDs []int64
	// Partitions is the number of independent groups Porcupine checked;
	// Operations the number of operations in the history; Linearized the
	// number given to Porcupine (failed, serializable and unknown reads are
	// left out of it).
	Partitions, Operations, Linearized int
	// Elapsed is the wall time the check took.
	Elapsed time.Duration
	// Visualization is the file written for Options.VisualizePath, if any.
	Visualization string
}

// Check decides whether ops, a history in the format of this package, is
// linearizable with respect to etcd's KV semantics. It runs the global
// revision checks first (cheap), then Porcupine on each partition. A
// malformed history is an error wrapping ErrMalformed, not a verdict.
func Check(ops []Operation, opt Options) (Result, error) {
	start := time.Now()
	if err := opt.Validate(); err != nil {
		return Result{}, err
	}
	deadline := start.Add(opt.timeout())
	if err := Validate(ops); err != nil {
		return Result{}, err
	}
	// Work on a sorted copy in which grants name their lease, unless ops is
	// that already (Check never writes to ops otherwise).
	needsGrantLease := slices.ContainsFunc(ops, func(op Operation) bool {
		return op.Kind == KindLeaseGrant && op.Lease == 0 && op.Resp.LeaseID != 0
	})
	if needsGrantLease || !slices.IsSortedFunc(ops, compareOps) {
		ops = slices.Clone(ops)
		sortOps(ops)
		for i := range ops {
			if op := &ops[i]; op.Kind == KindLeaseGrant && op.Lease == 0 {
				op.Lease = op.Resp.LeaseID
			}
		}
	}
	res := Result{Verdict: VerdictOK, Operations: len(ops)}
	done := func() (Result, error) {
		res.Elapsed = time.Since(start)
		return res, nil
	}

	rc := checkRevisions(ops)
	hist := porcupineHistory(ops, rc)
	res.Linearized = len(hist)
	inputs := make([]*Operation, len(hist))
	for i := range hist {
		inputs[i] = hist[i].Input.(*input).op
	}
	groups := partition(inputs)
	res.Partitions = len(groups)
	model := kvModel()
	model.Partition = nil
	sub := func(g []int) []porcupine.Operation {
		p := make([]porcupine.Operation, len(g))
		clients := map[int]int{}
		for j, i := range g {
			p[j] = hist[i]
			clients[hist[i].ClientId] = 0
		}
		dense := make([]int, 0, len(clients))
		for c := range clients {
			dense = append(dense, c)
		}
		slices.Sort(dense)
		for k, c := range dense {
			clients[c] = k
		}
		for j := range p {
			p[j].ClientId = clients[p[j].ClientId]
		}
		return p
	}
	groupOf := func(id int64) int {
		for gi, g := range groups {
			for _, i := range g {
				if inputs[i].ID == id {
					return gi
				}
			}
		}
		return -1
	}

	if v := rc.violation; v != nil {
		res.Verdict, res.Reason, res.OpIDs, res.Keys = VerdictIllegal, v.reason, v.ops, dedupKeys(v.keys)
		if opt.VisualizePath != "" && len(v.ops) > 0 {
			if gi := groupOf(v.ops[0]); gi >= 0 {
				res.visualize(model, sub(groups[gi]), opt)
			}
		}
		return done()
	}

	for gi, g := range groups {
		left := time.Until(deadline)
		if left <= 0 {
			res.Verdict = VerdictUnknown
			res.Reason = fmt.Sprintf("budget of %v exhausted after %d of %d partitions", opt.timeout(), gi, len(groups))
			return done()
		}
		p := sub(g)
		switch porcupine.CheckOperationsTimeout(model, p, left) {
		case porcupine.Ok:
			continue
		case porcupine.Unknown:
			res.Verdict = VerdictUnknown
			res.Keys = partitionKeys(p)
			res.Reason = fmt.Sprintf("budget of %v exhausted in partition %d of %d (keys %s, %d operations)",
				opt.timeout(), gi+1, len(groups), describeKeys(res.Keys), len(p))
			if opt.VisualizePath != "" {
				res.visualize(model, p, opt)
			}
			return done()
		case porcupine.Illegal:
			res.Verdict = VerdictIllegal
			res.Keys = partitionKeys(p)
			res.Reason = fmt.Sprintf("partition %d of %d (keys %s, %d operations) has no linearization",
				gi+1, len(groups), describeKeys(res.Keys), len(p))
			res.explain(model, p, opt)
			return done()
		}
	}
	return done()
}

// porcupineHistory turns the operations Porcupine must linearize into its
// form. Left out: failed operations (they did not happen), serializable
// reads (they may be stale; the revision checks cover them) and unknown
// reads (no effect). An unknown write gets an infinite return time (it may
// take effect at any time after its call, or never: "never" is the same as
// "after everything else"), clamped to the earliest return of a read that
// saw its value, since it must have happened by then.
func porcupineHistory(ops []Operation, rc revisionFacts) []porcupine.Operation {
	// For the values of writes of unknown outcome (a few): the earliest return
	// of a read that saw them, MaxInt64 if none did.
	seenBy := map[string]int64{}
	for i := range ops {
		if op := &ops[i]; op.Outcome == OutcomeUnknown && op.Kind.writesValue() {
			seenBy[op.Value] = math.MaxInt64
		}
	}
	see := func(v string, ret int64) {
		if r, ok := seenBy[v]; ok && ret < r {
			seenBy[v] = ret
		}
	}
	for i := range ops {
		op := &ops[i]
		if op.Outcome != OutcomeOK {
			continue
		}
		if op.Resp.Found {
			see(op.Resp.Value, op.Return)
		}
		for _, kv := range op.Resp.KVs {
			see(kv.Value, op.Return)
		}
	}
	var hist []porcupine.Operation
	for i := range ops {
		op := &ops[i]
		// Failed operations did nothing. Serializable reads may be stale and
		// ranges span every key: both are checked by the revision
		// reconstruction alone (checkRevisions: each result must equal the
		// keyspace at its header revision, and header revisions must follow
		// real time), which keeps the Porcupine partitions per key.
		if op.Outcome == OutcomeFail || op.Serializable || op.Kind == KindRange {
			continue
		}
		ret := op.Return
		if op.Outcome == OutcomeUnknown {
			if !op.Kind.isWrite() && op.Kind != KindLeaseGrant {
				continue
			}
			if op.Kind == KindLeaseGrant && op.Lease == 0 {
				continue // no one can know the lease, so no one can use it
			}
			ret = math.MaxInt64
			if r, ok := seenBy[op.Value]; ok && r != math.MaxInt64 && op.Kind.writesValue() {
				ret = max(r, op.Call)
			}
		}
		in := &input{op: op, rev: rc.observedRev[i]}
		hist = append(hist, porcupine.Operation{
			ClientId: op.Client, Input: in, Output: in, Call: op.Call, Return: ret,
			Metadata: op, // described only if visualized (DescribeOperationMetadata)
		})
	}
	return hist
}

func partitionKeys(p []porcupine.Operation) []string {
	var keys []string
	for _, o := range p {
		op := o.Input.(*input).op
		switch op.Kind {
		case KindRange:
			keys = append(keys, op.Prefix+"*")
		case KindLeaseGrant, KindLeaseRevoke:
			keys = append(keys, fmt.Sprintf("lease %d", op.Lease))
		default:
			keys = append(keys, op.Key)
		}
	}
	return dedupKeys(keys)
}

func dedupKeys(keys []string) []string {
	keys = slices.Clone(keys)
	sort.Strings(keys)
	return slices.Compact(keys)
}

func describeKeys(keys []string) string {
	const show = 8
	q := make([]string, 0, show+1)
	for i, k := range keys {
		if i == show {
			q = append(q, fmt.Sprintf("... %d more", len(keys)-show))
			break
		}
		q = append(q, fmt.Sprintf("%q", k))
	}
	return "[" + strings.Join(q, " ") + "]"
}

func (o Options) vizBudget() time.Duration {
	return max(time.Second, o.timeout()/4)
}

// visualize writes Porcupine's HTML for partition p.
func (res *Result) visualize(model porcupine.Model, p []porcupine.Operation, opt Options) porcupine.LinearizationInfo {
	_, info := porcupine.CheckOperationsVerbose(model, p, opt.vizBudget())
	if opt.VisualizePath != "" {
		if err := porcupine.VisualizePath(model, info, opt.VisualizePath); err != nil {
			res.Reason += fmt.Sprintf(" (writing the visualization failed: %v)", err)
		} else {
			res.Visualization = opt.VisualizePath
		}
	}
	return info
}

// explain adds to an illegal verdict the longest partial linearization
// Porcupine found and the operation it could not place after it.
func (res *Result) explain(model porcupine.Model, p []porcupine.Operation, opt Options) {
	info := res.visualize(model, p, opt)
	parts := info.PartialLinearizationsOperations()
	if len(parts) == 0 {
		return
	}
	var longest []porcupine.Operation
	for _, l := range parts[0] {
		if len(l) > len(longest) {
			longest = l
		}
	}
	done := map[*input]bool{}
	var st any = model.Init()
	for _, o := range longest {
		done[o.Input.(*input)] = true
		_, st = model.Step(st, o.Input, o.Output)
	}
	// The operation that blocks is the pending one that must return first.
	var stuck *porcupine.Operation
	for k := range p {
		if !done[p[k].Input.(*input)] && (stuck == nil || p[k].Return < stuck.Return) {
			stuck = &p[k]
		}
	}
	if stuck == nil {
		return
	}
	op := stuck.Input.(*input).op
	res.OpIDs = append(res.OpIDs, op.ID)
	res.Reason += fmt.Sprintf("; after the longest partial linearization (%d of %d operations", len(longest), len(p))
	if n := len(longest); n > 0 {
		last := longest[n-1].Input.(*input).op
		res.OpIDs = append(res.OpIDs, last.ID)
		res.Reason += fmt.Sprintf(", last #%d %s", last.ID, Describe(last))
	}
	res.Reason += fmt.Sprintf("), state {%s}, #%d %s (client %d, member %s) cannot take effect",
		model.DescribeState(st), op.ID, Describe(op), op.Client, op.Member)
}

// CheckFile checks the history in the file at path, which may be a JSON-lines
// history of this package or a Jepsen register log (recognized by its
// first non-blank line).
func CheckFile(path string, opt Options) (Result, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Result{}, fmt.Errorf("linearizability: %w", err)
	}
	if isJepsen(data) {
		ops, err := ReadJepsen(bytes.NewReader(data))
		if err != nil {
			return Result{}, fmt.Errorf("%s: %w", path, err)
		}
		return CheckRegister(ops, opt)
	}
	ops, err := ReadHistory(bytes.NewReader(data))
	if err != nil {
		return Result{}, fmt.Errorf("%s: %w", path, err)
	}
	return Check(ops, opt)
}

func isJepsen(data []byte) bool {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, maxLine)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		return line[0] != '{'
	}
	return false
}
