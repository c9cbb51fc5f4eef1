package explain

import (
	"fmt"
	"html/template"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/havoclab/havoc/linearizability"
)

// Geometry of the timeline, in SVG user units.
const (
	labelW  = 70.0
	plotW   = 1100.0
	axisH   = 28.0
	rowH    = 26.0
	barH    = 16.0
	markerH = 18.0
)

type svgBand struct {
	X, W          float64
	Name, Span    string
	LabelY, Index int
}

type svgMarker struct {
	X           float64
	Label, Kind string
}

type svgOp struct {
	X, Y, W    float64
	Class      string
	Member     string
	Title      string
	ID         int64
	ShowMember bool
	Failing    bool
	// LabelX and LabelAnchor place the failing operation's label: left of
	// the bar, or right of it near the axis's start.
	LabelX      float64
	LabelAnchor string
}

type svgRow struct {
	Y     float64
	Label string
}

type svgTick struct {
	X     float64
	Label string
}

// page is the template's data: the report and its geometry.
type page struct {
	*Report
	Width, Height, PlotBottom float64
	Bands                     []svgBand
	Markers                   []svgMarker
	Ops                       []svgOp
	Rows                      []svgRow
	Ticks                     []svgTick
	FailingText, LastText     string
	Summary                   string
}

// HTML writes the report as one self-contained HTML page: no script, no
// external asset, the timeline as inline SVG.
func (rep *Report) HTML(w io.Writer) error {
	return pageTemplate.Execute(w, rep.layout())
}

func (rep *Report) layout() page {
	p := page{Report: rep}
	span := rep.To - rep.From
	if span <= 0 {
		span = time.Second
	}
	x := func(t time.Duration) float64 {
		return labelW + float64(t-rep.From)/float64(span)*plotW
	}
	clamp := func(t time.Duration) time.Duration { return min(max(t, rep.From), rep.From+span) }
	top := axisH + markerH
	row := map[int]int{}
	for i, c := range rep.Clients {
		row[c] = i
		p.Rows = append(p.Rows, svgRow{Y: top + float64(i)*rowH + rowH/2 + 4, Label: fmt.Sprintf("c%02d", c)})
	}
	rows := max(len(rep.Clients), 1)
	p.PlotBottom = top + float64(rows)*rowH
	p.Width = labelW + plotW + 20
	p.Height = p.PlotBottom + 8
	for i, f := range rep.Faults {
		x0, x1 := x(clamp(f.From)), x(clamp(f.To))
		p.Bands = append(p.Bands, svgBand{X: x0, W: max(x1-x0, 1), Name: f.Name,
			Span: seconds(f.From) + " .. " + seconds(f.To), Index: i % 6, LabelY: int(top) + 12 + (i%4)*12})
	}
	for _, m := range rep.Markers {
		p.Markers = append(p.Markers, svgMarker{X: x(m.At), Label: m.Member + " " + m.What + " at " + seconds(m.At), Kind: m.What})
	}
	step := niceStep(span)
	for t := (rep.From + step - 1) / step * step; t <= rep.From+span; t += step {
		p.Ticks = append(p.Ticks, svgTick{X: x(t), Label: strings.TrimSuffix(strings.TrimRight(strings.TrimSuffix(seconds(t), "s"), "0"), ".") + "s"})
	}
	for i := range rep.Ops {
		op := &rep.Ops[i]
		x0 := x(clamp(time.Duration(op.Call)))
		x1 := x(clamp(time.Duration(op.Return)))
		o := svgOp{X: x0, W: max(x1-x0, 2), Y: top + float64(row[op.Client])*rowH + (rowH-barH)/2,
			Member: op.Member, ID: op.ID, Title: describe(op), Class: "op " + string(op.Outcome)}
		switch {
		case rep.Failing != nil && op.ID == rep.Failing.ID:
			o.Class += " failing"
			o.Failing = true
			o.W = max(o.W, 6)
			o.LabelX, o.LabelAnchor = o.X-4, "end"
			if o.X < labelW+200 {
				o.LabelX, o.LabelAnchor = o.X+o.W+4, "start"
			}
		case rep.LastLinearized != nil && op.ID == rep.LastLinearized.ID || slices.ContainsFunc(rep.LastWrites, func(w linearizability.Operation) bool { return w.ID == op.ID }):
			o.Class += " last"
		}
		o.ShowMember = o.W >= 18
		p.Ops = append(p.Ops, o)
	}
	if rep.Failing != nil {
		p.FailingText = describe(rep.Failing)
	}
	if rep.LastLinearized != nil {
		p.LastText = describe(rep.LastLinearized)
	}
	return p
}

// niceStep picks a tick spacing of 1, 2 or 5 times a power of ten that
// gives about ten ticks over span.
func niceStep(span time.Duration) time.Duration {
	step := time.Millisecond
	for {
		for _, m := range []time.Duration{1, 2, 5} {
			if span/(step*m) <= 12 {
				return step * m
			}
		}
		step *= 10
	}
}

// outcomeLegend lists the outcome classes the page colours.
var outcomeLegend = []linearizability.Outcome{linearizability.OutcomeOK, linearizability.OutcomeFail, linearizability.OutcomeUnknown}

var pageTemplate = template.Must(template.New("explain").Funcs(template.FuncMap{
	"f":      func(v float64) string { return fmt.Sprintf("%.1f", v) },
	"legend": func() []linearizability.Outcome { return outcomeLegend },
	"desc": func(op linearizability.Operation) string {
		d := linearizability.Describe(&op)
		if len(d) > maxDescribe {
			d = d[:maxDescribe] + " ..."
		}
		if op.Outcome != linearizability.OutcomeOK && op.Error != "" {
			d += " (" + op.Error + ")"
		}
		return d
	},
	"sec":   func(ns int64) string { return seconds(time.Duration(ns)) },
	"secd":  seconds,
	"wdesc": func(op linearizability.Operation) string { return describe(&op) },
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>havoc: what happened in {{.Dir}}</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.3em; margin: 0 0 .4em; }
h2 { font-size: 1.1em; margin: 1.2em 0 .4em; }
code, pre, .mono { font-family: ui-monospace, monospace; font-size: 12.5px; }
.verdict { font-weight: bold; padding: 0 .4em; border-radius: 3px; background: #fdd; color: #900; }
.verdict.ok { background: #dfd; color: #060; }
.box { border: 1px solid #ccc; border-radius: 4px; padding: .6em .8em; margin: .6em 0; background: #fafafa; }
.failing-op { border-color: #d00; background: #fff4f4; }
svg text { font: 11px ui-monospace, monospace; }
.band { fill-opacity: .16; }
.band0 { fill: #e67e22; } .band1 { fill: #8e44ad; } .band2 { fill: #2980b9; }
.band3 { fill: #16a085; } .band4 { fill: #c0392b; } .band5 { fill: #7f8c8d; }
.bandlabel { fill: #555; }
.op { stroke: #333; stroke-width: .5; }
.op.ok { fill: #7fc97f; } .op.fail { fill: #ccc; } .op.unknown { fill: #fdc086; }
.op.last { stroke: #1f5fbf; stroke-width: 2.5; }
.op.failing { fill: #e41a1c; stroke: #700; stroke-width: 2.5; }
.marker { stroke-width: 1.5; stroke-dasharray: 4 3; }
.marker.leader { stroke: #1f5fbf; } .marker.crash, .marker.restart { stroke: #b00; } .marker.pause, .marker.resume { stroke: #a0a; }
.mlabel { font-size: 10px; }
table { border-collapse: collapse; } td, th { padding: 1px 8px; text-align: left; vertical-align: top; }
tr.failing td { background: #fdd; font-weight: bold; } tr.last td { background: #e3ecfb; }
.legend span { display: inline-block; margin-right: 1.2em; }
.sw.ok { background: #7fc97f; } .sw.fail { background: #ccc; } .sw.unknown { background: #fdc086; } .sw.band { background: #f5d5b8; }
.flabel { fill: #b00; font-weight: bold; }
.sw { display: inline-block; width: 14px; height: 10px; border: 1px solid #333; vertical-align: middle; margin-right: 4px; }
</style></head><body>
<h1>What happened in <code>{{.Dir}}</code></h1>
<p>Verdict: <span class="verdict{{if eq .Verdict "ok"}} ok{{end}}" id="verdict">{{.Verdict}}</span>
{{with .Check.Verdict}} &middot; linearizability, rechecked: <b>{{.}}</b>{{end}}
{{with .Visualization}} &middot; <a href="{{.}}">Porcupine's visualization</a>{{end}}
{{with .Porcupine}} &middot; <a href="{{.}}" id="porcupine">Porcupine's visualization of the failing partition, with the fault windows</a>{{end}}</p>
{{with .Reason}}<div class="box mono">{{.}}</div>{{end}}
{{with .Check.Reason}}<div class="box mono">checker: {{.}}</div>{{end}}
{{if .Failing}}
<div class="box failing-op" id="failing">
<b>First operation that cannot be linearized:</b> <span class="mono" id="failing-op">{{.FailingText}}</span><br>
{{with .LastText}}<b>Last operation linearized before it:</b> <span class="mono">{{.}}</span><br>{{end}}
{{with .State}}<b>State before it (the checker's model):</b> <span class="mono" id="state">{{"{"}}{{.}}{{"}"}}</span><br>{{end}}
{{range .LastWrites}}<b>Last acknowledged write of {{.Key}} before it:</b> <span class="mono">{{wdesc .}}</span><br>{{end}}
<b>Keys:</b> <span class="mono">{{range .Keys}}{{.}} {{end}}</span>
</div>
{{end}}
<h2>Timeline {{secd .From}} .. {{secd .To}}</h2>
<p class="legend">
{{range legend}}<span><i class="sw {{.}}"></i>{{.}}</span>{{end}}
<span><i class="sw" style="background:#e41a1c;border-color:#700"></i>cannot be linearized</span>
<span><i class="sw" style="border:2px solid #1f5fbf"></i>last linearized, last write before it</span>
<span><i class="sw band band0"></i>fault window</span>
<span style="color:#1f5fbf">┆ leader</span><span style="color:#b00">┆ crash/restart</span><span style="color:#a0a">┆ pause/resume</span>
&middot; each bar is an operation from call to return, labelled with the member that served it; hover for details
</p>
<svg xmlns="http://www.w3.org/2000/svg" width="{{f .Width}}" height="{{f .Height}}" viewBox="0 0 {{f .Width}} {{f .Height}}" id="timeline">
<g id="bands">{{range .Bands}}
<rect class="band band{{.Index}} fault-band" x="{{f .X}}" y="28" width="{{f .W}}" height="{{f $.PlotBottom}}" data-fault="{{.Name}}"><title>fault {{.Name}}: {{.Span}}</title></rect>
<text class="bandlabel" x="{{f .X}}" y="{{.LabelY}}" dx="3">{{.Name}}</text>{{end}}
</g>
<g id="axis">
<line x1="70" x2="{{f $.Width}}" y1="28" y2="28" stroke="#999"/>
{{range .Ticks}}<line x1="{{f .X}}" x2="{{f .X}}" y1="22" y2="{{f $.PlotBottom}}" stroke="#eee"/><text x="{{f .X}}" y="16" text-anchor="middle">{{.Label}}</text>
{{end}}</g>
<g id="rows">{{range .Rows}}<text x="4" y="{{f .Y}}">{{.Label}}</text>
{{end}}</g>
<g id="ops">{{range .Ops}}
<g><rect class="{{.Class}}" x="{{f .X}}" y="{{f .Y}}" width="{{f .W}}" height="16" data-op="{{.ID}}"><title>{{.Title}}</title></rect>{{if .ShowMember}}<text x="{{f .X}}" y="{{f .Y}}" dx="2" dy="12" pointer-events="none">{{.Member}}</text>{{end}}{{if .Failing}}<text class="flabel" x="{{f .LabelX}}" y="{{f .Y}}" dy="-2" text-anchor="{{.LabelAnchor}}">cannot be linearized (served by {{.Member}})</text>{{end}}</g>{{end}}
</g>
<g id="markers">{{range .Markers}}
<line class="marker {{.Kind}}" x1="{{f .X}}" x2="{{f .X}}" y1="30" y2="{{f $.PlotBottom}}"><title>{{.Label}}</title></line>
<text class="mlabel" x="{{f .X}}" y="40" dx="2">{{.Label}}</text>{{end}}
</g>
</svg>
<h2>Faults in the window</h2>
{{if .Faults}}<table class="mono" id="faults">{{range .Faults}}<tr><td>{{.Name}}</td><td>{{secd .From}} .. {{secd .To}}</td></tr>{{end}}</table>{{else}}<p>none</p>{{end}}
<h2>Leader changes and restarts in the window</h2>
{{if .Report.Markers}}<table class="mono">{{range .Report.Markers}}<tr><td>{{secd .At}}</td><td>{{.Member}}</td><td>{{.What}}</td></tr>{{end}}</table>{{else}}<p>none</p>{{end}}
{{if .Keys}}<h2>Operations on {{range .Keys}}{{.}} {{end}}in the window</h2>
<table class="mono" id="optable"><tr><th>#</th><th>call</th><th>return</th><th>client</th><th>member</th><th>operation</th></tr>
{{range .Report.Ops}}<tr class="{{if and $.Failing (eq .ID $.Failing.ID)}}failing{{else if and $.LastLinearized (eq .ID $.LastLinearized.ID)}}last{{end}}"><td>{{.ID}}</td><td>{{sec .Call}}</td><td>{{sec .Return}}</td><td>c{{printf "%02d" .Client}}</td><td>{{.Member}}</td><td>{{desc .}}</td></tr>
{{end}}</table>{{end}}
</body></html>
`))
