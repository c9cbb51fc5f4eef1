package cluster

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/havoclab/havoc/cluster/lazyfs"
)

// mountLazy puts a member's data dir on a lazy file system (package lazyfs):
// the data dir <name>.data becomes the mount, over the backing dir
// <name>.disk. What a restore drill's Prepare wrote into the data dir becomes
// the backing dir, synced.
func mountLazy(dataDir string, seed uint64) (*lazyfs.FS, error) {
	// A kept run dir may still hold the dead mounts of a harness killed with
	// -9: a mount point cannot be renamed.
	_, _ = lazyfs.DetachStale()
	backing := strings.TrimSuffix(dataDir, ".data") + ".disk"
	if _, err := os.Stat(backing); err == nil {
		// Left by that harness: the backing dir is the disk, the data dir
		// its empty mount point.
		if err := os.Remove(dataDir); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("cluster: lazyfs: both %s and %s exist: %w", dataDir, backing, err)
		}
	} else if err := os.Rename(dataDir, backing); errors.Is(err, os.ErrNotExist) {
		if err := os.Mkdir(backing, 0o700); err != nil {
			return nil, fmt.Errorf("cluster: lazyfs: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("cluster: lazyfs: %w", err)
	}
	if err := os.Mkdir(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("cluster: lazyfs: %w", err)
	}
	l, err := lazyfs.Mount(dataDir, backing, lazyfs.Options{Seed: seed})
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	return l, nil
}

// unmountLazy syncs and unmounts a member's lazy file system, and moves the
// backing dir back into the data dir's place, so that a kept run directory
// looks the same with or without lazyfs.
func unmountLazy(l *lazyfs.FS) error {
	if err := l.Close(); err != nil {
		return err
	}
	if err := os.Remove(l.Mountpoint()); err != nil {
		return fmt.Errorf("cluster: lazyfs: %w", err)
	}
	return os.Rename(l.Backing(), l.Mountpoint())
}
