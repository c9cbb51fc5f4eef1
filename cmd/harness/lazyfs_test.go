package main

import (
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"
)

// TestLazyFSFlag: --lazyfs is refused in one line off the process backend,
// and a real run's rerun line keeps it (as a bare flag: `--lazyfs true` would
// be an argument).
func TestLazyFSFlag(t *testing.T) {
	for _, backend := range []string{"sim", "docker"} {
		code, _, errOut := harness(t, "run", "--backend", backend, "--lazyfs")
		require.Equal(t, exitUsage, code, errOut)
		require.Contains(t, errOut, "--lazyfs needs --backend process")
		require.Equal(t, 1, strings.Count(strings.TrimSpace(errOut), "\n")+1, "one line: %q", errOut)
	}
	var bf backendFlags
	cmd := &cobra.Command{}
	bf.register(cmd)
	require.NoError(t, cmd.Flags().Parse([]string{"--backend", "process", "--lazyfs"}))
	require.Equal(t, " --backend process --lazyfs", backendArgs(cmd.Flags()))
	require.NoError(t, cmd.Flags().Parse([]string{"--lazyfs=false"}))
	require.Equal(t, " --backend process", backendArgs(cmd.Flags()))
}

// TestLazyFSDrillRepro: a drill's reproduce line keeps --lazyfs as
// --lazyfs=true, which parses back.
func TestLazyFSDrillRepro(t *testing.T) {
	repro := drillRepro(mustDrillFlags(t, "--backend", "process", "--lazyfs"), "save-restore", 2)
	require.Equal(t, "go run ./cmd/harness drill save-restore --seed 2 --backend process --lazyfs=true", repro)
	args := strings.Fields(strings.TrimPrefix(repro, "go run ./cmd/harness drill save-restore "))
	mustDrillFlags(t, args...)
}
