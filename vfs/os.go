package vfs

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"syscall"
)

// OS returns the file system of the running process (package os). SyncDir
// fsyncs the directory; MkdirAll fsyncs the parent of every directory it
// creates.
func OS() FS { return osFS{} }

type osFS struct{}

func native(name string) string { return filepath.FromSlash(path.Clean(name)) }

func (osFS) Create(name string) (File, error) {
	f, err := os.OpenFile(native(name), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

func (osFS) Open(name string) (File, error) {
	f, err := os.Open(native(name))
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

func (osFS) OpenAppend(name string) (File, error) {
	f, err := os.OpenFile(native(name), os.O_RDWR|os.O_APPEND, 0)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

func (osFS) Remove(name string) error { return os.Remove(native(name)) }

func (osFS) Rename(oldname, newname string) error {
	return os.Rename(native(oldname), native(newname))
}

func (osFS) MkdirAll(dir string) error {
	// Collect the missing directories first, so that only their parents are
	// synced afterwards: existing directories need nothing.
	var missing []string
	for d := native(dir); ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		missing = append(missing, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if err := os.MkdirAll(native(dir), 0o755); err != nil {
		return err
	}
	for _, d := range missing {
		if err := syncDir(filepath.Dir(d)); err != nil {
			return err
		}
	}
	return nil
}

func (osFS) List(dir string) ([]string, error) {
	ents, err := os.ReadDir(native(dir)) // sorted by name
	if err != nil {
		return nil, err
	}
	names := make([]string, len(ents))
	for i, e := range ents {
		names[i] = e.Name()
	}
	return names, nil
}

func (osFS) Exists(name string) (bool, error) {
	_, err := os.Stat(native(name))
	if err == nil {
		return true, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return false, err
}

func (osFS) SyncDir(dir string) error { return syncDir(native(dir)) }

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return err
	}
	return d.Close()
}

// osFile adapts *os.File so that its errors wrap this package's sentinels.
type osFile struct{ f *os.File }

func fixErr(err error) error {
	if err == nil {
		return nil
	}
	var pe *fs.PathError
	switch {
	case errors.Is(err, syscall.ENOSPC) && !errors.Is(err, ErrNoSpace):
		if errors.As(err, &pe) {
			return &fs.PathError{Op: pe.Op, Path: pe.Path, Err: ErrNoSpace}
		}
		return ErrNoSpace
	case errors.Is(err, os.ErrClosed) && !errors.Is(err, ErrClosed):
		if errors.As(err, &pe) {
			return &fs.PathError{Op: pe.Op, Path: pe.Path, Err: ErrClosed}
		}
		return ErrClosed
	}
	return err
}

func (o osFile) Read(p []byte) (int, error) {
	n, err := o.f.Read(p)
	return n, fixErr(err)
}

func (o osFile) ReadAt(p []byte, off int64) (int, error) {
	n, err := o.f.ReadAt(p, off)
	return n, fixErr(err)
}

func (o osFile) Write(p []byte) (int, error) {
	n, err := o.f.Write(p)
	return n, fixErr(err)
}

func (o osFile) Close() error              { return fixErr(o.f.Close()) }
func (o osFile) Sync() error               { return fixErr(o.f.Sync()) }
func (o osFile) Truncate(size int64) error { return fixErr(o.f.Truncate(size)) }

func (o osFile) Size() (int64, error) {
	st, err := o.f.Stat()
	if err != nil {
		return 0, fixErr(err)
	}
	return st.Size(), nil
}
