// Package detrand makes raft's election jitter deterministic.
//
// go.etcd.io/raft/v3 draws each randomized election timeout with
// rand.Int(crypto/rand.Reader, n) from a package-level generator that cannot be
// injected. crypto/rand.Reader is a package variable, so while one simulated world
// runs, Acquire points it at a PCG seeded by the world and holds a process-wide lock:
// two worlds never run at once in one process (sweeps use one worker process per
// core, or run seeds one after another). Release restores the system reader.
//
// The alternative (keep raft's own timer from firing and call Campaign from a
// seeded timer) would change CheckQuorum and PreVote timing semantics; this keeps
// raft exactly as etcd runs it.
package detrand

import (
	"crypto/rand"
	"encoding/binary"
	"io"
	mrand "math/rand/v2"
	"sync"
)

var mu sync.Mutex

// pcgReader is an io.Reader over a seeded PCG.
type pcgReader struct{ r *mrand.Rand }

func (p pcgReader) Read(b []byte) (int, error) {
	var buf [8]byte
	for i := 0; i < len(b); i += 8 {
		binary.LittleEndian.PutUint64(buf[:], p.r.Uint64())
		copy(b[i:], buf[:])
	}
	return len(b), nil
}

// Acquire locks the process-wide generator and seeds it; the returned function
// restores crypto/rand.Reader and unlocks. Only simulated worlds and deterministic
// tests may call it; nothing else in such a process may use crypto/rand.Reader.
func Acquire(seed uint64) (release func()) {
	mu.Lock()
	saved := rand.Reader
	rand.Reader = pcgReader{mrand.New(mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	return func() {
		rand.Reader = saved
		mu.Unlock()
	}
}

var _ io.Reader = pcgReader{}
