package vfs_test

import (
	"testing"

	"github.com/havoclab/havoc/vfs"
	"github.com/havoclab/havoc/vfs/vfstest"
)

func TestOS(t *testing.T) {
	vfstest.TestFS(t, func(t *testing.T) vfs.FS { return vfs.Sub(vfs.OS(), t.TempDir()) })
}

func TestMem(t *testing.T) {
	vfstest.TestFS(t, func(t *testing.T) vfs.FS { return vfs.NewMem() })
}

func TestMemSub(t *testing.T) {
	vfstest.TestFS(t, func(t *testing.T) vfs.FS {
		m := vfs.NewMem()
		if err := m.MkdirAll("host/1"); err != nil {
			t.Fatal(err)
		}
		return vfs.Sub(m, "host/1")
	})
}
