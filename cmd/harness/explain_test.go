package main

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// explainRun writes a small failing run directory: a get reads a value no
// operation wrote, during a pause of m2.
func explainRun(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	hist := `{"id":1,"client":1,"member":"m1","kind":"put","key":"k/054","value":"v1","call":1000000000,"return":1100000000,"outcome":"ok","resp":{"rev":2}}
{"id":2,"client":2,"member":"m2","kind":"get","key":"k/054","call":2000000000,"return":2100000000,"outcome":"ok","resp":{"rev":2,"found":true,"value":"nobody","mod_rev":2,"create_rev":2,"version":1}}
`
	trace := "00001.500000 chaos start pause m2\n00001.500000 m2 pause\n00002.000000 c02 send -> m2 *cluster.ClientRequest\n00002.500000 m2 resume (1 parked)\n"
	for name, data := range map[string][]byte{
		"summary.txt":     []byte("seed: 1\nverdict: not-linearizable\nreason: x\n\nfaults:\n1.500s start pause m2\n2.500s end pause m2\n"),
		"history.json.gz": gzipped(t, hist),
		"trace.log.gz":    gzipped(t, trace),
	} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), data, 0o644))
	}
	return dir
}

func gzipped(t *testing.T, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	_, err := zw.Write([]byte(s))
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return b.Bytes()
}

func TestExplainExitCodes(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	code, _, stderr := harness(t, "explain", missing)
	assert.Equal(t, exitUsage, code, "a missing DIR is a usage error")
	assert.Contains(t, stderr, "missing")

	code, _, _ = harness(t, "explain", t.TempDir())
	assert.Equal(t, exitUsage, code, "a directory without summary.txt is not a run")

	code, _, _ = harness(t, "explain")
	assert.Equal(t, exitUsage, code, "DIR is required")

	dir := explainRun(t)
	code, _, _ = harness(t, "explain", dir, "--window", "0s")
	assert.Equal(t, exitUsage, code)

	code, stdout, stderr := harness(t, "explain", dir)
	require.Equal(t, exitOK, code, stderr)
	assert.Contains(t, stdout, "first operation that cannot be linearized: #2 2.000s..2.100s c02@m2 get(\"k/054\")")
	assert.Contains(t, stdout, "1.500s .. 2.500s  pause m2")
	page, err := os.ReadFile(filepath.Join(dir, "explain.html"))
	require.NoError(t, err)
	assert.Contains(t, string(page), `data-fault="pause m2"`)

	out := filepath.Join(t.TempDir(), "page.html")
	code, stdout, _ = harness(t, "explain", dir, "--html", out)
	require.Equal(t, exitOK, code)
	assert.Contains(t, stdout, "page: "+out)
	assert.FileExists(t, out)
}

func TestTraceExitCodes(t *testing.T) {
	code, _, _ := harness(t, "trace", filepath.Join(t.TempDir(), "missing"))
	assert.Equal(t, exitUsage, code, "a missing DIR is a usage error")

	dir := explainRun(t)
	code, _, _ = harness(t, "trace", dir, "--grep", "(")
	assert.Equal(t, exitUsage, code, "a bad pattern is a usage error")
	code, _, _ = harness(t, "trace", dir, "--from", "3s", "--to", "2s")
	assert.Equal(t, exitUsage, code, "an empty window is a usage error")

	code, stdout, stderr := harness(t, "trace", dir, "--member", "m2", "--key", "k/054", "--from", "1.9s", "--to", "2.1s")
	require.Equal(t, exitOK, code, stderr)
	assert.Equal(t, "00002.000000 c02 send -> m2 *cluster.ClientRequest\n", stdout, "the key's request, from the history")

	code, stdout, _ = harness(t, "trace", filepath.Join(dir, "trace.log.gz"), "--grep", "pause")
	require.Equal(t, exitOK, code)
	assert.Equal(t, "00001.500000 chaos start pause m2\n00001.500000 m2 pause\n", stdout)

	code, stdout, stderr = harness(t, "trace", dir, "--member", "m9")
	assert.Equal(t, exitOK, code)
	assert.Empty(t, stdout)
	assert.Contains(t, stderr, "no line of")
}
