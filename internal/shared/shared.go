// Package shared finds the data that lives beside the repository, in ../shared
// (the Jepsen etcd corpus under testdata/jepsen-etcd), for the tests that read
// it. The repository never copies it.
//
// Contract: a test that needs a shared file asks Path for it. When the file is
// missing the test skips with a message on a developer's machine, and fails under
// CI (CI=true), where ../shared is always present: a CI run that skipped those
// tests silently would vouch for checks that never ran.
package shared

import (
	"os"
	"path/filepath"
	"testing"
)

// CI reports whether the CI environment variable is set to something other than
// "", "0" or "false" (CI systems set CI=true).
func CI() bool {
	switch os.Getenv("CI") {
	case "", "0", "false":
		return false
	}
	return true
}

// Path returns the path of elem under the shared directory, the sibling "shared"
// of the module root (the directory above the working directory that holds
// go.mod). When it does not exist, Path fails t under CI and skips it otherwise.
func Path(t testing.TB, elem ...string) string {
	t.Helper()
	p, err := find(elem...)
	if err != nil {
		if CI() {
			t.Fatalf("CI is set but %v (CI runs with ../shared beside the clone)", err)
		} else {
			t.Skipf("%v; skipped outside CI", err)
		}
		return ""
	}
	return p
}

// find returns root/../shared/elem... for the module root above the working
// directory, or an error saying what is missing.
func find(elem ...string) (string, error) {
	dir, err := filepath.Abs(".")
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", &missingError{what: "go.mod above the working directory"}
		}
		dir = parent
	}
	p := filepath.Join(append([]string{filepath.Dir(dir), "shared"}, elem...)...)
	if _, err := os.Stat(p); err != nil {
		return "", &missingError{what: filepath.Join(append([]string{"../shared"}, elem...)...)}
	}
	return p, nil
}

// missingError names a shared file that is not there.
type missingError struct{ what string }

func (e *missingError) Error() string { return e.what + " not found" }
