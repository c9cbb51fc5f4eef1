package sim

import (
	"encoding/binary"
	"math/rand/v2"
)

// Reader adapts a PRNG to io.Reader. raft v3 draws its election jitter with
// rand.Int(crypto/rand.Reader, n); pointing crypto/rand.Reader at a Reader
// over the world PRNG (one world per process at a time) makes that
// jitter a function of the seed too. It never fails.
type Reader struct {
	R *rand.Rand
}

// Read fills p from the PRNG, eight bytes per draw.
func (r Reader) Read(p []byte) (int, error) {
	n := len(p)
	for len(p) >= 8 {
		binary.LittleEndian.PutUint64(p, r.R.Uint64())
		p = p[8:]
	}
	if len(p) > 0 {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], r.R.Uint64())
		copy(p, b[:])
	}
	return n, nil
}
