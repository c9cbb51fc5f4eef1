package bench

import (
	"bytes"
	"html/template"
	"os"
	"path/filepath"
)

// htmlPage joins the tables and plots of a benchmark into one page.
var htmlPage = template.Must(template.New("bench").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>harness bench</title>
<style>body{font-family:sans-serif;margin:2em}pre{background:#f6f6f6;padding:1em;overflow-x:auto}img{max-width:100%;display:block;margin:1em 0}</style>
</head><body>
<h1>harness bench</h1>
{{if .Compare}}<h2>Comparison</h2><pre>{{.Compare}}</pre>{{if .ComparePlot}}<img src="{{.ComparePlot}}" alt="latency by percentile, both targets">{{end}}{{end}}
{{range .Runs}}<h2>{{.Name}}</h2><pre>{{.Table}}</pre>{{range .Plots}}<img src="{{.}}" alt="{{.}}">{{end}}
{{end}}</body></html>
`))

type htmlRun struct {
	Name, Table string
	Plots       []string
}

// WriteHTML writes dir/index.html: the comparison (when merged holds two
// targets), then each run's table and the plots WritePlots drew for it
// (files, as WritePlots returned them). It returns the page's path.
func WriteHTML(dir string, runs, merged []*Report, files []string) (string, error) {
	var page struct {
		Compare     string
		ComparePlot string
		Runs        []htmlRun
	}
	if len(merged) == 2 {
		var b bytes.Buffer
		WriteCompare(&b, merged[0], merged[1])
		page.Compare = b.String()
	}
	rel := map[string]bool{}
	for _, f := range files {
		rel[filepath.Base(f)] = true
	}
	if rel["compare-percentiles.png"] {
		page.ComparePlot = "compare-percentiles.png"
	}
	for i, name := range runNames(runs) {
		var b bytes.Buffer
		runs[i].WriteTable(&b)
		hr := htmlRun{Name: name, Table: b.String()}
		for _, kind := range []string{"latency", "throughput", "percentiles"} {
			if f := name + "-" + kind + ".png"; rel[f] {
				hr.Plots = append(hr.Plots, f)
			}
		}
		page.Runs = append(page.Runs, hr)
	}
	var b bytes.Buffer
	if err := htmlPage.Execute(&b, page); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "index.html")
	return path, os.WriteFile(path, b.Bytes(), 0o644)
}
