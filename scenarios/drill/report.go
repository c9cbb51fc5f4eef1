package drill

import (
	"fmt"
	"strings"
	"time"

	"github.com/havoclab/havoc/scenarios"
)

// About says what each drill does and what it proves, for help texts.
var About = map[string]string{
	SaveRestore: "saves a snapshot from one member halfway through a load phase (with --faults), restores every member " +
		"from it into a fresh cluster, and proves the restored keyspace equals the checked history at the snapshot's " +
		"revision; the restored cluster must then serve linearizably. Writes acknowledged after the snapshot are " +
		"correctly absent.",
	DisasterRecovery: "like save-restore, but three quarters into the load a majority of the members is lost for " +
		"good and, at the end of the load phase, the cluster is rebuilt from the snapshot. The writes acknowledged after the snapshot are listed: " +
		"losing them is expected (a restore goes back to its snapshot); the recovery time runs from the loss to the " +
		"first request the rebuilt cluster serves.",
	FollowerCatchUp: "partitions one follower until the leader has compacted its log past the follower's " +
		"position, heals, and requires the follower to catch up through a raft snapshot and every member to converge " +
		"(same HashKV).",
	RollingRestart: "restarts every member in turn under load, saving a snapshot from the leader between " +
		"restarts; the cluster must keep a leader (no gap longer than an election), the snapshots' revisions must " +
		"not go back, and the history must be linearizable.",
}

// Report is the outcome of one drill.
type Report struct {
	Name string `json:"name"`
	Seed uint64 `json:"seed"`
	// Backend is "" for the simulator, "process/havoc", "docker/etcd" and so on for a
	// real drill, whose times are wall-clock: SaveWall,
	// RestoreWall, ServeWall, RecoveryWall.
	Backend string `json:"backend,omitempty"`
	// SnapshotBytes is the size of the (last) snapshot file; SnapshotRevision
	// its revision.
	SnapshotBytes    int64 `json:"snapshot_bytes"`
	SnapshotRevision int64 `json:"snapshot_revision"`
	// SaveAt is the virtual time the (last) save began.
	SaveAt       time.Duration `json:"save_at"`
	SaveVirtual  time.Duration `json:"save_virtual"`
	SaveWall     time.Duration `json:"save_wall"`
	RestoreWall  time.Duration `json:"restore_wall"`
	ServeVirtual time.Duration `json:"serve_virtual"`
	// RecoveryVirtual (disaster-recovery) is the virtual time from the loss of
	// the majority to the restored cluster's first acknowledged operation.
	RecoveryVirtual time.Duration `json:"recovery_virtual,omitempty"`
	// ServeWall (real drills) is the wall time from the restored cluster's
	// launch (after the restore) to its first linearizable read; for
	// follower-catch-up, from the heal to the follower's catch-up.
	ServeWall time.Duration `json:"serve_wall,omitempty"`
	// RecoveryWall (real disaster-recovery) is the wall time from the loss of
	// the majority to the restored cluster's first acknowledged write.
	RecoveryWall time.Duration `json:"recovery_wall,omitempty"`
	// KeysChecked and RevisionsChecked count the restored keys compared and the
	// acknowledged writes whose revision was looked up.
	KeysChecked      int `json:"keys_checked"`
	RevisionsChecked int `json:"revisions_checked"`
	// Lost (disaster-recovery) lists the acknowledged writes the restored
	// cluster lacks (revision > snapshot revision), as "key=value@revision".
	Lost []string `json:"lost,omitempty"`
	// Notes are the drill's other observations, one line each.
	Notes   []string `json:"notes,omitempty"`
	Verdict string   `json:"verdict"`
	Reason  string   `json:"reason,omitempty"`
}

// Passed reports whether the drill found nothing wrong.
func (r *Report) Passed() bool { return r.Verdict == scenarios.VerdictOK }

func (r *Report) fail(verdict, format string, args ...any) {
	if r.Verdict == "" || r.Verdict == scenarios.VerdictOK {
		r.Verdict, r.Reason = verdict, fmt.Sprintf(format, args...)
	}
}

func (r *Report) notef(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// String is the report as a few readable lines.
func (r *Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "drill %s seed %d", r.Name, r.Seed)
	if r.Backend != "" {
		fmt.Fprintf(&b, " on %s", r.Backend)
	}
	fmt.Fprintf(&b, ": %s", r.Verdict)
	if r.Reason != "" {
		fmt.Fprintf(&b, " (%s)", r.Reason)
	}
	// Only the lines that apply to the drill: follower-catch-up saves nothing,
	// only save-restore and disaster-recovery restore and compare keys.
	switch {
	case r.SnapshotBytes == 0:
	case r.Backend != "":
		fmt.Fprintf(&b, "\n  snapshot %d bytes at revision %d, save began at %s, took %s",
			r.SnapshotBytes, r.SnapshotRevision, r.SaveAt.Round(time.Millisecond), r.SaveWall.Round(time.Millisecond))
	default:
		fmt.Fprintf(&b, "\n  snapshot %d bytes at revision %d, saved at %s (virtual %s, wall %s)",
			r.SnapshotBytes, r.SnapshotRevision, r.SaveAt, r.SaveVirtual, r.SaveWall.Round(time.Microsecond))
	}
	switch {
	case r.RestoreWall > 0 && r.Backend != "":
		fmt.Fprintf(&b, "\n  restore %s, serving after %s", r.RestoreWall.Round(time.Millisecond), r.ServeWall.Round(time.Millisecond))
		if r.RecoveryWall > 0 {
			fmt.Fprintf(&b, ", recovery %s", r.RecoveryWall.Round(time.Millisecond))
		}
	case r.RestoreWall > 0:
		fmt.Fprintf(&b, "\n  restore wall %s, serving after %s virtual", r.RestoreWall.Round(time.Microsecond), r.ServeVirtual)
		if r.RecoveryVirtual > 0 {
			fmt.Fprintf(&b, ", recovery %s virtual", r.RecoveryVirtual)
		}
	case r.ServeWall > 0 && r.Backend != "":
		fmt.Fprintf(&b, "\n  caught up %s after the heal", r.ServeWall.Round(time.Millisecond))
	}
	if r.KeysChecked > 0 || r.RevisionsChecked > 0 {
		fmt.Fprintf(&b, "\n  restored keyspace checked: %d keys, %d revisions", r.KeysChecked, r.RevisionsChecked)
	}
	if len(r.Lost) > 0 {
		if r.Name == DisasterRecovery {
			fmt.Fprintf(&b, "\n  %d writes were acknowledged after the snapshot (revision > %d), so the restored cluster lacks them:"+
				" expected, a restore goes back to its snapshot (the recovery point)", len(r.Lost), r.SnapshotRevision)
		} else {
			fmt.Fprintf(&b, "\n  %d acknowledged writes lost", len(r.Lost))
		}
		const shown = 10
		for _, l := range r.Lost[:min(shown, len(r.Lost))] {
			fmt.Fprintf(&b, "\n    %s", l)
		}
		if len(r.Lost) > shown {
			fmt.Fprintf(&b, "\n    ... and %d more (--json lists them all)", len(r.Lost)-shown)
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "\n  %s", n)
	}
	return b.String()
}
