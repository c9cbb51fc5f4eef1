package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// harness runs the harness in-process and returns its exit code, stdout and stderr.
func harness(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := execute(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	return p
}

// TestCheckRefusesNonHistories: an empty file, a file that is not a history and
// a history without a completed operation each exit non-zero with one line
// (they used to print "ok (0 operations)" and exit 0).
func TestCheckRefusesNonHistories(t *testing.T) {
	unknownPut := `{"id":1,"client":1,"kind":"put","key":"k/000","value":"v1","call":1,"return":5,"outcome":"unknown","resp":{}}` + "\n"
	okPut := `{"id":1,"client":1,"kind":"put","key":"k/000","value":"v1","call":1,"return":5,"outcome":"ok","resp":{"rev":2}}` + "\n"
	failedGet := `{"id":2,"client":2,"kind":"get","key":"k/000","call":2,"return":3,"outcome":"fail","resp":{}}` + "\n"
	cases := []struct {
		name, content string
		code          int
		says          string
	}{
		{"empty", "", exitUsage, "the file is empty"},
		{"blank", "\n  \n", exitUsage, "the file is empty"},
		{"prose", "hello world\nthis is not a history\n", exitUsage, "not a history: neither havoc JSON lines nor a Jepsen etcd log"},
		{"bad-json", "{\"id\": \n", exitUsage, "not a history"},
		{"nothing-completed", unknownPut + failedGet, exitInconclusive, "no completed operation"},
		{"truncated", okPut + `{"truncated":true,"limit_bytes":10,"omitted_lines":1,"omitted_bytes":99}` + "\n", exitInconclusive, "truncated"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := harness(t, "check", writeFile(t, "h.json", c.content))
			require.Equal(t, c.code, code, "stdout %q stderr %q", out, errOut)
			require.Empty(t, out)
			require.Contains(t, errOut, c.says)
			require.Equal(t, 1, strings.Count(errOut, "\n"), "one line: %q", errOut)
		})
	}
	code, _, errOut := harness(t, "check", filepath.Join(t.TempDir(), "missing.json"))
	require.Equal(t, exitUsage, code, errOut)

	code, out, errOut := harness(t, "check", writeFile(t, "h.json", okPut))
	require.Equal(t, exitOK, code, errOut)
	require.Contains(t, out, ": ok (1 operations")

	code, _, errOut = harness(t, "check", "--budget", "0", writeFile(t, "h.json", okPut))
	require.Equal(t, exitUsage, code)
	require.Contains(t, errOut, "must be positive")
}

// TestExitCodes: the table is printed by --help, usage errors exit 2, and
// README lists the same table.
func TestExitCodes(t *testing.T) {
	code, out, _ := harness(t, "--help")
	require.Equal(t, exitOK, code)
	require.Contains(t, out, exitCodeTable())
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	for _, e := range exitCodes {
		row := fmt.Sprintf("| %d | %s |", e.code, e.meaning)
		require.True(t, strings.Contains(string(readme), row), "README's exit code table lacks %q", row)
	}
	for _, args := range [][]string{
		{"run", "--no-such-flag"},
		{"run", "--nodes", "x"},
		{"run", "extra-argument"},
		{"no-such-command"},
		{"check"},
		{"run", "--faults", "earthquake"},
		{"run", "--backend", "zookeeper"},
		{"sweep", "--seeds", "9-1"},
		{"drill", "no-such-drill"},
	} {
		code, _, errOut := harness(t, args...)
		require.Equal(t, exitUsage, code, "%v: %s", args, errOut)
		require.NotEmpty(t, errOut, "%v", args)
	}
	require.Equal(t, exitInconclusive, verdictExit("inconclusive"))
	require.Equal(t, exitViolation, verdictExit("not-linearizable"))
	require.Equal(t, exitViolation, worstExit("ok", "inconclusive", "worker-error", "no-liveness"))
	require.Equal(t, exitInfra, worstExit("ok", "inconclusive", "worker-error"))
	require.Equal(t, exitInconclusive, worstExit("ok", "inconclusive"))
}

// TestVersion: --version names the module and Go version, and says when the
// build recorded no VCS information (GOFLAGS=-buildvcs=false, go test).
func TestVersion(t *testing.T) {
	code, out, _ := harness(t, "--version")
	require.Equal(t, exitOK, code)
	require.True(t, strings.HasPrefix(out, "harness "), out)
	require.Contains(t, out, "go1.")
	require.True(t, strings.Contains(out, " vcs ") || strings.Contains(out, "no VCS information"), out)
}

// TestInfrastructureErrorExits4: a run whose artifacts cannot be written is
// the harness failing, not the store (exit 4).
func TestInfrastructureErrorExits4(t *testing.T) {
	notADir := writeFile(t, "file", "x")
	code, _, errOut := harness(t, "run", "--seed", "3", "--duration", "1s", "--clients", "2", "--keep", "--out", filepath.Join(notADir, "runs"))
	require.Equal(t, exitInfra, code, errOut)
	require.Contains(t, errOut, "not a directory")
}
