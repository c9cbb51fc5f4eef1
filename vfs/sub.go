package vfs

import (
	"path"
	"strings"
)

// Sub returns an FS whose names are interpreted inside dir of fsys, so that
// several simulated hosts (or tests) can share one disk. Names are cleaned
// and may not escape dir.
func Sub(fsys FS, dir string) FS { return subFS{fsys: fsys, dir: path.Clean(dir)} }

type subFS struct {
	fsys FS
	dir  string
}

func (s subFS) full(name string) string {
	return path.Join(s.dir, strings.TrimPrefix(path.Clean("/"+name), "/"))
}

func (s subFS) Create(name string) (File, error)     { return s.fsys.Create(s.full(name)) }
func (s subFS) Open(name string) (File, error)       { return s.fsys.Open(s.full(name)) }
func (s subFS) OpenAppend(name string) (File, error) { return s.fsys.OpenAppend(s.full(name)) }
func (s subFS) Remove(name string) error             { return s.fsys.Remove(s.full(name)) }
func (s subFS) Rename(o, n string) error             { return s.fsys.Rename(s.full(o), s.full(n)) }
func (s subFS) MkdirAll(dir string) error            { return s.fsys.MkdirAll(s.full(dir)) }
func (s subFS) List(dir string) ([]string, error)    { return s.fsys.List(s.full(dir)) }
func (s subFS) Exists(name string) (bool, error)     { return s.fsys.Exists(s.full(name)) }
func (s subFS) SyncDir(dir string) error             { return s.fsys.SyncDir(s.full(dir)) }
