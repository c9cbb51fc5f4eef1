package bench

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// The plots' size, and the most raw samples a latency plot draws (evenly
// thinned beyond it, so a million-request run still draws in a second).
const (
	plotWidth      = 24 * vg.Centimeter
	plotHeight     = 13 * vg.Centimeter
	plotMaxSamples = 20000
	// plotFloorMs keeps zero latencies off a logarithmic axis.
	plotFloorMs = 0.001
)

// faultShade is the fill of a fault window, as Jepsen shades nemesis activity.
var faultShade = color.NRGBA{R: 0xe0, G: 0x40, B: 0x40, A: 0x30}

// WritePlots writes, into dir, three PNGs per run (latency over time,
// throughput over time, latency percentiles) named after the run's target
// (and round when a target ran more than once), and, when merged holds two
// targets, one percentile plot comparing them. It returns the files written.
func WritePlots(dir string, runs, merged []*Report) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	names := runNames(runs)
	var files []string
	for i, r := range runs {
		name := names[i]
		for _, p := range []struct {
			suffix string
			make   func(*Report) (*plot.Plot, error)
		}{{"latency", latencyPlot}, {"throughput", throughputPlot}, {"percentiles", func(r *Report) (*plot.Plot, error) {
			return percentilePlot(fmt.Sprintf("%s: latency by percentile (%s, %s)", r.Target, r.Config.Workload, r.Loop), []*Report{r})
		}}} {
			pl, err := p.make(r)
			if err != nil {
				return files, err
			}
			file := filepath.Join(dir, name+"-"+p.suffix+".png")
			if err := pl.Save(plotWidth, plotHeight, file); err != nil {
				return files, err
			}
			files = append(files, file)
		}
	}
	if len(merged) == 2 {
		pl, err := percentilePlot(fmt.Sprintf("%s vs %s: latency by percentile (%s, %s)", merged[0].Target, merged[1].Target, merged[0].Config.Workload, merged[0].Loop), merged)
		if err != nil {
			return files, err
		}
		file := filepath.Join(dir, "compare-percentiles.png")
		if err := pl.Save(plotWidth, plotHeight, file); err != nil {
			return files, err
		}
		files = append(files, file)
	}
	return files, nil
}

// shadeFaults adds a shaded band per fault from its start to its heal (the
// end of the run when it was not healed), spanning ymin to ymax.
func shadeFaults(p *plot.Plot, r *Report, ymin, ymax float64) error {
	for i, f := range r.Faults {
		if f.At == 0 && f.Desc == "" {
			continue
		}
		end := r.Measured
		if f.Healed > 0 {
			end = f.Healed
		}
		x0, x1 := f.At.Seconds(), end.Seconds()
		poly, err := plotter.NewPolygon(plotter.XYs{{X: x0, Y: ymin}, {X: x1, Y: ymin}, {X: x1, Y: ymax}, {X: x0, Y: ymax}})
		if err != nil {
			return err
		}
		poly.Color = faultShade
		poly.LineStyle.Width = 0
		p.Add(poly)
		if i == 0 {
			p.Legend.Add("fault", poly)
		}
	}
	return nil
}

// latencyPlot draws every request's latency against when it was due (thinned
// to plotMaxSamples), with each operation's per-second p99 as a line, on a
// logarithmic axis; failed requests are crosses.
func latencyPlot(r *Report) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%s: latency over time (%s, %s)", r.Target, r.Config.Workload, r.Loop)
	p.X.Label.Text = "time (s)"
	p.Y.Label.Text = "latency (ms)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Legend.Top = true
	step := max(1, len(r.Samples)/plotMaxSamples)
	ymin, ymax := math.Inf(1), math.Inf(-1)
	pts := map[string]plotter.XYs{}
	errs := plotter.XYs{}
	var ops []string
	for _, s := range r.Ops {
		ops = append(ops, s.Op)
	}
	for i, s := range r.Samples {
		y := max(float64(s.Latency)/float64(time.Millisecond), plotFloorMs)
		ymin, ymax = math.Min(ymin, y), math.Max(ymax, y)
		if i%step != 0 || isProbe(s.Op) {
			continue
		}
		if s.Err {
			errs = append(errs, plotter.XY{X: s.Start.Seconds(), Y: y})
			continue
		}
		pts[s.Op] = append(pts[s.Op], plotter.XY{X: s.Start.Seconds(), Y: y})
	}
	if math.IsInf(ymin, 0) {
		ymin, ymax = plotFloorMs, 1
	}
	// Headroom above the data for the legend (a decade and a half on the log axis).
	p.Y.Min, p.Y.Max = ymin, ymax*30
	p.X.Min, p.X.Max = 0, r.Measured.Seconds()
	if err := shadeFaults(p, r, p.Y.Min, p.Y.Max); err != nil {
		return nil, err
	}
	for i, op := range ops {
		if len(pts[op]) == 0 {
			continue
		}
		sc, err := plotter.NewScatter(pts[op])
		if err != nil {
			return nil, err
		}
		c := plotutil.Color(i)
		sc.GlyphStyle = draw.GlyphStyle{Color: fade(c), Radius: vg.Points(1), Shape: draw.CircleGlyph{}}
		p.Add(sc)
		p99 := windowP99(r, op)
		if len(p99) > 0 {
			l, err := plotter.NewLine(p99)
			if err != nil {
				return nil, err
			}
			l.Color, l.Width = c, vg.Points(1.5)
			p.Add(l)
			p.Legend.Add(fmt.Sprintf("%s p99 per %s", op, plotWindow(r.Measured)), l)
		}
		p.Legend.Add(op, sc)
	}
	if len(errs) > 0 {
		sc, err := plotter.NewScatter(errs)
		if err != nil {
			return nil, err
		}
		sc.GlyphStyle = draw.GlyphStyle{Color: color.NRGBA{R: 0xc0, A: 0xff}, Radius: vg.Points(2), Shape: draw.CrossGlyph{}}
		p.Add(sc)
		p.Legend.Add("failed", sc)
	}
	p.Add(plotter.NewGrid())
	return p, nil
}

// plotWindow is the window of the latency plot's p99 line: a second, or
// less for a run shorter than 30 s so that the line has 30 points.
func plotWindow(measured time.Duration) time.Duration {
	if measured >= 30*time.Second {
		return time.Second
	}
	return max(10*time.Millisecond, (measured / 30).Round(10*time.Millisecond))
}

// windowP99 is op's p99 latency per plotWindow, at each window's middle.
func windowP99(r *Report, op string) plotter.XYs {
	w := plotWindow(r.Measured)
	hs := map[int]*hdrhistogram.Histogram{}
	last := 0
	for _, s := range r.Samples {
		if s.Op != op || s.Err {
			continue
		}
		i := int(s.Start / w)
		if hs[i] == nil {
			hs[i] = newHist()
		}
		record(hs[i], s.Latency)
		last = max(last, i)
	}
	var pts plotter.XYs
	for i := 0; i <= last; i++ {
		if h := hs[i]; h != nil {
			pts = append(pts, plotter.XY{X: (time.Duration(i)*w + w/2).Seconds(), Y: max(ms(valueAt(h, 0.99)), plotFloorMs)})
		}
	}
	return pts
}

// fade makes a scatter colour translucent so that dense regions read darker.
func fade(c color.Color) color.Color {
	r, g, b, _ := c.RGBA()
	return color.NRGBA{R: uint8(r >> 8), G: uint8(g >> 8), B: uint8(b >> 8), A: 0x50}
}

// throughputPlot draws each operation's successful requests per second, and
// its failures, over time.
func throughputPlot(r *Report) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%s: throughput over time (%s, %s)", r.Target, r.Config.Workload, r.Loop)
	p.X.Label.Text = "time (s)"
	p.Y.Label.Text = "requests per second"
	p.Legend.Top = true
	ymax := 1.0
	for _, sec := range r.Series {
		for _, so := range sec.Ops {
			ymax = math.Max(ymax, float64(max(so.Count, so.Errors)))
		}
	}
	p.Y.Min, p.Y.Max = 0, ymax*1.3
	p.X.Min, p.X.Max = 0, r.Measured.Seconds()
	if err := shadeFaults(p, r, 0, p.Y.Max); err != nil {
		return nil, err
	}
	for i, st := range r.Ops {
		var ok, failed plotter.XYs
		anyFailed := false
		for _, sec := range r.Series {
			for _, so := range sec.Ops {
				if so.Op == st.Op {
					ok = append(ok, plotter.XY{X: float64(sec.At) + 0.5, Y: float64(so.Count)})
					failed = append(failed, plotter.XY{X: float64(sec.At) + 0.5, Y: float64(so.Errors)})
					anyFailed = anyFailed || so.Errors > 0
				}
			}
		}
		if len(ok) == 0 {
			continue
		}
		l, err := plotter.NewLine(ok)
		if err != nil {
			return nil, err
		}
		l.Color, l.Width = plotutil.Color(i), vg.Points(1.5)
		p.Add(l)
		p.Legend.Add(st.Op, l)
		if anyFailed {
			lf, err := plotter.NewLine(failed)
			if err != nil {
				return nil, err
			}
			lf.Color, lf.Width, lf.Dashes = plotutil.Color(i), vg.Points(1), []vg.Length{vg.Points(4), vg.Points(2)}
			p.Add(lf)
			p.Legend.Add(st.Op+" failed", lf)
		}
	}
	p.Add(plotter.NewGrid())
	return p, nil
}

// percentileTicks label the percentile axis, which is -log10(1-q): each
// nine is one step.
var percentileTicks = plot.ConstantTicks{
	{Value: 0, Label: "0%"}, {Value: 1, Label: "90%"}, {Value: 2, Label: "99%"},
	{Value: 3, Label: "99.9%"}, {Value: 4, Label: "99.99%"}, {Value: 5, Label: "99.999%"},
}

// percentilePlot draws the latency at each percentile, with as many nines as
// the requests support, one line per operation and report.
func percentilePlot(title string, rs []*Report) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "percentile"
	p.Y.Label.Text = "latency (ms)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.X.Tick.Marker = percentileTicks
	p.Legend.Top, p.Legend.Left = true, true
	ymin, ymax, xmax := math.Inf(1), math.Inf(-1), 1.0
	n := 0
	for _, r := range rs {
		for _, st := range r.Ops {
			if st.hist == nil || st.hist.TotalCount() == 0 {
				continue
			}
			pts := percentileCurve(st.hist)
			for _, pt := range pts {
				ymin, ymax, xmax = math.Min(ymin, pt.Y), math.Max(ymax, pt.Y), math.Max(xmax, pt.X)
			}
			l, err := plotter.NewLine(pts)
			if err != nil {
				return nil, err
			}
			l.Color, l.Width = plotutil.Color(n), vg.Points(1.5)
			label := st.Op
			if len(rs) > 1 {
				label = r.Target + " " + st.Op
			}
			p.Add(l)
			p.Legend.Add(label, l)
			n++
		}
	}
	if n == 0 {
		ymin, ymax = plotFloorMs, 1
	}
	p.X.Min, p.X.Max = 0, xmax
	p.Y.Min, p.Y.Max = ymin, ymax*1.2
	p.Add(plotter.NewGrid())
	return p, nil
}

// percentileCurve samples h at -log10(1-q) from 0 in steps of 0.05, up to
// the nines its count supports (one request in 10^x), ending at the maximum.
func percentileCurve(h *hdrhistogram.Histogram) plotter.XYs {
	top := math.Log10(float64(h.TotalCount()))
	pts := plotter.XYs{{X: 0, Y: max(ms(h.Min()), plotFloorMs)}}
	for x := 0.05; x < top; x += 0.05 {
		q := 1 - math.Pow(10, -x)
		pts = append(pts, plotter.XY{X: x, Y: max(ms(valueAt(h, q)), plotFloorMs)})
	}
	return append(pts, plotter.XY{X: math.Max(top, 0.05), Y: max(ms(h.Max()), plotFloorMs)})
}
