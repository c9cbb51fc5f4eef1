package layering

import (
	"go/ast"
	"go/parser"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// moduleRoot is the directory above the working directory that holds go.mod.
func moduleRoot(t *testing.T) string {
	dir, err := filepath.Abs(".")
	require.NoError(t, err)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		require.NotEqual(t, dir, parent, "no go.mod above the working directory")
		dir = parent
	}
}

// goFile is one parsed file and its base name.
type goFile struct {
	name string
	ast  *ast.File
}

// packageFiles parses the non-test Go files of every package directory under root,
// keyed by the directory relative to root (testdata, hidden and untracked output
// directories left out).
func packageFiles(t *testing.T, root string) map[string][]goFile {
	pkgs := map[string][]goFile{}
	err := walkGoFiles(root, parser.ParseComments|parser.SkipObjectResolution, func(_, dir, name string, f *ast.File) error {
		if !strings.HasSuffix(name, "_test.go") {
			pkgs[dir] = append(pkgs[dir], goFile{name, f})
		}
		return nil
	})
	require.NoError(t, err)
	require.NotEmpty(t, pkgs)
	return pkgs
}

// outsideRefs are the ways comments used to cite files that are not in the
// repository: a machine's absolute path, and the notes beside it.
var outsideRefs = []string{"/work/", "ETCD-COMPAT", "STYLE.md"}

// TestPackageDocs requires what the house style asks of comments: every package
// has exactly one package doc comment (in doc.go when the package has one), and
// every exported name (function, type, method of an exported type, constant and
// variable) has a doc comment. A constant or variable may be covered by its
// group's comment or by a comment at the end of its line. No comment cites a file
// outside the repository (outsideRefs).
func TestPackageDocs(t *testing.T) {
	root := moduleRoot(t)
	pkgs := packageFiles(t, root)
	dirs := make([]string, 0, len(pkgs))
	for d := range pkgs {
		dirs = append(dirs, d)
	}
	slices.Sort(dirs)
	for _, dir := range dirs {
		t.Run(dir, func(t *testing.T) {
			var withDoc []string
			hasDocGo := false
			for _, f := range pkgs[dir] {
				if f.name == "doc.go" {
					hasDocGo = true
				}
				if f.ast.Doc != nil {
					withDoc = append(withDoc, f.name)
				}
			}
			require.Len(t, withDoc, 1, "package %s: want exactly one package doc comment, found it in %v", dir, withDoc)
			if hasDocGo {
				require.Equal(t, "doc.go", withDoc[0], "package %s has doc.go but its package comment is in %s", dir, withDoc[0])
			}
			var missing []string
			for _, f := range pkgs[dir] {
				missing = append(missing, undocumented(f.ast)...)
			}
			require.Empty(t, missing, "package %s: exported names without a doc comment", dir)
			for _, f := range pkgs[dir] {
				for _, c := range f.ast.Comments {
					for _, bad := range outsideRefs {
						require.NotContains(t, c.Text(), bad, "%s/%s: a comment cites a file outside the repository (cite upstream by package path or URL)", dir, f.name)
					}
				}
			}
		})
	}
}

// undocumented lists the exported top-level names of f without a doc comment.
func undocumented(f *ast.File) []string {
	var out []string
	for _, decl := range f.Decls {
		switch d := decl.(type) {
		case *ast.FuncDecl:
			if !d.Name.IsExported() || d.Doc != nil {
				continue
			}
			if d.Recv != nil {
				recv := receiverType(d.Recv.List[0].Type)
				if !ast.IsExported(recv) {
					continue
				}
				out = append(out, recv+"."+d.Name.Name)
				continue
			}
			out = append(out, d.Name.Name)
		case *ast.GenDecl:
			for _, spec := range d.Specs {
				switch s := spec.(type) {
				case *ast.TypeSpec:
					if s.Name.IsExported() && s.Doc == nil && (d.Doc == nil || d.Lparen.IsValid()) {
						out = append(out, s.Name.Name)
					}
				case *ast.ValueSpec:
					if s.Doc != nil || s.Comment != nil || d.Doc != nil {
						continue
					}
					for _, n := range s.Names {
						if n.IsExported() {
							out = append(out, n.Name)
						}
					}
				}
			}
		}
	}
	return out
}

// receiverType is the name of a method receiver's type: T, *T, T[K] or *T[K].
func receiverType(e ast.Expr) string {
	for {
		switch x := e.(type) {
		case *ast.StarExpr:
			e = x.X
		case *ast.IndexExpr:
			e = x.X
		case *ast.IndexListExpr:
			e = x.X
		case *ast.Ident:
			return x.Name
		default:
			return ""
		}
	}
}
