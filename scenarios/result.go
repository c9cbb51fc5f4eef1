package scenarios

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/havoclab/havoc/linearizability"
)

// severity orders the verdicts: the most severe finding of a run is its
// headline. A member that died or diverged comes first (nothing else it did can
// be trusted), then the safety checks of the history, then liveness.
var severity = []string{
	VerdictPanic, VerdictFailed, VerdictDivergence, VerdictIllegal, VerdictWatch, VerdictLease,
	VerdictNoLiveness, VerdictInconclusive,
}

// Finding is one thing a run found wrong: a verdict, its reason in one short
// line (at most ReasonMax bytes: the anomaly, the key, the operations with
// their client, member and time, and the faults active then), and the full
// text when the reason had to leave something out.
type Finding struct {
	Verdict string `json:"verdict"`
	Reason  string `json:"reason"`
	Detail  string `json:"detail,omitempty"`
}

// ReasonMax bounds a finding's Reason (and so Result.Reason) in bytes; the
// full text goes to Finding.Detail and summary.txt.
const ReasonMax = 300

// addFinding records a finding whose reason is its whole text (clipped to
// ReasonMax, the whole kept as the detail); finish picks the headline.
func (r *Result) addFinding(verdict, reason string) { r.addDetailed(verdict, reason, reason) }

// addDetailed records a finding with a short reason and its full text.
func (r *Result) addDetailed(verdict, reason, detail string) {
	f := Finding{Verdict: verdict, Reason: clip(reason, ReasonMax)}
	if detail != f.Reason {
		f.Detail = detail
	}
	r.Findings = append(r.Findings, f)
}

// clip cuts s to at most n bytes (on a rune boundary), saying where the rest is.
func clip(s string, n int) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) <= n {
		return s
	}
	const more = "... (full text in summary.txt)"
	cut := n - len(more)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + more
}

// faultWindow is a fault as it was applied: from its start to its end (to < 0
// while it is active), described with its targets resolved.
type faultWindow struct {
	from, to time.Duration
	desc     string
}

// faultStarted records a fault applied at at and returns its index for
// faultEnded.
func (r *Result) faultStarted(at time.Duration, desc string) int {
	r.windows = append(r.windows, faultWindow{from: at, to: -1, desc: desc})
	return len(r.windows) - 1
}

// faultEnded records the end of fault i (the first end counts).
func (r *Result) faultEnded(i int, at time.Duration) {
	if r.windows[i].to < 0 {
		r.windows[i].to = at
	}
}

// healedAll ends every fault still active at at (the liveness phase's heal).
func (r *Result) healedAll(at time.Duration) {
	for i := range r.windows {
		r.faultEnded(i, at)
	}
}

// activeAt describes the faults active at t ("no faults" when none was).
func (r *Result) activeAt(t time.Duration) string {
	var on []string
	for _, w := range r.windows {
		if w.from <= t && (w.to < 0 || t < w.to) {
			on = append(on, w.desc)
		}
	}
	if len(on) == 0 {
		return "no faults active"
	}
	return "faults active: " + strings.Join(on, ", ")
}

// describeOp names one operation of the history in a few words: what it was,
// its client, the member that served it and when it was called.
func (r *Result) describeOp(id int64) (string, time.Duration, bool) {
	i := slices.IndexFunc(r.History, func(op linearizability.Operation) bool { return op.ID == id })
	if i < 0 {
		return fmt.Sprintf("#%d", id), 0, false
	}
	op := &r.History[i]
	at := time.Duration(op.Call)
	what := string(op.Kind)
	if op.Outcome != linearizability.OutcomeOK {
		what += " (" + string(op.Outcome) + ")"
	}
	return fmt.Sprintf("#%d %s by c%02d via %s at %.3fs", op.ID, what, op.Client, op.Member, at.Seconds()), at, true
}

// anomaly names what the checker found, in a few words, from its reason.
func anomaly(reason string) string {
	head, _, _ := strings.Cut(reason, ":")
	switch {
	case strings.Contains(reason, "has no linearization"):
		return "no linearization"
	case strings.Contains(reason, " absent at revision "):
		return "lost write (a read found the key absent)"
	case strings.Contains(reason, "out of order or outside the prefix"):
		return "range out of order"
	case strings.HasPrefix(reason, "#"):
		if i := strings.LastIndex(reason, ": "); i >= 0 && len(reason)-i < 100 {
			return reason[i+2:]
		}
	case len(head) <= 60 && !strings.ContainsAny(head, "#("):
		return head
	}
	return "not linearizable"
}

// illegalReason is the short reason of a linearizability violation: the
// anomaly, the first key (and how many more), the operations with their
// client, member and time, and the faults active when the last of them was
// called.
func (r *Result) illegalReason(cr linearizability.Result) string {
	var b strings.Builder
	b.WriteString(anomaly(cr.Reason))
	if len(cr.Keys) > 0 {
		fmt.Fprintf(&b, ": key %q", cr.Keys[0])
		if len(cr.Keys) > 1 {
			fmt.Fprintf(&b, " (+%d more keys)", len(cr.Keys)-1)
		}
	}
	var last time.Duration
	found := false
	for i, id := range cr.OpIDs {
		if i == 2 {
			fmt.Fprintf(&b, " (+%d more ops)", len(cr.OpIDs)-2)
			break
		}
		d, at, ok := r.describeOp(id)
		sep := "; "
		if i > 0 {
			sep = ", "
		}
		b.WriteString(sep + d)
		if ok && at >= last {
			last, found = at, true
		}
	}
	if found {
		b.WriteString("; " + r.activeAt(last))
	}
	return b.String()
}

// listReasonOf is the short reason of a finding made of many violations (the
// first, and how many more there are) and its full text.
func listReasonOf(items []string, what string) (reason, detail string) {
	reason = items[0]
	if len(items) > 1 {
		more := fmt.Sprintf(" (+%d more %s)", len(items)-1, what)
		reason = clip(reason, ReasonMax-len(more)) + more
	}
	return reason, strings.Join(items, "\n")
}

// finish sets Verdict and Reason from the most severe finding (ok if none),
// keeping the findings in order of severity.
func (r *Result) finish() {
	rank := func(v string) int {
		if i := slices.Index(severity, v); i >= 0 {
			return i
		}
		return len(severity)
	}
	slices.SortStableFunc(r.Findings, func(a, b Finding) int { return rank(a.Verdict) - rank(b.Verdict) })
	if len(r.Findings) == 0 {
		r.Verdict, r.Reason = VerdictOK, ""
		return
	}
	r.Verdict, r.Reason = r.Findings[0].Verdict, r.Findings[0].Reason
}

// Caveat says what a run did not test, for its final line: "" when nothing
// was skipped, "skipped: duplicate, reorder" when the backend could not
// express some fault kinds of the schedule, and "no faults applied: skipped
// duplicate, reorder" when it applied none of the schedule's faults (a pass
// then says little).
func (r *Result) Caveat() string {
	if len(r.Skipped) == 0 {
		return ""
	}
	kinds := make([]string, len(r.Skipped))
	for i, k := range r.Skipped {
		kinds[i] = string(k)
	}
	if r.FaultsApplied == 0 {
		return "no faults applied: skipped " + strings.Join(kinds, ", ")
	}
	return "skipped: " + strings.Join(kinds, ", ")
}

// tally counts the outcomes of the recorded history.
func (r *Result) tally() {
	r.OK, r.Failed, r.Unknown = 0, 0, 0
	for _, op := range r.History {
		switch op.Outcome {
		case linearizability.OutcomeOK:
			r.OK++
		case linearizability.OutcomeFail:
			r.Failed++
		default:
			r.Unknown++
		}
	}
	r.Operations = len(r.History)
}

// check runs the linearizability checker (and, when watch is set, the watch
// checker) over the history and records what they find. With visualize,
// Porcupine's HTML goes into the run's artifact directory.
func (r *Result) check(c Config, visualize bool, watch *linearizability.WatchOptions) {
	start := time.Now()
	defer func() { r.CheckWall = time.Since(start) }()
	opt := linearizability.Options{Budget: c.CheckBudget}
	if visualize && c.Out != "" {
		opt.VisualizePath = filepath.Join(artifactDir(c), "visualization.html")
		_ = os.MkdirAll(filepath.Dir(opt.VisualizePath), 0o755)
	}
	cr, err := linearizability.Check(r.History, opt)
	if watch != nil {
		if werr := linearizability.CheckWatch(r.History, r.Watch, *watch); werr != nil {
			r.addFinding(VerdictWatch, werr.Error())
		}
	}
	switch {
	case err != nil:
		r.addFinding(VerdictInconclusive, err.Error())
	case cr.Verdict == linearizability.VerdictOK:
	case cr.Verdict == linearizability.VerdictIllegal:
		r.addDetailed(VerdictIllegal, r.illegalReason(cr), cr.Reason)
	default:
		r.addFinding(VerdictInconclusive, cr.Reason)
	}
}
