package bench

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// stallOnce is a fake server that answers in about a millisecond, except
// that the first request due at or after stallAt (from origin) hangs for
// stall: a server that stops for a while, as a GC pause or a leader election
// does. (The millisecond keeps a closed loop from sampling millions of no-op
// requests.)
func stallOnce(origin time.Time, stallAt, stall time.Duration) Request {
	var stalled atomic.Bool
	return func(ctx context.Context, _ int, _ int64) (string, error) {
		d := time.Millisecond
		if time.Since(origin) >= stallAt && stalled.CompareAndSwap(false, true) {
			d = stall
		}
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return "put", ctx.Err()
		}
		return "put", nil
	}
}

func quantile(t *testing.T, r *Report, op string, q float64) time.Duration {
	t.Helper()
	st, ok := r.Op(op)
	require.True(t, ok, "no %s in the report", op)
	return time.Duration(st.Latency.At(q) * float64(time.Millisecond))
}

// TestOpenLoopCorrectsCoordinatedOmission: one worker at 200/s against a
// server that stalls for a second halfway. The 200 requests due during the
// stall wait for it, and their latency counts from when they were due, so
// a quarter of the run is slower than ~half a second. A closed loop against
// the same server sees one slow request and nothing else.
func TestOpenLoopCorrectsCoordinatedOmission(t *testing.T) {
	if testing.Short() {
		t.Skip("4 s of wall clock")
	}
	load := Load{Clients: 1, Rate: 200, Duration: 2 * time.Second, Timeout: 5 * time.Second}
	origin := time.Now()
	samples, measured := Drive(context.Background(), load, origin, stallOnce(origin, 500*time.Millisecond, time.Second))
	require.Equal(t, 2*time.Second, measured)
	assert.InDelta(t, 400, len(samples), 2, "every due request is sent and sampled")
	r := Analyze("fake", Config{Workload: WorkloadPut}, samples, measured, nil)
	assert.GreaterOrEqual(t, quantile(t, r, "put", 0.75), 350*time.Millisecond, "a quarter of the requests waited more than ~half the stall")
	assert.GreaterOrEqual(t, quantile(t, r, "put", 0.90), 650*time.Millisecond)
	assert.GreaterOrEqual(t, quantile(t, r, "put", 0.999), 950*time.Millisecond)

	load.Rate = 0
	origin = time.Now()
	samples, _ = Drive(context.Background(), load, origin, stallOnce(origin, 500*time.Millisecond, time.Second))
	r = Analyze("fake", Config{Workload: WorkloadPut}, samples, measured, nil)
	st, _ := r.Op("put")
	assert.GreaterOrEqual(t, st.Latency.Max, 950.0, "the stalled request itself")
	assert.Less(t, quantile(t, r, "put", 0.99), 50*time.Millisecond, "closed loop: one slow request among many fast ones")
}

// TestDriveLeavesOutWarmup: no sample is due before the measured part, and
// the open loop sends Rate per second of it.
func TestDriveLeavesOutWarmup(t *testing.T) {
	load := Load{Clients: 4, Rate: 400, Warmup: 300 * time.Millisecond, Duration: 500 * time.Millisecond, Timeout: time.Second}
	var calls atomic.Int64
	samples, measured := Drive(context.Background(), load, time.Now().Add(load.Warmup), func(context.Context, int, int64) (string, error) {
		calls.Add(1)
		return "get", nil
	})
	require.Equal(t, load.Duration, measured)
	assert.InDelta(t, 200, len(samples), 2)
	assert.InDelta(t, 320, calls.Load(), 3, "warm-up requests are sent, not sampled")
	for _, s := range samples {
		require.GreaterOrEqual(t, s.Start, time.Duration(0))
		require.Less(t, s.Start, load.Duration)
	}
}

// TestDriveTotal: a closed loop with Total samples exactly Total requests
// and measures the time to the last answer; failures are samples too.
func TestDriveTotal(t *testing.T) {
	load := Load{Clients: 8, Total: 500, Timeout: time.Second}
	samples, measured := Drive(context.Background(), load, time.Now(), func(_ context.Context, _ int, seq int64) (string, error) {
		if seq%10 == 0 {
			return "put", errors.New("refused")
		}
		return "put", nil
	})
	require.Len(t, samples, 500)
	assert.Positive(t, measured)
	r := Analyze("fake", Config{Workload: WorkloadPut}, samples, measured, nil)
	st, _ := r.Op("put")
	assert.Equal(t, int64(500), st.Count+st.Errors)
	assert.Positive(t, st.Errors)
}

// TestDriveStopsOnCancel: cancelling the context ends the run at once and
// the interrupted requests are not sampled as failures.
func TestDriveStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	load := Load{Clients: 2, Duration: time.Minute, Timeout: time.Minute}
	time.AfterFunc(200*time.Millisecond, cancel)
	started := time.Now()
	samples, measured := Drive(ctx, load, time.Now(), func(ctx context.Context, _ int, _ int64) (string, error) {
		select {
		case <-time.After(20 * time.Millisecond):
			return "put", nil
		case <-ctx.Done():
			return "put", ctx.Err()
		}
	})
	assert.Less(t, time.Since(started), 5*time.Second)
	assert.Less(t, measured, time.Second)
	for _, s := range samples {
		assert.False(t, s.Err)
	}
}

// TestProbeKeepsSendingWhileRequestsHang: while the cluster swallows every
// request (an election after a leader kill), the probe still sends every
// probeEvery, so the first success after the cluster is back is seen within
// a probe period (with at most 16 in flight it went blind for a timeout).
func TestProbeKeepsSendingWhileRequestsHang(t *testing.T) {
	if testing.Short() {
		t.Skip("1.5 s of wall clock")
	}
	origin := time.Now()
	back := 600 * time.Millisecond
	hangUntilBack := func(ctx context.Context) error {
		if time.Since(origin) >= back {
			return nil
		}
		<-ctx.Done() // swallowed: answered by the timeout
		return ctx.Err()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	samples := probe(ctx, hangUntilBack, hangUntilBack, origin)
	SortSamples(samples)
	r := Analyze("fake", Config{}, samples, 1500*time.Millisecond,
		[]FaultRecord{{Fault: Fault{Kind: KillLeader}, Desc: "crash m1", Start: 100 * time.Millisecond}})
	f := r.Faults[0]
	for _, w := range []time.Duration{f.WriteUnavailable, f.ReadUnavailable} {
		assert.GreaterOrEqual(t, w, back-100*time.Millisecond)
		assert.Less(t, w, back-100*time.Millisecond+10*probeEvery, "seen within a few probe periods of the cluster's return")
	}
}

// TestProgressLine: the progress line is rewritten in place and cleared at
// the end of the run.
func TestProgressLine(t *testing.T) {
	if testing.Short() {
		t.Skip("1 s of wall clock")
	}
	var b syncBuffer
	var answered, failed atomic.Int64
	answered.Store(42)
	failed.Store(1)
	ctx, cancel := context.WithTimeout(context.Background(), 1100*time.Millisecond)
	defer cancel()
	progress(ctx, Config{Workload: WorkloadPut, Duration: 10 * time.Second, Progress: &b}, "havoc", time.Now(), &answered, &failed)
	assert.Equal(t, "\r\033[Khavoc put: 1s of 10s, 42 answered, 1 failed\r\033[K", b.String())
}

// syncBuffer is a bytes.Buffer safe for one writer and a later reader.
type syncBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b = append(s.b, p...)
	return len(p), nil
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.b)
}
