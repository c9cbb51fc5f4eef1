// Package lazyfs is a lazy file system: a FUSE passthrough mount over a
// backing directory that keeps every written byte that has not been fsynced in
// its own memory, and on Crash drops it, as a power cut drops a disk's page
// cache. It is havoc's answer, on real disks, to the simulator's strict disk
// (and Jepsen's LazyFS): a member killed with -9 on an ordinary file system
// loses nothing, because the kernel keeps the dead process's page cache.
//
// What it tracks, and what it does not:
//
//   - Data: a write goes to the file's unsynced extents (its page cache here),
//     reads see the backing file with those extents on top, and fsync or
//     fdatasync of any handle of the file (or a write through an O_SYNC or
//     O_DSYNC handle) writes them to the backing file. Crash forgets them; a
//     torn crash first writes a random prefix, in whole sectors, of the last
//     unsynced write (of the newest run of contiguous writes to one file: the
//     kernel splits a write(2) at page boundaries, so one request is not one
//     write(2)).
//   - Metadata passes through at once and survives a crash, as on a
//     journaling file system that commits it early (ext4 with
//     data=ordered; Jepsen's LazyFS by default does the same): create,
//     mkdir, rename, link, unlink, truncate, fallocate, chmod, times. A file
//     created and written but never synced is there after a crash, empty (or
//     as long as its last truncate made it).
//   - The backing directory itself is never fsynced: the host does not lose
//     power, only the member's view of the disk does.
//
// The kernel's page cache cannot keep data this file system dropped: the
// mount has no writeback_cache (every write reaches this process before the
// write(2) returns), opens do not keep the cache (FOPEN_KEEP_CACHE is off), and
// Crash tells the kernel to drop the pages and sizes of every file it changed.
// Reads may be cached by the kernel between crashes, so a member can mmap its
// files (bbolt does).
//
// The harness owns the mount in its own process; the member is another
// process. Crash must be called while nothing has the files open (kill the
// member first, wait for it to exit, then Crash, then restart it).
package lazyfs

import (
	"cmp"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// ErrUnavailable is wrapped by Check and Mount when this machine cannot mount
// a FUSE file system.
var ErrUnavailable = errors.New("lazyfs: unavailable")

// FsName is the source name of every lazyfs mount in /proc/mounts.
const FsName = "havoc-lazyfs"

// Check reports, in one line wrapping ErrUnavailable, what this machine lacks
// to mount a lazyfs: /dev/fuse, or root or a fusermount3 binary. nil when
// nothing is missing.
func Check() error {
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%w: /dev/fuse is missing (load the fuse module; in a container, pass --device /dev/fuse)", ErrUnavailable)
	case err != nil:
		return fmt.Errorf("%w: cannot open /dev/fuse: %v", ErrUnavailable, err)
	}
	_ = f.Close()
	if os.Geteuid() == 0 {
		return nil
	}
	for _, bin := range []string{"fusermount3", "fusermount"} {
		if _, err := exec.LookPath(bin); err == nil {
			return nil
		}
	}
	return fmt.Errorf("%w: not root and no fusermount3 on PATH (install fuse3 or run as root)", ErrUnavailable)
}

// Options configures a mount.
type Options struct {
	// Seed seeds the draw of a torn write's kept prefix (0 is a seed too).
	Seed uint64
	// SectorBytes is the unit a torn write keeps (512 when zero): a disk
	// writes a sector whole or not at all, and programs rely on it (etcd's
	// WAL tells a torn tail from corruption by its all-zero sectors; a tear
	// inside a sector makes it refuse to start with a CRC mismatch).
	SectorBytes int
	// Debug logs every FUSE request to stderr.
	Debug bool
}

// CrashReport says what a Crash dropped.
type CrashReport struct {
	// Files is the number of files that had unsynced data.
	Files int
	// Dropped is the number of unsynced bytes forgotten.
	Dropped int64
	// Torn is set for a torn crash that found a last write to tear: that
	// write's length and the prefix of it that was kept.
	Torn          bool
	TornLen, Kept int
}

// String is the report in one line.
func (r CrashReport) String() string {
	s := fmt.Sprintf("dropped %d unsynced bytes in %d files", r.Dropped, r.Files)
	if r.Torn {
		s += fmt.Sprintf("; tore the last write, kept %d of its %d bytes", r.Kept, r.TornLen)
	}
	return s
}

// FS is one mounted lazy file system.
type FS struct {
	mountpoint, backing string
	server              *fuse.Server
	rootDev             uint64

	mu      sync.Mutex
	files   map[uint64]*file   // by inode number: files with unsynced data or open handles
	orphans map[*file]struct{} // unlinked files still open
	last    lastWrite          // the newest unsynced write, for a torn crash
	rnd     *rand.Rand
	sector  int64
	closed  bool
}

// lastWrite locates the newest write that is still unsynced.
type lastWrite struct {
	f   *file
	off int64
	n   int
}

// file is the state of one backing inode: its unsynced data and a writable
// descriptor to flush it through (a dup, held while data is unsynced, so that
// an fsync through a read-only handle, or after the writer closed, still works).
type file struct {
	ino  uint64
	refs int // open handles

	mu    sync.Mutex
	dirty dirty
	fd    int       // -1 when nothing is unsynced
	inode *fs.Inode // the node last opened, for kernel cache invalidation
}

// Mount mounts a lazy file system over backing at mountpoint (both existing
// directories). Dead lazyfs mounts left by a harness killed with -9, at
// mountpoint or elsewhere, are detached first (DetachStale).
func Mount(mountpoint, backing string, opts Options) (*FS, error) {
	if err := Check(); err != nil {
		return nil, err
	}
	var err error
	if mountpoint, err = filepath.Abs(mountpoint); err != nil {
		return nil, err
	}
	if backing, err = filepath.Abs(backing); err != nil {
		return nil, err
	}
	_, _ = DetachStale()
	var st syscall.Stat_t
	if err := syscall.Stat(backing, &st); err != nil {
		return nil, fmt.Errorf("lazyfs: backing dir: %w", err)
	}
	l := &FS{mountpoint: mountpoint, backing: backing, rootDev: uint64(st.Dev),
		files: map[uint64]*file{}, orphans: map[*file]struct{}{},
		rnd: rand.New(rand.NewPCG(opts.Seed, 0x6c617a79)), sector: int64(opts.SectorBytes)}
	if l.sector <= 0 {
		l.sector = 512
	}
	rootOps, err := fs.NewLoopbackRoot(backing)
	if err != nil {
		return nil, fmt.Errorf("lazyfs: %w", err)
	}
	lb := rootOps.(*fs.LoopbackNode)
	root := &node{LoopbackNode: lb, l: l}
	lb.RootData.RootNode = root
	timeout := time.Second
	root0 := os.Geteuid() == 0
	fo := &fs.Options{
		EntryTimeout: &timeout,
		AttrTimeout:  &timeout,
		MountOptions: fuse.MountOptions{
			FsName:      FsName,
			Name:        "lazyfs",
			DirectMount: root0,
			AllowOther:  root0, // a container's root may use it (no user_allow_other needed for root)
			MaxWrite:    1 << 20,
			// Extended attributes are refused (ENOSYS), so that the kernel
			// stops asking for security.capability before every write (a
			// third of the round trips of an append and fdatasync).
			DisableXAttrs: true,
			Debug:         opts.Debug,
			// No EnableWriteback (the kernel would hold writes), no
			// EnableLocks (flock and fcntl locks stay in the kernel).
		},
	}
	l.server, err = fs.Mount(mountpoint, root, fo)
	if err != nil {
		return nil, fmt.Errorf("lazyfs: mount %s: %w", mountpoint, err)
	}
	return l, nil
}

// DetachStale lazily unmounts every dead lazyfs mount of this mount namespace
// (stat fails with ENOTCONN: the process that served it is gone) and returns
// how many it detached. A mount whose server does not answer within a second
// (a stopped harness) is left alone.
func DetachStale() (int, error) {
	ms, err := mounts()
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, m := range ms {
		res := make(chan error, 1)
		go func() { // a stopped server blocks stat: never wait for it
			var st syscall.Stat_t
			res <- syscall.Stat(m, &st)
		}()
		select {
		case err := <-res:
			if !errors.Is(err, syscall.ENOTCONN) {
				continue
			}
		case <-time.After(time.Second):
			continue
		}
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil {
			errs = append(errs, fmt.Errorf("lazyfs: detach %s: %w", m, err))
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// Mountpoint is where the file system is mounted.
func (l *FS) Mountpoint() string { return l.mountpoint }

// Backing is the directory that holds what survives a crash.
func (l *FS) Backing() string { return l.backing }

// Unsynced returns the number of unsynced bytes and of files holding them.
func (l *FS) Unsynced() (bytes int64, files int) {
	for _, f := range l.snapshot() {
		f.mu.Lock()
		if b := f.dirty.bytes(); b > 0 {
			bytes += b
			files++
		}
		f.mu.Unlock()
	}
	return bytes, files
}

// snapshot lists every tracked file, open orphans included, in inode order.
func (l *FS) snapshot() []*file {
	l.mu.Lock()
	defer l.mu.Unlock()
	fs := make([]*file, 0, len(l.files)+len(l.orphans))
	for _, f := range l.files {
		fs = append(fs, f)
	}
	for f := range l.orphans {
		fs = append(fs, f)
	}
	slices.SortFunc(fs, func(a, b *file) int {
		if a.ino != b.ino {
			return cmp.Compare(a.ino, b.ino)
		}
		return cmp.Compare(uint64(a.fd), uint64(b.fd))
	})
	return fs
}

// Crash forgets every unsynced byte, as a power cut would. With torn it first
// writes a random prefix (possibly empty) of the newest unsynced write, as a
// disk that lost power in the middle of it: the prefix ends on a sector
// boundary of the file (Options.SectorBytes). Call it only while no process has
// files open on the mount (after the member was killed and reaped). Then no
// write of the member can arrive late: a write(2) here is synchronous (no
// write-back cache), and the kernel does not let a killed process exit while
// its request is with this file system (it drops a request not yet read).
func (l *FS) Crash(torn bool) (CrashReport, error) {
	var rep CrashReport
	l.mu.Lock()
	last := l.last
	l.last = lastWrite{}
	var keep int
	if torn && last.f != nil {
		end := (last.off + int64(l.rnd.IntN(last.n))) / l.sector * l.sector
		keep = int(max(0, end-last.off))
	}
	l.mu.Unlock()
	var errs []error
	var touched []*fs.Inode
	for _, f := range l.snapshot() {
		f.mu.Lock()
		if f == last.f && torn {
			buf := make([]byte, keep)
			f.dirty.overlay(buf, last.off)
			if keep > 0 {
				if _, err := syscall.Pwrite(f.fd, buf, last.off); err != nil {
					errs = append(errs, fmt.Errorf("lazyfs: torn write: %w", err))
				}
			}
			rep.Torn, rep.TornLen, rep.Kept = true, last.n, keep
		}
		if b := f.dirty.bytes(); b > 0 {
			rep.Files++
			rep.Dropped += b
			if f.inode != nil {
				touched = append(touched, f.inode)
			}
		}
		f.dirty.take()
		f.closeFd()
		f.mu.Unlock()
		l.forgetIfIdle(f)
	}
	// Outside every lock: the kernel may read pages while invalidating.
	for _, in := range touched {
		_ = in.NotifyContent(0, 0)
	}
	return rep, errors.Join(errs...)
}

// Sync writes every unsynced byte to the backing files, as sync(2) would.
func (l *FS) Sync() error {
	var errs []error
	for _, f := range l.snapshot() {
		errs = append(errs, l.flush(f))
	}
	return errors.Join(errs...)
}

// Close syncs (a clean shutdown writes the page cache back) and unmounts. It
// falls back to a lazy unmount when the mount is busy, so that it never leaves
// a mount behind; it is safe to call twice.
func (l *FS) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	errs := []error{l.Sync()}
	if err := l.server.Unmount(); err != nil {
		if derr := syscall.Unmount(l.mountpoint, syscall.MNT_DETACH); derr != nil {
			errs = append(errs, fmt.Errorf("lazyfs: unmount %s: %v; detach: %w", l.mountpoint, err, derr))
		}
	}
	for _, f := range l.snapshot() {
		f.mu.Lock()
		f.closeFd()
		f.mu.Unlock()
	}
	return errors.Join(errs...)
}

// Mounted reports whether dir is a lazyfs mount point, from /proc/self/mountinfo.
func Mounted(dir string) (bool, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return false, err
	}
	ms, err := mounts()
	if err != nil {
		return false, err
	}
	return slices.Contains(ms, dir), nil
}

// mounts lists the mount points of every lazyfs mount in this mount namespace.
func mounts() ([]string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		// ID parent major:minor root mountpoint options [optional...] - fstype source superoptions
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) < 5 || len(g) < 2 || g[1] != FsName {
			continue
		}
		out = append(out, unescapeMount(f[4]))
	}
	return out, nil
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// acquire returns the file of inode ino for a new handle.
func (l *FS) acquire(ino uint64, inode *fs.Inode) *file {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.files[ino]
	if f == nil {
		f = &file{ino: ino, fd: -1}
		l.files[ino] = f
	}
	f.refs++
	f.mu.Lock()
	f.inode = inode
	f.mu.Unlock()
	return f
}

// release drops a handle's reference.
func (l *FS) release(f *file) {
	l.mu.Lock()
	f.refs--
	l.mu.Unlock()
	l.forgetIfIdle(f)
}

// lookup returns the tracked file of inode ino, nil if none.
func (l *FS) lookup(ino uint64) *file {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.files[ino]
}

// forgetIfIdle stops tracking f when it has neither open handles nor unsynced
// data.
func (l *FS) forgetIfIdle(f *file) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f.mu.Lock()
	idle := f.refs == 0 && f.dirty.empty()
	f.mu.Unlock()
	if !idle {
		return
	}
	if l.files[f.ino] == f {
		delete(l.files, f.ino)
	}
	delete(l.orphans, f)
	if l.last.f == f {
		l.last = lastWrite{}
	}
}

// orphan moves the file of inode ino out of the table once its last link is
// gone: a new file may reuse the inode number, and must not inherit its data.
// Open handles keep it; Crash still drops its data.
func (l *FS) orphan(ino uint64) {
	l.mu.Lock()
	f := l.files[ino]
	if f != nil {
		delete(l.files, ino)
		l.orphans[f] = struct{}{}
	}
	l.mu.Unlock()
	if f != nil {
		l.forgetIfIdle(f)
	}
}

// wrote records the newest unsynced write. A write that continues the
// previous one in the same file extends it: the kernel splits one write(2) at
// page boundaries into several requests, and a torn crash keeps a prefix of
// the whole run.
func (l *FS) wrote(f *file, off int64, n int) {
	l.mu.Lock()
	if l.last.f == f && l.last.off+int64(l.last.n) == off {
		l.last.n += n
	} else {
		l.last = lastWrite{f: f, off: off, n: n}
	}
	l.mu.Unlock()
}

// flush writes f's unsynced data to its backing file.
func (l *FS) flush(f *file) error {
	err := f.flush()
	l.forgetLast(f)
	return err
}

// forgetLast forgets the newest write if it was to f (f was synced, truncated
// or punched since: there is nothing left to tear). f.mu must not be held.
func (l *FS) forgetLast(f *file) {
	l.mu.Lock()
	if l.last.f == f {
		l.last = lastWrite{}
	}
	l.mu.Unlock()
}

// flush writes the unsynced extents through the write-back descriptor, then
// closes it. Lock order: FS.mu before file.mu, so the caller holds neither.
func (f *file) flush() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	defer f.closeFd()
	for _, e := range f.dirty.take() {
		for b, off := e.data, e.off; len(b) > 0; {
			n, err := syscall.Pwrite(f.fd, b, off)
			if err != nil {
				return fmt.Errorf("lazyfs: write back inode %d: %w", f.ino, err)
			}
			b, off = b[n:], off+int64(n)
		}
	}
	return nil
}

// closeFd closes the write-back descriptor; f.mu is held.
func (f *file) closeFd() {
	if f.fd >= 0 {
		_ = syscall.Close(f.fd)
		f.fd = -1
	}
}
