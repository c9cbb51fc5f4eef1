package explain

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/havoclab/havoc/linearizability"
)

// DefaultWindow is how much time Build shows on each side of the failing
// operation.
const DefaultWindow = time.Second

// maxOps bounds the operations a report draws: those nearest the failing
// operation are kept.
const maxOps = 400

// Report is what a failing run shows: the view that Text and HTML render.
type Report struct {
	Dir, Verdict, Reason string
	// Check is the linearizability checker's result on the run's history
	// (zero when the run has no history).
	Check linearizability.Result
	// Keys are the failing keys; Failing is the first operation that cannot
	// be linearized and LastLinearized the last one placed before it (nil
	// when the checker names none). State is the model's state before
	// Failing, as the checker describes it.
	Keys                    []string
	Failing, LastLinearized *linearizability.Operation
	State                   string
	// LastWrites are, per failing key, the acknowledged write of it that
	// returned last before Failing was called: the state the client could
	// expect, whatever check found the failure.
	LastWrites []linearizability.Operation
	// From and To bound the time axis; Ops are the operations of Keys that
	// overlap it, by call time; Clients the clients that issued them, one
	// row each.
	From, To time.Duration
	Ops      []linearizability.Operation
	Clients  []int
	Faults   []Fault
	Markers  []Marker
	// Visualization is the run's Porcupine page, relative to Dir, if
	// present; Porcupine the one Build had the check write (Options), with
	// the fault windows, if it did. The page links both as they are (set
	// them relative to where the page is written).
	Visualization, Porcupine string
}

// Options tune Build.
type Options struct {
	// Window is the time shown on each side of the failing operation
	// (zero: DefaultWindow).
	Window time.Duration
	// Porcupine, if not empty, is where the check writes Porcupine's
	// visualization of the failing partition, the run's fault windows drawn
	// on it as annotations.
	Porcupine string
}

// Build checks r's history and gathers what a report shows: the operations
// of the failing keys within the window of the failing operation, and back
// to the last acknowledged write of each (the whole run when the checker
// names no operation).
func Build(r *Run, opt Options) (*Report, error) {
	window := opt.Window
	if window <= 0 {
		window = DefaultWindow
	}
	rep := &Report{Dir: r.Dir, Verdict: r.Verdict, Reason: r.Reason, Visualization: r.Visualization}
	byID := map[int64]*linearizability.Operation{}
	for i := range r.History {
		byID[r.History[i].ID] = &r.History[i]
	}
	var end time.Duration
	for i := range r.History {
		end = max(end, time.Duration(r.History[i].Call))
	}
	end = max(end, r.Duration)
	rep.From, rep.To = 0, end
	if len(r.History) > 0 {
		copt := linearizability.Options{Budget: r.CheckBudget, VisualizePath: opt.Porcupine}
		for _, f := range r.Faults {
			copt.Annotations = append(copt.Annotations, linearizability.Annotation{Tag: "faults",
				Description: f.Name, Start: int64(f.From), End: int64(f.To)})
		}
		res, err := linearizability.Check(r.History, copt)
		if err != nil {
			return nil, fmt.Errorf("checking %s: %w", r.Dir, err)
		}
		rep.Check = res
		rep.Porcupine = res.Visualization
		rep.Keys = res.Keys
		if res.Verdict == linearizability.VerdictIllegal {
			if len(res.OpIDs) > 0 {
				rep.Failing = byID[res.OpIDs[0]]
			}
			if len(res.OpIDs) > 1 {
				rep.LastLinearized = byID[res.OpIDs[1]]
			}
			rep.State = stateBefore(res.Reason)
		}
	}
	if f := rep.Failing; f != nil {
		rep.LastWrites = lastWrites(r.History, rep.Keys, f.Call)
		rep.From = max(0, time.Duration(f.Call)-window)
		rep.To = time.Duration(f.Return) + window
		// Show the writes the failing operation should have seen.
		for _, w := range rep.LastWrites {
			rep.From = max(0, min(rep.From, time.Duration(w.Call)-window/10))
		}
	}
	if len(rep.Keys) > 0 {
		for _, op := range r.History {
			if time.Duration(op.Return) < rep.From || time.Duration(op.Call) > rep.To || !touches(&op, rep.Keys) {
				continue
			}
			rep.Ops = append(rep.Ops, op)
		}
		if len(rep.Ops) > maxOps && rep.Failing != nil {
			mid := rep.Failing.Call
			slices.SortStableFunc(rep.Ops, func(a, b linearizability.Operation) int {
				return cmpAbs(a.Call-mid, b.Call-mid)
			})
			rep.Ops = rep.Ops[:maxOps]
		}
		slices.SortStableFunc(rep.Ops, func(a, b linearizability.Operation) int {
			if a.Call != b.Call {
				return cmpAbs(a.Call, b.Call)
			}
			return cmpAbs(a.ID, b.ID)
		})
	}
	for _, op := range rep.Ops {
		if !slices.Contains(rep.Clients, op.Client) {
			rep.Clients = append(rep.Clients, op.Client)
		}
	}
	slices.Sort(rep.Clients)
	for _, f := range r.Faults {
		if f.To >= rep.From && f.From <= rep.To {
			rep.Faults = append(rep.Faults, f)
		}
	}
	for _, m := range r.Markers {
		if m.At >= rep.From && m.At <= rep.To {
			rep.Markers = append(rep.Markers, m)
		}
	}
	return rep, nil
}

// lastWrites returns, for each of keys, the acknowledged write of it that
// returned last before time before.
func lastWrites(ops []linearizability.Operation, keys []string, before int64) []linearizability.Operation {
	var out []linearizability.Operation
	for _, k := range keys {
		var last *linearizability.Operation
		for i := range ops {
			op := &ops[i]
			if op.Key != k || op.Outcome != linearizability.OutcomeOK || op.Return >= before {
				continue
			}
			switch {
			case op.Kind == linearizability.KindPut, op.Kind == linearizability.KindPutLease, op.Kind == linearizability.KindDelete,
				op.Kind == linearizability.KindCAS && op.Resp.Succeeded:
				if last == nil || op.Return > last.Return {
					last = op
				}
			}
		}
		if last != nil {
			out = append(out, *last)
		}
	}
	return out
}

func cmpAbs(a, b int64) int {
	if a < 0 {
		a = -a
	}
	if b < 0 {
		b = -b
	}
	return cmp.Compare(a, b)
}

// touches reports whether op reads or writes one of keys (a range, by its
// prefix).
func touches(op *linearizability.Operation, keys []string) bool {
	for _, k := range keys {
		if op.Key == k || op.Prefix != "" && strings.HasPrefix(k, op.Prefix) {
			return true
		}
	}
	return false
}

// stateBefore extracts the model state the checker's reason gives before
// the operation that cannot take effect ("..., state {k/054=c03-7}, #12 ...").
func stateBefore(reason string) string {
	i := strings.LastIndex(reason, "state {")
	if i < 0 {
		return ""
	}
	rest := reason[i+len("state {"):]
	j := strings.LastIndex(rest, "}, #")
	if j < 0 {
		return ""
	}
	return rest[:j]
}

// Text writes the report as plain text: verdict, failing operation, state
// before it, faults, markers and the failing keys' operations.
func (rep *Report) Text(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "run: %s\nverdict: %s\n", rep.Dir, rep.Verdict)
	if rep.Reason != "" {
		fmt.Fprintf(&b, "reason: %s\n", rep.Reason)
	}
	if rep.Check.Verdict != "" {
		fmt.Fprintf(&b, "linearizability (rechecked): %s\n", rep.Check.Verdict)
		if rep.Check.Reason != "" {
			fmt.Fprintf(&b, "checker: %s\n", rep.Check.Reason)
		}
	}
	if len(rep.Keys) > 0 {
		fmt.Fprintf(&b, "keys: %s\n", strings.Join(rep.Keys, " "))
	}
	if op := rep.Failing; op != nil {
		fmt.Fprintf(&b, "first operation that cannot be linearized: %s\n", describe(op))
		if rep.LastLinearized != nil {
			fmt.Fprintf(&b, "last linearized before it: %s\n", describe(rep.LastLinearized))
		}
		if rep.State != "" {
			fmt.Fprintf(&b, "state before it (the checker's model): {%s}\n", rep.State)
		}
		for i := range rep.LastWrites {
			fmt.Fprintf(&b, "last acknowledged write of %q before it: %s\n", rep.LastWrites[i].Key, describe(&rep.LastWrites[i]))
		}
	}
	if rep.Failing == nil && rep.Check.Verdict == linearizability.VerdictOK {
		b.WriteString("the history is linearizable: no operation to point at (the timeline shows the whole run)\n")
	}
	fmt.Fprintf(&b, "window: %s to %s\n", seconds(rep.From), seconds(rep.To))
	fmt.Fprintf(&b, "faults in the window (%d):\n", len(rep.Faults))
	for _, f := range rep.Faults {
		fmt.Fprintf(&b, "  %s .. %s  %s\n", seconds(f.From), seconds(f.To), f.Name)
	}
	fmt.Fprintf(&b, "leader changes and restarts in the window (%d):\n", len(rep.Markers))
	for _, m := range rep.Markers {
		fmt.Fprintf(&b, "  %s  %s %s\n", seconds(m.At), m.Member, m.What)
	}
	if len(rep.Keys) > 0 {
		fmt.Fprintf(&b, "operations on the keys in the window (%d):\n", len(rep.Ops))
		for i := range rep.Ops {
			mark := "  "
			switch {
			case rep.Failing != nil && rep.Ops[i].ID == rep.Failing.ID:
				mark = "=>"
			case rep.LastLinearized != nil && rep.Ops[i].ID == rep.LastLinearized.ID:
				mark = "* "
			}
			fmt.Fprintf(&b, "%s %s\n", mark, describe(&rep.Ops[i]))
		}
	}
	if rep.Visualization != "" {
		fmt.Fprintf(&b, "porcupine: %s\n", rep.Visualization)
	}
	if rep.Porcupine != "" {
		fmt.Fprintf(&b, "porcupine with the fault windows: %s\n", rep.Porcupine)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// maxDescribe bounds an operation's description (a range's answer lists
// every key).
const maxDescribe = 200

// describe renders op on one line: times, client, member, request, outcome.
func describe(op *linearizability.Operation) string {
	d := linearizability.Describe(op)
	if len(d) > maxDescribe {
		d = d[:maxDescribe] + " ..."
	}
	s := fmt.Sprintf("#%d %s..%s c%02d@%s %s", op.ID, seconds(time.Duration(op.Call)), seconds(time.Duration(op.Return)),
		op.Client, op.Member, d)
	if op.Outcome != linearizability.OutcomeOK && op.Error != "" {
		s += " (" + op.Error + ")"
	}
	return s
}
