package vfs

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"maps"
	"math/rand/v2"
	"path"
	"slices"
	"strings"
)

// Mem is a strict in-memory disk in the manner of pebble's strict MemFS: it
// keeps, for every file, the content it had at its last Sync and, for every
// directory, the names it held at its last SyncDir, and Crash reverts to
// exactly that. It is deterministic (no map is iterated on an output path)
// and not safe for concurrent use.
//
// Cost: appending is amortised O(len), and Sync does not copy; the synced
// content shares the file's backing array until a write lands below the
// synced length (after a shrinking Truncate or a Create over an old file),
// which copies once.
type Mem struct {
	root     *memNode
	gen      uint64 // bumped by Crash; handles of an older generation are dead
	capacity int64  // 0 = unlimited
	used     int64  // bytes held by linked files
	syncs    int64  // File.Sync calls that succeeded
	faults   memFaults
}

type memNode struct {
	dir bool

	// Files. synced is data's content at the last Sync. While shared, synced
	// aliases data's backing array (synced = data[:k:k]) so a write below k
	// must copy data first. dirty records that bytes below len(synced) were
	// changed or cut since the last Sync, so data no longer extends synced.
	data, synced []byte
	shared       bool
	dirty        bool
	links        int // directory entries naming this file
	// lost are the byte ranges whose last sync failed (see FailSyncs).
	lost []lostRange

	// Directories.
	children, syncedChildren map[string]*memNode
}

// NewMem returns an empty in-memory disk with unlimited capacity.
func NewMem() *Mem {
	return &Mem{root: newDir()}
}

func newDir() *memNode {
	return &memNode{dir: true, children: map[string]*memNode{}, syncedChildren: map[string]*memNode{}}
}

var _ FS = (*Mem)(nil)

// SetCapacity limits the bytes the disk holds; 0 means unlimited. A write or
// Truncate that would exceed it fails with ErrNoSpace and changes nothing.
func (m *Mem) SetCapacity(bytes int64) { m.capacity = bytes }

// Used returns the bytes held by the files currently linked in the tree
// (synced or not).
func (m *Mem) Used() int64 { return m.used }

// Crash simulates a power loss: every file reverts to its last synced
// content, every directory to its names at the last SyncDir, and every open
// handle becomes invalid (ErrClosed).
func (m *Mem) Crash() { m.crash(nil) }

// CrashTorn is Crash with torn writes: for each file whose unsynced data
// extends its synced content, a random prefix (possibly empty, possibly all)
// of the unsynced bytes survives, and with probability 1/2 the last
// surviving byte is garbled. Files are visited in sorted path order, so the
// outcome depends only on the disk's state and rnd.
func (m *Mem) CrashTorn(rnd *rand.Rand) {
	if rnd == nil {
		panic("vfs: CrashTorn with nil *rand.Rand")
	}
	m.crash(rnd)
}

func (m *Mem) crash(rnd *rand.Rand) {
	m.gen++
	m.faults.delay = 0
	// 1. Rebuild the tree from the synced directory entries, visiting names
	//    in sorted order and every node once (a non-durable rename can leave a
	//    node named in two directories), counting links afresh.
	seen := map[*memNode]bool{}
	var files []*memNode
	var walk func(d *memNode)
	walk = func(d *memNode) {
		d.children = maps.Clone(d.syncedChildren)
		for _, name := range slices.Sorted(maps.Keys(d.children)) {
			c := d.children[name]
			if !seen[c] {
				seen[c] = true
				c.links = 0
				if c.dir {
					walk(c)
				} else {
					files = append(files, c)
				}
			}
			c.links++
		}
	}
	walk(m.root)
	// 2. Revert every reachable file, possibly keeping a torn tail.
	m.used = 0
	for _, f := range files {
		f.revert(rnd)
		m.used += int64(len(f.data))
	}
}

func (n *memNode) revert(rnd *rand.Rand) {
	lost := len(n.lost) > 0 // a failed sync's bytes never reach the disk, torn or not
	n.lost = nil
	unsynced := len(n.data) - len(n.synced)
	if rnd != nil && !n.dirty && !lost && unsynced > 0 {
		if keep := rnd.IntN(unsynced + 1); keep > 0 {
			d := bytes.Clone(n.data[:len(n.synced)+keep])
			if rnd.IntN(2) == 0 {
				d[len(d)-1] ^= byte(1 + rnd.IntN(255))
			}
			n.data, n.synced, n.shared, n.dirty = d, d[:len(d):len(d)], true, false
			return
		}
	}
	n.data, n.shared, n.dirty = n.synced, true, false
}

// resolve cleans name and splits it into components; "" components mean the
// root. Names escaping the root are invalid.
func resolve(op, name string) ([]string, error) {
	p := strings.TrimPrefix(path.Clean("/"+name), "/")
	if c := path.Clean(name); c == ".." || strings.HasPrefix(c, "../") {
		return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	if p == "" {
		return nil, nil
	}
	return strings.Split(p, "/"), nil
}

// lookup returns the node named by comps, or an error wrapping
// fs.ErrNotExist or errNotDir.
func (m *Mem) lookup(op, name string, comps []string) (*memNode, error) {
	n := m.root
	for _, c := range comps {
		if !n.dir {
			return nil, &fs.PathError{Op: op, Path: name, Err: errNotDir}
		}
		next := n.children[c]
		if next == nil {
			return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
		}
		n = next
	}
	return n, nil
}

// parent returns the directory holding name and name's base.
func (m *Mem) parent(op, name string) (*memNode, string, error) {
	comps, err := resolve(op, name)
	if err != nil {
		return nil, "", err
	}
	if len(comps) == 0 {
		return nil, "", &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	d, err := m.lookup(op, name, comps[:len(comps)-1])
	if err != nil {
		return nil, "", err
	}
	if !d.dir {
		return nil, "", &fs.PathError{Op: op, Path: name, Err: errNotDir}
	}
	return d, comps[len(comps)-1], nil
}

func (m *Mem) node(op, name string) (*memNode, error) {
	comps, err := resolve(op, name)
	if err != nil {
		return nil, err
	}
	return m.lookup(op, name, comps)
}

func (m *Mem) unlink(n *memNode) {
	n.links--
	if n.links == 0 && !n.dir {
		m.used -= int64(len(n.data))
	}
}

func (m *Mem) link(d *memNode, base string, n *memNode) {
	d.children[base] = n
	n.links++
	if n.links == 1 && !n.dir {
		m.used += int64(len(n.data))
	}
}

// Create implements FS.
func (m *Mem) Create(name string) (File, error) {
	d, base, err := m.parent("create", name)
	if err != nil {
		return nil, err
	}
	n := d.children[base]
	switch {
	case n == nil:
		n = &memNode{}
		m.link(d, base, n)
	case n.dir:
		return nil, &fs.PathError{Op: "create", Path: name, Err: errIsDir}
	default:
		m.truncate(n, 0)
	}
	return &memFile{m: m, n: n, name: name, gen: m.gen, write: true}, nil
}

func (m *Mem) openFile(op, name string, write, appendMode bool) (File, error) {
	n, err := m.node(op, name)
	if err != nil {
		return nil, err
	}
	if n.dir {
		return nil, &fs.PathError{Op: op, Path: name, Err: errIsDir}
	}
	return &memFile{m: m, n: n, name: name, gen: m.gen, write: write, appendMode: appendMode}, nil
}

// Open implements FS.
func (m *Mem) Open(name string) (File, error) { return m.openFile("open", name, false, false) }

// OpenAppend implements FS.
func (m *Mem) OpenAppend(name string) (File, error) {
	return m.openFile("open", name, true, true)
}

// Remove implements FS.
func (m *Mem) Remove(name string) error {
	d, base, err := m.parent("remove", name)
	if err != nil {
		return err
	}
	n := d.children[base]
	if n == nil {
		return &fs.PathError{Op: "remove", Path: name, Err: fs.ErrNotExist}
	}
	if n.dir && len(n.children) > 0 {
		return &fs.PathError{Op: "remove", Path: name, Err: errNotEmpty}
	}
	delete(d.children, base)
	m.unlink(n)
	return nil
}

// Rename implements FS.
func (m *Mem) Rename(oldname, newname string) error {
	od, obase, err := m.parent("rename", oldname)
	if err != nil {
		return err
	}
	n := od.children[obase]
	if n == nil {
		return &fs.PathError{Op: "rename", Path: oldname, Err: fs.ErrNotExist}
	}
	nd, nbase, err := m.parent("rename", newname)
	if err != nil {
		return err
	}
	if n.dir {
		// Refuse moving a directory into itself.
		oc, _ := resolve("rename", oldname)
		nc, _ := resolve("rename", newname)
		if len(nc) > len(oc) && slices.Equal(nc[:len(oc)], oc) {
			return &fs.PathError{Op: "rename", Path: newname, Err: fs.ErrInvalid}
		}
	}
	target := nd.children[nbase]
	if target == n {
		return nil
	}
	if target != nil {
		if target.dir || n.dir {
			return &fs.PathError{Op: "rename", Path: newname, Err: fs.ErrExist}
		}
		m.unlink(target)
	}
	delete(od.children, obase)
	nd.children[nbase] = n // the link count is unchanged: one name moved
	return nil
}

// MkdirAll implements FS. New directories are durable at once.
func (m *Mem) MkdirAll(dir string) error {
	comps, err := resolve("mkdir", dir)
	if err != nil {
		return err
	}
	n := m.root
	for _, c := range comps {
		next := n.children[c]
		if next == nil {
			next = newDir()
			m.link(n, c, next)
			n.syncedChildren[c] = next
		} else if !next.dir {
			return &fs.PathError{Op: "mkdir", Path: dir, Err: errNotDir}
		}
		n = next
	}
	return nil
}

func (m *Mem) dirNode(op, dir string) (*memNode, error) {
	n, err := m.node(op, dir)
	if err != nil {
		return nil, err
	}
	if !n.dir {
		return nil, &fs.PathError{Op: op, Path: dir, Err: errNotDir}
	}
	return n, nil
}

// List implements FS.
func (m *Mem) List(dir string) ([]string, error) {
	n, err := m.dirNode("list", dir)
	if err != nil {
		return nil, err
	}
	return slices.Sorted(maps.Keys(n.children)), nil
}

// Exists implements FS.
func (m *Mem) Exists(name string) (bool, error) {
	_, err := m.node("stat", name)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return false, err
}

// SyncDir implements FS.
func (m *Mem) SyncDir(dir string) error {
	n, err := m.dirNode("syncdir", dir)
	if err != nil {
		return err
	}
	if err := m.syncFault(); err != nil {
		return &fs.PathError{Op: "syncdir", Path: dir, Err: err}
	}
	n.syncedChildren = maps.Clone(n.children)
	return nil
}

// noSpace returns the error of growing n by grow bytes past the capacity, or
// on a full disk (Fill); nil if it fits.
func (m *Mem) noSpace(n *memNode, grow int64) error {
	switch {
	case grow <= 0 || n.links == 0:
		return nil
	case m.faults.full:
		return injected{ErrNoSpace}
	case m.capacity != 0 && m.used+grow > m.capacity:
		return ErrNoSpace
	}
	return nil
}

// writeAt writes p at off, zero-filling any hole, keeping synced intact.
func (m *Mem) writeAt(n *memNode, off int, p []byte) {
	// The bytes touched start at off, or at the current end if a hole is
	// zero-filled first; below len(synced) they alias the synced copy.
	if min(off, len(n.data)) < len(n.synced) {
		n.dirty = true
		if n.shared {
			n.data = bytes.Clone(n.data)
			n.shared = false
		}
	}
	old := len(n.data)
	n.rewritten(min(off, old), off+len(p))
	if off > old {
		n.data = append(n.data, make([]byte, off-old)...)
	}
	k := copy(n.data[off:], p)
	n.data = append(n.data, p[k:]...)
	if n.links > 0 {
		m.used += int64(len(n.data) - old)
	}
}

func (m *Mem) truncate(n *memNode, size int) {
	if size >= len(n.data) {
		m.writeAt(n, len(n.data), make([]byte, size-len(n.data)))
		return
	}
	if size < len(n.synced) {
		n.dirty = true
	}
	n.cut(size)
	if n.links > 0 {
		m.used -= int64(len(n.data) - size)
	}
	n.data = n.data[:size]
}

func (m *Mem) sync(n *memNode) {
	if len(n.lost) > 0 {
		// Bytes of a failed sync stay off the disk: the durable copy differs
		// from data, so data no longer extends it.
		n.synced = n.durable()
		n.shared, n.dirty = false, true
		return
	}
	n.synced = n.data[:len(n.data):len(n.data)]
	n.shared, n.dirty = true, false
}

// unsynced reports whether n holds data its last Sync did not make durable.
func (n *memNode) unsynced() bool { return n.dirty || len(n.data) != len(n.synced) }

// memFile is a handle on a Mem file.
type memFile struct {
	m          *Mem
	n          *memNode
	name       string
	gen        uint64
	pos        int64
	write      bool
	appendMode bool
	closed     bool
}

func (f *memFile) check(op string, write bool) error {
	if f.closed || f.gen != f.m.gen {
		return &fs.PathError{Op: op, Path: f.name, Err: ErrClosed}
	}
	if write && !f.write {
		return &fs.PathError{Op: op, Path: f.name, Err: errReadOnly}
	}
	return nil
}

func (f *memFile) Read(p []byte) (int, error) {
	if err := f.check("read", false); err != nil {
		return 0, err
	}
	if f.pos >= int64(len(f.n.data)) {
		return 0, io.EOF
	}
	k := copy(p, f.n.data[f.pos:])
	f.pos += int64(k)
	return k, nil
}

func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	if err := f.check("read", false); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, &fs.PathError{Op: "read", Path: f.name, Err: fs.ErrInvalid}
	}
	if off >= int64(len(f.n.data)) {
		return 0, io.EOF
	}
	k := copy(p, f.n.data[off:])
	if k < len(p) {
		return k, io.EOF
	}
	return k, nil
}

func (f *memFile) Write(p []byte) (int, error) {
	if err := f.check("write", true); err != nil {
		return 0, err
	}
	if f.appendMode {
		f.pos = int64(len(f.n.data))
	}
	if err := f.m.noSpace(f.n, f.pos+int64(len(p))-int64(len(f.n.data))); err != nil {
		return 0, &fs.PathError{Op: "write", Path: f.name, Err: err}
	}
	f.m.writeAt(f.n, int(f.pos), p)
	f.pos += int64(len(p))
	return len(p), nil
}

func (f *memFile) Close() error {
	if err := f.check("close", false); err != nil {
		return err
	}
	f.closed = true
	return nil
}

func (f *memFile) Sync() error {
	if err := f.check("sync", false); err != nil {
		return err
	}
	if f.m.faults.onSync != nil && f.n.unsynced() {
		f.m.faults.onSync(f.name)
	}
	if err := f.m.syncFault(); err != nil {
		f.n.loseUnsynced()
		return &fs.PathError{Op: "sync", Path: f.name, Err: err}
	}
	f.m.sync(f.n)
	f.m.syncs++
	return nil
}

// Syncs returns how many times a file of the disk was synced (File.Sync
// calls that succeeded, across crashes): a cost model charges each one the
// time a real fsync takes.
func (m *Mem) Syncs() int64 { return m.syncs }

func (f *memFile) Truncate(size int64) error {
	if err := f.check("truncate", true); err != nil {
		return err
	}
	if size < 0 {
		return &fs.PathError{Op: "truncate", Path: f.name, Err: fs.ErrInvalid}
	}
	if err := f.m.noSpace(f.n, size-int64(len(f.n.data))); err != nil {
		return &fs.PathError{Op: "truncate", Path: f.name, Err: err}
	}
	f.m.truncate(f.n, int(size))
	return nil
}

func (f *memFile) Size() (int64, error) {
	if err := f.check("stat", false); err != nil {
		return 0, err
	}
	return int64(len(f.n.data)), nil
}
