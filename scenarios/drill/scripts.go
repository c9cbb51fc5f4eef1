package drill

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/havoclab/havoc/linearizability"
	"github.com/havoclab/havoc/scenarios"
	"github.com/havoclab/havoc/store/snapshot"
)

// The four drills, each written once over Env and Cluster.

// saveRestore is save-restore and (lose=true) disaster-recovery:
//  1. cluster 1 runs the workload (with faults for save-restore); at
//     Duration/2 a snapshot is saved from a member (revision R);
//  2. save-restore: the load continues to Duration, everything heals and the
//     members must converge; disaster-recovery: at 3/4 Duration a majority of
//     the members is lost for good, and the operator restores at Duration;
//  3. cluster 1's history is checked;
//  4. a fresh cluster is restored from the file and must serve; its restored
//     keyspace is compared with cluster 1's history (checkRestored);
//  5. the restored cluster serves the workload for After, must converge, and
//     its history (after a preamble that recreates the restored keys) is
//     checked.
func saveRestore(env Env, c *Config, r *Report, lose bool) error {
	spec := ClusterSpec{Name: "c1"}
	if !lose {
		spec.Faults = faultSchedule(c)
	}
	c1, err := env.NewCluster(spec)
	if err != nil {
		return err
	}
	defer c1.Close()
	if err := c1.Sleep(c.Duration / 2); err != nil {
		return err
	}
	snapPath := filepath.Join(env.Dir(), "backup.snap")
	sv, err := save(c1, snapPath, r)
	if err != nil {
		return err
	}
	var lossAt time.Duration
	if lose {
		if err := c1.Sleep(c.Duration*3/4 - c1.Now()); err != nil {
			return err
		}
		lossAt = c1.Now()
		lost := c1.Members()[:c.Members/2+1]
		for _, name := range lost {
			_ = c1.Crash(name, false)
		}
		r.notef("lost members %s for good at %s", strings.Join(lost, ","), lossAt)
	}
	if err := c1.Sleep(c.Duration - c1.Now()); err != nil {
		return err
	}
	if lose {
		if err := c1.StopLoad(30 * time.Second); err != nil {
			r.fail(scenarios.VerdictNoLiveness, "clients of the broken cluster did not settle: %v", err)
			return nil
		}
	} else {
		_ = c1.HealAll()
		if err := c1.Settle(30 * time.Second); err != nil {
			r.fail(scenarios.VerdictNoLiveness, "cluster 1 did not converge: %v", err)
			return nil
		}
	}
	if !healthy(c1, r, "cluster 1") {
		return nil
	}
	h1 := c1.History()
	if ok, err := check(r, c, "cluster 1 history", nil, h1); !ok {
		return err
	}

	c2, err := env.NewCluster(ClusterSpec{Name: "restored", ClientBase: 100, RestoreFrom: snapPath, PastFloor: r.SnapshotRevision + 1})
	if err != nil || c2 == nil {
		return err
	}
	defer c2.Close()
	c1.Close() // the survivors of a disaster go too: the cluster was rebuilt from the backup
	err = c2.Until(30*time.Second, func() (bool, string) {
		return c2.Acknowledged() > 0 || c2.Err() != nil, "no operation acknowledged"
	})
	if err != nil || c2.Err() != nil {
		r.fail(scenarios.VerdictNoLiveness, "the restored cluster never served: %v %v", err, c2.Err())
		return nil
	}
	serveAt := c2.Now()
	if env.Virtual() {
		r.ServeVirtual = serveAt
	}
	if lose { // from the loss to the restored cluster's first acknowledged operation
		recovery := (c.Duration - lossAt) + serveAt
		if env.Virtual() {
			r.RecoveryVirtual = recovery
		} else {
			r.RecoveryWall = recovery
		}
	}
	kv, err := c2.Keyspace()
	if err != nil {
		r.fail(scenarios.VerdictFailed, "restored backend does not open: %v", err)
		return nil
	}
	preamble, err := checkRestored(kv, h1, sv.Start, r, lose)
	_ = kv.Close()
	if err != nil || r.Verdict != "" {
		return err
	}
	if err := c2.Sleep(c.After); err != nil {
		return err
	}
	if err := c2.Settle(30 * time.Second); err != nil {
		r.fail(scenarios.VerdictNoLiveness, "restored cluster did not converge: %v", err)
		return nil
	}
	if !healthy(c2, r, "restored cluster") {
		return nil
	}
	h2 := c2.History()
	if _, err := check(r, c, "restored cluster history", preamble, h2); err != nil {
		return err
	}
	r.notef("restored cluster: %d operations after a preamble of %d", len(h2), len(preamble))
	return nil
}

// followerCatchUp partitions one follower long enough that the leader
// compacts its log past the follower's position, lets writes continue, heals,
// and requires the follower to catch up (through a raft snapshot) and every
// member to converge; then the history is checked.
//
// Where the backend reports snapshot indexes (the simulator) the drill waits
// for the leader's snapshot to pass the follower's next entry plus the
// catch-up entries, and requires the follower's snapshot index to move. A
// real member reports only its raft index, so the drill waits until the
// leader's index has passed the follower's by the catch-up entries plus two
// snapshot intervals (a compaction must have passed it), and for the
// follower to apply up to there.
func followerCatchUp(env Env, c *Config, r *Report) error {
	cl, err := env.NewCluster(ClusterSpec{Name: "c1", CatchUp: true})
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := cl.Sleep(2 * time.Second); err != nil {
		return err
	}
	var leader string
	if err := cl.Until(10*time.Second, func() (bool, string) { leader = cl.Leader(); return leader != "", "no leader" }); err != nil {
		r.fail(scenarios.VerdictNoLiveness, "no leader after 2 s: %v", err)
		return nil
	}
	follower := others(cl.Members(), leader)[0]
	_ = cl.Partition([]string{follower}, others(cl.Members(), follower))
	before, err := cl.Status(follower)
	if err != nil {
		return fmt.Errorf("drill: status of %s: %w", follower, err)
	}
	r.notef("partitioned follower %s at %s (applied %d%s)", follower, cl.Now(), before.Applied, snapshotNote(before))
	catchUp := env.CatchUpEntries()
	var lead Status
	var leadName string
	compacted := func() (bool, string) {
		leadName = cl.Leader()
		if leadName == "" || leadName == follower {
			return false, "no leader on the majority side"
		}
		st, err := cl.Status(leadName)
		if err != nil {
			return false, err.Error()
		}
		lead = st
		if st.SnapshotKnown {
			return st.SnapshotIndex > before.Applied+catchUp+1, fmt.Sprintf("leader %s at snapshot index %d", leadName, st.SnapshotIndex)
		}
		return st.Committed > before.Applied+catchUp+2*c.SnapshotCount+50, fmt.Sprintf("leader %s at raft index %d", leadName, st.Committed)
	}
	if err := cl.Until(10*c.Duration, compacted); err != nil {
		r.fail(scenarios.VerdictNoLiveness, "the leader never compacted past the follower: %v", err)
		return nil
	}
	target := lead.Committed
	if lead.SnapshotKnown {
		target = lead.SnapshotIndex
		r.notef("leader %s snapshot index %d at %s: log compacted past the follower's %d", leadName, lead.SnapshotIndex, cl.Now(), before.Applied)
	} else {
		r.notef("leader %s at raft index %d at %s: log compacted past the follower's %d", leadName, lead.Committed, cl.Now(), before.Applied)
	}
	_ = cl.HealNetwork()
	healAt := cl.Now()
	var after Status
	caught := func() (bool, string) {
		st, err := cl.Status(follower)
		if err != nil {
			return false, err.Error()
		}
		after = st
		ok := st.Applied >= target && (!st.SnapshotKnown || st.SnapshotIndex+catchUp >= lead.SnapshotIndex)
		return ok, fmt.Sprintf("follower %+v, leader %+v", st, lead)
	}
	if err := cl.Until(30*time.Second, caught); err != nil {
		r.fail(scenarios.VerdictNoLiveness, "follower %s did not catch up: %v", follower, err)
		return nil
	}
	took := cl.Now() - healAt
	if env.Virtual() {
		r.ServeVirtual = took
	} else {
		r.ServeWall = took
	}
	if after.SnapshotKnown {
		r.notef("follower %s caught up in %s: snapshot index %d -> %d, applied %d", follower, took, before.SnapshotIndex, after.SnapshotIndex, after.Applied)
		if after.SnapshotIndex <= before.SnapshotIndex {
			r.fail(scenarios.VerdictFailed, "follower snapshot index did not move (%d)", after.SnapshotIndex)
		}
	} else {
		r.notef("follower %s caught up in %s: applied %d", follower, took, after.Applied)
	}
	if err := cl.Sleep(2 * time.Second); err != nil { // writes continue after the catch-up
		return err
	}
	if err := cl.Settle(30 * time.Second); err != nil {
		r.fail(scenarios.VerdictNoLiveness, "cluster did not converge: %v", err)
		return nil
	}
	if !healthy(cl, r, "cluster") {
		return nil
	}
	h, rev, err := cl.HashKV(follower)
	if err != nil {
		return fmt.Errorf("drill: HashKV of %s: %w", follower, err)
	}
	r.notef("converged: HashKV %08x at revision %d on every member", h, rev)
	return checkNoted(r, c, cl)
}

// rollingRestart stops every member in turn (1 s down, restart, wait until it
// has applied the leader's commit index), saving a snapshot between restarts.
// The cluster must never be without a leader for longer than MaxLeaderGap
// (quorum kept), the snapshots must verify with non-decreasing revisions, the
// members must converge and the history must be linearizable.
func rollingRestart(env Env, c *Config, r *Report) error {
	cl, err := env.NewCluster(ClusterSpec{Name: "c1"})
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := cl.Sleep(2 * time.Second); err != nil {
		return err
	}
	worstGap := cl.WatchLeader()
	var prevRev int64
	for i, name := range cl.Members() {
		if err := cl.Stop(name); err != nil {
			return fmt.Errorf("drill: stop %s: %w", name, err)
		}
		if err := cl.Sleep(time.Second); err != nil {
			return err
		}
		if err := cl.Restart(name); err != nil {
			return fmt.Errorf("drill: restart %s: %w", name, err)
		}
		caught := func() (bool, string) {
			l := cl.Leader()
			if l == "" {
				return false, "no leader"
			}
			ls, err := cl.Status(l)
			if err != nil {
				return false, err.Error()
			}
			s, err := cl.Status(name)
			if err != nil {
				return false, err.Error()
			}
			return s.Applied >= ls.Committed, fmt.Sprintf("%s applied %d, leader %s committed %d", name, s.Applied, l, ls.Committed)
		}
		if err := cl.Until(30*time.Second, caught); err != nil {
			r.fail(scenarios.VerdictNoLiveness, "member %s did not catch up after its restart: %v", name, err)
			return nil
		}
		caughtAt := cl.Now()
		sv, err := save(cl, filepath.Join(env.Dir(), fmt.Sprintf("rolling-%d.snap", i)), r)
		if err != nil {
			return err
		}
		if r.SnapshotRevision < prevRev {
			r.fail(scenarios.VerdictFailed, "snapshot after restarting %s is at revision %d, before the previous %d", name, r.SnapshotRevision, prevRev)
		}
		prevRev = r.SnapshotRevision
		r.notef("restarted %s, caught up by %s; snapshot from %s: %d bytes at revision %d", name, caughtAt, sv.Source, r.SnapshotBytes, r.SnapshotRevision)
		if err := cl.Sleep(time.Second); err != nil {
			return err
		}
	}
	gap := worstGap()
	r.notef("longest time without a leader: %s", gap)
	if gap > env.MaxLeaderGap() {
		r.fail(scenarios.VerdictNoLiveness, "no leader for %s (quorum lost?)", gap)
	}
	if err := cl.Settle(30 * time.Second); err != nil {
		r.fail(scenarios.VerdictNoLiveness, "cluster did not converge: %v", err)
		return nil
	}
	if !healthy(cl, r, "cluster") {
		return nil
	}
	return checkNoted(r, c, cl)
}

// save takes a snapshot from cl into path, verifies it and records it in the
// report.
func save(cl Cluster, path string, r *Report) (Save, error) {
	sv, err := cl.Save(path)
	if err != nil {
		return sv, err
	}
	r.SaveWall += sv.Wall
	st, err := snapshot.Status(path)
	if err != nil {
		return sv, fmt.Errorf("drill: status of the fresh snapshot: %w", err)
	}
	if err := snapshot.Verify(path); err != nil {
		return sv, fmt.Errorf("drill: the fresh snapshot does not verify: %w", err)
	}
	r.SnapshotBytes, r.SnapshotRevision, r.SaveAt, r.SaveVirtual = sv.Bytes, st.Revision, sv.Start, sv.Waited
	return sv, nil
}

func snapshotNote(st Status) string {
	if !st.SnapshotKnown {
		return ""
	}
	return fmt.Sprintf(", snapshot index %d", st.SnapshotIndex)
}

// healthy fails r if a member of cl failed on its own.
func healthy(cl Cluster, r *Report, what string) bool {
	if err := cl.Err(); err != nil {
		r.fail(scenarios.VerdictFailed, "%s: %v", what, err)
		return false
	}
	return true
}

// checkNoted notes the size of cl's history and checks it.
func checkNoted(r *Report, c *Config, cl Cluster) error {
	h := cl.History()
	r.notef("history: %d operations, %d acknowledged", len(h), cl.Acknowledged())
	_, err := check(r, c, "history", nil, h)
	return err
}

// check checks a history (after a preamble, if any) and fails r if it is not
// linearizable; what names the history in the failure. ok is false when r
// failed or the check could not run.
func check(r *Report, c *Config, what string, preamble, ops []linearizability.Operation) (ok bool, err error) {
	if len(preamble) > 0 {
		ops = prependHistory(preamble, ops)
	}
	cr, err := linearizability.Check(ops, linearizability.Options{Budget: c.CheckBudget})
	if err != nil {
		return false, err
	}
	switch cr.Verdict {
	case linearizability.VerdictOK:
		return true, nil
	case linearizability.VerdictIllegal:
		r.fail(scenarios.VerdictIllegal, "%s: %s", what, cr.Reason)
	default:
		r.fail(scenarios.VerdictInconclusive, "%s: %s", what, cr.Reason)
	}
	return false, nil
}
