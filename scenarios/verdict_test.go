package scenarios

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/havoclab/havoc/chaos"
	"github.com/havoclab/havoc/cluster"
	"github.com/havoclab/havoc/internal/tamper"
	"github.com/havoclab/havoc/internal/testhook"
	"github.com/havoclab/havoc/linearizability"
	"github.com/havoclab/havoc/sim"
)

// raftPanic is the panic raft raises when a follower's log lost entries the
// leader knows it has (seen in a sweep).
const raftPanic = "tocommit(3492) is out of range [lastIndex(3491)]. Was the raft log corrupted, truncated, or lost?"

// panicAt makes member panic at virtual time at, inside its own host (as a
// panic in its raft step would).
func panicAt(member string, at time.Duration) func(w *sim.World, cl *cluster.Sim) {
	return func(w *sim.World, cl *cluster.Sim) {
		w.ScheduleAt(at, "inject", func() {
			w.Host(member).After(0, func() { panic(raftPanic + "\n\ngoroutine 1 [running]:") })
		})
	}
}

// inject sets testhook.Sim for the rest of the test.
func inject(t *testing.T, fn func(w *sim.World, cl *cluster.Sim)) {
	testhook.Sim = fn
	t.Cleanup(func() { testhook.Sim = nil })
}

// TestMemberPanicIsAVerdict: a member that panics ends the run with a failing
// verdict naming it and quoting the panic, and leaves the artifacts with the
// stack; the run itself returns normally.
func TestMemberPanicIsAVerdict(t *testing.T) {
	out := t.TempDir()
	c := Config{Seed: 5, Duration: 5 * time.Second, Faults: []chaos.Kind{chaos.Crash}, Out: out}
	inject(t, panicAt("m2", 3*time.Second))
	res, err := RunSim(c)
	require.NoError(t, err)
	require.Equal(t, VerdictPanic, res.Verdict)
	require.Contains(t, res.Reason, "member m2 panicked at 3.")
	require.Contains(t, res.Reason, raftPanic)
	require.NotContains(t, res.Reason, "goroutine")
	require.Greater(t, res.Operations, 100, "the history up to the panic is kept and checked")
	require.Equal(t, filepath.Join(out, "seed-5"), res.Dir)
	for _, f := range []string{"summary.txt", "panic.txt", "history.json.gz", "trace.log.gz", "schedule.txt", "config.json"} {
		require.FileExists(t, filepath.Join(res.Dir, f))
	}
	summary, err := os.ReadFile(filepath.Join(res.Dir, "summary.txt"))
	require.NoError(t, err)
	require.Contains(t, string(summary), "verdict: member-panic")
	require.Contains(t, string(summary), "verdict_test.go", "the stack is in the summary")
	trace := readGzip(t, filepath.Join(res.Dir, "trace.log.gz"))
	require.Contains(t, string(trace), "m2 panic: "+raftPanic)
}

// TestDivergenceIsAVerdict: a replica that differs from the others although
// every member is up, led and at the same applied index is reported as
// divergence naming the first differing revision, not as a lack of liveness;
// the history is still checked (the corrupted value, if read, is a second
// finding).
func TestDivergenceIsAVerdict(t *testing.T) {
	var corruptedAt int64
	inject(t, func(w *sim.World, cl *cluster.Sim) {
		w.ScheduleAt(3*time.Second, "corrupt", func() {
			require.NoError(t, cl.Corrupt("m2", func(db string) (err error) { corruptedAt, err = tamper.FlipNewestValue(db); return err }))
		})
	})
	c := Config{Seed: 3, Duration: 5 * time.Second, LivenessTimeout: 5 * time.Second}
	// A compaction past the corrupted revision (after the key is written
	// again) would remove the corruption from every HashKV.
	c.Workload.Mix = slices.DeleteFunc(slices.Clone(DefaultMix), func(w Weight) bool { return w.Kind == linearizability.KindCompact })
	res, err := RunSim(c)
	require.NoError(t, err)
	t.Log(res.Reason)
	require.Equal(t, VerdictDivergence, res.Verdict)
	require.Positive(t, corruptedAt)
	require.Contains(t, res.Reason, fmt.Sprintf("and m2 first differ at revision %d ", corruptedAt))
	require.NotContains(t, res.Reason, "condition not met")
}

// TestReasonIsShortAndSaysWhatHappened: a violation found in a history whose
// range returned 64 keys reads as one line of at most ReasonMax bytes naming
// the anomaly, the key, the operations with their client, member and time,
// and the faults active then; the checker's full text goes to the detail.
func TestReasonIsShortAndSaysWhatHappened(t *testing.T) {
	l := linearizability.OutcomeOK
	hist := []linearizability.Operation{}
	var kvs []linearizability.KV
	for i := range 64 {
		key := fmt.Sprintf("/havoc/key-%02d", i)
		val := fmt.Sprintf("value-written-by-client-3-number-%02d", i)
		hist = append(hist, linearizability.Operation{ID: int64(i + 1), Client: 3, Member: "m2", Kind: linearizability.KindPut, Key: key, Value: val,
			Call: int64(time.Second) + int64(i)*int64(time.Millisecond), Return: int64(time.Second) + int64(i)*int64(time.Millisecond) + 1, Outcome: l,
			Resp: linearizability.Response{Revision: int64(i + 2)}})
		kvs = append(kvs, linearizability.KV{Key: key, Value: val, ModRevision: int64(i + 2), CreateRevision: int64(i + 2), Version: 1})
	}
	kvs[7].Value = "never-written"
	hist = append(hist, linearizability.Operation{ID: 65, Client: 5, Member: "m1", Kind: linearizability.KindRange, Prefix: "/havoc/",
		Call: int64(12345 * time.Millisecond), Return: int64(12400 * time.Millisecond), Outcome: l,
		Resp: linearizability.Response{Revision: 65, KVs: kvs}})
	r := &Result{History: hist}
	r.faultStarted(10*time.Second, "partition [m1] | [m2 m3]")
	w := r.faultStarted(11*time.Second, "crash m3 (torn=false)")
	r.faultEnded(w, 12*time.Second)
	r.check(Config{CheckBudget: linearizability.DefaultBudget}, false, nil)
	r.finish()
	t.Log(r.Reason)
	require.Equal(t, VerdictIllegal, r.Verdict)
	require.LessOrEqual(t, len(r.Reason), ReasonMax)
	require.Contains(t, r.Reason, `key "/havoc/key-07"`)
	require.Contains(t, r.Reason, "#65 range by c05 via m1 at 12.345s")
	require.Contains(t, r.Reason, "faults active: partition [m1] | [m2 m3]")
	require.NotContains(t, r.Reason, "crash m3", "the crash had ended")
	require.NotContains(t, r.Reason, "key-08", "not every key-value of the range")
	require.Greater(t, len(r.Findings[0].Detail), ReasonMax, "the checker's full text is kept")

	// Many lease violations: the first and a count.
	var errs []string
	for i := range 19 {
		errs = append(errs, fmt.Sprintf("lease 1f%02d: key %q (put at revision %d) gone at 31.5s (read at revision %d from member 2a), protected until 33.1s", i, fmt.Sprintf("/havoc/lease-key-%02d", i), 100+i, 200+i))
	}
	reason, detail := listReasonOf(errs, "lease violations")
	require.LessOrEqual(t, len(reason), ReasonMax)
	require.Contains(t, reason, "/havoc/lease-key-00")
	require.NotContains(t, reason, "lease-key-01")
	require.Contains(t, reason, "(+18 more lease violations)")
	require.Contains(t, detail, "lease-key-18")

	long := clip(strings.Repeat("é", 400), ReasonMax)
	require.LessOrEqual(t, len(long), ReasonMax)
	require.True(t, utf8.ValidString(long), "cut on a rune boundary")
	require.True(t, strings.HasSuffix(long, "(full text in summary.txt)"))
}

func TestCaveat(t *testing.T) {
	r := &Result{}
	require.Empty(t, r.Caveat())
	r.Skipped = []chaos.Kind{chaos.Duplicate, chaos.Reorder}
	require.Equal(t, "no faults applied: skipped duplicate, reorder", r.Caveat())
	r.FaultsApplied = 2
	require.Equal(t, "skipped: duplicate, reorder", r.Caveat())
}

// TestHarnessPanicIsAnError: a panic outside every simulated host (a harness
// bug) is an error of RunSim, not a crash of its caller.
func TestHarnessPanicIsAnError(t *testing.T) {
	inject(t, func(w *sim.World, cl *cluster.Sim) { panic("harness bug\nmore") })
	_, err := RunSim(Config{Seed: 9, Duration: 2 * time.Second})
	require.ErrorIs(t, err, ErrHarnessPanic)
	require.ErrorContains(t, err, "(seed 9): harness bug")
	require.NotContains(t, err.Error(), "more")
}

// TestCorruptionProbeRunsAndPasses: every simulated run of several members
// ends by flipping a stored value on its last member (the trace says which
// revision); on a correct store HashKV tells the member apart and the run
// passes (with the mutant hash-skip-bucket, HashKV blind to values, it is
// reported as divergence: harness mutants).
func TestCorruptionProbeRunsAndPasses(t *testing.T) {
	res, err := RunSim(Config{Seed: 2, Duration: 3 * time.Second, Trace: true, Workload: Workload{Clients: 4, Rate: 200}})
	require.NoError(t, err)
	require.True(t, res.Passed(), "%s: %s", res.Verdict, res.Reason)
	require.Regexp(t, `corruption probe: flipped the value of revision \d+ on m3`, string(res.Trace))
}
