package bench

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/havoclab/havoc/chaos"
)

// KillLeader is the fault kind that kills the member leading when the fault
// starts (kill -9; restarted when the fault ends, if it has a length).
const KillLeader chaos.Kind = "kill-leader"

// Fault is one fault of a benchmark: a chaos fault (or KillLeader) at At from
// the start of the measured part, ended after For (zero: kept to the end of
// the run).
type Fault struct {
	Kind chaos.Kind
	// Member is the target's index (m1 is 0) for crash, pause, one-way and
	// partition-minority.
	Member int
	At     time.Duration
	For    time.Duration
}

// Defaults of the faults that take a rate or a latency.
const (
	faultRate    = 0.3
	faultLatency = 100 * time.Millisecond
)

// String writes the fault in ParseFault's syntax.
func (f Fault) String() string {
	var b strings.Builder
	b.WriteString(string(f.Kind))
	if needsMember(f.Kind) {
		fmt.Fprintf(&b, ":%s", chaos.MemberName(f.Member))
	}
	fmt.Fprintf(&b, "@%s", f.At)
	if f.For > 0 {
		fmt.Fprintf(&b, "+%s", f.For)
	}
	return b.String()
}

func needsMember(k chaos.Kind) bool {
	return k == chaos.Crash || k == chaos.Pause || k == chaos.OneWay || k == chaos.PartitionMinority
}

// ParseFault parses KIND[:MEMBER]@AT[+FOR]: kill-leader@5s, pause:m2@3s+2s,
// isolate-leader@5s+3s. KIND is kill-leader or a chaos kind; MEMBER (m1 by
// default) names the target of crash, pause, one-way and partition-minority;
// AT and FOR are Go durations. Loss, duplicate and reorder use a rate of 0.3,
// delay a latency of 100ms.
func ParseFault(s string) (Fault, error) {
	bad := func(why string) (Fault, error) {
		return Fault{}, fmt.Errorf("%w: fault %q: %s (want KIND[:MEMBER]@AT[+FOR], e.g. kill-leader@5s or pause:m2@3s+2s)", ErrConfig, s, why)
	}
	head, when, ok := strings.Cut(s, "@")
	if !ok {
		return bad("no @AT")
	}
	kind, member, hasMember := strings.Cut(head, ":")
	f := Fault{Kind: chaos.Kind(kind)}
	if f.Kind != KillLeader && !slices.Contains(chaos.AllKinds, f.Kind) {
		return bad("unknown kind")
	}
	if hasMember {
		if !needsMember(f.Kind) {
			return bad("this kind takes no member")
		}
		n, err := strconv.Atoi(strings.TrimPrefix(member, "m"))
		if err != nil || n < 1 {
			return bad("member is m1, m2, ...")
		}
		f.Member = n - 1
	}
	at, length, hasLength := strings.Cut(when, "+")
	var err error
	if f.At, err = time.ParseDuration(at); err != nil {
		return bad(err.Error())
	}
	if hasLength {
		if f.For, err = time.ParseDuration(length); err != nil {
			return bad(err.Error())
		}
	}
	if f.At < 0 || f.For < 0 {
		return bad("negative time")
	}
	return f, nil
}

// chaosFault is f as a chaos.Fault, with the leader resolved for KillLeader.
func (f Fault) chaosFault(inj chaos.Injector) (chaos.Fault, error) {
	cf := chaos.Fault{Kind: f.Kind, Members: []int{f.Member}, Rate: faultRate, Latency: faultLatency}
	if f.Kind == KillLeader {
		leader := inj.Leader()
		i := slices.Index(inj.Members(), leader)
		if i < 0 {
			return cf, fmt.Errorf("bench: %s: no leader known", f)
		}
		cf.Kind, cf.Members = chaos.Crash, []int{i}
	}
	return cf, nil
}

// FaultRecord is what happened to one fault during a run.
type FaultRecord struct {
	Fault Fault
	// Desc says what was done (the leader resolved).
	Desc string
	// Start and Healed are when the fault began and ended, from the start of
	// the measured part (Healed is zero when it lasted to the end).
	Start, Healed time.Duration
	// Err is why the fault could not be injected or healed.
	Err error
}

// inject applies faults at their times, relative to origin, until ctx ends;
// it returns what happened once every fault is over or ctx is done. A fault
// without a length is left in place (the caller heals the cluster after the
// run).
func inject(ctx context.Context, inj chaos.Injector, faults []Fault, origin time.Time) []FaultRecord {
	recs := make([]FaultRecord, len(faults))
	done := make(chan int, len(faults))
	for i, f := range faults {
		recs[i].Fault = f
		go func() {
			defer func() { done <- i }()
			if !sleepUntil(ctx, origin.Add(f.At)) {
				recs[i].Err = ctx.Err()
				return
			}
			cf, err := f.chaosFault(inj)
			if err != nil {
				recs[i].Err = err
				return
			}
			recs[i].Start = time.Since(origin)
			heal, desc, err := chaos.Apply(inj, cf)
			recs[i].Desc = desc
			if err != nil {
				recs[i].Err = err
				return
			}
			if f.For == 0 {
				return
			}
			sleepUntil(ctx, origin.Add(f.At+f.For))
			recs[i].Healed = time.Since(origin)
			if err := heal(); err != nil {
				recs[i].Err = fmt.Errorf("heal: %w", err)
			}
		}()
	}
	for range faults {
		<-done
	}
	return recs
}

// sleepUntil sleeps until t; false if ctx ended first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(time.Until(t)):
		return true
	}
}

// FaultReport is what a fault did to the workload.
type FaultReport struct {
	Fault string `json:"fault"`
	Desc  string `json:"desc,omitempty"`
	Err   string `json:"error,omitempty"`
	// At and Healed are from the start of the measured part (Healed zero:
	// never healed during the run).
	At     time.Duration `json:"at_ns"`
	Healed time.Duration `json:"healed_ns,omitempty"`
	// WriteUnavailable and ReadUnavailable run from the fault to the answer of
	// the first probe write (linearizable read) sent after it that succeeded;
	// -1 when none did before the run ended.
	WriteUnavailable time.Duration `json:"write_unavailable_ns"`
	ReadUnavailable  time.Duration `json:"read_unavailable_ns"`
	// Baseline is the workload's throughput (successful requests per second)
	// before the fault.
	Baseline float64 `json:"baseline_ops_per_sec"`
	// Recovered runs from the fault to the start of the first one-second
	// window after it in which the requests due that answered within
	// RecoveredLatency times the pre-fault p90 plus RecoveredSlack are at
	// least RecoveredShare of the baseline; -1 when no window is. (Counting
	// answers instead would call the burst of requests held through an
	// election a recovery.)
	Recovered time.Duration `json:"recovered_ns"`
	// During is the latency of the workload's successful requests due between
	// the fault and the recovery (at least one second; the end of the run when
	// there is no recovery);
	// DuringErrors counts the failed ones.
	During       Latency `json:"during"`
	DuringErrors int64   `json:"during_errors"`
}

// What counts as recovered: RecoveredShare of the pre-fault throughput, of
// requests answered within RecoveredLatency times the pre-fault p90 plus
// RecoveredSlack (the slack keeps a busy machine's noise from hiding a
// recovery when the pre-fault p90 is a millisecond). The p90, not the p99:
// one stall before the fault (a busy machine, the first second of a run) put
// a p99 at a quarter second, and with it a leader election's held requests
// counted as recovered.
const (
	RecoveredShare   = 0.9
	RecoveredLatency = 3.0
	RecoveredSlack   = 10 * time.Millisecond
)

// recoveryStep is the stride of the one-second windows searched for recovery.
const recoveryStep = 100 * time.Millisecond

// analyzeFault measures fault f against the samples.
func analyzeFault(f FaultRecord, samples []Sample, measured time.Duration) FaultReport {
	fr := FaultReport{Fault: f.Fault.String(), Desc: f.Desc, At: f.Start, Healed: f.Healed,
		WriteUnavailable: -1, ReadUnavailable: -1, Recovered: -1}
	if f.Err != nil {
		fr.Err = f.Err.Error()
	}
	if f.Start == 0 && f.Desc == "" {
		return fr // never injected
	}
	at := f.Start
	firstOK := func(op string) time.Duration {
		best := time.Duration(-1)
		for _, s := range samples {
			if s.Op == op && !s.Err && s.Start >= at && (best < 0 || s.End() < best) {
				best = s.End()
			}
		}
		if best < 0 {
			return -1
		}
		return best - at
	}
	fr.WriteUnavailable, fr.ReadUnavailable = firstOK(opProbePut), firstOK(opProbeGet)
	// Throughput and p90 before the fault; the due times of the good requests
	// after it.
	pre := newHist()
	for _, s := range samples {
		if !isProbe(s.Op) && !s.Err && s.End() < at {
			record(pre, s.Latency)
		}
	}
	if at > 0 {
		fr.Baseline = float64(pre.TotalCount()) / at.Seconds()
	}
	good := time.Duration(RecoveredLatency*float64(valueAt(pre, 0.90))*float64(time.Microsecond)) + RecoveredSlack
	var starts []time.Duration
	for _, s := range samples {
		if !isProbe(s.Op) && !s.Err && s.Start >= at && s.Latency <= good {
			starts = append(starts, s.Start)
		}
	}
	recovered := measured
	if fr.Baseline > 0 {
		want := int(fr.Baseline*RecoveredShare + 0.5)
		for w := at; w+time.Second <= measured; w += recoveryStep {
			lo, _ := slices.BinarySearch(starts, w)
			hi, _ := slices.BinarySearch(starts, w+time.Second)
			if hi-lo >= want {
				fr.Recovered = w - at
				recovered = max(w, at+time.Second)
				break
			}
		}
	}
	h := newHist()
	for _, s := range samples {
		if isProbe(s.Op) || s.Start < at || s.Start >= recovered {
			continue
		}
		if s.Err {
			fr.DuringErrors++
			continue
		}
		record(h, s.Latency)
	}
	fr.During = summarize(h)
	return fr
}
