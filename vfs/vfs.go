package vfs

import (
	"fmt"
	"io"
	"io/fs"
	"syscall"
)

// File is an open file. Reads start at offset 0; writes go to the current
// offset, or to the end for a file opened with OpenAppend.
type File interface {
	io.Reader
	io.ReaderAt
	io.Writer
	io.Closer
	// Sync makes every byte written so far durable.
	Sync() error
	// Truncate changes the file's size; growing fills with zeros.
	Truncate(size int64) error
	// Size returns the current (not necessarily durable) size.
	Size() (int64, error)
}

// FS is the file system the write-ahead log goes through.
type FS interface {
	// Create creates or truncates name and opens it read-write at offset 0.
	Create(name string) (File, error)
	// Open opens an existing file read-only.
	Open(name string) (File, error)
	// OpenAppend opens an existing file read-write; writes go to the end.
	OpenAppend(name string) (File, error)
	// Remove removes a file or an empty directory.
	Remove(name string) error
	// Rename renames a file, replacing newname if it is a file.
	Rename(oldname, newname string) error
	// MkdirAll creates dir and any missing parents, durably.
	MkdirAll(dir string) error
	// List returns the base names in dir, sorted; the error wraps
	// fs.ErrNotExist if dir is missing.
	List(dir string) ([]string, error)
	// Exists reports whether name exists (file or directory).
	Exists(name string) (bool, error)
	// SyncDir makes creates, renames and removes of names in dir durable.
	SyncDir(dir string) error
}

// ErrNoSpace is returned (wrapped) by a write that does not fit on the
// device. It wraps syscall.ENOSPC so callers may test for either.
var ErrNoSpace = fmt.Errorf("vfs: no space left on device: %w", syscall.ENOSPC)

// ErrClosed is returned (wrapped) by any use of a closed file, or of a Mem
// file opened before a simulated crash. It wraps fs.ErrClosed.
var ErrClosed = fmt.Errorf("vfs: file closed: %w", fs.ErrClosed)

// errIsDir and errNotDir mirror EISDIR and ENOTDIR for Mem.
var (
	errIsDir    = fmt.Errorf("is a directory: %w", syscall.EISDIR)
	errNotDir   = fmt.Errorf("not a directory: %w", syscall.ENOTDIR)
	errNotEmpty = fmt.Errorf("directory not empty: %w", syscall.ENOTEMPTY)
	errReadOnly = fmt.Errorf("file not open for writing: %w", fs.ErrPermission)
)
