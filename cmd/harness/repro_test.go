package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/require"

	"github.com/havoclab/havoc/scenarios"
)

// runFlagValues are test values for the flags of `harness run` that change a
// simulated run: small (a short run with few clients), and not the defaults.
// A new run flag fails TestReproCarriesEveryFlag until it is given a value
// here or a reason in replayNeutral.
var runFlagValues = map[string]string{
	"seed":     "11",
	"nodes":    "5",
	"clients":  "3",
	"duration": "2s",
	"faults":   "crash,loss,partition-minority",
	"rate":     "700",
	"profile":  "kubernetes",
}

// neutralFlagValues are values for the replay-neutral flags that a simulated
// run accepts and ignores (backend stays sim).
func neutralFlagValues(t *testing.T) map[string]string {
	tmp := t.TempDir()
	return map[string]string{
		"cpuprofile": filepath.Join(tmp, "cpu.pprof"),
		"target":     "etcd",
		"etcd-bin":   filepath.Join(tmp, "no-etcd"),
		"run-dir":    filepath.Join(tmp, "run-dir"),
		"cpus":       "0.5",
		"memory":     "64m",
	}
}

// runFlagsOf lists every flag `harness run` accepts, its own and inherited.
func runFlagsOf(t *testing.T) []*pflag.Flag {
	root, _, _ := newRoot()
	run, _, err := root.Find([]string{"run"})
	require.NoError(t, err)
	require.NoError(t, run.ParseFlags(nil)) // merges the root's persistent flags
	var out []*pflag.Flag
	run.Flags().VisitAll(func(f *pflag.Flag) { out = append(out, f) })
	require.NotEmpty(t, out)
	return out
}

// TestReproCarriesEveryFlag changes every flag of `harness run` at once, runs a
// short simulated run with --keep, then runs the reproduce line it printed and
// requires byte-identical artifacts. (The reproduce line used to drop --rate:
// a --rate 2000 failure replayed as a different run.)
func TestReproCarriesEveryFlag(t *testing.T) {
	neutral := neutralFlagValues(t)
	outA := filepath.Join(t.TempDir(), "a")
	args := []string{"run", "--out", outA, "--keep"}
	for _, f := range runFlagsOf(t) {
		if v, ok := runFlagValues[f.Name]; ok {
			require.NotEqual(t, f.DefValue, v, "--%s: the test value must change the run", f.Name)
			args = append(args, "--"+f.Name, v)
			continue
		}
		_, isNeutral := replayNeutral[f.Name]
		require.True(t, isNeutral, "--%s: give it a test value in runFlagValues (and make the reproduce line carry it) or a reason in replayNeutral", f.Name)
		if v, ok := neutral[f.Name]; ok {
			args = append(args, "--"+f.Name, v)
		}
	}
	code, out, errOut := harness(t, args...)
	require.Contains(t, []int{exitOK, exitViolation}, code, "%s%s", out, errOut)
	m := regexp.MustCompile(`(?m)^reproduce: go run \./cmd/harness (.*)$`).FindStringSubmatch(out)
	require.NotNil(t, m, out)
	for name, v := range runFlagValues {
		require.Contains(t, m[1], "--"+name+" "+v, "the reproduce line carries --%s", name)
	}

	outB := filepath.Join(t.TempDir(), "b")
	code2, out2, errOut2 := harness(t, append(strings.Fields(m[1]), "--out", outB, "--keep")...)
	require.Equal(t, code, code2, "%s%s", out2, errOut2)
	a, b := readDir(t, filepath.Join(outA, "seed-11")), readDir(t, filepath.Join(outB, "seed-11"))
	require.Contains(t, a, "trace.log.gz")
	require.Contains(t, a, "history.json.gz")
	code, out, errOut = harness(t, "check", filepath.Join(outA, "seed-11", "history.json.gz"))
	require.Equal(t, exitOK, code, "%s%s", out, errOut)
	require.Equal(t, len(a), len(b), "same files")
	for name := range a {
		require.True(t, string(a[name]) == string(b[name]), "%s differs between the run and its reproduce line", name)
	}
}

// readDir reads every file of dir.
func readDir(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	out := map[string][]byte{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		out[e.Name()] = b
	}
	return out
}

// TestZeroFlagsRefused: a zero count, duration or rate is a usage error, never
// a silent default.
func TestZeroFlagsRefused(t *testing.T) {
	for _, args := range [][]string{
		{"run", "--nodes", "0"}, {"run", "--clients", "0"}, {"run", "--duration", "0s"}, {"run", "--rate", "0"},
		{"run", "--nodes", "-1"}, {"run", "--rate", "-5"}, {"run", "--duration", "500ms"},
		{"sweep", "--nodes", "0"}, {"sweep", "--parallel", "0"}, {"sweep", "--full-artifacts", "-1"},
		{"drill", "save-restore", "--nodes", "0"}, {"drill", "save-restore", "--clients", "0"},
		{"drill", "save-restore", "--duration", "0s"}, {"drill", "save-restore", "--after", "0s"},
		{"drill", "save-restore", "--rate", "0"},
		{"check", "--budget", "0", "x.json"},
	} {
		code, _, errOut := harness(t, args...)
		require.Equal(t, exitUsage, code, "%v: %s", args, errOut)
		require.Equal(t, 1, strings.Count(errOut, "\n"), "%v: one line: %q", args, errOut)
	}
}

// TestResultLine: a simulated run's result line has the simulator's counters
// (virtual time, events); a real run's has neither, and no simulator reproduce
// line.
func TestResultLine(t *testing.T) {
	c := scenarios.Config{Seed: 4, Members: 3, Duration: 2 * time.Second, Workload: scenarios.Workload{Clients: 2, Rate: 10}}
	r := &scenarios.Result{Seed: 4, Verdict: scenarios.VerdictNoLiveness, Reason: "m2 does not answer", Virtual: 3 * time.Second, Events: 99, Wall: 1500 * time.Millisecond}
	var sim, real strings.Builder
	printResult(&sim, c, r, true)
	printResult(&real, c, r, false)
	require.Contains(t, sim.String(), " virtual=3s wall=1.5s check=0s events=99\n")
	require.Contains(t, sim.String(), "reproduce: go run ./cmd/harness run --seed 4 --nodes 3 --clients 2 --duration 2s --rate 10 --faults none\n")
	require.NotContains(t, real.String(), "virtual=")
	require.NotContains(t, real.String(), " events=")
	require.NotContains(t, real.String(), "reproduce:")
	require.Contains(t, real.String(), " wall=1.5s check=0s\nreason: m2 does not answer\n")
}
