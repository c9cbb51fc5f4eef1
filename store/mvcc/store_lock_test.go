package mvcc

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

// TestOpenLockedBackendFails: a second opener of a backend in use gets ErrLocked
// after the timeout instead of hanging.
func TestOpenLockedBackendFails(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the 2 s lock timeout")
	}
	path := filepath.Join(t.TempDir(), "db")
	holder, err := bolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	defer holder.Close()
	_, err = Open(path, Options{})
	require.ErrorIs(t, err, ErrLocked)
}
