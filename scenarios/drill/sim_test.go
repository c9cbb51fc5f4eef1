package drill

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"

	"github.com/havoclab/havoc/chaos"
	"github.com/havoclab/havoc/scenarios"
)

func drillConfig(seed uint64) Config {
	return Config{Seed: seed, Duration: 6 * time.Second, After: 3 * time.Second, Workload: scenarios.Workload{Rate: 300}}
}

func TestDrills(t *testing.T) {
	seeds := []uint64{1, 2, 3, 4, 5}
	if testing.Short() {
		seeds = seeds[:2]
	}
	for _, name := range Names {
		for _, seed := range seeds {
			t.Run(name, func(t *testing.T) {
				c := drillConfig(seed)
				if name == SaveRestore {
					c.Faults = chaos.AllKinds
				}
				if name == FollowerCatchUp {
					c.Workload.Rate = 2000
				}
				start := time.Now()
				r, err := Run(context.Background(), name, c, Backend{})
				require.NoError(t, err)
				t.Logf("%s\n  (wall %s)", r, time.Since(start).Round(time.Millisecond))
				require.True(t, r.Passed(), "%s", r)
				switch name {
				case SaveRestore, DisasterRecovery:
					require.Positive(t, r.SnapshotBytes)
					require.Positive(t, r.KeysChecked)
					require.Positive(t, r.RevisionsChecked)
				}
				if name == DisasterRecovery {
					require.NotEmpty(t, r.Lost, "writes after the backup must be reported lost")
					require.Positive(t, r.RecoveryVirtual)
					require.Contains(t, r.String(), "writes were acknowledged after the snapshot", "the report says why losing them is expected")
				}
				// Lines that do not apply are not printed.
				if name == FollowerCatchUp {
					require.NotContains(t, r.String(), "snapshot 0 bytes")
				}
				if name == FollowerCatchUp || name == RollingRestart {
					require.NotContains(t, r.String(), "restore")
					require.NotContains(t, r.String(), "writes lost")
				}
			})
		}
	}
}

func TestDrillDeterministic(t *testing.T) {
	a, err := Run(context.Background(), SaveRestore, drillConfig(7), Backend{})
	require.NoError(t, err)
	b, err := Run(context.Background(), SaveRestore, drillConfig(7), Backend{})
	require.NoError(t, err)
	a.SaveWall, b.SaveWall, a.RestoreWall, b.RestoreWall = 0, 0, 0, 0
	require.Equal(t, a, b)
}

// dropNewestRevision is a tamper that deletes the newest revision of a
// restored backend's key bucket: the latest acknowledged write disappears.
func dropNewestRevision(db string) error {
	b, err := bolt.Open(db, 0o600, nil)
	if err != nil {
		return err
	}
	defer b.Close()
	return b.Update(func(tx *bolt.Tx) error {
		k, _ := tx.Bucket([]byte("key")).Cursor().Last()
		return tx.Bucket([]byte("key")).Delete(k)
	})
}

// TestDrillCatchesTamperedRestore proves save-restore can fail: a restored
// backend whose latest write was removed must be reported.
func TestDrillCatchesTamperedRestore(t *testing.T) {
	c := drillConfig(3)
	c.tamper = dropNewestRevision
	r, err := Run(context.Background(), SaveRestore, c, Backend{})
	require.NoError(t, err)
	t.Log(r)
	require.Equal(t, scenarios.VerdictFailed, r.Verdict)
	require.Contains(t, r.Reason, "revision")

	c.tamper = func(db string) error {
		b, err := bolt.Open(db, 0o600, nil)
		if err != nil {
			return err
		}
		defer b.Close()
		return b.Update(func(tx *bolt.Tx) error {
			// Change the values of twenty revisions in the middle of the
			// history (same revisions): some of them are acknowledged puts
			// whatever the workload drew (a single one may be a write of
			// unknown outcome, which the drill cannot judge). Each value is
			// changed in the decoded KeyValue: the encoding's last byte is a
			// lease ID or a version as often as a value.
			bk := tx.Bucket([]byte("key"))
			cur := bk.Cursor()
			k, _ := cur.First()
			for i := 0; i < 20 && k != nil; i++ {
				k, _ = cur.Next()
			}
			type entry struct{ k, v []byte }
			var tampered []entry
			for k, v := cur.Next(); k != nil && len(tampered) < 20; k, v = cur.Next() {
				var kv mvccpb.KeyValue
				if err := proto.Unmarshal(v, &kv); err != nil {
					return err
				}
				if len(kv.Value) == 0 {
					continue // a tombstone
				}
				kv.Value = append([]byte(nil), kv.Value...)
				kv.Value[len(kv.Value)-1] ^= 1
				nv, err := proto.Marshal(&kv)
				if err != nil {
					return err
				}
				tampered = append(tampered, entry{append([]byte(nil), k...), nv})
			}
			if len(tampered) == 0 {
				return errors.New("no value to change")
			}
			for _, e := range tampered {
				if err := bk.Put(e.k, e.v); err != nil {
					return err
				}
			}
			return nil
		})
	}
	r, err = Run(context.Background(), SaveRestore, c, Backend{})
	require.NoError(t, err)
	t.Log(r)
	require.Equal(t, scenarios.VerdictFailed, r.Verdict)
}

// TestDrillSaveWaitsForAMember: with every fault kind, seed 8's schedule has
// no member up at Duration/2, and the first to come back is behind. The save
// waits until a member holds every acknowledged write (as the real save's
// barrier read does) instead of ending the drill with an error, or saving
// from the lagging member and reporting a write lost.
func TestDrillSaveWaitsForAMember(t *testing.T) {
	c := drillConfig(8)
	c.Workload.Clients = 16
	c.Faults = chaos.AllKinds
	r, err := Run(context.Background(), SaveRestore, c, Backend{})
	require.NoError(t, err)
	t.Log(r)
	require.True(t, r.Passed(), "%s", r)
	require.Equal(t, c.Duration/2, r.SaveAt)
}
