package explain

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/havoclab/havoc/linearizability"
)

// evilKey and evilValue must reach the page escaped.
const (
	evilKey   = `k/<script>alert(1)</script>`
	evilValue = `"&<b>never written</b>`
)

// failingRun writes a run directory whose history is not linearizable: a get
// at 2.0s reads a value that no operation wrote. Faults: pause m2 from 1.5s
// to 2.5s, loss from 1.8s to the end (3s); the trace has a leader, a crash
// and a restart.
func failingRun(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	ms := func(n int64) int64 { return n * int64(time.Millisecond) }
	ops := []linearizability.Operation{
		{ID: 1, Client: 1, Member: "m1", Kind: linearizability.KindPut, Key: evilKey, Value: "v1",
			Call: ms(1000), Return: ms(1100), Outcome: linearizability.OutcomeOK, Resp: linearizability.Response{Revision: 2}},
		{ID: 2, Client: 2, Member: "m2", Kind: linearizability.KindGet, Key: evilKey,
			Call: ms(2000), Return: ms(2100), Outcome: linearizability.OutcomeOK,
			Resp: linearizability.Response{Revision: 2, Found: true, Value: evilValue, ModRevision: 2, CreateRevision: 2, Version: 1}},
		{ID: 3, Client: 3, Member: "m3", Kind: linearizability.KindGet, Key: "k/other",
			Call: ms(2000), Return: ms(2100), Outcome: linearizability.OutcomeOK, Resp: linearizability.Response{Revision: 2}},
	}
	var hist bytes.Buffer
	require.NoError(t, linearizability.WriteHistory(&hist, ops))
	write := func(name string, data []byte) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), data, 0o644))
	}
	write(HistoryFile, gz(t, hist.Bytes()))
	write(SummaryFile, []byte("seed: 7\nverdict: not-linearizable\nreason: a read saw a value nobody wrote\nrepro: x\n\n"+
		"faults:\n1.500s start pause m2\n1.800s start loss loss=0.1\n2.500s end pause m2\n"))
	write(ConfigFile, []byte(`{"seed": 7, "duration_s": 3, "check_budget": 0}`))
	write(TraceFile, gz(t, []byte(sampleTrace)))
	write(VisualizationFile, []byte("<html></html>"))
	return dir
}

const sampleTrace = `00000.000000 m1 start
00001.000000 m1 leader is m1
00001.000100 m2 leader is m1
00001.000200 c01 send -> m1 *cluster.ClientRequest
00001.050000 m1 recv <- c01 *cluster.ClientRequest
00001.500000 chaos start pause m2
00001.500000 m2 pause
00001.900000 m3 crash torn
00002.000000 c02 send -> m2 *cluster.ClientRequest
00002.000000 c03 send -> m3 *cluster.ClientRequest
00002.050000 m3 restart
00002.060000 m2 recv <- c02 *cluster.ClientRequest
00002.500000 m2 resume (3 parked)
00002.500000 chaos end pause m2
00003.000000 m1 send -> m2 type:MsgApp to:m2 from:m1 term:2
`

func gz(t *testing.T, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	_, err := zw.Write(data)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return b.Bytes()
}

func buildReport(t *testing.T, dir string) *Report {
	t.Helper()
	run, err := Load(dir)
	require.NoError(t, err)
	rep, err := Build(run, Options{Window: time.Second})
	require.NoError(t, err)
	return rep
}

func TestBuildFindsTheFailingOperation(t *testing.T) {
	rep := buildReport(t, failingRun(t))
	require.Equal(t, linearizability.VerdictIllegal, rep.Check.Verdict)
	require.NotNil(t, rep.Failing)
	assert.Equal(t, int64(2), rep.Failing.ID)
	assert.Equal(t, []string{evilKey}, rep.Keys)
	assert.Equal(t, []int{1, 2}, rep.Clients, "the other key's client has no row")
	require.Len(t, rep.LastWrites, 1)
	assert.Equal(t, int64(1), rep.LastWrites[0].ID, "the state before the failing read: the put")
	assert.Equal(t, 900*time.Millisecond, rep.From, "back to the last write before the failing read")
	assert.Equal(t, 3100*time.Millisecond, rep.To)
	assert.Equal(t, []Fault{
		{Name: "pause m2", From: 1500 * time.Millisecond, To: 2500 * time.Millisecond},
		{Name: "loss loss=0.1", From: 1800 * time.Millisecond, To: 3 * time.Second},
	}, rep.Faults)
	assert.Equal(t, []Marker{
		{At: time.Second, Member: "m1", What: "leader"},
		{At: 1500 * time.Millisecond, Member: "m2", What: "pause"},
		{At: 1900 * time.Millisecond, Member: "m3", What: "crash"},
		{At: 2050 * time.Millisecond, Member: "m3", What: "restart"},
		{At: 2500 * time.Millisecond, Member: "m2", What: "resume"},
	}, rep.Markers, "only a member's report of itself as leader marks a leader change")

	var text strings.Builder
	require.NoError(t, rep.Text(&text))
	assert.Contains(t, text.String(), "first operation that cannot be linearized: #2 2.000s..2.100s c02@m2 get(")
	assert.Contains(t, text.String(), "1.500s .. 2.500s  pause m2")
	assert.Contains(t, text.String(), "before it: #1 1.000s..1.100s c01@m1 put(")
	assert.Contains(t, text.String(), "1.900s  m3 crash")
	assert.Contains(t, text.String(), "porcupine: visualization.html")
}

func TestHTMLShowsTheFailingOperationAndFaultBands(t *testing.T) {
	rep := buildReport(t, failingRun(t))
	var page bytes.Buffer
	require.NoError(t, rep.HTML(&page))
	html := page.String()
	assert.Contains(t, html, `class="op ok failing" `)
	assert.Contains(t, html, `data-op="2"`)
	assert.Regexp(t, `class="op ok last"[^>]*data-op="1"`, html, "the put the read should have seen")
	assert.Equal(t, 2, strings.Count(html, `class="band band`), "one band per fault")
	assert.Contains(t, html, `data-fault="pause m2"`)
	assert.Contains(t, html, `data-fault="loss loss=0.1"`)
	assert.Contains(t, html, `class="marker crash"`)
	assert.Contains(t, html, `class="marker leader"`)
	assert.Contains(t, html, `<a href="visualization.html">`)
	for _, external := range []string{"src=", `href="http`, "<link", "url("} {
		assert.NotContains(t, html, external, "self-contained: no external asset")
	}
	assert.NotContains(t, html, "<script")
}

func TestHTMLEscapesKeysAndValues(t *testing.T) {
	rep := buildReport(t, failingRun(t))
	var page bytes.Buffer
	require.NoError(t, rep.HTML(&page))
	html := page.String()
	assert.NotContains(t, html, "<script>alert(1)</script>")
	assert.NotContains(t, html, "<b>never written</b>")
	assert.Contains(t, html, "k/&lt;script&gt;alert(1)&lt;/script&gt;")
	assert.Contains(t, html, "&lt;b&gt;never written&lt;/b&gt;")
}

func TestLoadRefusesWhatIsNotARunDirectory(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "missing"))
	require.ErrorIs(t, err, os.ErrNotExist)
	_, err = Load(t.TempDir())
	require.ErrorIs(t, err, ErrNotRun)
}

func TestParseFaultLogAndSchedule(t *testing.T) {
	got := ParseFaultLog([]string{
		"2.000s start pause m1", "2.000s start pause m1", "3.000s end pause m1",
		"4.000s start crash m3 (torn=true)", "not a fault line", "10.000s heal all",
	}, 9*time.Second)
	assert.Equal(t, []Fault{
		{Name: "pause m1", From: 2 * time.Second, To: 3 * time.Second},
		{Name: "pause m1", From: 2 * time.Second, To: 9 * time.Second},
		{Name: "crash m3 (torn=true)", From: 4 * time.Second, To: 9 * time.Second},
	}, got)
	assert.Equal(t, []Fault{{Name: "pause [m1]", From: 2 * time.Second, To: 6488 * time.Millisecond}},
		ParseSchedule("at=2.000s   for=4.488s  pause              members=[m1]\n"))
}

func TestBuildWritesPorcupineWithFaultAnnotations(t *testing.T) {
	dir := failingRun(t)
	run, err := Load(dir)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "porcupine.html")
	rep, err := Build(run, Options{Porcupine: path})
	require.NoError(t, err)
	assert.Equal(t, path, rep.Porcupine)
	page, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Contains(t, string(page), `"Description":"pause m2"`, "the fault window is an annotation")
	assert.Contains(t, string(page), `"Description":"loss loss=0.1"`)

	var html bytes.Buffer
	require.NoError(t, rep.HTML(&html))
	assert.Contains(t, html.String(), `id="porcupine"`)
}

func TestStateBefore(t *testing.T) {
	reason := `partition 1 of 2 (keys k/1, 3 operations) has no linearization; after the longest partial linearization (1 of 3 operations, last #1 put("k/1", "a") -> ok), state {k/1="a" mod 2}, #2 get("k/1") -> "b" (client 2, member m2) cannot take effect`
	assert.Equal(t, `k/1="a" mod 2`, stateBefore(reason))
	assert.Empty(t, stateBefore("no operation wrote that value"))
}

func TestBuildOnALinearizableRun(t *testing.T) {
	dir := failingRun(t)
	ops := []linearizability.Operation{{ID: 1, Client: 1, Member: "m1", Kind: linearizability.KindPut, Key: "k/1", Value: "v",
		Call: int64(time.Second), Return: int64(time.Second + time.Millisecond), Outcome: linearizability.OutcomeOK,
		Resp: linearizability.Response{Revision: 2}}}
	var hist bytes.Buffer
	require.NoError(t, linearizability.WriteHistory(&hist, ops))
	require.NoError(t, os.WriteFile(filepath.Join(dir, HistoryFile), gz(t, hist.Bytes()), 0o644))
	rep := buildReport(t, dir)
	assert.Equal(t, linearizability.VerdictOK, rep.Check.Verdict)
	assert.Nil(t, rep.Failing)
	assert.Empty(t, rep.Ops)
	assert.Equal(t, time.Duration(0), rep.From)
	assert.Equal(t, 3*time.Second, rep.To, "the whole run")
	assert.Len(t, rep.Faults, 2)
	var text, page strings.Builder
	require.NoError(t, rep.Text(&text))
	assert.Contains(t, text.String(), "the history is linearizable")
	require.NoError(t, rep.HTML(&page))
	assert.Contains(t, page.String(), `data-fault="pause m2"`)
}
