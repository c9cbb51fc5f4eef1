package bench

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Sample is one measured request.
type Sample struct {
	// Op names the operation (put, get, range, txn, watch, keepalive, and the
	// probe's probe-put and probe-get).
	Op string `json:"op"`
	// Start is when the request was due, from the start of the measured part:
	// in open loop its slot in the schedule, in closed loop when it was sent.
	// Negative during the warm-up.
	Start time.Duration `json:"start_ns"`
	// Latency runs from Start to the answer (or the failure).
	Latency time.Duration `json:"latency_ns"`
	// Err is set when the request failed or timed out.
	Err bool `json:"err,omitempty"`
}

// End is when the request was answered, from the start of the measured part.
func (s Sample) End() time.Duration { return s.Start + s.Latency }

// Load is the pacing of a run.
type Load struct {
	// Clients is the number of workers: the concurrency in closed loop, the
	// bound on requests in flight in open loop. At least 1.
	Clients int
	// Rate, when positive, is the open-loop rate (requests per second over all
	// workers); zero runs closed loop.
	Rate float64
	// Warmup precedes the measured part; its requests are not sampled.
	Warmup time.Duration
	// Duration is the length of the measured part (zero: until Total).
	Duration time.Duration
	// Total, when positive, ends the measured part after that many requests.
	Total int64
	// Timeout bounds one request.
	Timeout time.Duration
}

// Request issues request seq (counted from 0 over all workers) on behalf of
// worker and names the operation it was.
type Request func(ctx context.Context, worker int, seq int64) (op string, err error)

// errorPause keeps a closed-loop worker whose requests fail at once (a member
// refusing connections) from spinning.
const errorPause = 10 * time.Millisecond

// Drive runs the load against req. The measured part starts at origin; the
// warm-up starts Warmup before it, so the caller can schedule faults and
// stamps against origin before calling. It returns the samples of the
// measured part in the order they were due, and the measured time: Duration,
// the time to the last answer when the run ends at Total, or less when ctx is
// cancelled first.
//
// In open loop request i is due at origin - Warmup + i/Rate; a worker sleeps
// until then when it is early and sends at once when it is late, and the
// latency is counted from the due time either way. A server that stalls for a
// second therefore shows a second of late requests in the percentiles, not one
// slow request (coordinated-omission correction).
func Drive(ctx context.Context, l Load, origin time.Time, req Request) ([]Sample, time.Duration) {
	begin := origin.Add(-l.Warmup)
	var end time.Time
	if l.Duration > 0 {
		end = origin.Add(l.Duration)
	}
	var (
		next     atomic.Int64 // the next request's number
		measured atomic.Int64 // requests claimed for the measured part
		mu       sync.Mutex
		all      []Sample
		wg       sync.WaitGroup
	)
	// claim decides whether a request due at due may be sent and whether it
	// is measured.
	claim := func(due time.Time) (send, measure bool) {
		if ctx.Err() != nil || (!end.IsZero() && !due.Before(end)) {
			return false, false
		}
		if due.Before(origin) {
			return true, false
		}
		if l.Total > 0 && measured.Add(1) > l.Total {
			return false, false
		}
		return true, true
	}
	var interval time.Duration
	if l.Rate > 0 {
		interval = time.Duration(float64(time.Second) / l.Rate)
	}
	for w := range l.Clients {
		wg.Go(func() {
			var mine []Sample
			for {
				seq := next.Add(1) - 1
				var due time.Time
				if interval > 0 {
					due = begin.Add(time.Duration(seq) * interval)
				} else {
					due = time.Now()
				}
				send, measure := claim(due)
				if !send {
					break
				}
				if wait := time.Until(due); wait > 0 {
					select {
					case <-ctx.Done():
					case <-time.After(wait):
					}
					if ctx.Err() != nil {
						break
					}
				}
				rctx, cancel := context.WithTimeout(ctx, l.Timeout)
				op, err := req(rctx, w, seq)
				cancel()
				done := time.Now()
				if ctx.Err() != nil {
					break // cancelled under the request: its outcome says nothing
				}
				if measure {
					mine = append(mine, Sample{Op: op, Start: due.Sub(origin), Latency: done.Sub(due), Err: err != nil})
				}
				if err != nil && interval == 0 && done.Sub(due) < errorPause {
					time.Sleep(errorPause - done.Sub(due))
				}
			}
			mu.Lock()
			all = append(all, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	SortSamples(all)
	var span time.Duration
	switch {
	case ctx.Err() != nil || l.Duration == 0:
		for _, s := range all {
			span = max(span, s.End())
		}
		if l.Duration > 0 {
			span = min(span, l.Duration)
		}
	default:
		span = l.Duration
	}
	return all, span
}

// SortSamples orders samples by due time, then operation, then latency, so
// that the analysis of a set of samples does not depend on the order workers
// finished in.
func SortSamples(s []Sample) {
	slices.SortStableFunc(s, func(a, b Sample) int {
		switch {
		case a.Start != b.Start:
			return cmp.Compare(a.Start, b.Start)
		case a.Op != b.Op:
			if a.Op < b.Op {
				return -1
			}
			return 1
		default:
			return cmp.Compare(a.Latency, b.Latency)
		}
	})
}
