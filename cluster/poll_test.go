package cluster

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestPollUntil(t *testing.T) {
	fast := Backoff{First: time.Millisecond, Max: 2 * time.Millisecond}

	calls := 0
	require.NoError(t, PollUntil(context.Background(), fast, func() (bool, error) { calls++; return calls == 3, nil }))
	require.Equal(t, 3, calls, "checks until done, then stops")

	calls = 0
	stop := errors.New("member exited")
	require.ErrorIs(t, PollUntil(context.Background(), fast, func() (bool, error) { calls++; return false, stop }), stop)
	require.Equal(t, 1, calls, "an error ends the wait at once")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, PollUntil(ctx, fast, func() (bool, error) { return false, nil }), context.DeadlineExceeded)

	// A done context still gets one check: a condition that holds is not an error.
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	require.NoError(t, PollUntil(ctx, fast, func() (bool, error) { return true, nil }))
	require.ErrorIs(t, PollUntil(ctx, fast, func() (bool, error) { return false, nil }), context.Canceled)

	// The sleeps double from First up to Max: in 200 ms, 10+20+40+50+50+... ms
	// allow about 6 checks, a fixed 10 ms about 20.
	ctx, cancel = context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	calls = 0
	_ = PollUntil(ctx, Backoff{First: 10 * time.Millisecond, Max: 50 * time.Millisecond}, func() (bool, error) { calls++; return false, nil })
	require.InDelta(t, 6, calls, 2)
}
