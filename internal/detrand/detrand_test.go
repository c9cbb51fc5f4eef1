package detrand

import (
	"crypto/rand"
	"math/big"
	"testing"

	"github.com/stretchr/testify/require"
)

// draws mimics raft's election jitter: rand.Int(crypto/rand.Reader, n).
func draws(seed uint64) []int64 {
	release := Acquire(seed)
	defer release()
	out := make([]int64, 8)
	for i := range out {
		v, _ := rand.Int(rand.Reader, big.NewInt(1000))
		out[i] = v.Int64()
	}
	return out
}

func TestSeedDecidesCryptoRandDraws(t *testing.T) {
	require.Equal(t, draws(1), draws(1))
	require.NotEqual(t, draws(1), draws(2))
	saved := rand.Reader
	release := Acquire(3)
	require.NotEqual(t, saved, rand.Reader)
	release()
	require.Equal(t, saved, rand.Reader, "Release restores the system reader")
}
