package snapshot

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"

	"github.com/coreos/go-semver/semver"

	"google.golang.org/protobuf/encoding/protowire"
)

// Sentinel errors. Every error of Verify, Status and Restore about the file's
// content wraps one of them.
var (
	// ErrMissingHash: the file does not end in a sha256 trailer (its length is
	// not 32 modulo 512), e.g. a raw member/snap/db copied by hand.
	ErrMissingHash = errors.New("snapshot missing hash")
	// ErrHashMismatch: the trailer is not the sha256 of the image before it.
	ErrHashMismatch = errors.New("snapshot: sha256 mismatch")
	// ErrCorrupt: the image is not a readable etcd backend (truncated, damaged,
	// not bbolt, no meta bucket, undecodable key-bucket entries).
	ErrCorrupt = errors.New("snapshot: corrupt")
)

func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// hashSize is the trailer's length; sectorSize is what the image length is a
// multiple of (etcd's hasChecksum: size % 512 == 32).
const (
	hashSize   = sha256.Size
	sectorSize = 512
)

func hasTrailer(size int64) bool { return size%sectorSize == hashSize }

// Write copies the bbolt image db to w and appends its sha256, which makes the
// file `etcdctl snapshot save` writes. It returns the bytes written to w. An
// image whose length is not a multiple of 512 is refused (after it was
// written: the caller discards w), since no reader could find the trailer.
func Write(w io.Writer, db io.Reader) (int64, error) {
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), db)
	if err != nil {
		return n, fmt.Errorf("snapshot: write image: %w", err)
	}
	if n == 0 || n%sectorSize != 0 {
		return n, corruptf("image of %d bytes is not a whole number of 512-byte sectors", n)
	}
	m, err := w.Write(h.Sum(nil))
	n += int64(m)
	if err != nil {
		return n, fmt.Errorf("snapshot: write sha256: %w", err)
	}
	return n, nil
}

// DBStatus is what `etcdutl snapshot status` reports, with its JSON field
// names. (It is not called Status because the function is.)
type DBStatus struct {
	// Hash is the CRC-32C over every bucket in name order: the bucket name,
	// then each key and value (nothing ignored, meta included).
	Hash uint32 `json:"hash"`
	// Revision is the main revision of the last key in the key bucket.
	Revision int64 `json:"revision"`
	// TotalKey counts keys whose last entry is not a tombstone.
	TotalKey int `json:"totalKey"`
	// TotalSize is tx.Size(): the bytes of the image's pages.
	TotalSize int64 `json:"totalSize"`
	// Version is meta.storageVersion when it is a valid semver, else "".
	Version string `json:"version"`
}

// Verify checks a snapshot file as `etcdutl snapshot restore` will use it: a
// sha256 trailer that matches the image (ErrMissingHash, ErrHashMismatch), and
// an image that is a readable etcd backend with a meta bucket whose key bucket
// holds only revision keys and KeyValue values (ErrCorrupt).
func Verify(path string) error {
	f, err := openFile(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return verify(f, f.size)
}

// file is a snapshot file opened for reading: mapped into memory where the
// platform allows (the reader then takes pages without copying them), read
// with ReadAt otherwise.
type file struct {
	f     *os.File
	size  int64
	data  []byte // the mapping, or nil
	unmap func() error
}

func openFile(path string) (*file, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	sf := &file{f: f, size: st.Size()}
	if sf.size > 0 && st.Mode().IsRegular() {
		if data, unmap, err := mapFile(f, sf.size); err == nil {
			sf.data, sf.unmap = data, unmap
		}
	}
	return sf, nil
}

// ReadAt reads from the mapping or the file.
func (f *file) ReadAt(p []byte, off int64) (int, error) {
	if f.data == nil {
		return f.f.ReadAt(p, off)
	}
	if off < 0 || off >= int64(len(f.data)) {
		return 0, io.EOF
	}
	n := copy(p, f.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// sliceOf returns n bytes of r at off without copying, if r is a mapped file.
func sliceOf(r io.ReaderAt, off, n int64) ([]byte, bool) {
	if f, ok := r.(*file); ok {
		return f.slice(off, n)
	}
	return nil, false
}

// slice returns n bytes at off without copying, if the file is mapped.
func (f *file) slice(off, n int64) ([]byte, bool) {
	if f.data == nil || off < 0 || n < 0 || off+n > int64(len(f.data)) {
		return nil, false
	}
	return f.data[off : off+n : off+n], true
}

// Close unmaps and closes the file.
func (f *file) Close() error {
	var err error
	if f.unmap != nil {
		err = f.unmap()
		f.data, f.unmap = nil, nil
	}
	if cerr := f.f.Close(); err == nil {
		err = cerr
	}
	return err
}

func verify(r io.ReaderAt, size int64) error {
	if err := checkHash(r, size); err != nil {
		return err
	}
	_, err := scan(r, size-hashSize)
	return err
}

// checkHash requires the trailer and compares it with the image's sha256.
func checkHash(r io.ReaderAt, size int64) error {
	var magic [4]byte
	if _, err := r.ReadAt(magic[:], 16); err != nil || binary.LittleEndian.Uint32(magic[:]) != boltMagic {
		return corruptf("%d bytes: not a bbolt image followed by a sha256", size)
	}
	if !hasTrailer(size) {
		if size%sectorSize != 0 {
			return corruptf("%d bytes is neither an image nor an image plus sha256 (truncated?)", size)
		}
		return fmt.Errorf("%w (%d bytes, a multiple of 512: a bare db file?)", ErrMissingHash, size)
	}
	want := make([]byte, hashSize)
	if _, err := r.ReadAt(want, size-hashSize); err != nil {
		return corruptf("read sha256: %v", err)
	}
	h := sha256.New()
	if img, ok := sliceOf(r, 0, size-hashSize); ok {
		h.Write(img)
	} else if _, err := io.Copy(h, io.NewSectionReader(r, 0, size-hashSize)); err != nil {
		return corruptf("read image: %v", err)
	}
	if got := h.Sum(nil); !bytes.Equal(got, want) {
		return fmt.Errorf("%w: trailer %x, image %x (truncated or damaged)", ErrHashMismatch, want, got)
	}
	return nil
}

// Status reads a snapshot file (with or without the trailer, which it does not
// check) and returns what `etcdutl snapshot status` prints.
func Status(path string) (DBStatus, error) {
	f, err := openFile(path)
	if err != nil {
		return DBStatus{}, err
	}
	defer f.Close()
	return scan(f, f.size)
}

// scan walks the whole image once: structure, meta bucket, key bucket, hash.
func scan(r io.ReaderAt, size int64) (DBStatus, error) {
	im, err := openImage(r, size)
	if err != nil {
		return DBStatus{}, err
	}
	if err := im.checkFreelist(); err != nil {
		return DBStatus{}, err
	}
	h := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	var st DBStatus
	live := map[string]bool{}
	hasMeta := false
	err = im.walkBucket(im.rootHeader(), 0, func(b entry) error {
		if !b.bucket {
			return corruptf("top-level key %q is not a bucket", b.key)
		}
		name := string(b.key)
		h.Write(b.key)
		hasMeta = hasMeta || name == "meta"
		return im.walkBucket(b.value, 1, func(e entry) error {
			v := e.value
			if e.bucket {
				v = nil // bbolt's ForEach hands nested buckets out with a nil value
			}
			h.Write(e.key)
			h.Write(v)
			switch name {
			case "key":
				main, tomb, err := parseRevKey(e.key)
				if err != nil {
					return err
				}
				st.Revision = main
				key, err := keyOf(v)
				if err != nil {
					return corruptf("key bucket value at %x: %v", e.key, err)
				}
				if tomb {
					delete(live, string(key))
				} else {
					live[string(key)] = true
				}
			case "meta":
				if string(e.key) == "storageVersion" && !e.bucket {
					if sv, err := semver.NewVersion(string(v)); err == nil {
						st.Version = sv.String()
					}
				}
			}
			return nil
		})
	})
	if err != nil {
		return DBStatus{}, err
	}
	if !hasMeta {
		return DBStatus{}, corruptf("no meta bucket")
	}
	st.Hash, st.TotalKey, st.TotalSize = h.Sum32(), len(live), im.Size()
	return st, nil
}

// keyOf returns the key of a marshalled mvccpb.KeyValue (field 1) without
// decoding the rest, after checking that the whole message is well formed
// protobuf wire data, as proto.Unmarshal would.
func keyOf(kv []byte) ([]byte, error) {
	var key []byte
	for len(kv) > 0 {
		num, typ, n := protowire.ConsumeTag(kv)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		kv = kv[n:]
		if num == 1 && typ == protowire.BytesType {
			b, n := protowire.ConsumeBytes(kv)
			if n < 0 {
				return nil, protowire.ParseError(n)
			}
			key, kv = b, kv[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, kv)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		kv = kv[n:]
	}
	return key, nil
}

// parseRevKey parses a key-bucket key as etcd's BytesToBucketKey does, with an
// error where etcd panics.
func parseRevKey(k []byte) (main int64, tombstone bool, err error) {
	if len(k) != 17 && len(k) != 18 {
		return 0, false, corruptf("key bucket key %x: invalid revision length %d", k, len(k))
	}
	if k[8] != '_' {
		return 0, false, corruptf("key bucket key %x: invalid separator %q", k, k[8])
	}
	main = int64(binary.BigEndian.Uint64(k))
	sub := int64(binary.BigEndian.Uint64(k[9:]))
	if main < 0 || sub < 0 {
		return 0, false, corruptf("key bucket key %x: negative revision", k)
	}
	return main, len(k) == 18 && k[17] == 't', nil
}
