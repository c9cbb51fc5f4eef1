package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBenchRefusesBadFlags: each refusal is a usage error (exit 2) with one
// line saying why, before any cluster starts.
func TestBenchRefusesBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"--workload", "delete"}, `workload "delete"`},
		{[]string{"--fault", "kill-leader"}, "no @AT"},
		{[]string{"--fault", "kill-leader@20s", "--duration", "5s"}, "starts after the measured part"},
		{[]string{"--endpoints", "http://127.0.0.1:1", "--fault", "kill-leader@1s"}, "no --compare, no --fault"},
		{[]string{"--compare", "havoc"}, "two targets"},
		{[]string{"--compare", "havoc,zookeeper"}, `unknown target "zookeeper"`},
		{[]string{"--backend", "vm"}, `unknown --backend "vm"`},
		{[]string{"--backend", "sim", "--compare", "havoc,etcd"}, "no --compare"},
		{[]string{"--backend", "sim", "--sim-zones", "4"}, "zones 4"},
		{[]string{"--backend", "sim", "--sim-zones", "2", "--sim-zone-rtt", "1-3=5ms"}, "z1-z3=5ms"},
		{[]string{"--backend", "sim", "--sim-zone-rtt", "far"}, `zone round trip "far"`},
		{[]string{"--duration", "0"}, "--duration 0 needs --total"},
		{[]string{"--workload", "watch", "--value-size", "4"}, "at least 8 bytes"},
		{[]string{"--rounds", "0"}, "--rounds 0"},
		{[]string{"--user", "root:pw"}, "are for --endpoints"},
		{[]string{"--endpoints", "https://127.0.0.1:1", "--cert", "c.pem"}, "--cert and --key must be given together"},
		{[]string{"--endpoints", "https://127.0.0.1:1", "--password", "pw"}, "--password needs --user"},
	} {
		t.Run(tc.says, func(t *testing.T) {
			code, out, errOut := harness(t, append([]string{"bench"}, tc.args...)...)
			require.Equal(t, exitUsage, code, "stdout %q stderr %q", out, errOut)
			assert.Contains(t, errOut, tc.says)
		})
	}
}

// TestBenchSimCommand runs the what-if benchmark: figures from the model in
// virtual time, said to be so, the same for the same flags.
func TestBenchSimCommand(t *testing.T) {
	args := []string{"bench", "--backend", "sim", "--duration", "2s", "--clients", "4", "--sim-zones", "3", "--sim-zone-rtt", "1-2=10ms,1-3=30ms,2-3=25ms", "--fault", "kill-leader@1s"}
	code, out, errOut := harness(t, args...)
	require.Equal(t, exitOK, code, "stdout %s\nstderr %s", out, errOut)
	assert.Contains(t, out, "model: 3 members in 3 zones")
	assert.Contains(t, out, "figures from a model in virtual time, not a measurement")
	assert.Contains(t, out, "fault kill-leader@1s")
	assert.Contains(t, out, "p99.9")
	_, again, _ := harness(t, args...)
	require.Equal(t, out, again, "the same flags give the same figures")
}

// TestBenchCommand runs `harness bench` for a second against three members
// this binary serves, with JSON and plots.
func TestBenchCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a three-member cluster")
	}
	t.Setenv("HAVOC_HARNESS_MAIN", "1") // the members are this test binary running main
	dir := t.TempDir()
	jsonPath, plotDir, csvPath := filepath.Join(dir, "bench.json"), filepath.Join(dir, "plots"), filepath.Join(dir, "bench.csv")
	code, out, errOut := harness(t, "bench", "--workload", "txn", "--clients", "4", "--duration", "1s", "--warmup", "200ms",
		"--json", jsonPath, "--plot", plotDir, "--csv", csvPath, "--junit", filepath.Join(dir, "junit.xml"))
	require.Equal(t, exitOK, code, "stdout %s\nstderr %s", out, errOut)
	assert.Contains(t, out, "havoc: 3 members on the process backend up in")
	assert.Contains(t, out, "p99.9")
	var doc struct {
		Runs []struct {
			Target string `json:"target"`
			Ops    []struct {
				Op    string `json:"op"`
				Count int64  `json:"count"`
			} `json:"ops"`
			Series []json.RawMessage `json:"series"`
		} `json:"runs"`
	}
	b, err := os.ReadFile(jsonPath)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &doc))
	require.Len(t, doc.Runs, 1)
	require.Len(t, doc.Runs[0].Ops, 1)
	assert.Equal(t, "txn", doc.Runs[0].Ops[0].Op)
	assert.Positive(t, doc.Runs[0].Ops[0].Count)
	assert.Len(t, doc.Runs[0].Series, 1)
	csvText, err := os.ReadFile(csvPath)
	require.NoError(t, err)
	assert.Contains(t, string(csvText), "\nhavoc,txn,txn,")
	assert.FileExists(t, filepath.Join(dir, "bench-series.csv"))
	for _, name := range []string{"havoc-latency.png", "havoc-throughput.png", "havoc-percentiles.png"} {
		assert.FileExists(t, filepath.Join(plotDir, name))
	}
	page, err := os.ReadFile(filepath.Join(plotDir, "index.html"))
	require.NoError(t, err)
	assert.Contains(t, string(page), `<img src="havoc-latency.png"`)
	assert.Contains(t, string(page), "p99.9")
	junit, err := os.ReadFile(filepath.Join(dir, "junit.xml"))
	require.NoError(t, err)
	assert.Contains(t, string(junit), `<testcase classname="bench" name="havoc round 1"`)
}
