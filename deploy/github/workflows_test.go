package github

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rhysd/actionlint"
	"github.com/stretchr/testify/require"
)

// workflowDir is the repository's workflow directory, from this package.
const workflowDir = "../../.github/workflows"

// lint runs actionlint (shellcheck and pyflakes off, so the result does not
// depend on what the machine has installed) over one workflow's bytes.
func lint(t *testing.T, path string, content []byte) []*actionlint.Error {
	t.Helper()
	l, err := actionlint.NewLinter(io.Discard, &actionlint.LinterOptions{})
	require.NoError(t, err)
	errs, err := l.Lint(path, content, nil)
	require.NoError(t, err)
	return errs
}

// workflows reads and parses every workflow file, keyed by file name.
func workflows(t *testing.T) map[string]*actionlint.Workflow {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(workflowDir, "*.yml"))
	require.NoError(t, err)
	require.NotEmpty(t, files, "no workflow in %s", workflowDir)
	out := map[string]*actionlint.Workflow{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		w, errs := actionlint.Parse(b)
		require.Empty(t, errs, "%s does not parse", f)
		out[filepath.Base(f)] = w
	}
	return out
}

func TestWorkflowsPassActionlint(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(workflowDir, "*.yml"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, e := range lint(t, f, b) {
			t.Errorf("%s:%d:%d: %s [%s]", f, e.Line, e.Column, e.Message, e.Kind)
		}
	}
}

// The lint is not a formality: a workflow with an undefined matrix value, an
// unknown context and a bad cron line is refused with one error for each.
func TestActionlintRefusesBrokenWorkflow(t *testing.T) {
	broken := []byte(`name: broken
on:
  schedule:
    - cron: "61 * * * *"
jobs:
  a:
    runs-on: ubuntu-24.04
    strategy:
      matrix:
        shard: [0, 1]
    steps:
      - run: echo ${{ matrix.shrad }}
      - run: echo ${{ nosuch.value }}
`)
	errs := lint(t, "broken.yml", broken)
	var kinds []string
	for _, e := range errs {
		kinds = append(kinds, e.Kind)
	}
	require.Len(t, errs, 3, "errors: %v", errs)
	require.Contains(t, kinds, "events")
	require.Contains(t, kinds, "expression")
}

// step returns the action (uses) or the command (run) of a step, and its if.
func step(s *actionlint.Step) (uses, run, cond string) {
	switch e := s.Exec.(type) {
	case *actionlint.ExecAction:
		uses = e.Uses.Value
	case *actionlint.ExecRun:
		run = e.Run.Value
	}
	if s.If != nil {
		cond = s.If.Value
	}
	return uses, run, cond
}

// hasEvent reports whether the workflow is triggered by the named event.
func hasEvent(w *actionlint.Workflow, name string) bool {
	for _, e := range w.On {
		if e.EventName() == name {
			return true
		}
	}
	return false
}

func TestPullRequestsRunTheTestCommand(t *testing.T) {
	w := workflows(t)["ci.yml"]
	require.NotNil(t, w, "ci.yml is the pull-request workflow")
	require.True(t, hasEvent(w, "pull_request"))
	var runsCI bool
	for _, j := range w.Jobs {
		for _, s := range j.Steps {
			if _, run, _ := step(s); strings.Contains(run, ".ci/run") {
				runsCI = true
			}
		}
	}
	// .ci/run calls ./scripts/test.sh, the README's test command, which sweeps
	// a short seed list after the tests.
	require.True(t, runsCI, "the pull-request job runs .ci/run")
	ci, err := os.ReadFile("../../.ci/run")
	require.NoError(t, err)
	require.Contains(t, string(ci), "./scripts/test.sh")
}

func TestNightlySweepsShardsAndMergesThem(t *testing.T) {
	w := workflows(t)["nightly.yml"]
	require.NotNil(t, w, "nightly.yml is the scheduled workflow")
	require.True(t, hasEvent(w, "schedule"))
	require.True(t, hasEvent(w, "workflow_dispatch"))

	sweep := w.Jobs["sweep"]
	require.NotNil(t, sweep)
	require.NotNil(t, sweep.Strategy, "the sweep is a matrix of shards")
	require.False(t, sweep.Strategy.FailFast.Value, "one failing shard must not cancel the others")
	var sweepCmd string
	for _, s := range sweep.Steps {
		if _, run, _ := step(s); strings.Contains(run, "harness sweep") {
			sweepCmd = run
		}
	}
	for _, flag := range []string{"--swarm", "--shard", "--for", "--junit", "--out"} {
		require.Contains(t, sweepCmd, flag)
	}

	merge := w.Jobs["merge"]
	require.NotNil(t, merge)
	require.Equal(t, "always()", merge.If.Value, "failing shards are merged too")
	var needs []string
	for _, n := range merge.Needs {
		needs = append(needs, n.Value)
	}
	require.Contains(t, needs, "sweep")
	var merges bool
	for _, s := range merge.Steps {
		if _, run, _ := step(s); strings.Contains(run, "harness report merge") {
			merges = true
		}
	}
	require.True(t, merges)
	require.Contains(t, w.Jobs, "mutants")
	require.Contains(t, w.Jobs, "real-etcd")
}

// Artifacts and JUnit reports are published whether a job passes or fails:
// a failing run's artifacts are what an engineer needs.
func TestResultsArePublishedAlways(t *testing.T) {
	for name, w := range workflows(t) {
		for id, j := range w.Jobs {
			var uploads int
			for _, s := range j.Steps {
				uses, _, cond := step(s)
				if strings.HasPrefix(uses, "actions/upload-artifact@") || strings.HasPrefix(uses, "mikepenz/action-junit-report@") {
					uploads++
					require.Equal(t, "always()", cond, "%s job %s: %s must run on failure too", name, id, uses)
				}
			}
			require.NotZero(t, uploads, "%s job %s publishes nothing", name, id)
		}
	}
}

// Every repository script a workflow runs exists and is executable.
func TestWorkflowScriptsExist(t *testing.T) {
	for name, w := range workflows(t) {
		for _, j := range w.Jobs {
			for _, s := range j.Steps {
				_, run, _ := step(s)
				for _, f := range strings.Fields(run) {
					if !strings.HasPrefix(f, "scripts/") && !strings.HasPrefix(f, ".ci/") {
						continue
					}
					st, err := os.Stat(filepath.Join("../..", f))
					require.NoError(t, err, "%s runs %s", name, f)
					require.NotZero(t, st.Mode()&0o111, "%s runs %s, which is not executable", name, f)
				}
			}
		}
	}
}
