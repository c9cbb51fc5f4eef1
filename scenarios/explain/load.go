// Package explain shows what happened in a failing run from its artifacts
// directory: the operations of the failing keys around the anomaly on a time
// axis, the member that served each, the fault windows, leader changes and
// member restarts, and the first operation that cannot be linearized with the
// state before it (Build, Report.HTML, Report.Text). It also filters a run's
// trace to what matters (Filter, FilterTrace).
package explain

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/havoclab/havoc/linearizability"
)

// The files of a run directory this package reads.
const (
	SummaryFile       = "summary.txt"
	ConfigFile        = "config.json"
	ScheduleFile      = "schedule.txt"
	HistoryFile       = "history.json.gz"
	TraceFile         = "trace.log.gz"
	VisualizationFile = "visualization.html"
)

// Fault is one fault window of a run.
type Fault struct {
	// Name is the fault as the fault log names it ("pause m1").
	Name     string
	From, To time.Duration
}

// Marker is one event of a member that the trace records: a leader that
// learned it leads, a crash, a restart, a pause or a resume.
type Marker struct {
	At     time.Duration
	Member string
	// What is "leader", "crash", "restart", "pause" or "resume".
	What string
}

// Run is what a run directory holds, read by Load.
type Run struct {
	Dir string
	// Verdict and Reason are the summary's; Summary is summary.txt whole.
	Verdict, Reason, Summary string
	// Duration is the run's safety phase, from config.json (zero if absent).
	Duration time.Duration
	// CheckBudget is config.json's check budget (zero: the default).
	CheckBudget int64
	Faults      []Fault
	Markers     []Marker
	// History is history.json.gz, nil when absent.
	History []linearizability.Operation
	// Visualization is the name of Porcupine's page in Dir, if present.
	Visualization string
}

// ErrNotRun reports a directory that is not a run's artifacts directory.
var ErrNotRun = errors.New("not a run directory")

// Load reads the run directory dir. It needs summary.txt; the other files
// add what they hold when present. The trace is streamed for its markers.
func Load(dir string) (*Run, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%s: %w: not a directory", dir, ErrNotRun)
	}
	sum, err := os.ReadFile(filepath.Join(dir, SummaryFile))
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", dir, ErrNotRun, err)
	}
	r := &Run{Dir: dir, Summary: string(sum)}
	var faultLog []string
	inFaults := false
	for _, line := range strings.Split(r.Summary, "\n") {
		switch {
		case strings.HasPrefix(line, "verdict: "):
			r.Verdict = strings.TrimPrefix(line, "verdict: ")
		case strings.HasPrefix(line, "reason: "):
			r.Reason = strings.TrimPrefix(line, "reason: ")
		case line == "faults:":
			inFaults = true
		case inFaults && line == "":
			inFaults = false
		case inFaults:
			faultLog = append(faultLog, line)
		}
	}
	if cfg, err := os.ReadFile(filepath.Join(dir, ConfigFile)); err == nil {
		var c struct {
			DurationS   float64 `json:"duration_s"`
			CheckBudget int64   `json:"check_budget"`
		}
		if err := json.Unmarshal(cfg, &c); err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(dir, ConfigFile), err)
		}
		r.Duration = time.Duration(c.DurationS * float64(time.Second))
		r.CheckBudget = c.CheckBudget
	}
	r.Faults = ParseFaultLog(faultLog, r.Duration)
	if len(r.Faults) == 0 {
		if sched, err := os.ReadFile(filepath.Join(dir, ScheduleFile)); err == nil {
			r.Faults = ParseSchedule(string(sched))
		}
	}
	if f, err := os.Open(filepath.Join(dir, HistoryFile)); err == nil {
		ops, err := ReadHistory(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(dir, HistoryFile), err)
		}
		r.History = ops
	}
	if f, err := os.Open(filepath.Join(dir, TraceFile)); err == nil {
		m, err := ReadMarkers(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(dir, TraceFile), err)
		}
		r.Markers = m
	}
	if _, err := os.Stat(filepath.Join(dir, VisualizationFile)); err == nil {
		r.Visualization = VisualizationFile
	}
	return r, nil
}

// ReadHistory reads a history, gzip-compressed or not. A history cut at its
// size limit keeps what precedes the cut.
func ReadHistory(rd io.Reader) ([]linearizability.Operation, error) {
	br := bufio.NewReader(rd)
	if head, _ := br.Peek(2); bytes.Equal(head, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, err
		}
		br = bufio.NewReader(zr)
	}
	data, err := io.ReadAll(br)
	if err != nil {
		return nil, err
	}
	if i := bytes.Index(data, []byte(`{"truncated":true`)); i >= 0 {
		data = data[:i]
	}
	return linearizability.ReadHistory(bytes.NewReader(data))
}

// ParseFaultLog pairs the start and end lines of a run's fault log
// ("2.000s start pause m1", "6.488s end pause m1") into windows; a fault
// without its end lasts until end.
func ParseFaultLog(lines []string, end time.Duration) []Fault {
	var out []Fault
	open := map[string][]int{}
	for _, line := range lines {
		at, rest, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok {
			continue
		}
		t, err := time.ParseDuration(at)
		if err != nil {
			continue
		}
		switch verb, name, _ := strings.Cut(rest, " "); verb {
		case "start":
			open[name] = append(open[name], len(out))
			out = append(out, Fault{Name: name, From: t, To: -1})
		case "end":
			if q := open[name]; len(q) > 0 {
				out[q[0]].To = t
				open[name] = q[1:]
			}
		}
	}
	for i := range out {
		if out[i].To < 0 {
			out[i].To = max(end, out[i].From)
		}
	}
	return out
}

// ParseSchedule reads schedule.txt ("at=2.000s   for=4.488s  pause  members=[m1]")
// into windows, for a run whose summary has no fault log.
func ParseSchedule(s string) []Fault {
	var out []Fault
	for _, line := range strings.Split(s, "\n") {
		fields := strings.Fields(line)
		if len(fields) < 3 || !strings.HasPrefix(fields[0], "at=") || !strings.HasPrefix(fields[1], "for=") {
			continue
		}
		at, err1 := time.ParseDuration(strings.TrimPrefix(fields[0], "at="))
		d, err2 := time.ParseDuration(strings.TrimPrefix(fields[1], "for="))
		if err1 != nil || err2 != nil {
			continue
		}
		name := fields[2]
		for _, f := range fields[3:] {
			name += " " + strings.TrimPrefix(f, "members=")
		}
		out = append(out, Fault{Name: name, From: at, To: at + d})
	}
	return out
}

// ReadMarkers streams a trace (gzip-compressed or not) and returns its
// member markers: a member that reports itself leader, crashes, restarts,
// starts after time zero, pauses or resumes.
func ReadMarkers(rd io.Reader) ([]Marker, error) {
	var out []Marker
	err := scanTrace(rd, func(line []byte) bool {
		at, actor, event, rest, ok := splitLine(line)
		if !ok || len(actor) < 2 || actor[0] != 'm' || actor[1] < '0' || actor[1] > '9' {
			return true
		}
		var what string
		switch string(event) {
		case "leader":
			if string(rest) == "is "+string(actor) {
				what = "leader"
			}
		case "crash", "restart", "pause", "resume":
			what = string(event)
		case "start":
			if at > 0 {
				what = "restart"
			}
		}
		if what != "" {
			out = append(out, Marker{At: at, Member: string(actor), What: what})
		}
		return true
	})
	return out, err
}

// scanTrace calls fn on each line of a trace, gzip-compressed or not, until
// fn returns false.
func scanTrace(rd io.Reader, fn func(line []byte) bool) error {
	br := bufio.NewReaderSize(rd, 1<<16)
	if head, _ := br.Peek(2); bytes.Equal(head, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return err
		}
		br = bufio.NewReaderSize(zr, 1<<20)
	}
	sc := bufio.NewScanner(br)
	sc.Buffer(make([]byte, 0, 1<<20), 16<<20)
	for sc.Scan() {
		if !fn(sc.Bytes()) {
			return nil
		}
	}
	return sc.Err()
}

// splitLine splits a trace line "00002.000000 m1 pause ..." into its virtual
// time, actor, event and the rest.
func splitLine(line []byte) (at time.Duration, actor, event, rest []byte, ok bool) {
	ts, tail, ok := bytes.Cut(line, []byte{' '})
	if !ok {
		return 0, nil, nil, nil, false
	}
	at, ok = parseTime(ts)
	if !ok {
		return 0, nil, nil, nil, false
	}
	actor, tail, _ = bytes.Cut(tail, []byte{' '})
	event, rest, _ = bytes.Cut(tail, []byte{' '})
	return at, actor, event, rest, true
}

// parseTime reads a trace time, seconds with a fraction ("00005.727000").
func parseTime(b []byte) (time.Duration, bool) {
	sec, frac, _ := bytes.Cut(b, []byte{'.'})
	if len(sec) == 0 || len(frac) > 9 {
		return 0, false
	}
	var s, f int64
	for _, c := range sec {
		if c < '0' || c > '9' {
			return 0, false
		}
		s = s*10 + int64(c-'0')
	}
	scale := int64(time.Second)
	for _, c := range frac {
		if c < '0' || c > '9' {
			return 0, false
		}
		scale /= 10
		f += int64(c-'0') * scale
	}
	return time.Duration(s)*time.Second + time.Duration(f), true
}

// seconds renders d as seconds with millisecond precision ("5.727s").
func seconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', 3, 64) + "s"
}
