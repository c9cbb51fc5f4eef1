// Package vfstest is the conformance suite every vfs.FS implementation must
// pass, in the manner of testing/fstest.TestFS. It checks the behaviour that
// the write-ahead log relies on; durability is implementation-specific and
// tested where it can be observed (vfs.Mem's crash tests).
package vfstest

import (
	"errors"
	"io"
	"io/fs"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/havoclab/havoc/vfs"
)

// TestFS runs the conformance suite. newFS must return an empty file system
// (for vfs.OS, use vfs.Sub(vfs.OS(), t.TempDir())) for each subtest.
func TestFS(t *testing.T, newFS func(t *testing.T) vfs.FS) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, fsys vfs.FS)
	}{
		{"CreateWriteRead", testCreateWriteRead},
		{"CreateTruncates", testCreateTruncates},
		{"ReadAt", testReadAt},
		{"OpenReadOnly", testOpenReadOnly},
		{"OpenAppend", testOpenAppend},
		{"Truncate", testTruncate},
		{"Missing", testMissing},
		{"Remove", testRemove},
		{"Rename", testRename},
		{"Dirs", testDirs},
		{"Closed", testClosed},
		{"Sync", testSync},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newFS(t)) })
	}
}

func write(t *testing.T, fsys vfs.FS, name, content string) {
	t.Helper()
	f, err := fsys.Create(name)
	require.NoError(t, err)
	n, err := f.Write([]byte(content))
	require.NoError(t, err)
	require.Equal(t, len(content), n)
	require.NoError(t, f.Close())
}

func read(t *testing.T, fsys vfs.FS, name string) string {
	t.Helper()
	f, err := fsys.Open(name)
	require.NoError(t, err)
	defer f.Close()
	b, err := io.ReadAll(f)
	require.NoError(t, err)
	return string(b)
}

func testCreateWriteRead(t *testing.T, fsys vfs.FS) {
	f, err := fsys.Create("a")
	require.NoError(t, err)
	_, err = f.Write([]byte("hello "))
	require.NoError(t, err)
	_, err = f.Write([]byte("world"))
	require.NoError(t, err)
	size, err := f.Size()
	require.NoError(t, err)
	assert.EqualValues(t, 11, size)
	// Create opens read-write at the current offset: reading now hits EOF.
	n, err := f.Read(make([]byte, 4))
	assert.Equal(t, 0, n)
	assert.ErrorIs(t, err, io.EOF)
	require.NoError(t, f.Close())
	assert.Equal(t, "hello world", read(t, fsys, "a"))
	assert.Equal(t, "hello world", read(t, fsys, "/a"), "leading slash names the same file")
	assert.Equal(t, "hello world", read(t, fsys, "./x/../a"), "names are cleaned")
}

func testCreateTruncates(t *testing.T, fsys vfs.FS) {
	write(t, fsys, "a", "long old content")
	write(t, fsys, "a", "new")
	assert.Equal(t, "new", read(t, fsys, "a"))
}

func testReadAt(t *testing.T, fsys vfs.FS) {
	write(t, fsys, "a", "0123456789")
	f, err := fsys.Open("a")
	require.NoError(t, err)
	defer f.Close()
	b := make([]byte, 4)
	n, err := f.ReadAt(b, 3)
	require.NoError(t, err)
	assert.Equal(t, "3456", string(b[:n]))
	n, err = f.ReadAt(b, 8)
	assert.ErrorIs(t, err, io.EOF, "short ReadAt returns io.EOF")
	assert.Equal(t, "89", string(b[:n]))
	_, err = f.ReadAt(b, 10)
	assert.ErrorIs(t, err, io.EOF)
	// ReadAt does not move the offset of Read.
	n, err = f.Read(b)
	require.NoError(t, err)
	assert.Equal(t, "0123", string(b[:n]))
}

func testOpenReadOnly(t *testing.T, fsys vfs.FS) {
	write(t, fsys, "a", "abc")
	f, err := fsys.Open("a")
	require.NoError(t, err)
	_, err = f.Write([]byte("x"))
	assert.Error(t, err, "write on a read-only file")
	assert.Error(t, f.Truncate(0), "truncate on a read-only file")
	require.NoError(t, f.Close())
	assert.Equal(t, "abc", read(t, fsys, "a"))
}

func testOpenAppend(t *testing.T, fsys vfs.FS) {
	write(t, fsys, "a", "abc")
	f, err := fsys.OpenAppend("a")
	require.NoError(t, err)
	_, err = f.Write([]byte("def"))
	require.NoError(t, err)
	// Reads start at 0 ... but writes always go to the end.
	b := make([]byte, 2)
	_, err = f.ReadAt(b, 0)
	require.NoError(t, err)
	assert.Equal(t, "ab", string(b))
	require.NoError(t, f.Truncate(4))
	_, err = f.Write([]byte("XY"))
	require.NoError(t, err)
	require.NoError(t, f.Close())
	assert.Equal(t, "abcdXY", read(t, fsys, "a"))

	_, err = fsys.OpenAppend("missing")
	assert.ErrorIs(t, err, fs.ErrNotExist)
}

func testTruncate(t *testing.T, fsys vfs.FS) {
	f, err := fsys.Create("a")
	require.NoError(t, err)
	_, err = f.Write([]byte("abcdef"))
	require.NoError(t, err)
	require.NoError(t, f.Truncate(2))
	size, err := f.Size()
	require.NoError(t, err)
	assert.EqualValues(t, 2, size)
	require.NoError(t, f.Truncate(5))
	require.NoError(t, f.Close())
	assert.Equal(t, "ab\x00\x00\x00", read(t, fsys, "a"), "growing fills with zeros")
}

func testMissing(t *testing.T, fsys vfs.FS) {
	_, err := fsys.Open("nope")
	assert.ErrorIs(t, err, fs.ErrNotExist)
	_, err = fsys.Create("nodir/a")
	assert.ErrorIs(t, err, fs.ErrNotExist)
	assert.ErrorIs(t, fsys.Remove("nope"), fs.ErrNotExist)
	assert.ErrorIs(t, fsys.Rename("nope", "b"), fs.ErrNotExist)
	_, err = fsys.List("nodir")
	assert.ErrorIs(t, err, fs.ErrNotExist)
	assert.Error(t, fsys.SyncDir("nodir"))
	ok, err := fsys.Exists("nope")
	require.NoError(t, err)
	assert.False(t, ok)
}

func testRemove(t *testing.T, fsys vfs.FS) {
	write(t, fsys, "a", "x")
	require.NoError(t, fsys.Remove("a"))
	ok, err := fsys.Exists("a")
	require.NoError(t, err)
	assert.False(t, ok)

	require.NoError(t, fsys.MkdirAll("d"))
	write(t, fsys, "d/f", "x")
	assert.Error(t, fsys.Remove("d"), "non-empty directory")
	require.NoError(t, fsys.Remove("d/f"))
	require.NoError(t, fsys.Remove("d"))
	ok, err = fsys.Exists("d")
	require.NoError(t, err)
	assert.False(t, ok)
}

func testRename(t *testing.T, fsys vfs.FS) {
	write(t, fsys, "a", "A")
	write(t, fsys, "b", "B")
	require.NoError(t, fsys.Rename("a", "b"))
	assert.Equal(t, "A", read(t, fsys, "b"), "rename replaces the target")
	_, err := fsys.Open("a")
	assert.ErrorIs(t, err, fs.ErrNotExist)

	require.NoError(t, fsys.MkdirAll("d"))
	require.NoError(t, fsys.Rename("b", "d/c"))
	assert.Equal(t, "A", read(t, fsys, "d/c"))
	names, err := fsys.List(".")
	require.NoError(t, err)
	assert.Equal(t, []string{"d"}, names)
}

func testDirs(t *testing.T, fsys vfs.FS) {
	require.NoError(t, fsys.MkdirAll("x/y/z"))
	require.NoError(t, fsys.MkdirAll("x/y/z"), "MkdirAll is idempotent")
	require.NoError(t, fsys.MkdirAll("x/y"))
	for _, n := range []string{"x/y/c", "x/y/a", "x/y/b10", "x/y/b2"} {
		write(t, fsys, n, n)
	}
	names, err := fsys.List("x/y")
	require.NoError(t, err)
	assert.Equal(t, []string{"a", "b10", "b2", "c", "z"}, names)
	names, err = fsys.List("x/y/z")
	require.NoError(t, err)
	assert.Empty(t, names)
	ok, err := fsys.Exists("x/y/z")
	require.NoError(t, err)
	assert.True(t, ok)
	require.NoError(t, fsys.SyncDir("x/y"))
	require.NoError(t, fsys.SyncDir("."))

	assert.Error(t, fsys.MkdirAll("x/y/a/b"), "a file is in the way")
	_, err = fsys.Create("x/y")
	assert.Error(t, err, "creating over a directory")
	_, err = fsys.List("x/y/a")
	assert.Error(t, err, "listing a file")
}

func testClosed(t *testing.T, fsys vfs.FS) {
	f, err := fsys.Create("a")
	require.NoError(t, err)
	require.NoError(t, f.Close())
	_, err = f.Write([]byte("x"))
	assert.ErrorIs(t, err, vfs.ErrClosed)
	_, err = f.Read(make([]byte, 1))
	assert.ErrorIs(t, err, vfs.ErrClosed)
	assert.ErrorIs(t, f.Sync(), vfs.ErrClosed)
	assert.True(t, errors.Is(f.Close(), fs.ErrClosed), "second close")
}

func testSync(t *testing.T, fsys vfs.FS) {
	require.NoError(t, fsys.MkdirAll("d"))
	f, err := fsys.Create("d/a")
	require.NoError(t, err)
	_, err = f.Write([]byte("data"))
	require.NoError(t, err)
	require.NoError(t, f.Sync())
	require.NoError(t, fsys.SyncDir("d"))
	require.NoError(t, f.Close())
	g, err := fsys.Open("d/a")
	require.NoError(t, err)
	require.NoError(t, g.Sync(), "a read-only file can be synced")
	require.NoError(t, g.Close())
	assert.Equal(t, "data", read(t, fsys, "d/a"))
}
