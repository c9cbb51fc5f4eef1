package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestDrillDocker runs `harness drill save-restore --backend docker` as a user
// would from the repository: the image is built from the module, the restore
// runs on the host and is copied into the members' volumes.
func TestDrillDocker(t *testing.T) {
	ctx := dockerContext(t)
	var out bytes.Buffer
	cmd := newDrillCmd()
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"save-restore", "--backend", "docker", "--duration", "6s", "--after", "3s",
		"--clients", "8", "--rate", "400", "--seed", "5", "--memory", "512m"})
	start := time.Now()
	err := cmd.ExecuteContext(ctx)
	t.Logf("%s(wall %s)", out.String(), time.Since(start).Round(time.Millisecond))
	require.NoError(t, err)
	s := out.String()
	require.Contains(t, s, "drill save-restore seed 5 on docker/havoc: ok")
	require.Contains(t, s, "restored cluster: ")
	require.False(t, strings.Contains(s, "lost "), "save-restore reports no lost writes")

	cmd = newDrillCmd()
	cmd.SetArgs([]string{"save-restore", "--backend", "docker", "--target", "cassandra"})
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	require.ErrorContains(t, cmd.ExecuteContext(ctx), "want havoc or etcd")
}
