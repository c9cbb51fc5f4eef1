package scenarios

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/havoclab/havoc/chaos"
)

// readGzip reads a gzip file whole.
func readGzip(t *testing.T, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	zr, err := gzip.NewReader(f)
	require.NoError(t, err)
	b, err := io.ReadAll(zr)
	require.NoError(t, err)
	return b
}

// TestKeepWritesPassingRun: with Keep a passing run leaves its artifacts, the
// trace compressed, and two runs of one seed leave the same bytes.
func TestKeepWritesPassingRun(t *testing.T) {
	run := func() map[string][]byte {
		c := Config{Seed: 3, Duration: 2 * time.Second, Faults: chaos.AllKinds, Out: t.TempDir(), Keep: true,
			Workload: Workload{Clients: 3}}
		res, err := RunSim(c)
		require.NoError(t, err)
		require.True(t, res.Passed(), "%s: %s", res.Verdict, res.Reason)
		require.Equal(t, filepath.Join(c.Out, "seed-3"), res.Dir)
		files := map[string][]byte{}
		for _, n := range []string{"seed", "config.json", "schedule.txt", "summary.txt", "history.json.gz", "watch.json.gz", "trace.log.gz"} {
			b, err := os.ReadFile(filepath.Join(res.Dir, n))
			require.NoError(t, err, n)
			files[n] = b
		}
		files["trace.log"] = readGzip(t, filepath.Join(res.Dir, "trace.log.gz"))
		files["history.json"] = readGzip(t, filepath.Join(res.Dir, "history.json.gz"))
		return files
	}
	a, b := run(), run()
	for n := range a {
		require.True(t, bytes.Equal(a[n], b[n]), "%s differs between two runs of one seed", n)
	}
	require.Contains(t, string(a["trace.log"]), " m1 start\n")
	require.Contains(t, string(a["summary.txt"]), "verdict: ok")
	require.NotContains(t, string(a["trace.log"]), "... trace truncated")
	require.Contains(t, string(a["history.json"]), `"kind":"put"`)

	// config.json: snake_case keys, durations in seconds.
	var cfg map[string]any
	require.NoError(t, json.Unmarshal(a["config.json"], &cfg))
	require.Equal(t, 2.0, cfg["duration_s"])
	require.Equal(t, 3.0, cfg["clients"])
	for k := range cfg {
		require.Equal(t, strings.ToLower(k), k, "config.json key %q", k)
	}
	require.Contains(t, cfg["repro"], "--duration 2s --rate 1000 --faults all")
}

// TestSummaryOnly: a run past a sweep's budget of full artifacts leaves the
// small files only.
func TestSummaryOnly(t *testing.T) {
	c := Config{Seed: 3, Duration: 2 * time.Second, Out: t.TempDir(), Keep: true, SummaryOnly: true, Workload: Workload{Clients: 2}}
	res, err := RunSim(c)
	require.NoError(t, err)
	entries, err := os.ReadDir(res.Dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	require.ElementsMatch(t, []string{"seed", "config.json", "schedule.txt", "summary.txt"}, names)
}

func TestCaps(t *testing.T) {
	b := &cappedBuffer{limit: 10}
	for _, l := range []string{"abcd\n", "efgh\n", "ijkl\n", "mn\n"} {
		_, _ = b.Write([]byte(l))
	}
	require.Equal(t, "abcd\nefgh\n... trace truncated at 10 bytes: 2 more lines (8 bytes) not recorded\n", string(b.Bytes()))

	data := []byte("{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n")
	require.Equal(t, data, capLines(data, len(data)))
	require.Equal(t, "{\"a\":1}\n{\"truncated\":true,\"limit_bytes\":12,\"omitted_lines\":2,\"omitted_bytes\":16}\n", string(capLines(data, 12)))
}
