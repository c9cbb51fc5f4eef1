package bench

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// quantileName is "p99.9" for 0.999.
func quantileName(q float64) string {
	return "p" + strconv.FormatFloat(q*100, 'f', -1, 64)
}

// WriteTable prints the report as etcd's benchmark tool does: a summary, then
// one row per operation with its throughput and latency percentiles in
// milliseconds, then the faults.
func (r *Report) WriteTable(w io.Writer) {
	fmt.Fprintf(w, "%s: %s, %s, %s measured", r.Target, r.Config.Workload, r.Loop, seconds(r.Measured))
	if r.Config.Warmup > 0 {
		fmt.Fprintf(w, " after %s warm-up", seconds(r.Config.Warmup))
	}
	fmt.Fprintf(w, ", keys %d of %d B, values %d B\n", r.Config.KeySpace, r.Config.KeySize, r.Config.ValueSize)
	if r.Model != "" {
		fmt.Fprintf(w, "model: %s\n", r.Model)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := []string{"op", "ok", "errors", "ops/s", "min"}
	for _, q := range Quantiles {
		head = append(head, quantileName(q))
	}
	head = append(head, "max", "(ms)")
	fmt.Fprintln(tw, strings.Join(head, "\t")+"\t")
	for _, s := range r.Ops {
		row := []string{s.Op, strconv.FormatInt(s.Count, 10), strconv.FormatInt(s.Errors, 10), fmt.Sprintf("%.1f", s.Throughput), msText(s.Latency.Min)}
		for _, q := range s.Latency.Percentiles {
			row = append(row, msText(q.Ms))
		}
		row = append(row, msText(s.Latency.Max), "")
		fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
	}
	_ = tw.Flush()
	for _, f := range r.Faults {
		f.write(w)
	}
}

func (f FaultReport) write(w io.Writer) {
	fmt.Fprintf(w, "fault %s at %s", f.Fault, seconds(f.At))
	if f.Desc != "" {
		fmt.Fprintf(w, " (%s)", f.Desc)
	}
	if f.Healed > 0 {
		fmt.Fprintf(w, ", healed at %s", seconds(f.Healed))
	}
	if f.Err != "" {
		fmt.Fprintf(w, ", error: %s", f.Err)
	}
	fmt.Fprintf(w, "\n  unavailable: writes %s, linearizable reads %s\n", window(f.WriteUnavailable), window(f.ReadUnavailable))
	if f.Baseline > 0 {
		fmt.Fprintf(w, "  recovered (%.0f%% of the %.1f ops/s before, at about the latency before): %s\n",
			RecoveredShare*100, f.Baseline, window(f.Recovered))
	} else {
		fmt.Fprintln(w, "  recovered: unknown, no request was answered before the fault to compare with")
	}
	fmt.Fprintf(w, "  during the fault: %d errors, p50 %s p99 %s max %s ms\n",
		f.DuringErrors, msText(f.During.At(0.5)), msText(f.During.At(0.99)), msText(f.During.Max))
}

// window prints an unavailability window; -1 is "not within the run".
func window(d time.Duration) string {
	if d < 0 {
		return "not within the run"
	}
	return seconds(d)
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.3fs", d.Seconds()) }

func msText(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

// WriteCompare prints a and b (the same benchmark on two targets) side by
// side: per operation its throughput and latency percentiles, per fault its
// unavailability windows and recovery, and the ratio a/b of each.
func WriteCompare(w io.Writer, a, b *Report) {
	fmt.Fprintf(w, "compare %s vs %s: %s, %s (ratio = %s / %s)\n", a.Target, b.Target, a.Config.Workload, a.Loop, a.Target, b.Target)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "op\tfigure\t%s\t%s\tratio\t\n", a.Target, b.Target)
	for _, sa := range a.Ops {
		sb, ok := b.Op(sa.Op)
		if !ok {
			continue
		}
		row := func(name string, x, y float64, format func(float64) string) {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t\n", sa.Op, name, format(x), format(y), ratio(x, y))
		}
		row("ops/s", sa.Throughput, sb.Throughput, func(v float64) string { return fmt.Sprintf("%.1f", v) })
		row("errors", float64(sa.Errors), float64(sb.Errors), func(v float64) string { return fmt.Sprintf("%.0f", v) })
		for i, q := range sa.Latency.Percentiles {
			row(quantileName(q.Q)+" ms", q.Ms, sb.Latency.Percentiles[i].Ms, msText)
		}
		row("max ms", sa.Latency.Max, sb.Latency.Max, msText)
	}
	for i, fa := range a.Faults {
		if i >= len(b.Faults) {
			break
		}
		fb := b.Faults[i]
		row := func(name string, x, y time.Duration) {
			r := "-"
			if x >= 0 && y > 0 {
				r = ratio(x.Seconds(), y.Seconds())
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t\n", fa.Fault, name, window(x), window(y), r)
		}
		row("writes unavailable", fa.WriteUnavailable, fb.WriteUnavailable)
		row("reads unavailable", fa.ReadUnavailable, fb.ReadUnavailable)
		row("recovered after", fa.Recovered, fb.Recovered)
	}
	_ = tw.Flush()
}

func ratio(x, y float64) string {
	if y == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", x/y)
}
