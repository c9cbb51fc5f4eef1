package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"path"

	"github.com/havoclab/havoc/vfs"
)

// reqIDFile holds the member's last reserved request-ID epoch, in the log
// directory: 8 bytes big-endian, then their CRC-32C.
const reqIDFile = "reqid"

// Bit layout of a request ID: member | epoch | counter.
const (
	reqIDCounterBits = 24
	reqIDEpochBits   = 24
	reqIDEpochMax    = 1<<reqIDEpochBits - 1
)

var reqIDCRC = crc32.MakeTable(crc32.Castagnoli)

// reqIDGen makes request IDs unique across restarts whatever the clock says (the
// clock-skew fault moves it; an ID seeded from it could repeat one still in the
// log, and then a response reaches the wrong request and the leader's duplicate
// filter drops a fresh write). An ID is the low 16 bits of the member ID, an
// epoch, and a counter, as etcd's idutil lays out member, time and counter; the
// epoch is reserved durably in the log directory before any ID of it is issued:
//
//  1. Open reads the last reserved epoch e (firstReqIDEpoch if none), writes
//     e+1 to a temporary file, syncs it, renames it over reqIDFile and syncs
//     the directory; only then does it issue IDs of epoch e+1.
//  2. When the counter of an epoch runs out, the next epoch is reserved the
//     same way before another ID is issued.
//
// A crash between the steps loses at most an unused reservation, so no two
// incarnations of a member share an epoch.
type reqIDGen struct {
	fs     vfs.FS
	dir    string
	prefix uint64 // member bits
	epoch  uint64
	count  uint64 // IDs issued in epoch
}

// openReqIDGen reserves the next epoch of the member's IDs in dir.
func openReqIDGen(fsys vfs.FS, dir string, memberID uint64) (reqIDGen, error) {
	g := reqIDGen{fs: fsys, dir: dir, prefix: (memberID & 0xffff) << (reqIDEpochBits + reqIDCounterBits)}
	last, ok, err := readReqIDEpoch(fsys, path.Join(dir, reqIDFile))
	if err != nil {
		return g, err
	}
	if !ok {
		last = firstReqIDEpoch(memberID)
	}
	g.epoch = last
	return g, g.reserve()
}

// firstReqIDEpoch is where a new member's epochs start (less one): a value taken
// from the member ID's bits above the 16 an ID carries, in the lower half of the
// epoch space. Two members whose IDs share their low 16 bits then issue the
// same IDs only if their epoch ranges meet, not from their first write on.
func firstReqIDEpoch(memberID uint64) uint64 {
	return (memberID >> 16) % (1 << (reqIDEpochBits - 1))
}

// readReqIDEpoch returns the last reserved epoch; ok is false if none was.
func readReqIDEpoch(fsys vfs.FS, name string) (epoch uint64, ok bool, err error) {
	f, err := fsys.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("store: read %s: %w", name, err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return 0, false, fmt.Errorf("store: read %s: %w", name, err)
	}
	if len(b) != 12 || crc32.Checksum(b[:8], reqIDCRC) != binary.BigEndian.Uint32(b[8:]) {
		return 0, false, fmt.Errorf("store: request ID file %s is corrupt (%d bytes, bad checksum or length): remove the member and add it back with an empty data dir", name, len(b))
	}
	return binary.BigEndian.Uint64(b[:8]), true, nil
}

// reserve makes epoch+1 durable and switches to it.
func (g *reqIDGen) reserve() error {
	next := g.epoch + 1
	if next > reqIDEpochMax {
		return fmt.Errorf("store: request ID epochs of this member are used up (%d)", g.epoch)
	}
	b := binary.BigEndian.AppendUint64(nil, next)
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b, reqIDCRC))
	name := path.Join(g.dir, reqIDFile)
	tmp := name + ".tmp"
	f, err := g.fs.Create(tmp)
	if err != nil {
		return fmt.Errorf("store: reserve request IDs: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	err = errors.Join(err, f.Close())
	if err == nil {
		err = g.fs.Rename(tmp, name)
	}
	if err == nil {
		err = g.fs.SyncDir(g.dir)
	}
	if err != nil {
		return fmt.Errorf("store: reserve request IDs: %w", err)
	}
	g.epoch, g.count = next, 0
	return nil
}

// next returns a fresh request ID; it fails only if a new epoch could not be
// reserved.
func (g *reqIDGen) next() (uint64, error) {
	if g.count == 1<<reqIDCounterBits-1 {
		if err := g.reserve(); err != nil {
			return 0, err
		}
	}
	g.count++
	return g.prefix | g.epoch<<reqIDCounterBits | g.count, nil
}

// newID returns a fresh request ID. If none can be had (the log disk failed
// while reserving an epoch) the member halts, as for any log write failure.
func (n *Node) newID() (uint64, error) {
	id, err := n.ids.next()
	if err != nil {
		n.halt(err)
		return 0, ErrStopped
	}
	return id, nil
}
