package mutant

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
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

// TestEverySiteGuarded: every mutant has at least one guarded site
// (mutant.On(mutant.Name)) in the module, and every guarded site names a mutant
// of All.
func TestEverySiteGuarded(t *testing.T) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "mutant.go", nil, 0)
	require.NoError(t, err)
	byName := map[string]ID{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			v := s.(*ast.ValueSpec)
			if id, ok := v.Type.(*ast.Ident); ok && id.Name == "ID" {
				lit := v.Values[0].(*ast.BasicLit)
				byName[v.Names[0].Name] = ID(strings.Trim(lit.Value, `"`))
			}
		}
	}
	require.Len(t, byName, len(All))
	sites := map[ID]int{}
	site := regexp.MustCompile(`mutant\.On\(mutant\.(\w+)\)`)
	root := filepath.Join("..", "..")
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range site.FindAllSubmatch(b, -1) {
			id, ok := byName[string(m[1])]
			require.True(t, ok, "%s guards an unknown mutant %s", path, m[1])
			sites[id]++
		}
		return nil
	})
	require.NoError(t, err)
	for _, m := range All {
		require.Positive(t, sites[m.ID], "mutant %s has no guarded site", m.ID)
	}
}
