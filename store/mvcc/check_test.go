package mvcc

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// damagedFile writes a backend with enough data to span many pages, closes it,
// and damages it with fn.
func damagedFile(t *testing.T, fn func(path string)) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "db")
	s, err := Open(path, Options{NoSync: true})
	require.NoError(t, err)
	for i := range 200 {
		_, err := s.Put(&pb.PutRequest{Key: fmt.Appendf(nil, "k%03d", i), Value: bytes.Repeat([]byte{'v'}, 200)})
		require.NoError(t, err)
	}
	require.NoError(t, s.Close())
	fn(path)
	return path
}

// TestOpenRefusesDamagedFile: bbolt maps a file truncated below its high-water
// mark and dies with SIGBUS on the first page past the end; Open must refuse it
// (and other damage that would crash bbolt) with ErrCorrupt first.
func TestOpenRefusesDamagedFile(t *testing.T) {
	flip := func(off int64) func(string) {
		return func(path string) {
			b, err := os.ReadFile(path)
			require.NoError(t, err)
			b[off] ^= 0xff
			require.NoError(t, os.WriteFile(path, b, 0o600))
		}
	}
	pageSize := int64(os.Getpagesize())
	for _, tc := range []struct {
		name, want string
		damage     func(string)
	}{
		{"truncated to 8 KiB", "is truncated", func(p string) { require.NoError(t, os.Truncate(p, 8<<10)) }},
		{"truncated to 100 bytes", "is truncated", func(p string) { require.NoError(t, os.Truncate(p, 100)) }},
		{"truncated to 50 bytes", "no valid bbolt meta page", func(p string) { require.NoError(t, os.Truncate(p, 50)) }},
		{"both meta checksums broken", "no valid bbolt meta page", func(p string) {
			flip(16 + 20)(p)
			flip(pageSize + 16 + 20)(p)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := damagedFile(t, tc.damage)
			before, err := os.ReadFile(path)
			require.NoError(t, err)
			_, err = Open(path, Options{NoSync: true})
			require.ErrorIs(t, err, ErrCorrupt)
			require.ErrorContains(t, err, tc.want)
			after, err := os.ReadFile(path)
			require.NoError(t, err)
			require.Equal(t, before, after, "a refused file is left as it was")
		})
	}
	t.Run("one meta page broken still opens", func(t *testing.T) {
		path := damagedFile(t, flip(16+20))
		s, err := Open(path, Options{NoSync: true})
		require.NoError(t, err)
		require.NoError(t, s.Close())
	})
}
