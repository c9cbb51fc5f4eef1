package scenarios

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/havoclab/havoc/chaos"
	"github.com/havoclab/havoc/cluster"
	"github.com/havoclab/havoc/linearizability"
	"github.com/havoclab/havoc/sim"
)

// traceLine is one line of a run's trace: virtual time, source, text.
type traceLine struct {
	at       time.Duration
	src, msg string
}

// runFaults runs a short traced simulation with schedule s, requires it to
// pass, and returns its trace split into lines, up to the corruption probe
// that ends every run (its crash and restart are not the schedule's).
func runFaults(t *testing.T, seed uint64, dur time.Duration, s chaos.Schedule) (*Result, []traceLine) {
	t.Helper()
	res, err := RunSim(Config{Seed: seed, Duration: dur, Trace: true, Schedule: s})
	require.NoError(t, err)
	require.True(t, res.Passed(), "%s: %s", res.Verdict, res.Reason)
	var lines []traceLine
	for l := range strings.SplitSeq(string(res.Trace), "\n") {
		f := strings.SplitN(l, " ", 3)
		if len(f) < 3 {
			continue
		}
		sec, err := strconv.ParseFloat(f[0], 64)
		require.NoError(t, err, l)
		if f[1] == "chaos" && strings.HasPrefix(f[2], "corruption probe") {
			break
		}
		lines = append(lines, traceLine{at: time.Duration(sec * 1e9), src: f[1], msg: f[2]})
	}
	return res, lines
}

// grepTrace returns the lines of src (any source when "") whose text matches re.
func grepTrace(lines []traceLine, src, re string) []traceLine {
	rx := regexp.MustCompile(re)
	var out []traceLine
	for _, l := range lines {
		if (src == "" || l.src == src) && rx.MatchString(l.msg) {
			out = append(out, l)
		}
	}
	return out
}

// leaderAt returns whom member m believed to lead just before at.
func leaderAt(lines []traceLine, m string, at time.Duration) string {
	lead := ""
	for _, l := range grepTrace(lines, m, `^leader is `) {
		if l.at < at {
			lead = strings.TrimPrefix(l.msg, "leader is ")
		}
	}
	return lead
}

// startedOn returns the member named in the "chaos start" line of kind.
func startedOn(t *testing.T, lines []traceLine, re string) string {
	t.Helper()
	starts := grepTrace(lines, "chaos", `^start `+re)
	require.Len(t, starts, 1, re)
	m := regexp.MustCompile(re).FindStringSubmatch(strings.TrimPrefix(starts[0].msg, "start "))
	require.Len(t, m, 2)
	return m[1]
}

func TestKillLeaderCrashesTheLeader(t *testing.T) {
	at := 3 * time.Second
	_, lines := runFaults(t, 11, 8*time.Second, chaos.Schedule{{At: at, Duration: 2 * time.Second, Kind: chaos.KillLeader, Torn: true}})
	m := startedOn(t, lines, `kill-leader (m\d) \(torn=true\)`)
	require.Equal(t, m, leaderAt(lines, m, at), "the crashed member led when the fault started")
	require.Len(t, grepTrace(lines, m, `^crash torn$`), 1)
	restarts := grepTrace(lines, m, `^restart$`)
	require.Len(t, restarts, 1)
	require.Equal(t, at+2*time.Second, restarts[0].at)
}

func TestPowerLossCrashesAtOnceAndRestartsOneByOne(t *testing.T) {
	at := 3 * time.Second
	_, lines := runFaults(t, 12, 10*time.Second, chaos.Schedule{{At: at, Duration: time.Second, Kind: chaos.PowerLoss,
		Members: []int{0, 1, 2}, Latency: 500 * time.Millisecond}})
	for i, m := range []string{"m1", "m2", "m3"} {
		crashes := grepTrace(lines, m, `^crash$`)
		require.Len(t, crashes, 1, m)
		require.Equal(t, at, crashes[0].at, "%s crashed with the others", m)
		restarts := grepTrace(lines, m, `^restart$`)
		require.Len(t, restarts, 1, m)
		require.Equal(t, at+time.Second+time.Duration(i)*500*time.Millisecond, restarts[0].at, m)
	}
	// Together, torn, on a majority (two of three).
	_, lines = runFaults(t, 13, 8*time.Second, chaos.Schedule{{At: at, Duration: time.Second, Kind: chaos.PowerLoss,
		Members: []int{1, 2}, Torn: true}})
	for _, m := range []string{"m2", "m3"} {
		require.Equal(t, at, grepTrace(lines, m, `^crash torn$`)[0].at)
		require.Equal(t, at+time.Second, grepTrace(lines, m, `^restart$`)[0].at)
	}
	require.Empty(t, grepTrace(lines, "m1", `^crash`))
}

// TestPartitionUntilSnapshotSendsSnapshot: the follower is kept cut off past
// its window until the leader compacted past it, and healing makes the
// leader send it a snapshot.
func TestPartitionUntilSnapshotSendsSnapshot(t *testing.T) {
	_, lines := runFaults(t, 14, 12*time.Second, chaos.Schedule{{At: 3 * time.Second, Duration: time.Second, Kind: chaos.PartitionUntilSnapshot, Members: []int{0}}})
	m := startedOn(t, lines, `partition (m\d) until`)
	require.NotEqual(t, m, leaderAt(lines, m, 3*time.Second), "a follower is cut off")
	notes := grepTrace(lines, "chaos", `compacted past `+m)
	require.Len(t, notes, 1)
	require.GreaterOrEqual(t, notes[0].at, grepTrace(lines, "chaos", `^end partition `+m)[0].at, "healed after the window's end")
	snaps := grepTrace(lines, "", `^send -> `+m+` type:MsgSnap`)
	require.NotEmpty(t, snaps, "healing must make the leader send a snapshot")
	require.GreaterOrEqual(t, snaps[0].at, notes[0].at)
	require.Less(t, snaps[0].at, 11*time.Second)
}

// TestPauseLeaderPastElectionTimeout: the paused leader misses an election
// (another member leads while it sleeps) and wakes up as a stale leader.
func TestPauseLeaderPastElectionTimeout(t *testing.T) {
	at := 3 * time.Second
	_, lines := runFaults(t, 15, 9*time.Second, chaos.Schedule{{At: at, Duration: 3 * time.Second, Kind: chaos.PauseLeader}})
	m := startedOn(t, lines, `pause-leader (m\d)`)
	require.Equal(t, m, leaderAt(lines, m, at))
	require.Equal(t, at, grepTrace(lines, m, `^pause$`)[0].at)
	require.Equal(t, at+3*time.Second, grepTrace(lines, m, `^resume`)[0].at)
	other := "m1"
	if m == other {
		other = "m2"
	}
	newLeader := leaderAt(lines, other, at+3*time.Second)
	require.NotEqual(t, m, newLeader, "an election happened while %s slept", m)
	require.NotEmpty(t, newLeader)
}

func TestClockJump(t *testing.T) {
	_, lines := runFaults(t, 16, 8*time.Second, chaos.Schedule{
		{At: 3 * time.Second, Duration: 2 * time.Second, Kind: chaos.ClockJump, Members: []int{1}, Latency: -90 * time.Second}})
	require.Equal(t, 3*time.Second, grepTrace(lines, "m2", `^clock offset=-1m30s drift=0ppm$`)[0].at)
	require.Equal(t, 5*time.Second, grepTrace(lines, "m2", `^clock offset=0s drift=0ppm$`)[0].at)
}

// TestOverlappingFaultsHealOnlyTheirOwn: a partition overlaps a loss and a
// crash. When the loss ends first, the partition must still hold (before,
// every heal healed the whole network); when the partition ends, its member
// hears from the others again.
func TestOverlappingFaultsHealOnlyTheirOwn(t *testing.T) {
	s := chaos.Schedule{
		{At: 2 * time.Second, Duration: 4 * time.Second, Kind: chaos.PartitionMinority, Members: []int{2}},
		{At: 2500 * time.Millisecond, Duration: time.Second, Kind: chaos.Loss, Rate: 0.5},
		{At: 3 * time.Second, Duration: time.Second, Kind: chaos.Crash, Members: []int{0}},
		{At: 3200 * time.Millisecond, Duration: 2 * time.Second, Kind: chaos.Delay, Latency: 50 * time.Millisecond},
	}
	_, lines := runFaults(t, 17, 9*time.Second, s)
	var cutRecv, lossDrops, after int
	for _, l := range lines {
		switch {
		case l.src == "m3" && strings.HasPrefix(l.msg, "recv <- m") && l.at > 2*time.Second+10*time.Millisecond && l.at < 6*time.Second:
			cutRecv++
		case strings.HasSuffix(l.msg, "(loss)") && l.at >= 3500*time.Millisecond:
			lossDrops++
		case l.src == "m3" && strings.HasPrefix(l.msg, "recv <- m") && l.at > 6*time.Second && l.at < 7*time.Second:
			after++
		}
	}
	require.Zero(t, cutRecv, "m3 stays cut off until its partition ends, whatever else heals")
	require.Zero(t, lossDrops, "the loss ended at 3.5 s")
	require.Positive(t, after, "m3 hears from the others once its partition ends")
	require.Positive(t, len(grepTrace(lines, "", `\(loss\)$`)), "the loss did drop messages")
	require.Equal(t, 4*time.Second, grepTrace(lines, "m1", `^restart$`)[0].at)
}

// TestCrashAtEveryPoint: each crash point fires inside its window on the
// armed member, the member is restarted at the window's end, and the run
// passes (the store is crash-safe at that step).
func TestCrashAtEveryPoint(t *testing.T) {
	for i, p := range chaos.CrashPoints {
		t.Run(p, func(t *testing.T) {
			s := chaos.Schedule{{At: 2 * time.Second, Duration: 4 * time.Second, Kind: chaos.CrashAt, Point: p, Torn: i%2 == 0}}
			switch p {
			case "snapshot-install":
				// Only a follower fed a snapshot passes it.
				s = append(chaos.Schedule{{At: 2 * time.Second, Duration: 500 * time.Millisecond, Kind: chaos.PartitionUntilSnapshot}}, s...)
				s[1].Duration = 12 * time.Second
			case "vote-persisted", "apply-mid", "after-vote":
				// An election, and a follower catching up in batches.
				s = append(chaos.Schedule{{At: 2 * time.Second, Duration: 2 * time.Second, Kind: chaos.IsolateLeader}}, s...)
			case "after-append-response":
				// Any member: only followers send append responses.
			case "compaction":
				// Any member, over a longer window: the workload compacts now and then.
				s[0].Duration = 10 * time.Second
			default:
				s[0].Members = []int{i % 3}
			}
			_, lines := runFaults(t, uint64(20+i), 16*time.Second, s)
			fired := grepTrace(lines, "", `^crash at `+p+`$`)
			require.Len(t, fired, 1, "the point fired once")
			m := fired[0].src
			if len(s[len(s)-1].Members) > 0 {
				require.Equal(t, chaos.MemberName(s[len(s)-1].Members[0]), m)
			}
			require.GreaterOrEqual(t, fired[0].at, 2*time.Second)
			end := 2*time.Second + s[len(s)-1].Duration
			require.Less(t, fired[0].at, end)
			restarts := grepTrace(lines, m, `^restart$`)
			require.NotEmpty(t, restarts)
			require.Equal(t, end, restarts[0].at)
		})
	}
}

// TestClientFaultsInSim: the client-link kinds act on the simulator's client
// hosts. While the clients stop reading a member, it holds its watchers as
// slow (it stops sending past a window and keeps the events in the store) and
// releases them when the clients read again; a client partition makes the
// watchers re-watch elsewhere; the run passes, watch checks included, and no
// member link is touched.
func TestClientFaultsInSim(t *testing.T) {
	var s chaos.Schedule
	for i := range 3 { // each member in turn, shorter than a watcher's patience
		s = append(s, chaos.Fault{At: time.Duration(2+2*i) * time.Second, Duration: 1500 * time.Millisecond, Kind: chaos.ClientStall, Members: []int{i}})
	}
	s = append(s, chaos.Schedule{
		{At: 8 * time.Second, Duration: 2 * time.Second, Kind: chaos.ClientPartition, Members: []int{0, 1}},
		{At: 10500 * time.Millisecond, Duration: time.Second, Kind: chaos.ClientLoss, Rate: 0.3},
		{At: 11 * time.Second, Duration: time.Second, Kind: chaos.ClientDelay, Latency: 100 * time.Millisecond},
	}...)
	res, lines := runFaults(t, 5, 13*time.Second, s)
	require.Equal(t, 6, res.FaultsApplied)
	starts := 0
	for _, e := range res.Watch {
		if e.Type == linearizability.WatchStart {
			starts++
		}
	}
	require.Greater(t, starts, 2, "the watchers re-watched after the cut")
	require.NotEmpty(t, grepTrace(lines, "", `^hold m1->w01$`), "the stall holds what the member sends the watcher")
	require.Empty(t, grepTrace(lines, "", `hold m\d->m\d`), "member links are not held")
	held := grepTrace(lines, "", `^slow watcher \d+ of w0\d: held$`)
	released := grepTrace(lines, "", `^slow watcher \d+ of w0\d: released$`)
	require.NotEmpty(t, held, "a member held a watcher its client did not read")
	require.NotEmpty(t, released, "and released it once the client read again")
	for i, f := range s[:3] {
		m := chaos.MemberName(i)
		for _, l := range lines {
			if l.src != m {
				continue
			}
			if strings.HasPrefix(l.msg, "slow watcher") {
				require.True(t, l.at > f.At && l.at < f.At+f.Duration+time.Second, "%s at %s: %s", m, l.at, l.msg)
			}
		}
		for _, l := range lines {
			if strings.HasPrefix(l.src, "w") && strings.HasPrefix(l.msg, "recv <- "+m+" ") {
				require.False(t, l.at > f.At+50*time.Millisecond && l.at < f.At+f.Duration, "%s heard from %s at %s, during the stall", l.src, m, l.at)
			}
		}
	}
}

// TestMembershipChurnUnderLoad: a run whose members are replaced, re-added as
// learners and promoted, and removed and re-added, under load and beside
// partitions and crashes, passes every check; it ends converged on members
// with new IDs, which every member lists (Converged requires it).
func TestMembershipChurnUnderLoad(t *testing.T) {
	var cl *cluster.Sim
	first := map[string]uint64{}
	inject(t, func(_ *sim.World, c *cluster.Sim) {
		cl = c
		for _, m := range c.Members() {
			first[m] = c.MemberID(m)
		}
	})
	res, err := RunSim(Config{Seed: 3, Duration: 30 * time.Second, Faults: []chaos.Kind{chaos.MemberReplace, chaos.LearnerPromote,
		chaos.RemoveVoter, chaos.IsolateLeader, chaos.Crash}})
	require.NoError(t, err)
	require.True(t, res.Passed(), "%s: %s\n%v", res.Verdict, res.Reason, res.FaultLog)
	require.Greater(t, res.OK, 5000)
	changes := cl.MemberChanges()
	added := 0
	for _, l := range changes {
		if strings.Contains(l, "added through") {
			added++
		}
	}
	require.GreaterOrEqual(t, added, 2, "%v", changes)
	replaced := 0
	for _, m := range cl.Members() {
		require.NotZero(t, cl.MemberID(m))
		if cl.MemberID(m) != first[m] {
			replaced++
		}
	}
	require.Positive(t, replaced, "a slot holds a member with a new ID")
	t.Logf("%d ops; changes: %v", res.Operations, changes)
}

// TestDiskFaultsStopRestartAndReplay: a member whose fsync fails or whose disk
// fills stops on the injected error (no member failure) and is restarted when
// the window ends; torn-write crashes a member at its next sync; a slow disk
// leaves the run correct; and the seed replays byte for byte.
func TestDiskFaultsStopRestartAndReplay(t *testing.T) {
	s := chaos.Schedule{
		{At: 2 * time.Second, Duration: 1500 * time.Millisecond, Kind: chaos.SlowFsync, Members: []int{0, 1, 2}, Latency: 30 * time.Millisecond, Rate: 0.1},
		{At: 4 * time.Second, Duration: time.Second, Kind: chaos.FsyncEIO, Members: []int{0}},
		{At: 6 * time.Second, Duration: time.Second, Kind: chaos.DiskFull, Members: []int{1}},
		{At: 8 * time.Second, Duration: time.Second, Kind: chaos.TornWrite, Members: []int{2}},
	}
	res, lines := runFaults(t, 21, 11*time.Second, s)
	for _, c := range []struct {
		m, stop string
		at      time.Duration
	}{{"m1", `^m1 stopped on an injected disk error .*input/output error`, 4 * time.Second}, {"m2", `^m2 stopped on an injected disk error .*no space left`, 6 * time.Second}} {
		stops := grepTrace(lines, "chaos", c.stop)
		require.Len(t, stops, 1, c.stop)
		require.Less(t, stops[0].at, c.at+time.Second)
		restarts := grepTrace(lines, c.m, `^restart$`)
		require.Len(t, restarts, 1, c.m)
		require.Equal(t, c.at+time.Second, restarts[0].at, "%s restarts when the window ends", c.m)
	}
	require.Len(t, grepTrace(lines, "m3", `^crash at before-sync$`), 1)
	again, err := RunSim(Config{Seed: 21, Duration: 11 * time.Second, Trace: true, Schedule: s})
	require.NoError(t, err)
	require.Equal(t, string(res.Trace), string(again.Trace), "the seed replays byte for byte (in another temporary directory)")
}
