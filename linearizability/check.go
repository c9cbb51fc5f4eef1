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

// DefaultBudget is the budget of a check whose Options.Budget is zero:
// the model steps Porcupine may take on one partition. A step costs about
// a microsecond, so it is a few seconds of work on one partition.
const DefaultBudget = 5_000_000

// Options tune a check.
type Options struct {
	// Budget bounds the work of the check on each partition, counted in
	// model steps (Porcupine's calls of the model's Step): past it the
	// partition is undecided and, unless another partition is illegal, the
	// verdict is VerdictInconclusive. Counting work instead of wall time
	// makes the verdict a function of the history alone: the same on an
	// idle machine and on a busy one. Zero means DefaultBudget. Writing the
	// visualization takes at most the same budget again.
	Budget int64
	// VisualizePath, if not empty, is where Porcupine's HTML visualization
	// of the offending partition is written when the verdict is not ok.
	VisualizePath string
	// Annotations are drawn on that visualization beside the operations
	// (a run's fault windows, say).
	Annotations []Annotation

	// wholeLeaseWindows turns off narrowing the windows of unknown lease
	// grants and revokes to the lease's uses, tiedLeases splitting the
	// keys of anchored leases (tests compare verdicts).
	wholeLeaseWindows, tiedLeases bool
}

// Annotation is a span of time shown on Porcupine's visualization, in the
// unit of the history's Call and Return, on its own row named Tag.
type Annotation struct {
	Tag, Description string
	Start, End       int64
}

// Validate reports options that make no sense.
func (o Options) Validate() error {
	if o.Budget < 0 {
		return fmt.Errorf("linearizability: negative budget %d", o.Budget)
	}
	return nil
}

func (o Options) budget() int64 {
	if o.Budget == 0 {
		return DefaultBudget
	}
	return o.Budget
}

// Verdict is the answer of a check.
type Verdict string

// The verdicts.
const (
	VerdictOK           Verdict = "ok"           // linearizable
	VerdictIllegal      Verdict = "illegal"      // not linearizable: Reason says why
	VerdictInconclusive Verdict = "inconclusive" // the budget ran out first: Reason says where
)

// Result is the outcome of a check.
type Result struct {
	Verdict Verdict
	// Reason explains an illegal or inconclusive verdict: the rule broken,
	// or the budget spent, the keys (partition) and the operations involved.
	Reason string
	// Keys and OpIDs are the keys and operation IDs Reason names.
	Keys  []string
	OpIDs []int64
	// Partitions is the number of independent groups Porcupine checked;
	// Operations the number of operations in the history; Linearized the
	// number given to Porcupine (failed, serializable and unknown reads are
	// left out of it).
	Partitions, Operations, Linearized int
	// Steps is the work the check did: the model steps Porcupine took, over
	// all partitions (the visualization's search not included). Like the
	// verdict, it depends on the history and the budget alone.
	Steps int64
	// Elapsed is the wall time the check took (for information: nothing
	// else depends on it).
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
	hist := porcupineHistory(ops, rc, !opt.wholeLeaseWindows)
	res.Linearized = len(hist)
	inputs := make([]*Operation, len(hist))
	for i := range hist {
		inputs[i] = hist[i].Input.(*input).op
	}
	groups := partition(inputs, anchoredLeases(hist, opt.tiedLeases))
	res.Partitions = len(groups)
	model := kvModel()
	model.Partition = nil
	sub := func(g []int) []porcupine.Operation {
		p := make([]porcupine.Operation, len(g))
		for j, i := range g {
			p[j] = hist[i]
		}
		return denseClients(p)
	}

	if v := rc.violation; v != nil {
		res.Verdict, res.Reason, res.OpIDs, res.Keys = VerdictIllegal, v.reason, v.ops, dedupKeys(v.keys)
		if opt.VisualizePath != "" && len(v.ops) > 0 {
			if p := failingHistory(ops, hist, groups, v.failing()); len(p) > 0 {
				res.visualize(model, p, opt)
			}
		}
		return done()
	}

	// Every partition is searched, even after one ran out of budget: an
	// illegal partition later on still makes the verdict illegal.
	undecided := -1
	for gi, g := range groups {
		p := sub(g)
		r, steps := search(model, p, opt.budget())
		res.Steps += steps
		switch r {
		case porcupine.Ok:
			continue
		case porcupine.Unknown:
			if undecided < 0 {
				undecided = gi
			}
		case porcupine.Illegal:
			res.Verdict = VerdictIllegal
			res.Keys = partitionKeys(p)
			res.Reason = fmt.Sprintf("partition %d of %d (keys %s, %d operations) has no linearization",
				gi+1, len(groups), describeKeys(res.Keys), len(p))
			res.explain(model, p, opt)
			return done()
		}
	}
	if undecided >= 0 {
		p := sub(groups[undecided])
		res.Verdict = VerdictInconclusive
		res.Keys = partitionKeys(p)
		res.Reason = fmt.Sprintf("budget of %d steps exhausted in partition %d of %d (keys %s, %d operations)",
			opt.budget(), undecided+1, len(groups), describeKeys(res.Keys), len(p))
		if opt.VisualizePath != "" {
			res.visualize(model, p, opt)
		}
	}
	return done()
}

// anchoredLeases returns which leases need not tie their keys into one
// partition (see partition): none if tied is set or if an operation of
// hist was acknowledged without a revision; otherwise every lease whose
// revokes in hist were all acknowledged with a revision.
func anchoredLeases(hist []porcupine.Operation, tied bool) func(lease int64) bool {
	if tied {
		return nil
	}
	loose := map[int64]bool{}
	for i := range hist {
		op := hist[i].Input.(*input).op
		if op.Outcome == OutcomeOK && op.Resp.Revision == 0 {
			return nil
		}
		if op.Kind == KindLeaseRevoke && op.Outcome != OutcomeOK {
			loose[op.Lease] = true
		}
	}
	return func(lease int64) bool { return !loose[lease] }
}

// denseClients renumbers the clients of p 0, 1, ... in the order of their
// IDs, so that Porcupine's visualization has no empty rows.
func denseClients(p []porcupine.Operation) []porcupine.Operation {
	clients := map[int]int{}
	for j := range p {
		clients[p[j].ClientId] = 0
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

// failingHistory returns what to visualize for a violation of the
// revision checks at the operation with ID at: the partition that holds
// it, or if Porcupine does not check it (a range, a serializable or
// unknown read, a failed operation), the partitions of what it touches
// (its key, the keys under its prefix, its lease) with the operation
// added. Nil if at is not in ops.
func failingHistory(ops []Operation, hist []porcupine.Operation, groups [][]int, at int64) []porcupine.Operation {
	fi := slices.IndexFunc(ops, func(op Operation) bool { return op.ID == at })
	if fi < 0 {
		return nil
	}
	failing := &ops[fi]
	touches := func(op *Operation) bool {
		switch {
		case op == failing:
			return true
		case failing.Kind == KindRange:
			return op.Key != "" && strings.HasPrefix(op.Key, failing.Prefix)
		case failing.Kind == KindLeaseGrant || failing.Kind == KindLeaseRevoke:
			return op.Lease == failing.Lease
		case failing.Kind == KindTxn || op.Kind == KindTxn:
			return slices.ContainsFunc(opKeys(op), func(k string) bool { return slices.Contains(opKeys(failing), k) })
		}
		return op.Key == failing.Key && failing.Key != ""
	}
	var idx []int // into hist; the grants and revokes of an anchored lease are in several groups
	for _, g := range groups {
		if slices.ContainsFunc(g, func(i int) bool { return touches(hist[i].Input.(*input).op) }) {
			idx = append(idx, g...)
		}
	}
	slices.Sort(idx)
	idx = slices.Compact(idx)
	p := make([]porcupine.Operation, 0, len(idx)+1)
	in := false
	for _, i := range idx {
		p = append(p, hist[i])
		in = in || hist[i].Input.(*input).op == failing
	}
	if !in {
		ret := failing.Return
		if failing.Outcome == OutcomeUnknown {
			ret = math.MaxInt64
		}
		x := &input{op: failing}
		p = append(p, porcupine.Operation{ClientId: failing.Client, Input: x, Output: x,
			Call: failing.Call, Return: ret, Metadata: failing})
	}
	// In (Call, ID) order, as hist is, whatever groups it came from.
	slices.SortStableFunc(p, func(a, b porcupine.Operation) int {
		return compareOps(*a.Input.(*input).op, *b.Input.(*input).op)
	})
	return denseClients(p)
}

// search runs Porcupine on one partition p with a budget of model steps
// and returns its answer (Unknown if the budget ran out) and the steps it
// took. Porcupine itself runs without a timeout: the step counter alone
// ends the search, so the answer depends on p and the budget, never on
// the machine's speed or load. Once the budget is spent every step fails,
// which makes Porcupine backtrack to the end quickly; what it answers then
// is discarded.
func search(model porcupine.Model, p []porcupine.Operation, budget int64) (porcupine.CheckResult, int64) {
	m, c := countSteps(model, budget)
	r := porcupine.CheckOperations(m, p)
	if c.exhausted {
		return porcupine.Unknown, c.steps
	}
	if r {
		return porcupine.Ok, c.steps
	}
	return porcupine.Illegal, c.steps
}

// stepCounter counts a model's steps against a budget. Porcupine calls
// Step from one goroutine per partition and the caller reads the counter
// after Porcupine returned, so it needs no lock.
type stepCounter struct {
	steps, budget int64
	exhausted     bool
}

// countSteps returns model with its Step counted by the returned counter:
// past budget steps, Step fails without running the model.
func countSteps(model porcupine.Model, budget int64) (porcupine.Model, *stepCounter) {
	c := &stepCounter{budget: budget}
	step := model.Step
	model.Step = func(state, in, out any) (bool, any) {
		if c.steps >= c.budget {
			c.exhausted = true
			return false, state
		}
		c.steps++
		return step(state, in, out)
	}
	model.StepContext = nil
	return model, c
}

// porcupineHistory turns the operations Porcupine must linearize into its
// form. Left out: failed operations (they did not happen), serializable
// reads (they may be stale; the revision checks cover them) and unknown
// reads (no effect). An unknown write gets an infinite return time (it may
// take effect at any time after its call, or never: "never" is the same as
// "after everything else"), clamped to the earliest return of a read that
// saw its value, since it must have happened by then.
func porcupineHistory(ops []Operation, rc revisionFacts, narrowLeases bool) []porcupine.Operation {
	// For the values of writes of unknown outcome (a few): the earliest return
	// of a read that saw them, MaxInt64 if none did.
	seenBy := map[string]int64{}
	for i := range ops {
		if op := &ops[i]; op.Outcome == OutcomeUnknown {
			for _, v := range op.values() {
				seenBy[v] = math.MaxInt64
			}
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
		if op.Kind == KindTxn {
			op.Txn.Taken(op.Resp.Succeeded, op.Resp.Results, func(_ *TxnOp, r *TxnResult) {
				for _, kv := range r.KVs {
					see(kv.Value, op.Return)
				}
			})
		}
	}
	var lw map[int64]leaseWindow
	if narrowLeases {
		lw = leaseWindows(ops)
	}
	var hist []porcupine.Operation
	for i := range ops {
		op := &ops[i]
		// Failed operations did nothing. Serializable reads may be stale and
		// ranges span every key: both are checked by the revision
		// reconstruction alone (checkRevisions: each result must equal the
		// keyspace at its header revision, and header revisions must follow
		// real time), which keeps the Porcupine partitions per key.
		// Reads at a past revision, compactions and defragmentations
		// change nothing a current read sees: the revision checks cover
		// them too (checkCompactions).
		if op.Outcome == OutcomeFail || op.Serializable || op.Kind == KindRange ||
			op.Rev != 0 || op.Kind == KindCompact || op.Kind == KindDefrag {
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
			if op.Kind == KindTxn && !op.Txn.Writes() {
				continue
			}
			ret = math.MaxInt64
			for _, v := range op.values() {
				if r, ok := seenBy[v]; ok && r != math.MaxInt64 {
					ret = min(ret, max(r, op.Call))
				}
			}
		}
		call := op.Call
		if w, ok := lw[op.Lease]; ok && op.Outcome == OutcomeUnknown {
			switch op.Kind {
			case KindLeaseGrant:
				ret = max(min(ret, w.firstReturn), call)
			case KindLeaseRevoke:
				call = min(max(call, w.lastCall), ret)
			}
		}
		in := &input{op: op, rev: rc.observedRev[i]}
		hist = append(hist, porcupine.Operation{
			ClientId: op.Client, Input: in, Output: in, Call: call, Return: ret,
			Metadata: op, // described only if visualized (DescribeOperationMetadata)
		})
	}
	return hist
}

// leaseWindow is what the operations that need a lease live say about it:
// the earliest return and the latest call of one of them.
type leaseWindow struct {
	firstReturn, lastCall int64
}

// leaseWindows returns, for every lease granted at most once in ops (so
// that "live" means "after its grant and before its revoke"), the window
// of the acknowledged linearizable operations that need it live: a put
// with it, a read that saw a key attached to it, a revoke that found it.
// An unknown grant of such a lease took effect before the earliest of
// them returned; an unknown revoke, if it took effect at all, did so after
// the latest of them was called (and so after every one of them). Both
// narrow where Porcupine may place the unknown operation without ruling
// out any linearization; without them it tries every point of a long
// history.
func leaseWindows(ops []Operation) map[int64]leaseWindow {
	grants := map[int64]int{}
	for i := range ops {
		if op := &ops[i]; op.Kind == KindLeaseGrant && op.Outcome != OutcomeFail {
			grants[op.Lease]++
		}
	}
	w := map[int64]leaseWindow{}
	need := func(l int64, op *Operation) {
		if l == 0 || grants[l] > 1 {
			return
		}
		cur, ok := w[l]
		if !ok {
			cur = leaseWindow{firstReturn: math.MaxInt64, lastCall: math.MinInt64}
		}
		cur.firstReturn = min(cur.firstReturn, op.Return)
		cur.lastCall = max(cur.lastCall, op.Call)
		w[l] = cur
	}
	for i := range ops {
		op := &ops[i]
		if op.Outcome != OutcomeOK || op.Serializable || op.Rev != 0 {
			continue // a read at a past revision may see a lease revoked since
		}
		switch op.Kind {
		case KindPutLease, KindLeaseRevoke:
			need(op.Lease, op)
		case KindGet, KindCAS:
			if op.Resp.Found {
				need(op.Resp.Lease, op)
			}
		case KindRange:
			for _, kv := range op.Resp.KVs {
				need(kv.Lease, op)
			}
		}
	}
	return w
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
		case KindTxn:
			keys = append(keys, txnKeys(op.Txn)...)
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

// visualize writes Porcupine's HTML for partition p. Its search has the
// check's budget of steps again (it repeats the check's search, which
// fits in it unless the partition was undecided) and no timeout.
func (res *Result) visualize(model porcupine.Model, p []porcupine.Operation, opt Options) porcupine.LinearizationInfo {
	m, _ := countSteps(model, opt.budget())
	_, info := porcupine.CheckOperationsVerbose(m, p, 0)
	if opt.VisualizePath != "" {
		for _, a := range opt.Annotations {
			info.AddAnnotations([]porcupine.Annotation{{Tag: a.Tag, Description: a.Description, Details: a.Description,
				Start: a.Start, End: a.End, BackgroundColor: "#f5d5b8"}})
		}
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
