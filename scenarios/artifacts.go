package scenarios

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/havoclab/havoc/chaos"
	"github.com/havoclab/havoc/linearizability"
)

// Artifact size limits, before compression: a run directory holds at most
// TraceLimitBytes of trace (trace.log.gz), HistoryLimitBytes of history
// (history.json.gz) and WatchLimitBytes of watch events (watch.json.gz). A file
// cut at its limit ends with a line that says so (in the JSON files an object
// with "truncated": true, which `harness check` reports as inconclusive). The
// default 60 s run (seed 1) records 75 MB of trace, 19 MB of history and 3 MB
// of watch events, inside the limits, and writes 12 MB compressed.
const (
	TraceLimitBytes   = 256 << 20
	HistoryLimitBytes = 64 << 20
	WatchLimitBytes   = 16 << 20
)

// Repro is the one command line that replays the simulated run c: every
// Config field that a `harness run` flag sets, from c's effective values
// (durations in seconds). Fields without a flag are at their defaults in runs
// the harness starts. A run of a scenario file that flags cannot express
// (FlagsExpress) is replayed from its artifacts' scenario.yaml instead.
func Repro(c Config) string {
	if c.Scenario != nil && !FlagsExpress(c) {
		return ScenarioRepro(filepath.Join(artifactDir(c), ScenarioFile))
	}
	kinds := make([]string, len(c.Faults))
	for i, k := range c.Faults {
		kinds[i] = string(k)
	}
	f := strings.Join(kinds, ",")
	switch {
	case f == "":
		f = "none"
	case slices.Equal(c.Faults, chaos.AllKinds):
		f = "all"
	}
	line := fmt.Sprintf("go run ./cmd/harness run --seed %d --nodes %d --clients %d --duration %s --rate %s --faults %s",
		c.Seed, c.Members, c.Workload.Clients, Seconds(c.Duration), strconv.FormatFloat(c.Workload.Rate, 'g', -1, 64), f)
	if p := c.Workload.Profile; p != "" && p != ProfileEtcd {
		line += " --profile " + p
	}
	return line
}

// ScenarioFile is the name of the effective scenario in a run directory.
const ScenarioFile = "scenario.yaml"

// ScenarioRepro is the command line that replays the scenario file path.
func ScenarioRepro(path string) string { return "go run ./cmd/harness run --scenario " + path }

// FlagsExpress reports whether the flags of `harness run` (seed, nodes,
// clients, duration, rate, faults, profile) describe c, a validated configuration,
// completely: every other field is at its default and the schedule is drawn,
// not given. (c is not validated again: Validate reads a validated "no
// watchers" as "the default watchers".)
func FlagsExpress(c Config) bool {
	f := Config{Seed: c.Seed, Members: c.Members, Duration: c.Duration, Faults: c.Faults,
		Workload: Workload{Profile: c.Workload.Profile, Clients: c.Workload.Clients, Rate: c.Workload.Rate}}
	g := c
	if f.Validate() != nil || c.Schedule != nil {
		return false
	}
	g.Trace, g.Out, g.Keep, g.SummaryOnly, g.Scenario = false, "", false, false, nil
	f.Faults, g.Faults = nil, nil // the same slice; nil and empty are both "none"
	return reflect.DeepEqual(f, g)
}

// Seconds renders d in seconds, as flags accept it ("60s", "2.5s", "0.001s").
func Seconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "s"
}

func artifactDir(c Config) string { return filepath.Join(c.Out, fmt.Sprintf("seed-%d", c.Seed)) }

// cappedBuffer keeps what is written to it up to limit bytes, whole writes only
// (the simulator writes one trace line per Write), and counts what it drops.
type cappedBuffer struct {
	buf                         bytes.Buffer
	limit                       int
	droppedWrites, droppedBytes int64
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if b.droppedWrites > 0 || b.buf.Len()+len(p) > b.limit {
		b.droppedWrites++
		b.droppedBytes += int64(len(p))
		return len(p), nil
	}
	return b.buf.Write(p)
}

// Bytes returns what was kept, ended by a note if anything was dropped.
func (b *cappedBuffer) Bytes() []byte {
	if b.droppedWrites == 0 {
		return b.buf.Bytes()
	}
	out := bytes.Clone(b.buf.Bytes())
	return fmt.Appendf(out, "... trace truncated at %d bytes: %d more lines (%d bytes) not recorded\n", b.limit, b.droppedWrites, b.droppedBytes)
}

// capLines cuts data, a file of lines, at the last whole line within limit and
// appends the JSON line {"truncated":true,...} if it cut anything.
func capLines(data []byte, limit int) []byte {
	if len(data) <= limit {
		return data
	}
	cut := bytes.LastIndexByte(data[:limit], '\n') + 1
	dropped := bytes.Count(data[cut:], []byte{'\n'})
	return fmt.Appendf(bytes.Clone(data[:cut]), `{"truncated":true,"limit_bytes":%d,"omitted_lines":%d,"omitted_bytes":%d}`+"\n", limit, dropped, len(data)-cut)
}

// configFile is config.json: the run's effective configuration, snake_case,
// durations in seconds.
type configFile struct {
	Seed                 uint64       `json:"seed"`
	Members              int          `json:"members"`
	DurationS            float64      `json:"duration_s"`
	Faults               []chaos.Kind `json:"faults"`
	Schedule             []faultFile  `json:"schedule,omitempty"`
	Clients              int          `json:"clients"`
	Rate                 float64      `json:"rate"`
	Profile              string       `json:"profile"`
	Keys                 int          `json:"keys"`
	LeaseKeys            int          `json:"lease_keys"`
	ClientTimeoutS       float64      `json:"client_timeout_s"`
	LeaseTTLS            int64        `json:"lease_ttl_s"`
	Mix                  []weightFile `json:"mix"`
	LivenessTimeoutS     float64      `json:"liveness_timeout_s"`
	SnapshotCount        uint64       `json:"snapshot_count"`
	Watchers             int          `json:"watchers"`
	LeaseSafetyUnderSkew bool         `json:"lease_safety_under_skew"`
	CheckBudget          int64        `json:"check_budget"`
	Repro                string       `json:"repro"`
}

type weightFile struct {
	Kind         linearizability.Kind `json:"kind"`
	Serializable bool                 `json:"serializable"`
	Variant      Variant              `json:"variant,omitempty"`
	Weight       int                  `json:"weight"`
}

// faultFile is one fault of a replayed schedule, members named m1..mN.
type faultFile struct {
	AtS       float64    `json:"at_s"`
	DurationS float64    `json:"duration_s"`
	Kind      chaos.Kind `json:"kind"`
	Members   []string   `json:"members,omitempty"`
	Rate      float64    `json:"rate,omitempty"`
	LatencyS  float64    `json:"latency_s,omitempty"`
	DriftPPM  int64      `json:"drift_ppm,omitempty"`
	Torn      bool       `json:"torn,omitempty"`
	Point     string     `json:"point,omitempty"`
}

func newConfigFile(c Config) configFile {
	f := configFile{
		Seed: c.Seed, Members: c.Members, DurationS: c.Duration.Seconds(), Faults: c.Faults,
		Clients: c.Workload.Clients, Rate: c.Workload.Rate, Profile: c.Workload.Profile, Keys: c.Workload.Keys, LeaseKeys: c.Workload.LeaseKeys,
		ClientTimeoutS: c.Workload.Timeout.Seconds(), LeaseTTLS: c.Workload.LeaseTTL,
		LivenessTimeoutS: c.LivenessTimeout.Seconds(), SnapshotCount: c.SnapshotCount, Watchers: max(c.Watchers, 0),
		LeaseSafetyUnderSkew: c.LeaseSafetyUnderSkew, CheckBudget: c.CheckBudget, Repro: Repro(c),
	}
	if f.Faults == nil {
		f.Faults = []chaos.Kind{}
	}
	for _, w := range c.Workload.Mix {
		f.Mix = append(f.Mix, weightFile(w))
	}
	for _, ft := range c.Schedule {
		ff := faultFile{AtS: ft.At.Seconds(), DurationS: ft.Duration.Seconds(), Kind: ft.Kind, Rate: ft.Rate,
			LatencyS: ft.Latency.Seconds(), DriftPPM: ft.DriftPPM, Torn: ft.Torn, Point: ft.Point}
		for _, m := range ft.Members {
			ff.Members = append(ff.Members, chaos.MemberName(m))
		}
		f.Schedule = append(f.Schedule, ff)
	}
	return f
}

// writeArtifacts leaves everything needed to understand and replay a run:
// seed, config, schedule, summary and, unless summaryOnly, the history, watch
// events and compressed trace (the checker's visualization of a failing run
// is written by the check itself). Each file is capped (see TraceLimitBytes).
func writeArtifacts(c Config, r *Result, summaryOnly bool) (string, error) {
	dir := artifactDir(c)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	cfg, err := json.MarshalIndent(newConfigFile(c), "", "  ")
	if err != nil {
		return "", err
	}
	summary := fmt.Sprintf("seed: %d\nverdict: %s\nreason: %s\nrepro: %s\n", c.Seed, r.Verdict, r.Reason, Repro(c))
	if cav := r.Caveat(); cav != "" {
		summary += "not tested: " + cav + "\n"
	}
	if len(r.Findings) > 1 || len(r.Findings) == 1 && r.Findings[0].Detail != "" {
		summary += "\nfindings (most severe first):\n"
		for _, f := range r.Findings {
			summary += fmt.Sprintf("  %s: %s\n", f.Verdict, f.Reason)
			if f.Detail != "" {
				summary += "    in full: " + strings.ReplaceAll(f.Detail, "\n", "\n      ") + "\n"
			}
		}
	}
	summary += "\nfaults:\n" + strings.Join(r.FaultLog, "\n")
	if r.Panic != "" {
		summary += "\n\npanic:\n" + r.Panic
	}
	if summaryOnly {
		summary += "\n\n(summary only: the sweep's budget of full artifacts was spent; the repro line rebuilds them)"
	}
	type file struct {
		name string
		data []byte
	}
	files := []file{
		{"seed", fmt.Appendf(nil, "%d\n", c.Seed)},
		{"config.json", append(cfg, '\n')},
		{"schedule.txt", []byte(r.Schedule.String())},
		{"summary.txt", []byte(summary + "\n")},
	}
	if r.Panic != "" {
		files = append(files, file{"panic.txt", []byte(r.Panic)})
	}
	if c.Scenario != nil {
		files = append(files, file{ScenarioFile, c.Scenario})
	}
	if !summaryOnly {
		var hist, watch bytes.Buffer
		if err := linearizability.WriteHistory(&hist, r.History); err != nil {
			return "", err
		}
		if err := linearizability.WriteWatchEvents(&watch, r.Watch); err != nil {
			return "", err
		}
		files = append(files, file{"history.json.gz", gzipBytes(capLines(hist.Bytes(), HistoryLimitBytes))},
			file{"watch.json.gz", gzipBytes(capLines(watch.Bytes(), WatchLimitBytes))})
		if len(r.Trace) > 0 {
			// The trace was capped as it was recorded.
			files = append(files, file{"trace.log.gz", gzipBytes(r.Trace)})
		}
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.data, 0o644); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// gzipBytes compresses data for a run directory (fastest level: a 75 MB trace
// takes about a second and becomes 9 MB; no name or time in the header, so
// the bytes depend on data alone).
func gzipBytes(data []byte) []byte {
	var z bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&z, gzip.BestSpeed)
	_, _ = zw.Write(data) // writes to a bytes.Buffer do not fail
	_ = zw.Close()
	return z.Bytes()
}
