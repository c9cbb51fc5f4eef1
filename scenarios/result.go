package scenarios

import (
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/havoclab/havoc/linearizability"
)

// severity orders the verdicts: the most severe finding of a run is its
// headline. A member that died or diverged comes first (nothing else it did can
// be trusted), then the safety checks of the history, then liveness.
var severity = []string{
	VerdictPanic, VerdictFailed, VerdictDivergence, VerdictIllegal, VerdictWatch, VerdictLease,
	VerdictNoLiveness, VerdictUnknown,
}

// Finding is one thing a run found wrong: a verdict and its reason.
type Finding struct {
	Verdict string `json:"verdict"`
	Reason  string `json:"reason"`
}

// addFinding records a finding; finish picks the headline.
func (r *Result) addFinding(verdict, reason string) {
	r.Findings = append(r.Findings, Finding{Verdict: verdict, Reason: reason})
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
	opt := linearizability.Options{Timeout: c.CheckTimeout}
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
		r.addFinding(VerdictUnknown, err.Error())
	case cr.Verdict == linearizability.VerdictOK:
	case cr.Verdict == linearizability.VerdictIllegal:
		r.addFinding(VerdictIllegal, cr.Reason)
	default:
		r.addFinding(VerdictUnknown, cr.Reason)
	}
}
