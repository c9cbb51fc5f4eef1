package cluster

import (
	"context"
	"time"
)

// Backoff is the sleep between two checks of PollUntil: First after the first
// failed check, doubled after each further one, never more than Max. A zero
// First is 10 ms; a Max below First is First (a fixed interval).
type Backoff struct {
	First, Max time.Duration
}

// PollUntil is the one wait loop of the real backends: it calls cond until cond
// reports done (nil), returns an error (that error, at once), or ctx ends
// (ctx.Err()). cond runs once before any sleep, so a condition that already
// holds costs no wait. The caller bounds the wait with ctx's deadline and keeps
// whatever it wants to report about the last check in cond's closure.
func PollUntil(ctx context.Context, b Backoff, cond func() (done bool, err error)) error {
	if b.First <= 0 {
		b.First = 10 * time.Millisecond
	}
	b.Max = max(b.Max, b.First)
	wait := b.First
	t := time.NewTimer(time.Hour) // Reset before every wait (Go 1.23 timers need no drain)
	defer t.Stop()
	for {
		if done, err := cond(); err != nil || done {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, b.Max)
	}
}
