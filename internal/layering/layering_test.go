// Package layering holds the tests that keep havoc's structure: lower layers never
// import higher ones (docs/architecture.md), and every package and exported name
// is documented (doc_test.go).
package layering

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const mod = "github.com/havoclab/havoc/"

// deps returns every package pkg imports, directly or not.
func deps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", mod+pkg).CombinedOutput()
	require.NoError(t, err, string(out))
	return strings.Fields(string(out))
}

func TestImportDirection(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list over the module; skipped with -short")
	}
	rules := []struct {
		pkg       string
		forbidden []string
	}{
		{"vfs", []string{mod}},
		{"sim", []string{mod + "store", mod + "vfs", mod + "cluster", mod + "scenarios"}},
		{"linearizability", []string{mod + "store", mod + "sim", mod + "cluster", mod + "server"}},
		{"chaos", []string{mod + "store", mod + "sim", mod + "cluster", mod + "scenarios"}},
		{"store/wal", []string{mod + "store/mvcc", mod + "sim", mod + "cluster", mod + "server"}},
		{"store/mvcc", []string{mod + "store/wal", mod + "sim", mod + "cluster", mod + "server"}},
		{"store", []string{mod + "sim", mod + "cluster", mod + "scenarios", mod + "server", mod + "chaos", mod + "linearizability"}},
		{"cluster", []string{mod + "scenarios", mod + "cmd"}},
	}
	for _, r := range rules {
		t.Run(r.pkg, func(t *testing.T) {
			for _, d := range deps(t, r.pkg) {
				if d == mod+r.pkg || strings.HasPrefix(d, mod+r.pkg+"/") {
					continue
				}
				for _, f := range r.forbidden {
					if f == mod {
						require.False(t, strings.HasPrefix(d, mod), "%s must not import havoc packages, imports %s", r.pkg, d)
						continue
					}
					require.False(t, d == f || strings.HasPrefix(d, f+"/"), "%s must not import %s (imports %s)", r.pkg, f, d)
				}
			}
		})
	}
}

// TestNoEtcdServerImports keeps etcd's server packages out of havoc's code: the
// reference etcd is built from go.mod's tool directive, never linked in.
func TestNoEtcdServerImports(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list over the module; skipped with -short")
	}
	out, err := exec.Command("go", "list", "-deps", mod+"...").CombinedOutput()
	require.NoError(t, err, string(out))
	for _, d := range strings.Fields(string(out)) {
		require.False(t, strings.HasPrefix(d, "go.etcd.io/etcd/server/"), "havoc links etcd's server package %s", d)
		require.False(t, strings.HasPrefix(d, "go.etcd.io/etcd/etcdutl/"), "havoc links etcdutl package %s", d)
	}
}
