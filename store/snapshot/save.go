package snapshot

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// SaveStream is etcdctl's snapshot save after the stream is open: it copies
// a member's snapshot stream into path+".part", requires the sha256 trailer
// (size % 512 == 32), fsyncs, renames to path and syncs the directory. It
// returns the file's size; on any error path does not exist and the part
// file is gone.
func SaveStream(stream io.Reader, path string) (int64, error) {
	part := path + ".part"
	defer os.Remove(part) // gone after the rename; left-overs of a failure go too
	f, err := os.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(f, stream)
	if err == nil && n%512 != 32 {
		err = fmt.Errorf("%w: %d bytes (sha256 checksum not found)", ErrMissingHash, n)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(part, path)
	}
	if err != nil {
		return 0, err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return n, nil
}
