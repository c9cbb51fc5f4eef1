package report

import (
	"bytes"
	"encoding/xml"
	"io"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func sample() Results {
	return Results{Command: "sweep", Planned: 3, Cases: []Case{
		{Suite: "sweep", Name: "seed 1", Seed: 1, Verdict: "ok", Status: StatusPassed, WallSec: 1.5, Repro: "harness run --seed 1"},
		{Suite: "sweep", Name: "seed 2", Seed: 2, Verdict: "not-linearizable", Status: StatusFailed, Reason: "no order fits get k=1",
			Repro: "harness run --seed 2 --faults all", Dir: "runs/seed-2", WallSec: 2.25},
		{Suite: "sweep", Name: "seed 3", Seed: 3, Verdict: "inconclusive", Status: StatusSkipped, Reason: "budget spent", WallSec: 0.5},
	}}
}

// TestJUnitRoundTrip: the JUnit file decodes into the testsuites/testsuite/
// testcase structure, with counts, times and the failing seed's reproduce
// line in its failure message.
func TestJUnitRoundTrip(t *testing.T) {
	var b bytes.Buffer
	require.NoError(t, WriteJUnit(&b, sample()))
	var doc TestSuites
	require.NoError(t, xml.Unmarshal(b.Bytes(), &doc))
	require.Equal(t, "testsuites", doc.XMLName.Local)
	require.Equal(t, 3, doc.Tests)
	require.Equal(t, 1, doc.Failures)
	require.Len(t, doc.Suites, 1)
	s := doc.Suites[0]
	require.Equal(t, "sweep", s.Name)
	require.Equal(t, 3, s.Tests)
	require.Equal(t, 1, s.Failures)
	require.Equal(t, 1, s.Skipped)
	require.Equal(t, "4.250", s.Time)
	require.Len(t, s.Cases, 3)
	require.Equal(t, TestCase{Classname: "sweep", Name: "seed 1", Time: "1.500"}, s.Cases[0])
	f := s.Cases[1].Failure
	require.NotNil(t, f)
	require.Equal(t, "not-linearizable: no order fits get k=1 | reproduce: harness run --seed 2 --faults all", f.Message)
	require.Contains(t, f.Text, "artifacts: runs/seed-2\n")
	require.NotNil(t, s.Cases[2].Skipped)
	require.Nil(t, s.Cases[2].Failure)
	// Re-encoding the decoded document gives the same bytes: no field is lost.
	var again bytes.Buffer
	again.WriteString(xml.Header)
	enc := xml.NewEncoder(&again)
	enc.Indent("", "  ")
	require.NoError(t, enc.Encode(doc))
	again.WriteString("\n")
	require.Equal(t, b.String(), again.String())
}

func TestMergeAndReadDirs(t *testing.T) {
	all := sample()
	a := Results{Command: "sweep", Shard: "0/2", Planned: 2, Cases: []Case{all.Cases[0], all.Cases[2]}}
	b := Results{Command: "sweep", Shard: "1/2", Planned: 1, Cases: []Case{all.Cases[1]}}
	d1, d2 := t.TempDir(), t.TempDir()
	require.NoError(t, WriteFile(filepath.Join(d1, ShardResultsFile(0, 2)), func(w io.Writer) error { return WriteJSON(w, a) }))
	require.NoError(t, WriteFile(filepath.Join(d2, ResultsFile), func(w io.Writer) error { return WriteJSON(w, b) }))
	rs, err := ReadDirs(d1, d2)
	require.NoError(t, err)
	m, err := Merge(rs...)
	require.NoError(t, err)
	require.Equal(t, all.Cases, m.Cases)
	require.Equal(t, 3, m.Planned)

	_, err = Merge(a, a)
	require.ErrorContains(t, err, `sweep "seed 1" is in two results`)
	_, err = ReadDirs(t.TempDir())
	require.ErrorContains(t, err, "no results*.json")

	var h bytes.Buffer
	require.NoError(t, WriteHTML(&h, m))
	require.Contains(t, h.String(), "harness run --seed 2 --faults all")
	require.Contains(t, h.String(), "no order fits get k=1")
	require.Contains(t, h.String(), "harness explain runs/seed-2")
	require.NotContains(t, h.String(), "sweep seed 1<")
	var s bytes.Buffer
	Summary(&s, m)
	require.Regexp(t, `(?m)^cases +3 of 3 planned$`, s.String())
	require.Contains(t, s.String(), "  reproduce: harness run --seed 2 --faults all\n")
}
