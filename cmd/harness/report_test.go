package main

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/require"

	"github.com/havoclab/havoc/scenarios/bench"
	"github.com/havoclab/havoc/scenarios/report"
)

func TestParseShard(t *testing.T) {
	env := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	none := env(nil)
	s, err := parseShard("", none)
	require.NoError(t, err)
	require.Equal(t, shard{0, 1}, s)
	s, err = parseShard("2/4", none)
	require.NoError(t, err)
	require.Equal(t, shard{2, 4}, s)
	s, err = parseShard("", env(map[string]string{"JOB_COMPLETION_INDEX": "3", "JOB_COMPLETIONS": "5"}))
	require.NoError(t, err)
	require.Equal(t, shard{3, 5}, s)
	s, err = parseShard("1/2", env(map[string]string{"JOB_COMPLETION_INDEX": "3", "JOB_COMPLETIONS": "5"}))
	require.NoError(t, err)
	require.Equal(t, shard{1, 2}, s, "the flag wins over the environment")
	for _, bad := range []string{"4/4", "-1/4", "1/0", "x", "1/"} {
		_, err = parseShard(bad, none)
		require.Error(t, err, bad)
	}
	_, err = parseShard("", env(map[string]string{"JOB_COMPLETION_INDEX": "5", "JOB_COMPLETIONS": "5"}))
	require.ErrorContains(t, err, "JOB_COMPLETION_INDEX")

	seeds := []uint64{1, 2, 3, 4, 5, 6, 7}
	require.Equal(t, []uint64{2, 5}, shard{1, 3}.slice(seeds))
	var union []uint64
	for i := range 3 {
		union = append(union, shard{i, 3}.slice(seeds)...)
	}
	require.ElementsMatch(t, seeds, union)
}

func TestProgressLog(t *testing.T) {
	var b bytes.Buffer
	p := newProgressLog(&b, 20, time.Hour)
	for i := range 20 {
		v := "ok"
		if i == 3 {
			v = "not-linearizable"
		}
		p.add(v)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	require.Len(t, lines, 10)
	require.True(t, strings.HasPrefix(lines[9], "progress: 20/20 seeds, 1 not ok, "), lines[9])
	require.False(t, isTerminal(&b))
}

// TestSweepJUnitHasReproduceLine: a sweep's --junit file decodes as JUnit, one
// test case per seed, and a failing seed's failure message holds its
// reproduce line; --json and the results file in --out say the same.
func TestSweepJUnitHasReproduceLine(t *testing.T) {
	t.Setenv("HAVOC_HARNESS_MAIN", "1")
	t.Setenv("HAVOC_TEST_PANIC", "m2") // every seed fails (see TestMain)
	dir, out := t.TempDir(), t.TempDir()
	junit, js := filepath.Join(dir, "junit.xml"), filepath.Join(dir, "r.json")
	code, stdout, stderr := harness(t, "sweep", "--seeds", "1-2", "--parallel", "2", "--full-artifacts", "0", "--duration", "3s",
		"--swarm=false", "--clients", "2", "--faults", "none", "--rate", "100", "--out", out, "--junit", junit, "--json", js)
	require.Equal(t, exitViolation, code, "%s%s", stdout, stderr)
	require.Contains(t, stderr, "progress: 2/2 seeds, 2 not ok", "a log gets progress lines")
	b, err := os.ReadFile(junit)
	require.NoError(t, err)
	var doc report.TestSuites
	require.NoError(t, xml.Unmarshal(b, &doc))
	require.Equal(t, 2, doc.Tests)
	require.Equal(t, 2, doc.Failures)
	require.Len(t, doc.Suites, 1)
	tc := doc.Suites[0].Cases[0]
	require.Equal(t, "sweep", tc.Classname)
	require.Equal(t, "seed 1", tc.Name)
	require.NotNil(t, tc.Failure)
	require.Contains(t, tc.Failure.Message, "member-panic")
	require.Contains(t, tc.Failure.Message, "reproduce: go run ./cmd/harness run --seed 1 ")
	require.Contains(t, tc.Failure.Text, "artifacts: "+filepath.Join(out, "seed-1"))
	fromJSON, err := report.Read(js)
	require.NoError(t, err)
	fromOut, err := report.Read(filepath.Join(out, report.ResultsFile))
	require.NoError(t, err)
	require.Equal(t, fromJSON.Cases, fromOut.Cases)
	require.Len(t, fromOut.Cases, 2)
	require.Contains(t, stdout, "reproduce: "+fromOut.Cases[1].Repro)
}

// comparable is a case without what depends on the machine or the output
// directory: timings and the artifacts path.
func comparable(cs []report.Case) []report.Case {
	out := make([]report.Case, len(cs))
	for i, c := range cs {
		c.WallSec, c.CheckSec, c.Dir = 0, 0, ""
		out[i] = c
	}
	return out
}

// TestShardsMergeToTheWholeSweep: a sweep run as 4 shards (one through the
// Kubernetes variables) and merged by `harness report merge` has the same
// seeds, verdicts, reasons and reproduce lines as the same sweep unsharded.
func TestShardsMergeToTheWholeSweep(t *testing.T) {
	t.Setenv("HAVOC_HARNESS_MAIN", "1")
	args := []string{"sweep", "--seeds", "1-6", "--parallel", "2", "--full-artifacts", "0", "--duration", "3s", "--swarm=false", "--clients", "2", "--quiet"}
	whole := t.TempDir()
	code, stdout, stderr := harness(t, append(args, "--out", whole)...)
	require.Contains(t, []int{exitOK, exitViolation, exitInconclusive}, code, "%s%s", stdout, stderr)
	shared := t.TempDir() // shards write distinct results files, so they may share a directory
	for i := range 4 {
		a := append(args, "--out", shared)
		if i == 3 {
			t.Setenv("JOB_COMPLETION_INDEX", "3")
			t.Setenv("JOB_COMPLETIONS", "4")
		} else {
			a = append(a, "--shard", fmt.Sprintf("%d/4", i))
		}
		code, stdout, stderr := harness(t, a...)
		require.Contains(t, []int{exitOK, exitViolation, exitInconclusive}, code, "%s%s", stdout, stderr)
		require.Contains(t, stdout, fmt.Sprintf("shard %d/4: ", i))
	}
	dir := t.TempDir()
	junit, html, merged := filepath.Join(dir, "junit.xml"), filepath.Join(dir, "index.html"), filepath.Join(dir, "merged.json")
	mcode, mout, merr := harness(t, "report", "merge", shared, "--junit", junit, "--html", html, "--json", merged)
	require.Equal(t, code, mcode, "%s%s", mout, merr)
	want, err := report.Read(filepath.Join(whole, report.ResultsFile))
	require.NoError(t, err)
	got, err := report.Read(merged)
	require.NoError(t, err)
	require.Len(t, got.Cases, 6)
	require.Equal(t, 6, got.Planned)
	require.Equal(t, comparable(want.Cases), comparable(got.Cases))
	require.FileExists(t, junit)
	require.FileExists(t, html)
	require.Contains(t, mout, "6 of 6 planned")
}

// TestSweepTimeBox: a sweep whose --for budget is spent at once still runs
// its first seed, and says how many of its seeds ran.
func TestSweepTimeBox(t *testing.T) {
	t.Setenv("HAVOC_HARNESS_MAIN", "1")
	out := t.TempDir()
	code, stdout, stderr := harness(t, "sweep", "--seeds", "1-4", "--parallel", "1", "--for", "1ns", "--duration", "3s", "--swarm=false", "--clients", "2",
		"--faults", "none", "--quiet", "--out", out)
	require.Equal(t, exitOK, code, "%s%s", stdout, stderr)
	require.Contains(t, stdout, "time box --for 1ns: ran 1 of 4 seeds\n")
	r, err := report.Read(filepath.Join(out, report.ResultsFile))
	require.NoError(t, err)
	require.Equal(t, 4, r.Planned)
	require.Len(t, r.Cases, 1)
	require.Equal(t, uint64(1), r.Cases[0].Seed)
}

// TestRunWritesJUnit: `harness run --junit --json` reports its one seed.
func TestRunWritesJUnit(t *testing.T) {
	dir := t.TempDir()
	junit, js := filepath.Join(dir, "j.xml"), filepath.Join(dir, "r.json")
	code, stdout, stderr := harness(t, "run", "--seed", "3", "--duration", "3s", "--clients", "2", "--faults", "none", "--rate", "100",
		"--out", t.TempDir(), "--junit", junit, "--json", js)
	require.Equal(t, exitOK, code, "%s%s", stdout, stderr)
	r, err := report.Read(js)
	require.NoError(t, err)
	require.Len(t, r.Cases, 1)
	c := r.Cases[0]
	require.Equal(t, "run", c.Suite)
	require.Equal(t, "seed 3", c.Name)
	require.Equal(t, report.StatusPassed, c.Status)
	require.Contains(t, c.Repro, "run --seed 3 ")
	b, err := os.ReadFile(junit)
	require.NoError(t, err)
	var doc report.TestSuites
	require.NoError(t, xml.Unmarshal(b, &doc))
	require.Equal(t, 1, doc.Tests)
	require.Equal(t, "seed 3", doc.Suites[0].Cases[0].Name)
}

// TestDrillWritesJUnit: `harness drill NAME --junit` reports the drill as one
// test case, with a reproduce line that reruns it.
func TestDrillWritesJUnit(t *testing.T) {
	junit := filepath.Join(t.TempDir(), "j.xml")
	code, stdout, stderr := harness(t, "drill", "save-restore", "--seed", "2", "--duration", "3s", "--after", "2s", "--clients", "2",
		"--rate", "100", "--junit", junit)
	require.Equal(t, exitOK, code, "%s%s", stdout, stderr)
	b, err := os.ReadFile(junit)
	require.NoError(t, err)
	var doc report.TestSuites
	require.NoError(t, xml.Unmarshal(b, &doc))
	require.Equal(t, 1, doc.Tests)
	require.Equal(t, "drill", doc.Suites[0].Cases[0].Classname)
	require.Equal(t, "save-restore", doc.Suites[0].Cases[0].Name)
	require.Equal(t, "go run ./cmd/harness drill save-restore --seed 2 --after 2s --clients 2 --duration 3s --rate 100",
		drillRepro(mustDrillFlags(t, "--seed", "2", "--after", "2s", "--clients", "2", "--duration", "3s", "--rate", "100", "--junit", "x"), "save-restore", 2))
}

func mustDrillFlags(t *testing.T, args ...string) *pflag.FlagSet {
	t.Helper()
	cmd := newDrillCmd()
	require.NoError(t, cmd.ParseFlags(args))
	return cmd.Flags()
}

func TestBenchResults(t *testing.T) {
	runs := []*bench.Report{
		{Target: "havoc", Measured: 2 * time.Second, Ops: []bench.OpStats{{Op: "put", Count: 10, Errors: 1, Throughput: 5}}},
		{Target: "etcd", Measured: 3 * time.Second},
		{Target: "havoc", Measured: 2 * time.Second},
	}
	runs[1].Config.Seed = 7
	r := benchResults(runs, 2, 2)
	require.Equal(t, 4, r.Planned)
	require.Len(t, r.Cases, 3)
	require.Equal(t, "havoc round 1", r.Cases[0].Name)
	require.Equal(t, "etcd round 1", r.Cases[1].Name)
	require.Equal(t, "havoc round 2", r.Cases[2].Name)
	require.Equal(t, "put 10 ok 5/s; 1 errors", r.Cases[0].Reason)
	require.Equal(t, report.StatusPassed, r.Cases[1].Status)
	require.InDelta(t, 3.0, r.Cases[1].WallSec, 1e-9)
}

func TestMutantResults(t *testing.T) {
	rs := []mutantResult{
		{ID: "dedupe-off", Caught: true, Reproduced: true, Seeds: 1, Elapsed: time.Second,
			First: sweepResult{Seed: 1, Verdict: "not-linearizable", Reason: "r", Repro: "go run ./cmd/harness run --seed 1"}},
		{ID: "hash-skip-bucket", Seeds: 30, Passed: map[string]int{"ok": 30}},
		{ID: "x", Caught: true, Seeds: 2, First: sweepResult{Seed: 2, Verdict: "divergence"}, Repro: sweepResult{Verdict: "ok"}},
	}
	r := mutantResults(rs, 3)
	require.Len(t, r.Cases, 3)
	require.Equal(t, report.StatusPassed, r.Cases[0].Status)
	require.Equal(t, "HAVOC_MUTANT=dedupe-off go run -tags havoc_mutants ./cmd/harness run --seed 1", r.Cases[0].Repro)
	require.Equal(t, report.StatusFailed, r.Cases[1].Status)
	require.Equal(t, "missed in 30 seeds: ok×30", r.Cases[1].Reason)
	require.Equal(t, "not-reproduced", r.Cases[2].Verdict)
	require.Contains(t, r.Cases[2].Reason, "the rerun gave ok")
}
