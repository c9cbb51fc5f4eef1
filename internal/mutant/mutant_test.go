package mutant

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestOffWithoutTag(t *testing.T) {
	if Enabled {
		t.Skip("built with the havoc_mutants tag")
	}
	t.Setenv(EnvVar, string(StaleReadFollower))
	require.Equal(t, ID(""), Active())
	for _, m := range All {
		require.False(t, On(m.ID), m.ID)
	}
}

func TestIDsUnique(t *testing.T) {
	seen := map[ID]bool{}
	for _, m := range All {
		require.False(t, seen[m.ID], "duplicate %s", m.ID)
		seen[m.ID] = true
		got, ok := Lookup(m.ID)
		require.True(t, ok)
		require.Equal(t, m, got)
	}
	require.GreaterOrEqual(t, len(All), 15)
}
