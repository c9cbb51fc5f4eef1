package lazyfs

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestDirtyOracle checks dirty against a byte map: random writes, drops and
// truncates, then every byte and the extents' invariants.
func TestDirtyOracle(t *testing.T) {
	for seed := range uint64(200) {
		rnd := rand.New(rand.NewPCG(seed, 1))
		var d dirty
		oracle := map[int64]byte{}
		for range 40 {
			off := rnd.Int64N(200)
			switch rnd.IntN(6) {
			case 0:
				hi := off + rnd.Int64N(50)
				d.drop(off, hi)
				for k := off; k < hi; k++ {
					delete(oracle, k)
				}
			case 1:
				d.truncate(off)
				for k := range oracle {
					if k >= off {
						delete(oracle, k)
					}
				}
			default:
				data := make([]byte, 1+rnd.IntN(40))
				for i := range data {
					data[i] = byte(rnd.Uint32())
					oracle[off+int64(i)] = data[i]
				}
				d.write(off, data)
			}
			for i := 1; i < len(d.extents); i++ {
				require.Less(t, d.extents[i-1].end(), d.extents[i].off, "seed %d: extents overlap or touch", seed)
			}
			require.EqualValues(t, len(oracle), d.bytes(), "seed %d", seed)
			buf, want := make([]byte, 300), make([]byte, 300)
			for i := range buf {
				buf[i], want[i] = 0xee, 0xee
			}
			for k, v := range oracle {
				want[k] = v
			}
			d.overlay(buf, 0)
			require.Equal(t, want, buf, "seed %d", seed)
		}
	}
}

// TestDirtyAppendAmortized checks that sequential appends keep one extent.
func TestDirtyAppendAmortized(t *testing.T) {
	var d dirty
	for i := range 1000 {
		d.write(int64(i*10), make([]byte, 10))
	}
	require.Len(t, d.extents, 1)
	require.EqualValues(t, 10000, d.end())
}
