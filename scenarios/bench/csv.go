package bench

import (
	"encoding/csv"
	"io"
	"strconv"
)

// runNames names each run by its target, with the round when a target ran
// more than once (havoc, or havoc-r1, havoc-r2, ...), as the plots do.
func runNames(runs []*Report) []string {
	per := map[string]int{}
	for _, r := range runs {
		per[r.Target]++
	}
	seen := map[string]int{}
	names := make([]string, len(runs))
	for i, r := range runs {
		seen[r.Target]++
		names[i] = r.Target
		if per[r.Target] > 1 {
			names[i] += "-r" + strconv.Itoa(seen[r.Target])
		}
	}
	return names
}

func fmtFloat(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }

// WriteSummaryCSV writes one row per run and operation: the run, the
// operation, its counts, throughput and latency percentiles in milliseconds.
func WriteSummaryCSV(w io.Writer, runs []*Report) error {
	cw := csv.NewWriter(w)
	head := []string{"run", "workload", "op", "ok", "errors", "ops_per_sec", "min_ms"}
	for _, q := range Quantiles {
		head = append(head, quantileName(q)+"_ms")
	}
	_ = cw.Write(append(head, "max_ms"))
	for i, name := range runNames(runs) {
		for _, s := range runs[i].Ops {
			row := []string{name, string(runs[i].Config.Workload), s.Op, strconv.FormatInt(s.Count, 10), strconv.FormatInt(s.Errors, 10),
				fmtFloat(s.Throughput), fmtFloat(s.Latency.Min)}
			for _, q := range s.Latency.Percentiles {
				row = append(row, fmtFloat(q.Ms))
			}
			_ = cw.Write(append(row, fmtFloat(s.Latency.Max)))
		}
	}
	cw.Flush()
	return cw.Error()
}

// WriteSeriesCSV writes one row per run, second and operation: what was
// answered and failed in that second, and the latency of the answers.
func WriteSeriesCSV(w io.Writer, runs []*Report) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"run", "second", "op", "ok", "errors", "p50_ms", "p99_ms", "max_ms"})
	for i, name := range runNames(runs) {
		for _, sec := range runs[i].Series {
			for _, so := range sec.Ops {
				_ = cw.Write([]string{name, strconv.Itoa(sec.At), so.Op, strconv.FormatInt(so.Count, 10), strconv.FormatInt(so.Errors, 10),
					fmtFloat(so.P50), fmtFloat(so.P99), fmtFloat(so.Max)})
			}
		}
	}
	cw.Flush()
	return cw.Error()
}
