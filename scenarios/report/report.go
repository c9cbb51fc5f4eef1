// Package report writes the machine-readable results of harness commands (a
// JSON results file and a JUnit XML file in the layout gotestsum writes) and
// merges the results of several shards of one sweep into one.
//
// It knows nothing of runs: a Case is one seed, scenario or drill with its
// verdict already judged by the command (Status).
package report

import (
	"cmp"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"html/template"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
)

// Statuses of a Case, as JUnit reports them.
const (
	StatusPassed  = "passed"  // a plain <testcase>
	StatusFailed  = "failed"  // <failure>
	StatusSkipped = "skipped" // <skipped>: nothing was judged (an inconclusive check)
)

// ResultsFile is the results file a sweep writes into its --out directory
// (a shard writes ShardResultsFile instead, so shards can share a directory).
const ResultsFile = "results.json"

// ShardResultsFile is the results file of shard i of n.
func ShardResultsFile(i, n int) string { return fmt.Sprintf("results-shard-%d-of-%d.json", i, n) }

// Case is one seed, scenario or drill.
type Case struct {
	// Suite is the command that ran it (sweep, run, drill): the JUnit classname.
	Suite string `json:"suite"`
	// Name identifies the case within its suite ("seed 17", a drill's name).
	Name     string `json:"name"`
	Seed     uint64 `json:"seed"`
	Scenario string `json:"scenario,omitempty"`
	Verdict  string `json:"verdict"`
	Status   string `json:"status"`
	Reason   string `json:"reason,omitempty"`
	// Repro is the command line that reruns the case.
	Repro string `json:"repro,omitempty"`
	// Dir holds the case's artifacts (empty: none written).
	Dir     string  `json:"dir,omitempty"`
	Ops     int     `json:"ops,omitempty"`
	Unknown int     `json:"unknown,omitempty"`
	WallSec float64 `json:"wall_s"`
	// CheckSec is the part of WallSec spent checking.
	CheckSec float64 `json:"check_s,omitempty"`
}

// Message is the one-line failure message: verdict and reason.
func (c Case) Message() string {
	if c.Reason == "" {
		return c.Verdict
	}
	return c.Verdict + ": " + c.Reason
}

// Results are the cases of one command (or one shard of a sweep).
type Results struct {
	Command string `json:"command"`
	// Shard is "I/N" for a shard of a sweep, empty otherwise.
	Shard string `json:"shard,omitempty"`
	// Planned is the number of cases the command set out to run; a
	// time-boxed sweep may run fewer (len(Cases)).
	Planned    int     `json:"planned"`
	ElapsedSec float64 `json:"elapsed_s"`
	Cases      []Case  `json:"cases"`
}

// Counts are the cases by status.
func (r Results) Counts() (passed, failed, skipped int) {
	for _, c := range r.Cases {
		switch c.Status {
		case StatusPassed:
			passed++
		case StatusSkipped:
			skipped++
		default:
			failed++
		}
	}
	return
}

// Failures are the cases that did not pass (failed or skipped), in order.
func (r Results) Failures() []Case {
	var out []Case
	for _, c := range r.Cases {
		if c.Status != StatusPassed {
			out = append(out, c)
		}
	}
	return out
}

// WriteJSON writes r, indented.
func WriteJSON(w io.Writer, r Results) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// Read reads a results file.
func Read(path string) (Results, error) {
	var r Results
	b, err := os.ReadFile(path)
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// ReadDirs reads every results file (results*.json) in each directory.
func ReadDirs(dirs ...string) ([]Results, error) {
	var all []Results
	for _, d := range dirs {
		files, err := filepath.Glob(filepath.Join(d, "results*.json"))
		if err != nil {
			return nil, err
		}
		if len(files) == 0 {
			return nil, fmt.Errorf("%s: no results*.json (a sweep writes one into its --out directory)", d)
		}
		for _, f := range files {
			r, err := Read(f)
			if err != nil {
				return nil, err
			}
			all = append(all, r)
		}
	}
	return all, nil
}

// Merge joins the results of several shards into one: cases in suite, seed
// and name order, planned counts and elapsed times added. A case present in
// two inputs (shards that overlap, or one directory given twice) is an error.
func Merge(rs ...Results) (Results, error) {
	var m Results
	seen := map[string]string{}
	for _, r := range rs {
		if m.Command == "" {
			m.Command = r.Command
		}
		m.Planned += r.Planned
		m.ElapsedSec = max(m.ElapsedSec, r.ElapsedSec)
		for _, c := range r.Cases {
			key := c.Suite + "\x00" + c.Name
			if prev, dup := seen[key]; dup {
				return Results{}, fmt.Errorf("%s %q is in two results (shards %q and %q)", c.Suite, c.Name, prev, r.Shard)
			}
			seen[key] = r.Shard
			m.Cases = append(m.Cases, c)
		}
	}
	Sort(m.Cases)
	return m, nil
}

// Sort orders cases by suite, seed and name.
func Sort(cs []Case) {
	slices.SortStableFunc(cs, func(a, b Case) int {
		return cmp.Or(cmp.Compare(a.Suite, b.Suite), cmp.Compare(a.Seed, b.Seed), cmp.Compare(a.Name, b.Name))
	})
}

// Summary writes a table of r's counts by verdict, then every failing case
// with its reason and reproduce line.
func Summary(w io.Writer, r Results) {
	byVerdict := map[string]int{}
	for _, c := range r.Cases {
		byVerdict[c.Verdict]++
	}
	verdicts := make([]string, 0, len(byVerdict))
	for v := range byVerdict {
		verdicts = append(verdicts, v)
	}
	slices.Sort(verdicts)
	passed, failed, skipped := r.Counts()
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "cases\t%d of %d planned\n", len(r.Cases), r.Planned)
	for _, v := range verdicts {
		fmt.Fprintf(tw, "  %s\t%d\n", v, byVerdict[v])
	}
	fmt.Fprintf(tw, "passed\t%d\nfailed\t%d\nskipped\t%d\n", passed, failed, skipped)
	_ = tw.Flush()
	for _, c := range r.Failures() {
		fmt.Fprintf(w, "%s %s: %s\n", c.Suite, c.Name, c.Message())
		if c.Repro != "" {
			fmt.Fprintf(w, "  reproduce: %s\n", c.Repro)
		}
		if c.Dir != "" {
			fmt.Fprintf(w, "  artifacts: %s\n", c.Dir)
		}
	}
}

// JUnit XML, the layout gotestsum writes.

// TestSuites is the root element of a JUnit file.
type TestSuites struct {
	XMLName  xml.Name    `xml:"testsuites"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Errors   int         `xml:"errors,attr"`
	Time     string      `xml:"time,attr"`
	Suites   []TestSuite `xml:"testsuite"`
}

// TestSuite is one command's cases.
type TestSuite struct {
	Name     string     `xml:"name,attr"`
	Tests    int        `xml:"tests,attr"`
	Failures int        `xml:"failures,attr"`
	Errors   int        `xml:"errors,attr"`
	Skipped  int        `xml:"skipped,attr"`
	Time     string     `xml:"time,attr"`
	Cases    []TestCase `xml:"testcase"`
}

// TestCase is one seed, scenario or drill.
type TestCase struct {
	Classname string   `xml:"classname,attr"`
	Name      string   `xml:"name,attr"`
	Time      string   `xml:"time,attr"`
	Failure   *Failure `xml:"failure,omitempty"`
	Skipped   *Failure `xml:"skipped,omitempty"`
	SystemOut string   `xml:"system-out,omitempty"`
}

// Failure is a <failure> (or <skipped>): a one-line message and the details.
type Failure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Text    string `xml:",chardata"`
}

func seconds(s float64) string { return fmt.Sprintf("%.3f", s) }

// details is the body of a case's failure: reason, reproduce line, artifacts.
func details(c Case) string {
	var b strings.Builder
	fmt.Fprintf(&b, "verdict: %s\n", c.Verdict)
	if c.Scenario != "" {
		fmt.Fprintf(&b, "scenario: %s\n", c.Scenario)
	}
	if c.Reason != "" {
		fmt.Fprintf(&b, "reason: %s\n", c.Reason)
	}
	if c.Repro != "" {
		fmt.Fprintf(&b, "reproduce: %s\n", c.Repro)
	}
	if c.Dir != "" {
		fmt.Fprintf(&b, "artifacts: %s\n", c.Dir)
	}
	return b.String()
}

// JUnit builds the JUnit document of r: one testsuite per Suite, in order.
func JUnit(r Results) TestSuites {
	doc := TestSuites{}
	var total float64
	idx := map[string]int{}
	for _, c := range r.Cases {
		i, ok := idx[c.Suite]
		if !ok {
			i = len(doc.Suites)
			idx[c.Suite] = i
			doc.Suites = append(doc.Suites, TestSuite{Name: c.Suite})
		}
		s := &doc.Suites[i]
		tc := TestCase{Classname: c.Suite, Name: c.Name, Time: seconds(c.WallSec)}
		// The failure message carries verdict, reason and reproduce line, as
		// many CI systems show only the message.
		msg := c.Message()
		if c.Repro != "" {
			msg += " | reproduce: " + c.Repro
		}
		switch c.Status {
		case StatusPassed:
			if c.Dir != "" {
				tc.SystemOut = details(c)
			}
		case StatusSkipped:
			tc.Skipped = &Failure{Message: msg, Text: details(c)}
			s.Skipped++
		default:
			tc.Failure = &Failure{Message: msg, Type: c.Verdict, Text: details(c)}
			s.Failures++
			doc.Failures++
		}
		s.Tests++
		doc.Tests++
		s.Cases = append(s.Cases, tc)
		total += c.WallSec
	}
	for i := range doc.Suites {
		var t float64
		for _, c := range r.Cases {
			if c.Suite == doc.Suites[i].Name {
				t += c.WallSec
			}
		}
		doc.Suites[i].Time = seconds(t)
	}
	doc.Time = seconds(max(total, r.ElapsedSec))
	return doc
}

// WriteJUnit writes r as a JUnit XML file.
func WriteJUnit(w io.Writer, r Results) error {
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(JUnit(r)); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

var htmlIndex = template.Must(template.New("index").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>havoc {{.Command}}: {{len .Failures}} failing of {{len .Cases}}</title>
<style>body{font-family:sans-serif}td,th{padding:2px 8px;text-align:left;vertical-align:top}code{white-space:pre-wrap}</style></head>
<body><h1>havoc {{.Command}}</h1>
<p>{{len .Cases}} cases of {{.Planned}} planned: {{.Passed}} passed, {{.Failed}} failed, {{.Skipped}} skipped.</p>
{{if .Failures}}<table><tr><th>case</th><th>scenario</th><th>verdict</th><th>reason</th><th>reproduce</th><th>artifacts</th></tr>
{{range .Failures}}<tr><td>{{.Suite}} {{.Name}}</td><td>{{.Scenario}}</td><td>{{.Verdict}}</td><td>{{.Reason}}</td><td><code>{{.Repro}}</code></td><td>{{if .Dir}}<a href="{{.Dir}}">{{.Dir}}</a><br>timeline: <code>go run ./cmd/harness explain {{.Dir}}</code>{{end}}</td></tr>
{{end}}</table>{{else}}<p>No failures.</p>{{end}}
</body></html>
`))

// WriteHTML writes an HTML index of r's failures, each with its scenario,
// verdict, reason, reproduce line, artifacts and the command that explains
// them (harness explain: a timeline of the failing run).
func WriteHTML(w io.Writer, r Results) error {
	passed, failed, skipped := r.Counts()
	return htmlIndex.Execute(w, struct {
		Results
		Failures                []Case
		Passed, Failed, Skipped int
	}{r, r.Failures(), passed, failed, skipped})
}

// WriteFile creates path and writes to it with write.
func WriteFile(path string, write func(io.Writer) error) error {
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
