//go:build !unix

package snapshot

import (
	"errors"
	"os"
)

// mapFile is not offered here: readers fall back to ReadAt.
func mapFile(*os.File, int64) ([]byte, func() error, error) {
	return nil, nil, errors.ErrUnsupported
}
