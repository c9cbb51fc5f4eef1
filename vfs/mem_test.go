package vfs_test

import (
	"bytes"
	"io"
	"io/fs"
	"math/rand/v2"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/havoclab/havoc/vfs"
)

func content(t *testing.T, m *vfs.Mem, name string) string {
	t.Helper()
	f, err := m.Open(name)
	require.NoError(t, err)
	defer f.Close()
	b, err := io.ReadAll(f)
	require.NoError(t, err)
	return string(b)
}

func exists(t *testing.T, m *vfs.Mem, name string) bool {
	t.Helper()
	ok, err := m.Exists(name)
	require.NoError(t, err)
	return ok
}

// durableFile creates dir/name with content, synced and with its name synced.
func durableFile(t *testing.T, m *vfs.Mem, name, data string) vfs.File {
	t.Helper()
	f, err := m.Create(name)
	require.NoError(t, err)
	_, err = f.Write([]byte(data))
	require.NoError(t, err)
	require.NoError(t, f.Sync())
	require.NoError(t, m.SyncDir("."))
	return f
}

func TestMemCrashDropsUnsyncedData(t *testing.T) {
	m := vfs.NewMem()
	f := durableFile(t, m, "a", "synced")
	_, err := f.Write([]byte("+lost"))
	require.NoError(t, err)
	assert.Equal(t, "synced+lost", content(t, m, "a"))
	m.Crash()
	assert.Equal(t, "synced", content(t, m, "a"))
	_, err = f.Write([]byte("x"))
	assert.ErrorIs(t, err, vfs.ErrClosed, "handles die with the crash")
	assert.EqualValues(t, 6, m.Used())
}

func TestMemCrashKeepsSyncedAfterOverwrite(t *testing.T) {
	// Shrinking and rewriting below the synced length must not disturb the
	// synced copy (it shares the backing array until then).
	m := vfs.NewMem()
	f := durableFile(t, m, "a", "0123456789")
	require.NoError(t, f.Truncate(3))
	_, err := f.Write([]byte("abcdefgh")) // at offset 10: leaves a hole
	require.NoError(t, err)
	assert.Equal(t, "012\x00\x00\x00\x00\x00\x00\x00abcdefgh", content(t, m, "a"))
	require.NoError(t, f.Truncate(3))
	fa, err := m.OpenAppend("a")
	require.NoError(t, err)
	_, err = fa.Write([]byte("abcdefgh"))
	require.NoError(t, err)
	assert.Equal(t, "012abcdefgh", content(t, m, "a"))
	m.CrashTorn(rand.New(rand.NewPCG(1, 2))) // dirty file: no torn tail possible
	assert.Equal(t, "0123456789", content(t, m, "a"))

	g, err := m.Create("a") // truncates the synced file
	require.NoError(t, err)
	_, err = g.Write([]byte("new"))
	require.NoError(t, err)
	m.Crash()
	assert.Equal(t, "0123456789", content(t, m, "a"), "unsynced truncation is undone")
}

func TestMemCrashUndoesDirectoryOps(t *testing.T) {
	m := vfs.NewMem()
	require.NoError(t, m.MkdirAll("d"))
	durableFile(t, m, "d/keep", "k")
	require.NoError(t, m.SyncDir("d"))

	durableFile(t, m, "d/old", "o")
	require.NoError(t, m.SyncDir("d"))
	// Unsynced create: the file's data is synced but its name is not.
	f, err := m.Create("d/new")
	require.NoError(t, err)
	require.NoError(t, f.Sync())
	// Unsynced rename and remove.
	require.NoError(t, m.Rename("d/old", "d/renamed"))
	require.NoError(t, m.Remove("d/keep"))
	m.Crash()
	names, err := m.List("d")
	require.NoError(t, err)
	assert.Equal(t, []string{"keep", "old"}, names)
	assert.Equal(t, "o", content(t, m, "d/old"))

	// The same operations followed by SyncDir survive.
	require.NoError(t, m.Rename("d/old", "d/renamed"))
	require.NoError(t, m.Remove("d/keep"))
	_, err = m.Create("d/new")
	require.NoError(t, err)
	require.NoError(t, m.SyncDir("d"))
	m.Crash()
	names, err = m.List("d")
	require.NoError(t, err)
	assert.Equal(t, []string{"new", "renamed"}, names)
	assert.True(t, exists(t, m, "d"), "MkdirAll is durable at once")
}

func TestMemCrashTorn(t *testing.T) {
	const synced, unsynced = "SYNCED:", "0123456789abcdef"
	seen := map[int]bool{}
	garbled := 0
	for seed := range uint64(200) {
		m := vfs.NewMem()
		f := durableFile(t, m, "a", synced)
		_, err := f.Write([]byte(unsynced))
		require.NoError(t, err)
		m.CrashTorn(rand.New(rand.NewPCG(seed, 7)))
		got := content(t, m, "a")
		require.True(t, len(got) >= len(synced) && len(got) <= len(synced)+len(unsynced), "%q", got)
		require.Equal(t, synced, got[:len(synced)], "synced bytes are never torn")
		keep := len(got) - len(synced)
		seen[keep] = true
		if keep > 0 {
			require.Equal(t, unsynced[:keep-1], got[len(synced):len(got)-1])
			if got[len(got)-1] != unsynced[keep-1] {
				garbled++
			}
		}
		// What survived a crash is durable: a second crash keeps it.
		m.Crash()
		require.Equal(t, got, content(t, m, "a"))
	}
	assert.Len(t, seen, len(unsynced)+1, "every prefix length occurs")
	assert.Greater(t, garbled, 20)
	assert.Less(t, garbled, 180)
}

func TestMemCrashTornDeterministic(t *testing.T) {
	run := func() []byte {
		m := vfs.NewMem()
		var out bytes.Buffer
		for _, n := range []string{"c", "a", "b"} {
			f := durableFile(t, m, n, n)
			_, err := f.Write(bytes.Repeat([]byte(n), 50))
			require.NoError(t, err)
		}
		m.CrashTorn(rand.New(rand.NewPCG(42, 42)))
		for _, n := range []string{"a", "b", "c"} {
			out.WriteString(content(t, m, n) + "|")
		}
		return out.Bytes()
	}
	assert.Equal(t, run(), run())
}

func TestMemCapacity(t *testing.T) {
	m := vfs.NewMem()
	m.SetCapacity(10)
	f, err := m.Create("a")
	require.NoError(t, err)
	_, err = f.Write([]byte("12345678"))
	require.NoError(t, err)
	n, err := f.Write([]byte("abc"))
	assert.ErrorIs(t, err, vfs.ErrNoSpace)
	assert.ErrorIs(t, err, syscall.ENOSPC)
	assert.Equal(t, 0, n, "a failing write writes nothing")
	assert.EqualValues(t, 8, m.Used())
	assert.ErrorIs(t, f.Truncate(11), vfs.ErrNoSpace)
	_, err = f.Write([]byte("ab"))
	require.NoError(t, err, "exactly full is fine")
	assert.EqualValues(t, 10, m.Used())

	// Removing a file frees its space; overwriting in place needs none.
	require.NoError(t, m.Remove("a"))
	assert.EqualValues(t, 0, m.Used())
	g, err := m.Create("b")
	require.NoError(t, err)
	_, err = g.Write([]byte("0123456789"))
	require.NoError(t, err)
	require.NoError(t, g.Truncate(4))
	assert.EqualValues(t, 4, m.Used())
	m.SetCapacity(0)
	_, err = g.Write(make([]byte, 1000))
	require.NoError(t, err, "0 is unlimited")
}

func TestMemUsedAfterCrashAndRename(t *testing.T) {
	m := vfs.NewMem()
	durableFile(t, m, "a", "aaaa")
	durableFile(t, m, "b", "bb")
	require.NoError(t, m.Rename("a", "b"))
	assert.EqualValues(t, 4, m.Used())
	m.Crash()
	assert.EqualValues(t, 6, m.Used(), "the rename was not durable")
}

func TestMemInvalidNames(t *testing.T) {
	m := vfs.NewMem()
	_, err := m.Create("../x")
	assert.ErrorIs(t, err, fs.ErrInvalid)
	assert.Error(t, m.Rename("d", "d/e"))
	require.NoError(t, m.MkdirAll("d"))
	assert.ErrorIs(t, m.Rename("d", "d/e"), fs.ErrInvalid)
}

func BenchmarkMemAppendSync(b *testing.B) {
	m := vfs.NewMem()
	f, err := m.Create("wal")
	if err != nil {
		b.Fatal(err)
	}
	rec := make([]byte, 128)
	b.SetBytes(int64(len(rec)))
	for b.Loop() {
		if _, err := f.Write(rec); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
	}
}

// TestMemCrashUndoesRenameOverFile: replacing a file by renaming a new one over
// it (how the backend is swapped) is lost on a crash until the directory is
// synced; the old file comes back with its content.
func TestMemCrashUndoesRenameOverFile(t *testing.T) {
	m := vfs.NewMem()
	require.NoError(t, m.MkdirAll("d"))
	durableFile(t, m, "d/db", "old")
	require.NoError(t, m.SyncDir("d"))
	durableFile(t, m, "d/db.tmp", "new")
	require.NoError(t, m.SyncDir("d"))
	require.NoError(t, m.Rename("d/db.tmp", "d/db"))
	m.Crash()
	assert.Equal(t, "old", content(t, m, "d/db"))
	used := m.Used()

	require.NoError(t, m.Rename("d/db.tmp", "d/db"))
	require.NoError(t, m.SyncDir("d"))
	m.Crash()
	assert.Equal(t, "new", content(t, m, "d/db"))
	ok, err := m.Exists("d/db.tmp")
	require.NoError(t, err)
	assert.False(t, ok)
	assert.Less(t, m.Used(), used, "the replaced file's bytes are freed")
}
