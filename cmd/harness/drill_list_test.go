package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/havoclab/havoc/scenarios/drill"
)

// TestDrillWithoutNameListsDrills: `harness drill` lists every drill with what
// it does, and each drill's help says it too.
func TestDrillWithoutNameListsDrills(t *testing.T) {
	for _, args := range [][]string{{}, {"disaster-recovery", "--help"}} {
		var out bytes.Buffer
		cmd := newDrillCmd()
		cmd.SetOut(&out)
		cmd.SetArgs(args)
		require.NoError(t, cmd.Execute())
		for _, name := range drill.Names {
			require.Contains(t, out.String(), "  "+name+"\n")
		}
		require.Contains(t, out.String(), "losing them is expected")
	}
}
