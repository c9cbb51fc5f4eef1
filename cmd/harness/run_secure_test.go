package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRunSecureFlags: --tls and --auth are for the process backend only, and
// a rerun line keeps them in a form the flag parser takes back.
func TestRunSecureFlags(t *testing.T) {
	for _, backend := range []string{"sim", "docker"} {
		code, out, errOut := harness(t, "run", "--backend", backend, "--tls", "--duration", "1s")
		require.Equal(t, exitUsage, code, "stdout %q stderr %q", out, errOut)
		assert.Contains(t, errOut, "--tls and --auth need --backend process")
	}
	code, out, errOut := harness(t, "run", "--scenario", "drill-save-restore", "--backend", "process", "--auth")
	require.Equal(t, exitUsage, code, "stdout %q stderr %q", out, errOut)
	assert.Contains(t, errOut, "drill save-restore starts plain clusters")

	fs := newRunCmd().Flags()
	require.NoError(t, fs.Parse([]string{"--backend", "process", "--tls", "--auth"}))
	args := backendArgs(fs)
	require.Equal(t, " --backend process --tls --auth", args)
	again := newRunCmd().Flags()
	require.NoError(t, again.Parse(strings.Fields(args)))
	require.Empty(t, again.Args(), "the rerun line parses back to flags only")
	for _, name := range []string{"tls", "auth"} {
		v, err := again.GetBool(name)
		require.NoError(t, err)
		require.True(t, v, name)
	}
}
