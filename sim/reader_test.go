package sim

import (
	"crypto/rand"
	"math/big"
	mrand "math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReader(t *testing.T) {
	draw := func(seed uint64) []int64 {
		r := Reader{R: mrand.New(mrand.NewPCG(seed, 0))}
		var out []int64
		for i := 0; i < 10; i++ {
			n, err := rand.Int(r, big.NewInt(1000))
			require.NoError(t, err)
			out = append(out, n.Int64())
		}
		return out
	}
	assert.Equal(t, draw(1), draw(1))
	assert.NotEqual(t, draw(1), draw(2))

	r := Reader{R: mrand.New(mrand.NewPCG(3, 0))}
	for _, n := range []int{0, 1, 7, 8, 13} {
		p := make([]byte, n)
		got, err := r.Read(p)
		require.NoError(t, err)
		assert.Equal(t, n, got)
	}
}
