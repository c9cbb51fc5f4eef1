package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEtcdVersionAndEtcdBinAreExclusive(t *testing.T) {
	b := backendFlags{backend: "process", target: "etcd", etcdBin: "/bin/true", etcdVersion: "v3.5.21"}
	require.ErrorContains(t, b.resolveEtcd(), "--etcd-bin and --etcd-version both given")
	d := realDrillFlags{backend: "process", target: "etcd", etcdBin: "/bin/true", etcdVersion: "v3.5.21"}
	require.ErrorContains(t, d.resolveEtcd(), "--etcd-bin and --etcd-version both given")
	_, err := etcdBinary(t.Context(), nil, "/bin/true", "v3.5.21")
	require.ErrorContains(t, err, "both given")
}

func TestEtcdVersionIsCheckedBeforeAnyBuild(t *testing.T) {
	b := backendFlags{backend: "process", target: "etcd", etcdVersion: "latest"}
	require.ErrorContains(t, b.resolveEtcd(), "want vX.Y.Z")
	b = backendFlags{backend: "process", target: "etcd", etcdVersion: "v3.4.37"}
	require.ErrorContains(t, b.resolveEtcd(), "pseudo-version")
	// A havoc target ignores the etcd release.
	b = backendFlags{backend: "process", target: "havoc", etcdVersion: "v3.4.37"}
	require.NoError(t, b.resolveEtcd())
	assert.Empty(t, b.etcdBin)
}
