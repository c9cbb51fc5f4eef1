package shared

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// recorder is a testing.TB that records Fatalf and Skipf instead of stopping.
type recorder struct {
	testing.TB
	fatal, skip string
}

func (r *recorder) Helper()                      {}
func (r *recorder) Fatalf(f string, args ...any) { r.fatal = fmt.Sprintf(f, args...) }
func (r *recorder) Skipf(f string, args ...any)  { r.skip = fmt.Sprintf(f, args...) }

func TestPathMissingFailsUnderCI(t *testing.T) {
	for _, c := range []struct {
		ci         string
		fail, skip bool
	}{
		{"true", true, false},
		{"1", true, false},
		{"", false, true},
		{"false", false, true},
	} {
		t.Run("CI="+c.ci, func(t *testing.T) {
			t.Setenv("CI", c.ci)
			r := &recorder{TB: t}
			require.Empty(t, Path(r, "testdata", "no-such-corpus"))
			if c.fail {
				require.Contains(t, r.fatal, "../shared/testdata/no-such-corpus not found")
			} else {
				require.Empty(t, r.fatal)
			}
			if c.skip {
				require.Contains(t, r.skip, "../shared/testdata/no-such-corpus not found")
			} else {
				require.Empty(t, r.skip)
			}
		})
	}
}

func TestPathFindsSiblingOfModuleRoot(t *testing.T) {
	root := t.TempDir()
	mod := filepath.Join(root, "repo")
	pkg := filepath.Join(mod, "a", "b")
	require.NoError(t, os.MkdirAll(pkg, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(mod, "go.mod"), []byte("module x\n"), 0o644))
	data := filepath.Join(root, "shared", "testdata", "corpus")
	require.NoError(t, os.MkdirAll(data, 0o755))
	t.Chdir(pkg)
	t.Setenv("CI", "true")
	r := &recorder{TB: t}
	require.Equal(t, data, Path(r, "testdata", "corpus"))
	require.Empty(t, r.fatal)
	require.Empty(t, r.skip)
}
