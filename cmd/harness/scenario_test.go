package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"

	"github.com/havoclab/havoc/scenarios"
	"github.com/havoclab/havoc/scenarios/library"
	"github.com/havoclab/havoc/scenarios/scenario"
)

// TestScenarioReplay runs a library scenario with a seed, then replays it
// from the scenario.yaml it stored: the history, watch events, trace and the
// scenario itself are byte-identical.
func TestScenarioReplay(t *testing.T) {
	outA := filepath.Join(t.TempDir(), "a")
	code, out, errOut := harness(t, "run", "--scenario", "leader-isolation", "--seed", "5", "--out", outA, "--keep")
	require.Equal(t, exitOK, code, "%s%s", out, errOut)
	require.Contains(t, out, "scenario leader-isolation: 3 members, 8 clients at 300 ops/s, 20s safety, 3 scheduled faults, expect ok\n")
	stored := filepath.Join(outA, "seed-5", scenarios.ScenarioFile)
	// An explicit schedule has no flags: the scenario file is the reproduce line.
	require.Contains(t, out, "reproduce: go run ./cmd/harness run --scenario "+stored+"\n")
	require.Equal(t, 1, strings.Count(out, "reproduce:"), out)

	outB := filepath.Join(t.TempDir(), "b")
	code, out, errOut = harness(t, "run", "--scenario", stored, "--out", outB, "--keep")
	require.Equal(t, exitOK, code, "%s%s", out, errOut)
	a, b := readDir(t, filepath.Join(outA, "seed-5")), readDir(t, filepath.Join(outB, "seed-5"))
	for _, name := range []string{"history.json.gz", "watch.json.gz", "trace.log.gz", scenarios.ScenarioFile, "schedule.txt", "seed"} {
		require.Contains(t, a, name)
		require.True(t, string(a[name]) == string(b[name]), "%s differs between the run and its replay", name)
	}
}

// TestDefaultRunStoresItsScenario: a plain run stores scenario.yaml too, it
// decodes to the run's configuration, and replaying it gives the same bytes;
// the plain run's reproduce line stays the flags.
func TestDefaultRunStoresItsScenario(t *testing.T) {
	outA := filepath.Join(t.TempDir(), "a")
	code, out, errOut := harness(t, "run", "--seed", "9", "--duration", "3s", "--clients", "4", "--rate", "300", "--out", outA, "--keep")
	require.Equal(t, exitOK, code, "%s%s", out, errOut)
	require.Contains(t, out, "reproduce: go run ./cmd/harness run --seed 9 --nodes 3 --clients 4 --duration 3s --rate 300 --faults all\n")
	require.Equal(t, 1, strings.Count(out, "reproduce:"), out)
	stored := filepath.Join(outA, "seed-9", scenarios.ScenarioFile)
	s, err := scenario.Load(stored)
	require.NoError(t, err)
	require.Equal(t, "run", s.Name)
	c, err := s.Config()
	require.NoError(t, err)
	f := runFlags{nodes: 3, clients: 4, duration: 3 * time.Second, faults: "all", rate: 300}
	want, err := f.config(9)
	require.NoError(t, err)
	want.Out, want.Keep = "", false
	require.Equal(t, want, c)

	outB := filepath.Join(t.TempDir(), "b")
	code, out, errOut = harness(t, "run", "--scenario", stored, "--out", outB, "--keep")
	require.Equal(t, exitOK, code, "%s%s", out, errOut)
	// Flags express it: both lines are printed.
	require.Contains(t, out, "reproduce: go run ./cmd/harness run --scenario "+filepath.Join(outB, "seed-9", scenarios.ScenarioFile)+"\n")
	require.Contains(t, out, "reproduce: go run ./cmd/harness run --seed 9 ")
	a, b := readDir(t, filepath.Join(outA, "seed-9")), readDir(t, filepath.Join(outB, "seed-9"))
	require.Equal(t, len(a), len(b))
	for name := range a {
		require.True(t, string(a[name]) == string(b[name]), "%s differs between the run and its replay", name)
	}
}

// TestScenarioFlagsOverride: flags given explicitly override the file's
// fields, and the stored scenario is the effective one.
func TestScenarioFlagsOverride(t *testing.T) {
	out := t.TempDir()
	code, stdout, errOut := harness(t, "run", "--scenario", "rolling-restart", "--seed", "3", "--rate", "150", "--nodes", "5",
		"--out", out, "--keep")
	require.Equal(t, exitOK, code, "%s%s", stdout, errOut)
	require.Contains(t, stdout, "scenario rolling-restart: 5 members, 8 clients at 150 ops/s")
	s, err := scenario.Load(filepath.Join(out, "seed-3", scenarios.ScenarioFile))
	require.NoError(t, err)
	require.Equal(t, 5, s.Cluster.Members)
	require.Equal(t, 150.0, s.Workload.Rate)
	require.Equal(t, 8, s.Workload.Clients, "not overridden: the file's")
	require.Equal(t, uint64(3), s.Seed)
	require.Len(t, s.Faults.Schedule, 3, "the file's schedule")

	// --profile switches the traffic (and its mix); a profile run replays from
	// its scenario.yaml like any other (the scenario file used to refuse
	// every profile, and the compactions of the default mix).
	code, stdout, errOut = harness(t, "run", "--scenario", "rolling-restart", "--seed", "5", "--profile", "kubernetes", "--out", out, "--keep")
	require.Equal(t, exitOK, code, "%s%s", stdout, errOut)
	s, err = scenario.Load(filepath.Join(out, "seed-5", scenarios.ScenarioFile))
	require.NoError(t, err)
	require.Equal(t, "kubernetes", s.Workload.Profile)
	c, err := s.Config()
	require.NoError(t, err)
	require.Equal(t, scenarios.Profiles["kubernetes"], c.Workload.Mix)

	// --faults replaces the schedule with a generator.
	code, stdout, errOut = harness(t, "run", "--scenario", "rolling-restart", "--seed", "4", "--faults", "loss", "--out", out, "--keep")
	require.Equal(t, exitOK, code, "%s%s", stdout, errOut)
	s, err = scenario.Load(filepath.Join(out, "seed-4", scenarios.ScenarioFile))
	require.NoError(t, err)
	require.Empty(t, s.Faults.Schedule)
	require.Equal(t, []string{"loss"}, s.Faults.Generator.Kinds)
}

func TestScenarioErrors(t *testing.T) {
	bad := writeFile(t, "bad.yaml", "name: x\ncluster:\n  members: 3\n  memebrs: 5\n")
	code, _, errOut := harness(t, "run", "--scenario", bad)
	require.Equal(t, exitUsage, code)
	require.Contains(t, errOut, "line 4")
	require.Contains(t, errOut, "memebrs")

	code, _, errOut = harness(t, "run", "--scenario", "no-such-scenario")
	require.Equal(t, exitUsage, code)
	require.Contains(t, errOut, "harness scenarios lists them")

	// An override that breaks the file is refused with the field.
	code, _, errOut = harness(t, "run", "--scenario", "rolling-restart", "--duration", "5s")
	require.Equal(t, exitUsage, code)
	require.Contains(t, errOut, "after the safety phase")

	code, _, errOut = harness(t, "sweep", "--scenario", "drill-save-restore", "--seeds", "1")
	require.Equal(t, exitUsage, code)
	require.Contains(t, errOut, "drill scenario")
}

func TestScenariosCommand(t *testing.T) {
	code, out, errOut := harness(t, "scenarios")
	require.Equal(t, exitOK, code, errOut)
	all, err := library.All()
	require.NoError(t, err)
	for _, e := range all {
		require.Regexp(t, regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(e.Scenario.Name)+` +`+strings.Join(e.Scenario.Backends(), ",")+` +\S`), out)
	}
	require.Regexp(t, `(?m)^member-replace-under-load +sim +Members replaced`, out)
	require.Regexp(t, `(?m)^clock-jumps-with-leases +sim +`, out)

	code, out, _ = harness(t, "scenarios", "leader-pause")
	require.Equal(t, exitOK, code)
	require.True(t, strings.HasPrefix(out, "name: leader-pause\n"), out)
}

// TestScenarioDrill runs a drill scenario by name.
func TestScenarioDrill(t *testing.T) {
	code, out, errOut := harness(t, "run", "--scenario", "drill-save-restore", "--seed", "2")
	require.Equal(t, exitOK, code, "%s%s", out, errOut)
	require.Contains(t, out, "scenario drill-save-restore: drill save-restore, 3 members")
	require.Contains(t, out, "drill save-restore seed 2")
}

// TestSweepScenarioPassesOnlyGivenFlags: with --scenario a sweep's workers get
// the flags given, not the defaults, which would override the file.
func TestSweepScenarioPassesOnlyGivenFlags(t *testing.T) {
	root, _, _ := newRoot()
	sweep, _, err := root.Find([]string{"sweep"})
	require.NoError(t, err)
	require.NoError(t, sweep.ParseFlags([]string{"--scenario", "leader-pause", "--rate", "200"}))
	var f runFlags
	f.register(&cobra.Command{Use: "bare"}, false, false)
	require.Equal(t, []string{"sweep-worker", "--rate=200", "--scenario=leader-pause"}, workerArgs(sweep.Flags(), f.names))
	t.Setenv("HAVOC_HARNESS_MAIN", "1") // the workers are this test binary
	code, out, errOut := harness(t, "sweep", "--scenario", "leader-pause", "--seeds", "1-2", "--parallel", "1", "--quiet", "--out", t.TempDir())
	require.Equal(t, exitOK, code, "%s%s", out, errOut)
	require.Contains(t, out, "all seeds passed")
}

// TestLibraryOnProcesses runs every library scenario a real backend can
// express on havoc processes, one seed each, and requires its verdict.
func TestLibraryOnProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real clusters on the wall clock")
	}
	bin := filepath.Join(t.TempDir(), "harness")
	b, err := exec.Command("go", "build", "-o", bin, "github.com/havoclab/havoc/cmd/harness").CombinedOutput()
	require.NoError(t, err, "%s", b)
	all, err := library.All()
	require.NoError(t, err)
	for _, e := range all {
		s := e.Scenario
		if s.Drill != "" || s.SimOnly() != "" {
			continue // drills run on processes in their own tests
		}
		t.Run(s.Name, func(t *testing.T) {
			cmd := exec.Command(bin, "run", "--scenario", s.Name, "--seed", "1", "--backend", "process", "--out", t.TempDir())
			cmd.Env = os.Environ()
			out, err := cmd.CombinedOutput()
			t.Logf("%s", out)
			require.NoError(t, err)
			require.Contains(t, string(out), "verdict="+s.ExpectedVerdict())
		})
	}
}

// TestSwarmRunReplays: a swarm run prints its drawn configuration, its
// reproduce line is its scenario.yaml, and replaying that file (without
// --swarm) gives the same bytes.
func TestSwarmRunReplays(t *testing.T) {
	outA := filepath.Join(t.TempDir(), "a")
	code, out, errOut := harness(t, "run", "--swarm", "--seed", "4", "--duration", "3s", "--out", outA, "--keep")
	require.Contains(t, []int{exitOK, exitViolation}, code, "%s%s", out, errOut)
	require.Regexp(t, `(?m)^config: members=[135] tick=\S+ election-ticks=\d+ snapshot-count=\d+ catch-up=\d+ .* faults=\S+ ops=\S+$`, out)
	stored := filepath.Join(outA, "seed-4", scenarios.ScenarioFile)
	require.Contains(t, out, "reproduce: go run ./cmd/harness run --scenario "+stored+"\n")

	outB := filepath.Join(t.TempDir(), "b")
	code2, out2, errOut2 := harness(t, "run", "--scenario", stored, "--out", outB, "--keep")
	require.Equal(t, code, code2, "%s%s", out2, errOut2)
	a, b := readDir(t, filepath.Join(outA, "seed-4")), readDir(t, filepath.Join(outB, "seed-4"))
	require.Equal(t, len(a), len(b))
	for name := range a {
		// config.json holds the reproduce line, which names its own directory.
		want := strings.ReplaceAll(string(a[name]), outA, outB)
		require.True(t, want == string(b[name]), "%s differs between the swarm run and its replay", name)
	}
}
