package scenarios

import (
	"os"
	"path/filepath"
	"time"

	"github.com/havoclab/havoc/linearizability"
)

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
// checker) over the history and sets the verdict. With visualize, Porcupine's
// HTML goes into the run's artifact directory.
func (r *Result) check(c Config, visualize bool, watch *linearizability.WatchOptions) {
	start := time.Now()
	defer func() { r.CheckWall = time.Since(start) }()
	opt := linearizability.Options{Budget: c.CheckBudget}
	if visualize && c.Out != "" {
		opt.VisualizePath = filepath.Join(artifactDir(c), "visualization.html")
		_ = os.MkdirAll(filepath.Dir(opt.VisualizePath), 0o755)
	}
	cr, err := linearizability.Check(r.History, opt)
	var werr error
	if watch != nil {
		werr = linearizability.CheckWatch(r.History, r.Watch, *watch)
	}
	switch {
	case werr != nil && (err != nil || cr.Verdict == linearizability.VerdictOK):
		r.Verdict, r.Reason = VerdictWatch, werr.Error()
	case err != nil:
		r.Verdict, r.Reason = VerdictUnknown, err.Error()
	case cr.Verdict == linearizability.VerdictOK:
		r.Verdict = VerdictOK
	case cr.Verdict == linearizability.VerdictIllegal:
		r.Verdict, r.Reason = VerdictIllegal, cr.Reason
	default:
		r.Verdict, r.Reason = VerdictUnknown, cr.Reason
	}
}
