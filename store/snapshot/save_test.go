package snapshot_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/havoclab/havoc/store/snapshot"
)

// TestSaveStream: a stream with the sha256 trailer lands at path in full; one
// without it is refused and leaves neither path nor the part file.
func TestSaveStream(t *testing.T) {
	dir := t.TempDir()
	var stream bytes.Buffer
	_, err := snapshot.Write(&stream, bytes.NewReader(bytes.Repeat([]byte{7}, 4096)))
	require.NoError(t, err)
	want := stream.Bytes()
	path := filepath.Join(dir, "ok.snap")
	n, err := snapshot.SaveStream(bytes.NewReader(want), path)
	require.NoError(t, err)
	require.EqualValues(t, len(want), n)
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, want, got)

	path = filepath.Join(dir, "raw.snap")
	_, err = snapshot.SaveStream(bytes.NewReader(make([]byte, 4096)), path)
	require.ErrorIs(t, err, snapshot.ErrMissingHash)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "only ok.snap: no raw.snap, no part file")
}
