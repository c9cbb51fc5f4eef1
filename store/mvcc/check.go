package mvcc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
)

// bbolt's on-disk meta page (go.etcd.io/bbolt internal/common/meta.go), after a
// 16-byte page header, in the machine's byte order (little-endian on every
// platform havoc builds for): magic, version, pageSize, flags (4 bytes each),
// root bucket (pgid, sequence), freelist pgid, high-water pgid, txid, checksum
// (8 bytes each). The checksum is FNV-64a of the bytes before it.
const (
	boltPageHeaderBytes = 16
	boltMetaBytes       = 64
	boltMagic           = 0xED0CDAED
	boltVersion         = 2
	boltNoFreelist      = ^uint64(0)
)

type boltMeta struct {
	pageSize        uint32
	root, freelist  uint64
	highWater, txid uint64
	offset          int64
	problem         string // why it is invalid; "" if valid
}

func parseBoltMeta(b []byte, offset int64) boltMeta {
	m := boltMeta{offset: offset}
	if len(b) < boltPageHeaderBytes+boltMetaBytes {
		m.problem = "cut short"
		return m
	}
	p := b[boltPageHeaderBytes : boltPageHeaderBytes+boltMetaBytes]
	le := binary.LittleEndian
	m.pageSize = le.Uint32(p[8:])
	m.root, m.freelist = le.Uint64(p[16:]), le.Uint64(p[32:])
	m.highWater, m.txid = le.Uint64(p[40:]), le.Uint64(p[48:])
	h := fnv.New64a()
	h.Write(p[:56])
	switch {
	case le.Uint32(p[0:]) != boltMagic:
		m.problem = "bad magic"
	case le.Uint32(p[4:]) != boltVersion:
		m.problem = fmt.Sprintf("version %d, want %d", le.Uint32(p[4:]), boltVersion)
	case h.Sum64() != le.Uint64(p[56:]):
		m.problem = "bad checksum"
	}
	return m
}

// CheckFile inspects a bbolt file without mapping it, so that damage bbolt
// would meet as a SIGBUS (pages past the end of a truncated file) or a panic
// is reported as an error wrapping ErrCorrupt instead: at least one meta page
// must be valid (magic, version, checksum), and the file must hold every page
// up to the valid meta's high-water mark. A missing or empty file passes (bbolt
// creates it). Damage inside data pages is not detected.
func CheckFile(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("mvcc: check %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("mvcc: check %s: %w", path, err)
	}
	size := st.Size()
	if size == 0 {
		return nil
	}
	read := func(off int64) []byte {
		buf := make([]byte, boltPageHeaderBytes+boltMetaBytes)
		n, _ := f.ReadAt(buf, off)
		return buf[:n]
	}
	m0 := parseBoltMeta(read(0), 0)
	// The second meta page is one page in; without a valid first page its size
	// is unknown, so try every size bbolt would (1 KiB to 16 MiB).
	var m1 boltMeta
	if m0.problem == "" {
		m1 = parseBoltMeta(read(int64(m0.pageSize)), int64(m0.pageSize))
	} else {
		m1 = boltMeta{problem: "not found"}
		for i := 0; i <= 14 && int64(1024)<<i < size; i++ {
			if m := parseBoltMeta(read(int64(1024)<<i), int64(1024)<<i); m.problem == "" {
				m1 = m
				break
			}
		}
	}
	var m boltMeta
	switch {
	case m0.problem != "" && m1.problem != "":
		return fmt.Errorf("%w: %s (%d bytes): no valid bbolt meta page (page 0: %s; page 1: %s)",
			ErrCorrupt, path, size, m0.problem, m1.problem)
	case m1.problem != "" || m0.problem == "" && m0.txid >= m1.txid:
		m = m0
	default:
		m = m1
	}
	ps := int64(m.pageSize)
	if ps < 1024 || ps&(ps-1) != 0 {
		return fmt.Errorf("%w: %s: meta page at offset %d has page size %d", ErrCorrupt, path, m.offset, ps)
	}
	if need := max(2, m.highWater) * uint64(ps); uint64(size) < need {
		return fmt.Errorf("%w: %s is truncated: %d bytes, but its meta page (offset %d, txid %d) says %d pages of %d bytes (%d bytes)",
			ErrCorrupt, path, size, m.offset, m.txid, m.highWater, ps, need)
	}
	if m.root >= m.highWater || m.freelist != boltNoFreelist && m.freelist >= m.highWater {
		return fmt.Errorf("%w: %s: meta page at offset %d has root page %d or freelist page %d past its high-water mark %d",
			ErrCorrupt, path, m.offset, m.root, m.freelist, m.highWater)
	}
	return nil
}
