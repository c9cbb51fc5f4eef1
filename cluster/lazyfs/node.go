package lazyfs

import (
	"context"
	"path/filepath"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// node is a loopback node whose regular files keep unsynced writes in their
// file's dirty extents. Everything else (directories, metadata) is go-fuse's
// loopback, passed straight through to the backing directory.
type node struct {
	*fs.LoopbackNode
	l *FS
}

var (
	_ fs.NodeWrapChilder    = (*node)(nil)
	_ fs.NodeOpener         = (*node)(nil)
	_ fs.NodeCreater        = (*node)(nil)
	_ fs.NodeLookuper       = (*node)(nil)
	_ fs.NodeGetattrer      = (*node)(nil)
	_ fs.NodeSetattrer      = (*node)(nil)
	_ fs.NodeStatxer        = (*node)(nil)
	_ fs.NodeUnlinker       = (*node)(nil)
	_ fs.NodeRenamer        = (*node)(nil)
	_ fs.NodeTmpfiler       = (*node)(nil)
	_ fs.NodeCopyFileRanger = (*node)(nil)
)

// WrapChild makes every child a node too.
func (n *node) WrapChild(ctx context.Context, ops fs.InodeEmbedder) fs.InodeEmbedder {
	return &node{LoopbackNode: ops.(*fs.LoopbackNode), l: n.l}
}

// backingPath is the child's path in the backing directory.
func (n *node) backingPath(name string) string {
	return filepath.Join(n.l.backing, n.Path(nil), name)
}

// inoOf is the inode number go-fuse's loopback gives a backing file (the
// formula of LoopbackRoot.idFromStat), so that a file can be found by stat.
func (n *node) inoOf(st *syscall.Stat_t) uint64 {
	swap := func(d uint64) uint64 { return d<<32 | d>>32 }
	return swap(uint64(st.Dev)) ^ swap(n.l.rootDev) ^ st.Ino
}

// atLeast raises a reported size to cover the unsynced data of inode ino.
func (n *node) atLeast(ino uint64, size *uint64) {
	if f := n.l.lookup(ino); f != nil {
		f.mu.Lock()
		if end := uint64(f.dirty.end()); end > *size {
			*size = end
		}
		f.mu.Unlock()
	}
}

// openFlags are the flags the backing file is opened with: no O_DIRECT (this
// file system's buffers are not aligned), no O_SYNC (the handle honours it).
func openFlags(flags uint32) uint32 {
	return flags &^ uint32(syscall.O_DIRECT|syscall.O_SYNC|syscall.O_DSYNC)
}

// Open opens the backing file and wraps its handle.
func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	fh, fl, errno := n.LoopbackNode.Open(ctx, openFlags(flags))
	if errno != 0 {
		return nil, 0, errno
	}
	h, errno := n.wrap(fh, flags)
	if errno == 0 && flags&syscall.O_TRUNC != 0 {
		h.f.mu.Lock()
		h.f.dirty.truncate(0)
		h.f.mu.Unlock()
	}
	return h, fl, errno
}

// Create creates the backing file and wraps its handle.
func (n *node) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	in, fh, fl, errno := n.LoopbackNode.Create(ctx, name, openFlags(flags), mode, out)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	h, errno := in.Operations().(*node).wrap(fh, flags)
	if errno == 0 && flags&syscall.O_TRUNC != 0 {
		h.f.mu.Lock()
		h.f.dirty.truncate(0)
		h.f.mu.Unlock()
	}
	n.atLeast(in.StableAttr().Ino, &out.Size)
	return in, h, fl, errno
}

// Tmpfile is refused (O_TMPFILE falls back to an ordinary create in most
// programs): go-fuse's loopback would hand out an unwrapped handle.
func (n *node) Tmpfile(ctx context.Context, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.EOPNOTSUPP
}

// CopyFileRange is refused, so that the kernel copies through Read and Write.
func (n *node) CopyFileRange(ctx context.Context, fhIn fs.FileHandle, offIn uint64, out *fs.Inode, fhOut fs.FileHandle, offOut, length, flags uint64) (uint32, syscall.Errno) {
	return 0, syscall.EOPNOTSUPP
}

func (n *node) wrap(fh fs.FileHandle, flags uint32) (*handle, syscall.Errno) {
	lf, ok := fh.(*fs.LoopbackFile)
	if !ok {
		return nil, syscall.EIO
	}
	fd, ok := lf.PassthroughFd()
	if !ok {
		_ = lf.Release(context.Background())
		return nil, syscall.EBADF
	}
	return &handle{lf: lf, fd: fd, l: n.l, f: n.l.acquire(n.StableAttr().Ino, n.EmbeddedInode()),
		sync:     flags&(syscall.O_SYNC|syscall.O_DSYNC) != 0,
		writable: flags&syscall.O_ACCMODE != syscall.O_RDONLY}, 0
}

// Lookup reports a child's size with its unsynced data.
func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	in, errno := n.LoopbackNode.Lookup(ctx, name, out)
	if errno == 0 {
		n.atLeast(in.StableAttr().Ino, &out.Size)
	}
	return in, errno
}

// Getattr reports the size with unsynced data.
func (n *node) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	errno := n.LoopbackNode.Getattr(ctx, f, out)
	if errno == 0 {
		n.atLeast(n.StableAttr().Ino, &out.Size)
	}
	return errno
}

// Statx reports the size with unsynced data.
func (n *node) Statx(ctx context.Context, f fs.FileHandle, flags, mask uint32, out *fuse.StatxOut) syscall.Errno {
	errno := n.LoopbackNode.Statx(ctx, f, flags, mask, out)
	if errno == 0 {
		n.atLeast(n.StableAttr().Ino, &out.Size)
	}
	return errno
}

// Setattr passes everything through; a truncate also forgets the unsynced
// data it cuts off (a truncate is metadata: it survives a crash).
func (n *node) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	size, resize := in.GetSize()
	if !resize {
		errno := n.LoopbackNode.Setattr(ctx, fh, in, out)
		if errno == 0 {
			n.atLeast(n.StableAttr().Ino, &out.Size)
		}
		return errno
	}
	f := n.l.lookup(n.StableAttr().Ino)
	h, isHandle := fh.(*handle)
	if isHandle {
		f = h.f
	}
	// The truncate and the forgetting happen under the file's lock, so that
	// no write lands in between.
	if f != nil {
		f.mu.Lock()
	}
	var err error
	if isHandle {
		err = syscall.Ftruncate(h.fd, int64(size))
	} else {
		err = syscall.Truncate(n.backingPath(""), int64(size))
	}
	if f != nil {
		if err == nil {
			f.dirty.truncate(int64(size))
		}
		f.mu.Unlock()
		n.l.forgetLast(f)
	}
	if err != nil {
		return fs.ToErrno(err)
	}
	in.Valid &^= fuse.FATTR_SIZE
	errno := n.LoopbackNode.Setattr(ctx, fh, in, out)
	if errno == 0 {
		n.atLeast(n.StableAttr().Ino, &out.Size)
	}
	return errno
}

// Unlink passes through; a file losing its last link stops being tracked by
// inode number.
func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	var st syscall.Stat_t
	lerr := syscall.Lstat(n.backingPath(name), &st)
	errno := n.LoopbackNode.Unlink(ctx, name)
	if errno == 0 && lerr == nil && st.Nlink <= 1 {
		n.l.orphan(n.inoOf(&st))
	}
	return errno
}

// Rename passes through; a file replaced by the rename stops being tracked
// by inode number when that was its last link.
func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	var st syscall.Stat_t
	var lerr error = syscall.ENOENT
	np, ok := newParent.(*node)
	if ok && flags&unix.RENAME_EXCHANGE == 0 {
		if err := syscall.Lstat(np.backingPath(newName), &st); err == nil {
			lerr = nil
		}
	}
	if ok {
		newParent = np.LoopbackNode
	}
	errno := n.LoopbackNode.Rename(ctx, name, newParent, newName, flags)
	if errno == 0 && lerr == nil && st.Nlink <= 1 && st.Mode&syscall.S_IFMT == syscall.S_IFREG {
		n.l.orphan(n.inoOf(&st))
	}
	return errno
}

// handle is an open regular file: reads see the backing file under the
// file's unsynced extents; writes go to the extents; fsync writes them back.
type handle struct {
	lf       *fs.LoopbackFile
	fd       int // lf's descriptor
	l        *FS
	f        *file
	sync     bool // opened O_SYNC or O_DSYNC: every write is flushed
	writable bool
}

var (
	_ fs.FileReader    = (*handle)(nil)
	_ fs.FileWriter    = (*handle)(nil)
	_ fs.FileFsyncer   = (*handle)(nil)
	_ fs.FileFlusher   = (*handle)(nil)
	_ fs.FileReleaser  = (*handle)(nil)
	_ fs.FileGetattrer = (*handle)(nil)
	_ fs.FileAllocater = (*handle)(nil)
)

// Read reads the backing file and lays the unsynced extents over it; past
// the backing file's end, up to the last unsynced byte, it reads zeros.
func (h *handle) Read(ctx context.Context, buf []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	h.f.mu.Lock()
	defer h.f.mu.Unlock()
	n := 0
	for n < len(buf) {
		m, err := syscall.Pread(h.fd, buf[n:], off+int64(n))
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, fs.ToErrno(err)
		}
		if m == 0 {
			break
		}
		n += m
	}
	if end := h.f.dirty.end(); end > off+int64(n) {
		m := int(min(end-off, int64(len(buf))))
		clear(buf[n:m])
		n = m
	}
	h.f.dirty.overlay(buf[:n], off)
	return fuse.ReadResultData(buf[:n]), 0
}

// Write keeps data in the file's unsynced extents.
func (h *handle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	h.f.mu.Lock()
	if h.f.fd < 0 {
		fd, err := syscall.Dup(h.fd)
		if err != nil {
			h.f.mu.Unlock()
			return 0, fs.ToErrno(err)
		}
		h.f.fd = fd
	}
	h.f.dirty.write(off, data)
	h.f.mu.Unlock()
	if h.sync {
		if err := h.l.flush(h.f); err != nil {
			return 0, syscall.EIO
		}
		return uint32(len(data)), 0
	}
	h.l.wrote(h.f, off, len(data))
	return uint32(len(data)), 0
}

// Fsync writes the file's unsynced data (from every handle) to the backing
// file. fsync and fdatasync are alike: metadata is never held back.
func (h *handle) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	if err := h.l.flush(h.f); err != nil {
		return syscall.EIO
	}
	return 0
}

// Flush (on close) syncs nothing, as close(2) does not.
func (h *handle) Flush(ctx context.Context) syscall.Errno { return 0 }

// Release closes the backing file; its unsynced data stays.
func (h *handle) Release(ctx context.Context) syscall.Errno {
	errno := h.lf.Release(ctx)
	h.l.release(h.f)
	return errno
}

// Getattr stats the backing file and reports the size with unsynced data.
func (h *handle) Getattr(ctx context.Context, out *fuse.AttrOut) syscall.Errno {
	errno := h.lf.Getattr(ctx, out)
	if errno == 0 {
		h.f.mu.Lock()
		if end := uint64(h.f.dirty.end()); end > out.Size {
			out.Size = end
		}
		h.f.mu.Unlock()
	}
	return errno
}

// Allocate passes through; a punched or zeroed range also forgets its
// unsynced data. Collapsing or inserting ranges is refused.
func (h *handle) Allocate(ctx context.Context, off, size uint64, mode uint32) syscall.Errno {
	if mode&(unix.FALLOC_FL_COLLAPSE_RANGE|unix.FALLOC_FL_INSERT_RANGE) != 0 {
		return syscall.EOPNOTSUPP
	}
	h.f.mu.Lock()
	errno := h.lf.Allocate(ctx, off, size, mode)
	punched := errno == 0 && mode&(unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_ZERO_RANGE) != 0
	if punched {
		h.f.dirty.drop(int64(off), int64(off+size))
	}
	h.f.mu.Unlock()
	if punched {
		h.l.forgetLast(h.f)
	}
	return errno
}
