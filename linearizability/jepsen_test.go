package linearizability

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/havoclab/havoc/internal/shared"
)

// jepsenDir is shared/testdata/jepsen-etcd beside the repository (the corpus is
// not copied into it): missing, it skips the test, or fails it under CI.
func jepsenDir(t testing.TB) string {
	return shared.Path(t, "testdata", "jepsen-etcd")
}

type jepsenVerdict struct {
	file         string
	linearizable bool
}

func readVerdicts(t testing.TB, dir string) []jepsenVerdict {
	f, err := os.Open(filepath.Join(dir, "VERDICTS"))
	require.NoError(t, err)
	defer f.Close()
	var vs []jepsenVerdict
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		require.Len(t, fields, 2, "VERDICTS line %q", sc.Text())
		require.Contains(t, []string{"linearizable", "not-linearizable"}, fields[1])
		vs = append(vs, jepsenVerdict{fields[0], fields[1] == "linearizable"})
	}
	require.NoError(t, sc.Err())
	return vs
}

// TestJepsenVerdicts checks every log with a verdict and requires agreement
// with Knossos and Porcupine on all of them.
func TestJepsenVerdicts(t *testing.T) {
	dir := jepsenDir(t)
	vs := readVerdicts(t, dir)
	require.Len(t, vs, 102)
	start := time.Now()
	for _, v := range vs {
		t.Run(v.file, func(t *testing.T) {
			res, err := CheckJepsen(filepath.Join(dir, v.file))
			require.NoError(t, err)
			want := VerdictIllegal
			if v.linearizable {
				want = VerdictOK
			}
			require.Equal(t, want, res.Verdict, res.Reason)
		})
	}
	t.Logf("checked %d Jepsen logs in %v", len(vs), time.Since(start))
}

func TestReadJepsen(t *testing.T) {
	log := strings.Join([]string{
		"INFO  jepsen.util - 0\t:invoke\t:read\tnil",
		"INFO  jepsen.util - 1\t:invoke\t:write\t3",
		"some unrelated line",
		"INFO  jepsen.util - 0\t:ok\t:read\tnil",
		"INFO  jepsen.util - 1\t:info\t:write\t:timed-out",
		"INFO  jepsen.util - 2\t:invoke\t:cas\t[3 4]",
		"INFO  jepsen.util - 2\t:fail\t:cas\t[3 4]",
		"INFO  jepsen.util - 3\t:invoke\t:read\tnil",
		"INFO  jepsen.util - 3\t:fail\t:read\t:timed-out",
		"INFO  jepsen.util - 4\t:invoke\t:write\t1",
	}, "\n")
	ops, err := ReadJepsen(strings.NewReader(log))
	require.NoError(t, err)
	require.Equal(t, []RegisterOp{
		{Process: 0, Kind: RegisterRead, Nil: true, Outcome: OutcomeOK, Call: 1, Return: 3},
		{Process: 1, Kind: RegisterWrite, Value: 3, Outcome: OutcomeUnknown, Call: 2, Return: 4},
		{Process: 2, Kind: RegisterCAS, From: 3, To: 4, Outcome: OutcomeFail, Call: 5, Return: 6},
		{Process: 3, Kind: RegisterRead, Outcome: OutcomeUnknown, Call: 7, Return: 8},
		{Process: 4, Kind: RegisterWrite, Value: 1, Outcome: OutcomeUnknown, Call: 9, Return: 10},
	}, ops)

	for _, bad := range []string{
		"INFO  jepsen.util - 0\t:ok\t:read\t1",
		"INFO  jepsen.util - 0\t:invoke\t:write\tx",
		"INFO  jepsen.util - 0\t:invoke\t:cas\t[1]",
		"INFO  jepsen.util - 0\t:invoke\t:read\tnil\nINFO  jepsen.util - 0\t:invoke\t:read\tnil",
		"INFO  jepsen.util - 0\t:invoke\t:read\tnil\nINFO  jepsen.util - 0\t:ok\t:read\tzz",
	} {
		_, err := ReadJepsen(strings.NewReader(bad))
		require.ErrorIs(t, err, ErrMalformed, bad)
		require.Contains(t, err.Error(), "line ")
	}
}

func TestCheckFileDetectsJepsen(t *testing.T) {
	dir := jepsenDir(t)
	res, err := CheckFile(filepath.Join(dir, "etcd_002.log"), Options{})
	require.NoError(t, err)
	require.Equal(t, VerdictOK, res.Verdict)
	res, err = CheckFile(filepath.Join(dir, "etcd_000.log"), Options{VisualizePath: filepath.Join(t.TempDir(), "viz.html")})
	require.NoError(t, err)
	require.Equal(t, VerdictIllegal, res.Verdict)
	require.FileExists(t, res.Visualization)
}

func FuzzReadJepsen(f *testing.F) {
	f.Add("INFO  jepsen.util - 0\t:invoke\t:cas\t[1 2]\nINFO  jepsen.util - 0\t:ok\t:cas\t[1 2]\n")
	f.Add("INFO  jepsen.util - 0\t:invoke\t:read\tnil\nINFO  jepsen.util - 0\t:ok\t:read\t7\n")
	f.Fuzz(func(t *testing.T, s string) {
		ops, err := ReadJepsen(strings.NewReader(s))
		if err != nil {
			return
		}
		for _, op := range ops {
			require.LessOrEqual(t, op.Call, op.Return)
		}
		_, err = CheckRegister(ops, Options{Budget: 100_000})
		require.NoError(t, err)
	})
}

func BenchmarkCheckJepsen(b *testing.B) {
	path := filepath.Join(jepsenDir(b), "etcd_002.log")
	for b.Loop() {
		res, err := CheckJepsen(path)
		require.NoError(b, err)
		require.Equal(b, VerdictOK, res.Verdict)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "logs/s")
}

// TestCheckRegisterBudget checks that the register check counts its budget
// in model steps too: short of it the verdict is inconclusive, the same on
// every run, and with it the history is decided.
func TestCheckRegisterBudget(t *testing.T) {
	var ops []RegisterOp
	for i := range 12 {
		ops = append(ops,
			RegisterOp{Process: i % 4, Kind: RegisterWrite, Value: i, Outcome: OutcomeUnknown, Call: int64(4 * i), Return: int64(4*i + 1)},
			RegisterOp{Process: 4 + i%4, Kind: RegisterRead, Value: i, Outcome: OutcomeOK, Call: int64(4*i + 2), Return: int64(4*i + 3)})
	}
	full, err := CheckRegister(ops, Options{})
	require.NoError(t, err)
	require.Equal(t, VerdictOK, full.Verdict, full.Reason)
	require.Positive(t, full.Steps)
	for range 3 {
		res, err := CheckRegister(ops, Options{Budget: full.Steps - 1})
		require.NoError(t, err)
		require.Equal(t, VerdictInconclusive, res.Verdict)
		require.Equal(t, fmt.Sprintf("budget of %d steps exhausted (24 operations)", full.Steps-1), res.Reason)
	}
	res, err := CheckRegister(ops, Options{Budget: full.Steps})
	require.NoError(t, err)
	require.Equal(t, VerdictOK, res.Verdict, res.Reason)
}
