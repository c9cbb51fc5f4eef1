// Package layering holds the tests that keep havoc's structure: lower layers never
// import higher ones (docs/architecture.md), and every package and exported name
// is documented (doc_test.go).
package layering

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const mod = "github.com/havoclab/havoc/"

// rule places one package of the module: the module packages its non-test files
// import (exactly these: an import not listed fails, and so does a listed one no
// longer imported, so the table stays the real graph), and what its test files may
// import beyond what the package itself reaches.
type rule struct {
	pkg     string
	imports []string
	tests   []string
}

// layers is the module's import graph, lowest layer first. A package imports only
// packages of strictly lower layers (TestLayersPointDown), and of those only the
// ones its rule lists (TestImportDirection). A new package must be placed here
// (TestEveryPackagePlaced). Read it as:
//
//	vfs, sim, chaos, linearizability, store/lease, store/membership, store/auth, cluster/linkproxy, cluster/etcdbin, cluster/lazyfs
//	  < store/wal, store/mvcc, vfs/vfstest
//	  < store, store/snapshot
//	  < server, cluster
//	  < internal/testhook < scenarios < scenarios/drill < scenarios/scenario < scenarios/library, scenarios/shrink < cmd/harness
//
// sim, chaos and linearizability depend on nothing of havoc's: the simulator
// knows no store, a fault is plain data, and the checker re-implements etcd's
// semantics without importing the store it judges.
var layers = [][]rule{
	{ // 0: leaves.
		{pkg: "vfs", tests: []string{"vfs/vfstest"}},
		{pkg: "sim"},
		{pkg: "chaos"},
		{pkg: "linearizability", tests: []string{"internal/shared"}},
		{pkg: "store/lease"},
		{pkg: "store/membership"},
		// etcd's users, roles, permissions and tokens over a raw-bucket backend.
		{pkg: "store/auth"},
		{pkg: "cluster/linkproxy", tests: []string{"internal/certs"}},
		{pkg: "cluster/etcdbin"},
		// The lazy file system under a real member's data dir.
		{pkg: "cluster/lazyfs"},
		{pkg: "internal/detrand"},
		{pkg: "internal/mutant"},
		{pkg: "internal/dockertest"},
		{pkg: "internal/shared"},
		{pkg: "internal/layering"},
		{pkg: "internal/certs"},
		{pkg: "internal/tamper"},
		// Results files (JSON, JUnit, HTML) and their merging: plain data.
		{pkg: "scenarios/report"},
		// The Kubernetes manifests of a sharded sweep, and their tests.
		{pkg: "deploy/kubernetes"},
		// The GitHub Actions workflows' tests (actionlint and the README's rules).
		{pkg: "deploy/github"},
	},
	{ // 1: the store's storage, over the filesystem interface.
		{pkg: "vfs/vfstest", imports: []string{"vfs"}},
		{pkg: "store/wal", imports: []string{"vfs"}},
		{pkg: "store/mvcc", imports: []string{"internal/mutant", "vfs"}},
	},
	{ // 2: the member core, and offline snapshot save/restore beside it.
		{pkg: "store", imports: []string{"internal/mutant", "store/auth", "store/lease", "store/membership", "store/mvcc", "store/wal", "vfs"},
			tests: []string{"internal/detrand"}},
		{pkg: "store/snapshot", imports: []string{"store/membership", "store/wal", "vfs"},
			tests: []string{"cluster/etcdbin", "internal/detrand", "server", "store", "store/mvcc"}},
	},
	{ // 3: runtimes around the core: the gRPC server, and the cluster backends.
		{pkg: "server", imports: []string{"internal/certs", "store", "store/auth", "store/lease", "store/membership", "store/mvcc", "vfs"}},
		{pkg: "cluster", imports: []string{"chaos", "cluster/lazyfs", "cluster/linkproxy", "internal/certs", "sim", "store", "store/membership", "store/mvcc", "vfs"},
			tests: []string{"internal/detrand", "internal/dockertest", "store/snapshot"}},
	},
	{ // 4: the tests' hook into a simulated run.
		{pkg: "internal/testhook", imports: []string{"cluster", "sim"}},
	},
	{ // 5: runs, drills and their judgement.
		{pkg: "scenarios", imports: []string{"chaos", "cluster", "internal/detrand", "internal/tamper", "internal/testhook", "linearizability",
			"sim", "store", "store/mvcc"},
			tests: []string{"cluster/etcdbin", "internal/dockertest", "scenarios/scenario"}},
		// Capacity and latency through clientv3: faults as chaos verbs on the
		// backend the command started; the end-to-end test starts one.
		{pkg: "scenarios/bench", imports: []string{"chaos", "cluster", "internal/detrand", "sim", "store"}},
		// What happened in a run, from its artifacts directory: the history
		// checked again, the trace read as text.
		{pkg: "scenarios/explain", imports: []string{"linearizability"}},
	},
	{ // 6: the drills, written once over a simulated and a real environment.
		{pkg: "scenarios/drill", imports: []string{"chaos", "cluster", "internal/detrand", "linearizability", "scenarios",
			"sim", "store/mvcc", "store/snapshot", "vfs"},
			tests: []string{"cluster/etcdbin", "internal/dockertest"}},
	},
	{ // 7: the scenario file, a run as data.
		{pkg: "scenarios/scenario", imports: []string{"chaos", "linearizability", "scenarios", "scenarios/drill"}},
	},
	{ // 8: the scenario library, files of the scenario format.
		{pkg: "scenarios/library", imports: []string{"scenarios/scenario"}},
		// Shrinking a failing run: candidates are scenario files.
		{pkg: "scenarios/shrink", imports: []string{"scenarios", "scenarios/scenario"}},
	},
	{ // 9: the command line.
		{pkg: "cmd/harness", imports: []string{"chaos", "cluster", "cluster/etcdbin", "internal/mutant", "linearizability", "scenarios", "scenarios/bench", "scenarios/drill",
			"scenarios/explain", "scenarios/library", "scenarios/report", "scenarios/scenario", "scenarios/shrink", "server", "store",
			"store/mvcc", "store/snapshot", "store/wal"},
			tests: []string{"internal/dockertest"}},
	},
}

// table indexes layers by package: its rule and its layer.
func table(t *testing.T) (map[string]rule, map[string]int) {
	t.Helper()
	rules, layer := map[string]rule{}, map[string]int{}
	for i, l := range layers {
		for _, r := range l {
			_, dup := rules[r.pkg]
			require.False(t, dup, "package %s is placed twice", r.pkg)
			rules[r.pkg], layer[r.pkg] = r, i
		}
	}
	return rules, layer
}

// imports is what one package directory's files import from the module, split by
// kind of file: the package's own files, its in-package tests, and its external
// (package x_test) tests.
type imports struct {
	pkg, test, xtest map[string]bool
	// outside are the packages from outside the module the package's own
	// (non-test) files import.
	outside map[string]bool
}

// scan parses the import lines of every Go file under root (go/parser, imports
// only: no build, fast) and returns the module imports of every package
// directory, keyed by the directory relative to root. Files of every build tag
// count. Directories the go tool ignores (testdata, hidden, _-prefixed) and
// untracked output directories are left out.
func scan(t *testing.T, root string) map[string]*imports {
	t.Helper()
	out := map[string]*imports{}
	err := walkGoFiles(root, parser.ImportsOnly, func(path, dir, name string, f *ast.File) error {
		im := out[dir]
		if im == nil {
			im = &imports{map[string]bool{}, map[string]bool{}, map[string]bool{}, map[string]bool{}}
			out[dir] = im
		}
		set, own := im.pkg, true
		switch {
		case strings.HasSuffix(f.Name.Name, "_test"):
			set, own = im.xtest, false
		case strings.HasSuffix(name, "_test.go"):
			set, own = im.test, false
		}
		for _, s := range f.Imports {
			p, err := strconv.Unquote(s.Path.Value)
			if err != nil {
				return fmt.Errorf("%s: import %s: %w", path, s.Path.Value, err)
			}
			switch {
			case strings.HasPrefix(p, mod):
				set[strings.TrimPrefix(p, mod)] = true
			case own:
				im.outside[p] = true
			}
		}
		return nil
	})
	require.NoError(t, err)
	require.NotEmpty(t, out)
	return out
}

// TestEveryPackagePlaced requires the table to name every package of the module
// and nothing else: a new package must be given its layer and imports.
func TestEveryPackagePlaced(t *testing.T) {
	rules, _ := table(t)
	require.Empty(t, placement(rules, scan(t, moduleRoot(t))))
}

// placement lists the packages of found that the table does not place, and the
// packages it places that found does not hold.
func placement(rules map[string]rule, found map[string]*imports) []string {
	var out []string
	for _, dir := range sortedKeys(found) {
		if _, ok := rules[dir]; !ok {
			out = append(out, fmt.Sprintf("package %s is not placed in internal/layering's layers: add it to the layer it belongs to, with its imports", dir))
		}
	}
	for _, pkg := range sortedKeys(rules) {
		if _, ok := found[pkg]; !ok {
			out = append(out, fmt.Sprintf("internal/layering places package %s, which does not exist: remove it", pkg))
		}
	}
	return out
}

// TestLayersPointDown requires every import the table allows a package's own
// files to go to a strictly lower layer, which also makes the graph acyclic. A
// test may reach up (store/snapshot's external test builds a data dir with the
// server), but only to a placed package other than its own.
func TestLayersPointDown(t *testing.T) {
	rules, layer := table(t)
	for _, pkg := range sortedKeys(rules) {
		r := rules[pkg]
		require.True(t, slices.IsSorted(r.imports) && slices.IsSorted(r.tests), "%s: keep its lists sorted", pkg)
		for _, imp := range r.imports {
			l, ok := layer[imp]
			require.True(t, ok, "%s: allowed import %s is not a placed package", pkg, imp)
			require.Less(t, l, layer[pkg], "%s (layer %d) may only import lower layers, but lists %s (layer %d)", pkg, layer[pkg], imp, l)
		}
		for _, imp := range r.tests {
			_, ok := layer[imp]
			require.True(t, ok && imp != pkg, "%s: allowed test import %s is not another placed package", pkg, imp)
			require.NotContains(t, closure(rules, pkg), imp, "%s: test import %s is already reached by its imports", pkg, imp)
		}
	}
}

// TestImportDirection checks the tree's real imports against the table.
func TestImportDirection(t *testing.T) {
	rules, _ := table(t)
	require.Empty(t, direction(rules, scan(t, moduleRoot(t))))
}

// direction lists every import of found the table does not allow: a package's
// files import exactly its listed packages; its test files import only what the
// package reaches (its imports, transitively), its listed test imports and, for
// an external test, the package itself. Unplaced packages are placement's.
func direction(rules map[string]rule, found map[string]*imports) []string {
	var out []string
	for _, pkg := range sortedKeys(found) {
		r, ok := rules[pkg]
		if !ok {
			continue
		}
		im := found[pkg]
		for _, imp := range sortedKeys(im.pkg) {
			if !slices.Contains(r.imports, imp) {
				out = append(out, fmt.Sprintf("%s must not import %s: internal/layering's layers do not allow it (if the import is right, add it to %s's imports; it must point to a lower layer)", pkg, imp, pkg))
			}
		}
		for _, imp := range r.imports {
			if !im.pkg[imp] {
				out = append(out, fmt.Sprintf("internal/layering lets %s import %s, which it no longer does: remove it from the table", pkg, imp))
			}
		}
		reach := closure(rules, pkg)
		for _, imp := range r.tests {
			reach[imp] = true
		}
		for _, set := range []map[string]bool{im.test, im.xtest} {
			for _, imp := range sortedKeys(set) {
				if reach[imp] || (imp == pkg && im.xtest[imp]) {
					continue
				}
				out = append(out, fmt.Sprintf("%s's tests must not import %s: it is neither below %s nor in its tests list in internal/layering", pkg, imp, pkg))
			}
		}
	}
	return out
}

// closure is every package pkg reaches through the table's imports.
func closure(rules map[string]rule, pkg string) map[string]bool {
	seen := map[string]bool{}
	stack := slices.Clone(rules[pkg].imports)
	for len(stack) > 0 {
		p := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[p] {
			continue
		}
		seen[p] = true
		stack = append(stack, rules[p].imports...)
	}
	return seen
}

// TestWrongWayImportsFail runs the checks over a small tree holding the real
// table's packages plus three mistakes: an import that points up, a test that
// imports a layer it has no business with, and an unplaced package. Each must be
// reported.
func TestWrongWayImportsFail(t *testing.T) {
	rules, _ := table(t)
	root := t.TempDir()
	write := func(rel, src string) {
		p := filepath.Join(root, filepath.FromSlash(rel))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(src), 0o644))
	}
	for _, pkg := range sortedKeys(rules) {
		src := "package " + path.Base(pkg) + "\n"
		for _, imp := range rules[pkg].imports {
			src += "import _ \"" + mod + imp + "\"\n"
		}
		write(pkg+"/x.go", src)
	}
	found := scan(t, root)
	require.Empty(t, direction(rules, found), "the table's own graph must pass")
	require.Empty(t, placement(rules, found))

	write("store/wal/up.go", "package wal\nimport _ \""+mod+"store\"\n")
	write("sim/x_test.go", "package sim\nimport _ \""+mod+"cluster\"\n")
	write("newpkg/x.go", "package newpkg\n")
	write("sim/lock.go", "package sim\nimport _ \"sync\"\nimport _ \"math/rand/v2\"\n")
	found = scan(t, root)
	require.Equal(t, []string{"sim is deterministic core and must not import sync"}, coreViolations(found))
	require.Equal(t, []string{
		"sim's tests must not import cluster: it is neither below sim nor in its tests list in internal/layering",
		"store/wal must not import store: internal/layering's layers do not allow it (if the import is right, add it to store/wal's imports; it must point to a lower layer)",
	}, direction(rules, found))
	require.Equal(t, []string{
		"package newpkg is not placed in internal/layering's layers: add it to the layer it belongs to, with its imports",
	}, placement(rules, found))
}

// deterministicCore are the packages that run inside a simulated world, and
// what they must never import: the network, processes, locks (they run on one
// goroutine), and the unseeded random sources. A simulated run would no longer
// replay from its seed.
var deterministicCore = []string{"chaos", "sim", "store", "store/lease", "store/membership", "store/mvcc", "store/wal"}

var runtimeImports = []string{"crypto/rand", "math/rand", "net", "net/http", "os/exec", "sync", "sync/atomic",
	"google.golang.org/grpc"}

// runtimeImport reports whether p is one of runtimeImports or below
// google.golang.org/grpc (math/rand/v2 is allowed: the core draws from a
// seeded generator it is handed).
func runtimeImport(p string) bool {
	return slices.Contains(runtimeImports, p) || strings.HasPrefix(p, "google.golang.org/grpc/")
}

// TestDeterministicCoreImports keeps the runtimes out of the deterministic core.
func TestDeterministicCoreImports(t *testing.T) {
	rules, _ := table(t)
	for _, pkg := range deterministicCore {
		_, ok := rules[pkg]
		require.True(t, ok, "deterministic core package %s is not placed", pkg)
	}
	require.Empty(t, coreViolations(scan(t, moduleRoot(t))))
}

// coreViolations lists the runtime imports of the deterministic core in found.
func coreViolations(found map[string]*imports) []string {
	var out []string
	for _, pkg := range deterministicCore {
		if found[pkg] == nil {
			continue
		}
		for _, imp := range sortedKeys(found[pkg].outside) {
			if runtimeImport(imp) {
				out = append(out, fmt.Sprintf("%s is deterministic core and must not import %s", pkg, imp))
			}
		}
	}
	return out
}

// TestNoEtcdServerImports keeps etcd's server packages out of havoc's code: the
// reference etcd is built from go.mod's tool directive, never linked in. The
// direct imports are checked always; the transitive ones need go list and are
// skipped with -short.
func TestNoEtcdServerImports(t *testing.T) {
	fset := token.NewFileSet()
	root := moduleRoot(t)
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.Contains(filepath.ToSlash(path), "/testdata/") {
			return err
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, s := range f.Imports {
			require.False(t, forbiddenEtcd(strings.Trim(s.Path.Value, `"`)), "%s imports %s", path, s.Path.Value)
		}
		return nil
	})
	require.NoError(t, err)
	if testing.Short() {
		t.Skip("the transitive check runs go list over the module; skipped with -short")
	}
	out, err := exec.Command("go", "list", "-deps", mod+"...").CombinedOutput()
	require.NoError(t, err, string(out))
	for _, d := range strings.Fields(string(out)) {
		require.False(t, forbiddenEtcd(d), "havoc links etcd's server package %s", d)
	}
}

// forbiddenEtcd reports whether p is one of etcd's server or etcdutl packages.
func forbiddenEtcd(p string) bool {
	return strings.HasPrefix(p, "go.etcd.io/etcd/server/") || strings.HasPrefix(p, "go.etcd.io/etcd/etcdutl/")
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// walkGoFiles parses every .go file below root with mode and calls fn with its
// path, its package directory relative to root (slash-separated) and its name.
// Hidden and underscore directories, testdata and untracked output
// directories (bin, vendor, havoc-runs, runs) are left out.
func walkGoFiles(root string, mode parser.Mode, fn func(path, dir, name string, f *ast.File) error) error {
	fset := token.NewFileSet()
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") ||
				slices.Contains([]string{"testdata", "bin", "vendor", "havoc-runs", "runs"}, name)) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, mode)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, filepath.Dir(path))
		if err != nil {
			return err
		}
		return fn(path, filepath.ToSlash(rel), name, f)
	})
}
