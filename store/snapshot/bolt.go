package snapshot

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io"
)

// A minimal read-only bbolt reader over an io.ReaderAt. bbolt itself maps the
// file and follows page ids without bounds checks, so a damaged image can fault
// the process (SIGBUS past the end of the file), which recover cannot catch.
// This reader checks every page id, length and offset before it uses it, and
// visits every page at most once; the layout is bbolt v1.5's
// (go.etcd.io/bbolt/internal/common: page.go, meta.go, bucket.go; little-endian
// on every platform etcd supports).

const (
	boltMagic   = 0xED0CDAED
	boltVersion = 2

	pageHeaderSize  = 16 // id u64, flags u16, count u16, overflow u32
	branchElemSize  = 16 // pos u32, ksize u32, pgid u64
	leafElemSize    = 16 // flags u32, pos u32, ksize u32, vsize u32
	bucketHeaderLen = 16 // root pgid u64, sequence u64
	metaChecksumOff = 56 // bytes of the meta covered by its FNV-64a checksum

	flagBranch   = 0x01
	flagLeaf     = 0x02
	flagMeta     = 0x04
	flagFreelist = 0x10

	leafFlagBucket = 0x01

	// maxDepth bounds the B+tree depth and bucket nesting (bbolt trees of any
	// real size are a handful of levels deep).
	maxDepth = 64
	// maxPageSize bounds the page size a meta may claim.
	maxPageSize = 1 << 20
)

// boltMeta is the part of a bbolt meta page the reader needs.
type boltMeta struct {
	pageSize uint32
	root     uint64
	freelist uint64
	pgid     uint64 // high-water mark: pages [0, pgid) exist
	txid     uint64
}

// image is a bbolt file opened for reading.
type image struct {
	r        io.ReaderAt
	size     int64 // bytes available to the image
	pageSize uint64
	meta     boltMeta
	seen     []uint64 // bitmap of visited pages, so a cycle or shared page is refused
}

// openImage validates the two meta pages (magic, version, checksum), picks the
// one with the higher transaction id as bbolt does, and checks that the pages it
// claims fit in size bytes.
func openImage(r io.ReaderAt, size int64) (*image, error) {
	var hdr [pageHeaderSize + 64]byte
	if size < int64(len(hdr)) {
		return nil, corruptf("%d bytes is too short for a bbolt file", size)
	}
	if _, err := r.ReadAt(hdr[:], 0); err != nil {
		return nil, corruptf("read meta page 0: %v", err)
	}
	m0, err0 := parseMeta(hdr[:])
	var m1 boltMeta
	err1 := err0
	if err0 == nil || binary.LittleEndian.Uint32(hdr[pageHeaderSize:]) == boltMagic {
		ps := int64(4096)
		if err0 == nil {
			ps = int64(m0.pageSize)
		}
		if ps+int64(len(hdr)) <= size {
			if _, err := r.ReadAt(hdr[:], ps); err == nil {
				m1, err1 = parseMeta(hdr[:])
			}
		}
	} else {
		return nil, corruptf("not a bbolt file (no magic at byte 16)")
	}
	var m boltMeta
	switch {
	case err0 == nil && err1 == nil && m0.pageSize != m1.pageSize:
		return nil, corruptf("meta pages disagree on the page size (%d, %d)", m0.pageSize, m1.pageSize)
	case err0 == nil && (err1 != nil || m0.txid >= m1.txid):
		m = m0
	case err1 == nil:
		m = m1
	default:
		return nil, corruptf("both meta pages are invalid: %v; %v", err0, err1)
	}
	im := &image{r: r, size: size, pageSize: uint64(m.pageSize), meta: m}
	if m.pgid < 2 || m.pgid > uint64(size)/im.pageSize {
		return nil, corruptf("meta claims %d pages of %d bytes but the image has %d bytes (truncated?)", m.pgid, m.pageSize, size)
	}
	if m.root < 2 || m.root >= m.pgid {
		return nil, corruptf("root page %d out of bounds (%d pages)", m.root, m.pgid)
	}
	im.seen = make([]uint64, (m.pgid+63)/64)
	return im, nil
}

func parseMeta(p []byte) (boltMeta, error) {
	if binary.LittleEndian.Uint16(p[8:]) != flagMeta {
		return boltMeta{}, fmt.Errorf("page flags %#x are not a meta page", binary.LittleEndian.Uint16(p[8:]))
	}
	b := p[pageHeaderSize:]
	if binary.LittleEndian.Uint32(b[0:]) != boltMagic {
		return boltMeta{}, fmt.Errorf("bad magic %#x", binary.LittleEndian.Uint32(b[0:]))
	}
	if v := binary.LittleEndian.Uint32(b[4:]); v != boltVersion {
		return boltMeta{}, fmt.Errorf("bbolt version %d, want %d", v, boltVersion)
	}
	h := fnv.New64a()
	h.Write(b[:metaChecksumOff])
	if sum := binary.LittleEndian.Uint64(b[metaChecksumOff:]); sum != h.Sum64() {
		return boltMeta{}, fmt.Errorf("meta checksum %#x, want %#x", sum, h.Sum64())
	}
	m := boltMeta{
		pageSize: binary.LittleEndian.Uint32(b[8:]),
		root:     binary.LittleEndian.Uint64(b[16:]),
		freelist: binary.LittleEndian.Uint64(b[32:]),
		pgid:     binary.LittleEndian.Uint64(b[40:]),
		txid:     binary.LittleEndian.Uint64(b[48:]),
	}
	if m.pageSize < 512 || m.pageSize > maxPageSize || m.pageSize&(m.pageSize-1) != 0 {
		return boltMeta{}, fmt.Errorf("page size %d", m.pageSize)
	}
	return m, nil
}

// Size is tx.Size(): the bytes of the pages below the high-water mark.
func (im *image) Size() int64 { return int64(im.meta.pgid * im.pageSize) }

// page reads page id with its overflow pages, once per walk.
func (im *image) page(id uint64) ([]byte, error) {
	if id < 2 || id >= im.meta.pgid {
		return nil, corruptf("page %d out of bounds (%d pages)", id, im.meta.pgid)
	}
	if im.seen[id/64]&(1<<(id%64)) != 0 {
		return nil, corruptf("page %d is reachable twice", id)
	}
	var hdr [pageHeaderSize]byte
	if _, err := im.r.ReadAt(hdr[:], int64(id*im.pageSize)); err != nil {
		return nil, corruptf("read page %d: %v", id, err)
	}
	if got := binary.LittleEndian.Uint64(hdr[0:]); got != id {
		return nil, corruptf("page %d has id %d", id, got)
	}
	overflow := uint64(binary.LittleEndian.Uint32(hdr[12:]))
	if id+overflow >= im.meta.pgid {
		return nil, corruptf("page %d with %d overflow pages runs past %d pages", id, overflow, im.meta.pgid)
	}
	for i := id; i <= id+overflow; i++ {
		if im.seen[i/64]&(1<<(i%64)) != 0 {
			return nil, corruptf("page %d is reachable twice", i)
		}
		im.seen[i/64] |= 1 << (i % 64)
	}
	n := int64((overflow + 1) * im.pageSize)
	if p, ok := sliceOf(im.r, int64(id*im.pageSize), n); ok {
		return p, nil
	}
	p := make([]byte, n)
	if _, err := im.r.ReadAt(p, int64(id*im.pageSize)); err != nil {
		return nil, corruptf("read page %d: %v", id, err)
	}
	return p, nil
}

// entry is one leaf element: a key and either a value or a nested bucket.
type entry struct {
	key, value []byte
	bucket     bool
}

// walkBucket calls fn on every entry of the bucket whose header is hdr (the
// root bucket's is built from the meta), in key order. For a nested bucket,
// value is its raw header and inline page.
func (im *image) walkBucket(hdr []byte, depth int, fn func(e entry) error) error {
	if depth > maxDepth {
		return corruptf("buckets nested deeper than %d", maxDepth)
	}
	if len(hdr) < bucketHeaderLen {
		return corruptf("bucket header of %d bytes", len(hdr))
	}
	root := binary.LittleEndian.Uint64(hdr)
	var last []byte
	ordered := func(e entry) error {
		if last != nil && bytes.Compare(last, e.key) >= 0 {
			return corruptf("keys out of order: %q after %q", e.key, last)
		}
		last = e.key
		return fn(e)
	}
	if root == 0 {
		return im.walkPage(hdr[bucketHeaderLen:], true, 0, ordered)
	}
	return im.walkPageID(root, 0, ordered)
}

func (im *image) walkPageID(id uint64, depth int, fn func(e entry) error) error {
	if depth > maxDepth {
		return corruptf("tree deeper than %d at page %d", maxDepth, id)
	}
	p, err := im.page(id)
	if err != nil {
		return err
	}
	return im.walkPage(p, false, depth, fn)
}

// walkPage walks a branch or leaf page (inline pages are leaves only).
func (im *image) walkPage(p []byte, inline bool, depth int, fn func(e entry) error) error {
	if len(p) < pageHeaderSize {
		return corruptf("page of %d bytes", len(p))
	}
	flags := binary.LittleEndian.Uint16(p[8:])
	count := uint64(binary.LittleEndian.Uint16(p[10:]))
	if pageHeaderSize+count*leafElemSize > uint64(len(p)) {
		return corruptf("page %d: %d elements overflow the page", binary.LittleEndian.Uint64(p), count)
	}
	switch {
	case flags == flagBranch && !inline:
		if count == 0 {
			return corruptf("empty branch page %d", binary.LittleEndian.Uint64(p))
		}
		for i := range count {
			el := p[pageHeaderSize+i*branchElemSize:]
			if err := im.walkPageID(binary.LittleEndian.Uint64(el[8:]), depth+1, fn); err != nil {
				return err
			}
		}
		return nil
	case flags == flagLeaf:
		for i := range count {
			off := pageHeaderSize + i*leafElemSize
			el := p[off:]
			eflags := binary.LittleEndian.Uint32(el[0:])
			pos := uint64(binary.LittleEndian.Uint32(el[4:]))
			ksize := uint64(binary.LittleEndian.Uint32(el[8:]))
			vsize := uint64(binary.LittleEndian.Uint32(el[12:]))
			start := off + pos
			if start+ksize+vsize > uint64(len(p)) {
				return corruptf("page %d element %d runs past the page", binary.LittleEndian.Uint64(p), i)
			}
			e := entry{key: p[start : start+ksize], value: p[start+ksize : start+ksize+vsize], bucket: eflags&leafFlagBucket != 0}
			if err := fn(e); err != nil {
				return err
			}
		}
		return nil
	}
	return corruptf("page %d has flags %#x where a tree page belongs", binary.LittleEndian.Uint64(p), flags)
}

// checkFreelist checks the freelist page, when the image has one (etcd writes
// none: NoFreelistSync).
func (im *image) checkFreelist() error {
	const noFreelist = ^uint64(0)
	if im.meta.freelist == noFreelist {
		return nil
	}
	p, err := im.page(im.meta.freelist)
	if err != nil {
		return fmt.Errorf("freelist: %w", err)
	}
	if binary.LittleEndian.Uint16(p[8:]) != flagFreelist {
		return corruptf("freelist page %d has flags %#x", im.meta.freelist, binary.LittleEndian.Uint16(p[8:]))
	}
	count, start := uint64(binary.LittleEndian.Uint16(p[10:])), uint64(pageHeaderSize)
	if count == 0xFFFF {
		if len(p) < pageHeaderSize+8 {
			return corruptf("freelist page too short")
		}
		count, start = binary.LittleEndian.Uint64(p[pageHeaderSize:]), pageHeaderSize+8
	}
	if count > (uint64(len(p))-start)/8 {
		return corruptf("freelist of %d ids overflows its page", count)
	}
	for i := range count {
		if id := binary.LittleEndian.Uint64(p[start+8*i:]); id < 2 || id >= im.meta.pgid {
			return corruptf("freelist holds page %d out of bounds", id)
		}
	}
	return nil
}

// rootHeader is the root bucket's header (its root page) from the meta.
func (im *image) rootHeader() []byte {
	h := make([]byte, bucketHeaderLen)
	binary.LittleEndian.PutUint64(h, im.meta.root)
	return h
}
