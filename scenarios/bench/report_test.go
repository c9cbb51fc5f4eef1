package bench

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPercentileTable: latencies of 1 to 1000 ms, one request due every
// 10 ms over 10 s, give the exact percentiles (within the histogram's 3
// significant digits), the throughput, a ten-second series and a table.
func TestPercentileTable(t *testing.T) {
	var samples []Sample
	for i := range 1000 {
		samples = append(samples, Sample{Op: "put", Start: time.Duration(i) * 10 * time.Millisecond, Latency: time.Duration(i+1) * time.Millisecond})
	}
	samples = append(samples, Sample{Op: "put", Start: 5 * time.Second, Latency: 3 * time.Second, Err: true})
	SortSamples(samples)
	r := Analyze("x", Config{Workload: WorkloadPut, Clients: 1, KeySpace: 1, KeySize: 8, ValueSize: 8}, samples, 10*time.Second, nil)
	require.Len(t, r.Ops, 1)
	st := r.Ops[0]
	assert.Equal(t, int64(1000), st.Count)
	assert.Equal(t, int64(1), st.Errors)
	assert.InDelta(t, 100, st.Throughput, 1e-9)
	want := map[float64]float64{0.10: 100, 0.25: 250, 0.50: 500, 0.75: 750, 0.90: 900, 0.95: 950, 0.99: 990, 0.999: 999}
	require.Len(t, st.Latency.Percentiles, len(Quantiles))
	for _, q := range st.Latency.Percentiles {
		assert.InEpsilon(t, want[q.Q], q.Ms, 0.002, "p%v", q.Q*100)
	}
	assert.InEpsilon(t, 1000, st.Latency.Max, 0.002, "a failed request's latency is not in the histogram")
	assert.InEpsilon(t, 1, st.Latency.Min, 0.002)

	require.Len(t, r.Series, 10)
	for i, sec := range r.Series {
		assert.Equal(t, i, sec.At)
		require.Len(t, sec.Ops, 1)
		var count, errs int64
		var maxMs float64
		for _, s := range samples {
			if s.End() >= time.Duration(i)*time.Second && s.End() < time.Duration(i+1)*time.Second {
				if s.Err {
					errs++
					continue
				}
				count++
				maxMs = max(maxMs, float64(s.Latency)/float64(time.Millisecond))
			}
		}
		assert.Equal(t, count, sec.Ops[0].Count, "second %d: the requests answered in it", i)
		assert.Equal(t, errs, sec.Ops[0].Errors, "second %d", i)
		if count > 0 {
			assert.InEpsilon(t, maxMs, sec.Ops[0].Max, 0.002, "second %d", i)
		}
	}
	assert.Equal(t, int64(1), r.Series[8].Ops[0].Errors, "failed at 5 s + 3 s")

	var b bytes.Buffer
	r.WriteTable(&b)
	out := b.String()
	for _, col := range []string{"ops/s", "p10", "p25", "p50", "p75", "p90", "p95", "p99", "p99.9", "max"} {
		assert.Contains(t, out, col)
	}
	assert.Contains(t, out, "put  1000       1  100.0")
	assert.Contains(t, out, "990    999  1000")
}

// TestMergeAddsRounds: two rounds of the same figures merge into one with
// the counts added and the throughput over both measured times.
func TestMergeAddsRounds(t *testing.T) {
	mk := func(lat time.Duration) *Report {
		var s []Sample
		for i := range 100 {
			s = append(s, Sample{Op: "get", Start: time.Duration(i) * 10 * time.Millisecond, Latency: lat})
		}
		return Analyze("x", Config{Workload: WorkloadGet}, s, time.Second, nil)
	}
	m := Merge([]*Report{mk(time.Millisecond), mk(3 * time.Millisecond)})
	st, ok := m.Op("get")
	require.True(t, ok)
	assert.Equal(t, int64(200), st.Count)
	assert.InDelta(t, 100, st.Throughput, 1e-9)
	assert.InEpsilon(t, 1, st.Latency.At(0.5), 0.002)
	assert.InEpsilon(t, 3, st.Latency.At(0.75), 0.002)
}

// TestFaultWindows: the workload answers 100 requests a second, stops when
// the fault hits at 3 s and is back at 5 s; the probe's first write after the
// fault is answered at 4.2 s and its first read at 4.5 s.
func TestFaultWindows(t *testing.T) {
	var samples []Sample
	for i := range 1000 {
		start := time.Duration(i) * 10 * time.Millisecond
		s := Sample{Op: "put", Start: start, Latency: time.Millisecond}
		if start >= 3*time.Second && start < 5*time.Second {
			s.Latency = 5*time.Second - start // held until the new leader answers
		}
		samples = append(samples, s)
	}
	samples = append(samples,
		Sample{Op: opProbePut, Start: 2900 * time.Millisecond, Latency: 1500 * time.Millisecond}, // sent before the fault
		Sample{Op: opProbePut, Start: 3100 * time.Millisecond, Latency: time.Second, Err: true},
		Sample{Op: opProbePut, Start: 4100 * time.Millisecond, Latency: 100 * time.Millisecond},
		Sample{Op: opProbePut, Start: 4150 * time.Millisecond, Latency: 100 * time.Millisecond},
		Sample{Op: opProbeGet, Start: 4400 * time.Millisecond, Latency: 100 * time.Millisecond},
	)
	// A stall before the fault: 5% of the requests before it took 400 ms. It
	// must not make the held requests look recovered.
	for i := 0; i < 15; i++ {
		samples[i].Latency = 400 * time.Millisecond
	}
	SortSamples(samples)
	rec := FaultRecord{Fault: Fault{Kind: KillLeader, At: 3 * time.Second}, Desc: "crash m1", Start: 3 * time.Second}
	r := Analyze("x", Config{Workload: WorkloadPut}, samples, 10*time.Second, []FaultRecord{rec})
	require.Len(t, r.Faults, 1)
	f := r.Faults[0]
	assert.Equal(t, 1200*time.Millisecond, f.WriteUnavailable)
	assert.Equal(t, 1500*time.Millisecond, f.ReadUnavailable)
	assert.InDelta(t, 100, f.Baseline, 1)
	// The held requests all complete at 5 s, a burst that is not a recovery:
	// the first one-second window with 90 requests answered about as fast as
	// before the fault starts at 4.9 s (it holds 5.0 to 5.9 s).
	assert.InDelta(t, 2*time.Second, f.Recovered, float64(recoveryStep))
	assert.Greater(t, f.During.At(0.5), 900.0, "requests due during the fault waited for the election")
	st, _ := r.Op("put")
	assert.Equal(t, int64(1000), st.Count, "probe samples stay out of the workload's figures")
	_, ok := r.Op(opProbePut)
	assert.False(t, ok)

	var b bytes.Buffer
	r.WriteTable(&b)
	assert.Contains(t, b.String(), "unavailable: writes 1.200s, linearizable reads 1.500s")

	// A fault before any answer has no baseline to recover to.
	r = Analyze("x", Config{Workload: WorkloadPut}, samples, 10*time.Second,
		[]FaultRecord{{Fault: Fault{Kind: KillLeader}, Desc: "crash m1", Start: time.Microsecond}})
	assert.Equal(t, time.Duration(-1), r.Faults[0].Recovered)
	b.Reset()
	r.WriteTable(&b)
	assert.Contains(t, b.String(), "recovered: unknown, no request was answered before the fault")
}

func TestParseFault(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Fault
		err  bool
	}{
		{in: "kill-leader@5s", want: Fault{Kind: KillLeader, At: 5 * time.Second}},
		{in: "pause:m2@3s+2s", want: Fault{Kind: "pause", Member: 1, At: 3 * time.Second, For: 2 * time.Second}},
		{in: "isolate-leader@1.5s+500ms", want: Fault{Kind: "isolate-leader", At: 1500 * time.Millisecond, For: 500 * time.Millisecond}},
		{in: "kill-leader", err: true},
		{in: "explode@1s", err: true},
		{in: "delay:m1@1s", err: true},
		{in: "crash:mx@1s", err: true},
		{in: "crash@-1s", err: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseFault(tc.in)
			if tc.err {
				require.ErrorIs(t, err, ErrConfig)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
			again, err := ParseFault(got.String())
			require.NoError(t, err)
			assert.Equal(t, got, again, "String is ParseFault's syntax")
		})
	}
}

// TestCSV: the summary has one row per run and operation, the series one
// per run, second and operation; a target that ran twice is named by round.
func TestCSV(t *testing.T) {
	s := []Sample{{Op: "put", Start: 0, Latency: time.Millisecond}, {Op: "put", Start: time.Second, Latency: 2 * time.Millisecond}}
	a := Analyze("havoc", Config{Workload: WorkloadPut}, s, 2*time.Second, nil)
	b := Analyze("havoc", Config{Workload: WorkloadPut}, s, 2*time.Second, nil)
	var sum, series bytes.Buffer
	require.NoError(t, WriteSummaryCSV(&sum, []*Report{a, b}))
	require.NoError(t, WriteSeriesCSV(&series, []*Report{a, b}))
	assert.Equal(t, "run,workload,op,ok,errors,ops_per_sec,min_ms,p10_ms,p25_ms,p50_ms,p75_ms,p90_ms,p95_ms,p99_ms,p99.9_ms,max_ms\n"+
		"havoc-r1,put,put,2,0,1.000,1.000,1.000,1.000,1.000,2.000,2.000,2.000,2.000,2.000,2.000\n"+
		"havoc-r2,put,put,2,0,1.000,1.000,1.000,1.000,1.000,2.000,2.000,2.000,2.000,2.000,2.000\n", sum.String())
	assert.Equal(t, "run,second,op,ok,errors,p50_ms,p99_ms,max_ms\n"+
		"havoc-r1,0,put,1,0,1.000,1.000,1.000\nhavoc-r1,1,put,1,0,2.000,2.000,2.000\n"+
		"havoc-r2,0,put,1,0,1.000,1.000,1.000\nhavoc-r2,1,put,1,0,2.000,2.000,2.000\n", series.String())
}

// TestPercentileOfFewSamples: with two latencies, 1 and 2 ms, p10 is the
// smaller (hdrhistogram-go alone answers 0: the rank rounds to zero).
func TestPercentileOfFewSamples(t *testing.T) {
	s := []Sample{{Op: "get", Latency: time.Millisecond}, {Op: "get", Start: 1, Latency: 2 * time.Millisecond}}
	r := Analyze("x", Config{Workload: WorkloadGet}, s, time.Second, nil)
	st, _ := r.Op("get")
	assert.InEpsilon(t, 1, st.Latency.At(0.10), 0.002)
	assert.InEpsilon(t, 2, st.Latency.At(0.99), 0.002)
	assert.InEpsilon(t, 1, r.Series[0].Ops[0].P50, 0.002)
}

// TestCompareTable: every figure side by side with its ratio, the faults'
// windows included.
func TestCompareTable(t *testing.T) {
	mk := func(target string, lat, unavailable time.Duration) *Report {
		var s []Sample
		for i := range 100 {
			s = append(s, Sample{Op: "put", Start: time.Duration(i) * 10 * time.Millisecond, Latency: lat})
		}
		s = append(s, Sample{Op: opProbePut, Start: 500 * time.Millisecond, Latency: unavailable}, Sample{Op: opProbeGet, Start: 500 * time.Millisecond, Latency: unavailable})
		SortSamples(s)
		rec := FaultRecord{Fault: Fault{Kind: KillLeader, At: 500 * time.Millisecond}, Desc: "crash m1", Start: 500 * time.Millisecond}
		return Analyze(target, Config{Workload: WorkloadPut}, s, time.Second, []FaultRecord{rec})
	}
	var b bytes.Buffer
	WriteCompare(&b, mk("havoc", time.Millisecond, 200*time.Millisecond), mk("etcd", 2*time.Millisecond, 400*time.Millisecond))
	out := b.String()
	assert.Contains(t, out, "compare havoc vs etcd")
	assert.Regexp(t, `put +ops/s +100\.0 +100\.0 +1\.00x`, out)
	assert.Regexp(t, `put +p50 ms +1\.00 +2\.00 +0\.50x`, out)
	assert.Regexp(t, `kill-leader@500ms +writes unavailable +0\.200s +0\.400s +0\.50x`, out)
	assert.Regexp(t, `kill-leader@500ms +reads unavailable +0\.200s +0\.400s +0\.50x`, out)
}
