package bench

import (
	"slices"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Quantiles are the latency percentiles every report gives, as fractions.
var Quantiles = []float64{0.10, 0.25, 0.50, 0.75, 0.90, 0.95, 0.99, 0.999}

// The histograms' range, in microseconds: 1 µs to 10 minutes at 3 significant
// digits. A latency beyond it is recorded as the highest trackable value.
const (
	histLowUs  = 1
	histHighUs = int64(10 * time.Minute / time.Microsecond)
	histDigits = 3
)

// Report is what one benchmark measured. It is a function of its samples:
// Analyze computes it.
type Report struct {
	// Target names what was measured (havoc, etcd, endpoints).
	Target string `json:"target"`
	// Config is the benchmark as run (defaults filled).
	Config Config `json:"config"`
	// Loop describes the load in words.
	Loop string `json:"loop"`
	// Measured is the length of the measured part.
	Measured time.Duration `json:"measured_ns"`
	// Ops holds one entry per operation, in name order.
	Ops []OpStats `json:"ops"`
	// Series holds one entry per second of the measured part (requests
	// answered after it count in Ops only).
	Series []Second `json:"series"`
	// Faults holds one entry per injected fault.
	Faults []FaultReport `json:"faults,omitempty"`
	// Model, for a simulated benchmark, describes the model and says that
	// the figures come from it (empty for a measurement).
	Model string `json:"model,omitempty"`
	// Samples are the raw samples (not written to JSON: a long run has millions).
	Samples []Sample `json:"-"`
}

// OpStats are the figures of one operation.
type OpStats struct {
	Op string `json:"op"`
	// Count is the number of successful requests; Errors of failed ones.
	Count  int64 `json:"count"`
	Errors int64 `json:"errors"`
	// Throughput is Count per second of the measured part.
	Throughput float64 `json:"ops_per_sec"`
	// Latency is of the successful requests.
	Latency Latency `json:"latency"`

	hist *hdrhistogram.Histogram
}

// Latency summarises a latency distribution, in milliseconds.
type Latency struct {
	Min         float64    `json:"min_ms"`
	Mean        float64    `json:"mean_ms"`
	Max         float64    `json:"max_ms"`
	Percentiles []Quantile `json:"percentiles"`
}

// Quantile is one percentile: Q is a fraction (0.999 for p99.9).
type Quantile struct {
	Q  float64 `json:"q"`
	Ms float64 `json:"ms"`
}

// At returns the latency at quantile q (one of Quantiles), 0 when absent.
func (l Latency) At(q float64) float64 {
	for _, p := range l.Percentiles {
		if p.Q == q {
			return p.Ms
		}
	}
	return 0
}

// Second is one second of the measured part: what was answered in it.
type Second struct {
	// At is the second's start, in whole seconds from the start of the measured part.
	At  int         `json:"at_s"`
	Ops []SecondOps `json:"ops"`
}

// SecondOps are one operation's figures in one second: the requests answered
// (Count) or failed (Errors) in it, and the latency of those answered.
type SecondOps struct {
	Op     string  `json:"op"`
	Count  int64   `json:"count"`
	Errors int64   `json:"errors"`
	P50    float64 `json:"p50_ms"`
	P99    float64 `json:"p99_ms"`
	Max    float64 `json:"max_ms"`
}

// newHist returns an empty latency histogram in microseconds.
func newHist() *hdrhistogram.Histogram {
	return hdrhistogram.New(histLowUs, histHighUs, histDigits)
}

func record(h *hdrhistogram.Histogram, d time.Duration) {
	us := max(int64(d/time.Microsecond), histLowUs)
	_ = h.RecordValue(min(us, histHighUs)) // in range by construction
}

// valueAt is h's value at quantile q (a fraction), never below the minimum:
// hdrhistogram-go answers 0 for a quantile whose rank rounds to zero (p10 of
// two values), where HDR's definition is the smallest value.
func valueAt(h *hdrhistogram.Histogram, q float64) int64 {
	if h.TotalCount() == 0 {
		return 0
	}
	return max(h.ValueAtQuantile(q*100), h.Min())
}

func ms(us int64) float64 { return float64(us) / 1000 }

// summarize turns a histogram into a Latency.
func summarize(h *hdrhistogram.Histogram) Latency {
	l := Latency{Percentiles: make([]Quantile, len(Quantiles))}
	for i, q := range Quantiles {
		l.Percentiles[i] = Quantile{Q: q}
	}
	if h.TotalCount() == 0 {
		return l
	}
	l.Min, l.Max, l.Mean = ms(h.Min()), ms(h.Max()), h.Mean()/1000
	for i, q := range Quantiles {
		l.Percentiles[i].Ms = ms(valueAt(h, q))
	}
	return l
}

// isProbe reports whether op is the fault probe's (kept out of the workload's figures).
func isProbe(op string) bool { return op == opProbePut || op == opProbeGet }

// Analyze computes the report of samples (of the measured part, sorted by
// SortSamples) over measured. Probe samples count only for the faults.
func Analyze(target string, cfg Config, samples []Sample, measured time.Duration, faults []FaultRecord) *Report {
	r := &Report{Target: target, Config: cfg, Loop: cfg.Loop(), Measured: measured, Samples: samples}
	byOp := map[string]*OpStats{}
	type secKey struct {
		sec int
		op  string
	}
	type secAcc struct {
		h           *hdrhistogram.Histogram
		count, errs int64
	}
	secs := map[secKey]*secAcc{}
	lastSec := -1
	if measured > 0 {
		lastSec = int((measured - 1) / time.Second)
	}
	for _, s := range samples {
		if isProbe(s.Op) {
			continue
		}
		st := byOp[s.Op]
		if st == nil {
			st = &OpStats{Op: s.Op, hist: newHist()}
			byOp[s.Op] = st
		}
		if s.Err {
			st.Errors++
		} else {
			st.Count++
			record(st.hist, s.Latency)
		}
		sec := int(s.End() / time.Second)
		if sec > lastSec {
			continue // answered after the measured part: in the totals, not the series
		}
		k := secKey{sec, s.Op}
		acc := secs[k]
		if acc == nil {
			acc = &secAcc{h: newHist()}
			secs[k] = acc
		}
		if s.Err {
			acc.errs++
			continue
		}
		acc.count++
		record(acc.h, s.Latency)
	}
	names := make([]string, 0, len(byOp))
	for op := range byOp {
		names = append(names, op)
	}
	slices.Sort(names)
	for _, op := range names {
		st := byOp[op]
		if measured > 0 {
			st.Throughput = float64(st.Count) / measured.Seconds()
		}
		st.Latency = summarize(st.hist)
		r.Ops = append(r.Ops, *st)
	}
	for sec := 0; sec <= lastSec; sec++ {
		s := Second{At: sec}
		for _, op := range names {
			so := SecondOps{Op: op}
			if acc := secs[secKey{sec, op}]; acc != nil {
				so.Count, so.Errors = acc.count, acc.errs
				if acc.count > 0 {
					so.P50 = ms(valueAt(acc.h, 0.5))
					so.P99 = ms(valueAt(acc.h, 0.99))
					so.Max = ms(acc.h.Max())
				}
			}
			s.Ops = append(s.Ops, so)
		}
		r.Series = append(r.Series, s)
	}
	for _, f := range faults {
		r.Faults = append(r.Faults, analyzeFault(f, samples, measured))
	}
	return r
}

// Op returns the figures of op, and whether the report has them.
func (r *Report) Op(op string) (OpStats, bool) {
	for _, s := range r.Ops {
		if s.Op == op {
			return s, true
		}
	}
	return OpStats{}, false
}

// Merge combines reports of the same benchmark on the same target (rounds):
// counts and histograms add up, throughput is over the summed measured time.
// The series and faults are those of the first report.
func Merge(rs []*Report) *Report {
	if len(rs) == 0 {
		return nil
	}
	if len(rs) == 1 {
		return rs[0]
	}
	out := &Report{Target: rs[0].Target, Config: rs[0].Config, Loop: rs[0].Loop, Series: rs[0].Series, Faults: rs[0].Faults}
	byOp := map[string]*OpStats{}
	var names []string
	for _, r := range rs {
		out.Measured += r.Measured
		for _, s := range r.Ops {
			m := byOp[s.Op]
			if m == nil {
				m = &OpStats{Op: s.Op, hist: newHist()}
				byOp[s.Op] = m
				names = append(names, s.Op)
			}
			m.Count += s.Count
			m.Errors += s.Errors
			if s.hist != nil {
				m.hist.Merge(s.hist)
			}
		}
	}
	slices.Sort(names)
	for _, op := range names {
		m := byOp[op]
		if out.Measured > 0 {
			m.Throughput = float64(m.Count) / out.Measured.Seconds()
		}
		m.Latency = summarize(m.hist)
		out.Ops = append(out.Ops, *m)
	}
	return out
}
