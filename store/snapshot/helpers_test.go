package snapshot_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/havoclab/havoc/cluster/etcdbin"
	"github.com/havoclab/havoc/internal/detrand"
	"github.com/havoclab/havoc/store"
	"github.com/havoclab/havoc/store/membership"
	"github.com/havoclab/havoc/store/mvcc"
	"github.com/havoclab/havoc/store/snapshot"
	"github.com/havoclab/havoc/vfs"
)

// etcdBin returns the path of the reference binary name ("etcd", "etcdctl",
// "etcdutl") of go.mod's etcd release, built once into the user's cache by
// cluster/etcdbin and reused by later test runs.
func etcdBin(t testing.TB, name string) string {
	t.Helper()
	rel, err := etcdbin.Get(context.Background(), nil, etcdbin.Pinned)
	require.NoError(t, err)
	return filepath.Join(rel.Dir, name)
}

// kvState is one key as a linearizable range reports it.
type kvState struct {
	Key, Value                  string
	Create, Mod, Version, Lease int64
}

func kvsOf(kvs []*mvccpb.KeyValue) []kvState {
	out := make([]kvState, 0, len(kvs))
	for _, kv := range kvs {
		out = append(out, kvState{string(kv.Key), string(kv.Value), kv.CreateRevision, kv.ModRevision, kv.Version, kv.Lease})
	}
	return out
}

// buildBackend writes keys into a fresh mvcc store (puts, overwrites, deletes)
// and returns the snapshot file, the store's revision and its final range.
func buildBackend(t testing.TB, dir string, keys int, valueSize int) (path string, rev int64, want []kvState) {
	t.Helper()
	kv, err := mvcc.Open(filepath.Join(dir, "src.db"), mvcc.Options{NoSync: true, BatchLimit: 10000})
	require.NoError(t, err)
	val := bytes.Repeat([]byte("v"), valueSize)
	for i := range keys {
		_, err := kv.Put(&pb.PutRequest{Key: fmt.Appendf(nil, "key/%07d", i), Value: append(fmt.Appendf(nil, "%d-", i), val...)})
		require.NoError(t, err)
	}
	for i := 0; i < keys; i += 7 {
		_, err := kv.Put(&pb.PutRequest{Key: fmt.Appendf(nil, "key/%07d", i), Value: fmt.Appendf(nil, "again-%d", i)})
		require.NoError(t, err)
	}
	for i := 3; i < keys; i += 11 {
		_, err := kv.DeleteRange(&pb.DeleteRangeRequest{Key: fmt.Appendf(nil, "key/%07d", i)})
		require.NoError(t, err)
	}
	kv.SetConsistentIndex(uint64(keys)+100, 7)
	require.NoError(t, kv.Commit())
	r, err := kv.Range(&pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}})
	require.NoError(t, err)
	want, rev = kvsOf(r.Kvs), kv.Rev()
	path = filepath.Join(dir, "havoc.snap")
	f, err := os.Create(path)
	require.NoError(t, err)
	var img bytes.Buffer
	_, err = kv.WriteSnapshot(&img)
	require.NoError(t, err)
	_, err = snapshot.Write(f, &img)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	require.NoError(t, kv.Close())
	return path, rev, want
}

type fixedClock struct{ t time.Time }

func (c fixedClock) Now() time.Time { return c.t }

// restoredCluster restores snap into one data dir per member of spec (names
// and URLs "n1=http://...") under dir and returns the data dirs by name.
func restoreAll(t testing.TB, snap, dir, spec, token string) (map[string]string, []membership.Member) {
	t.Helper()
	ms, err := membership.ParseInitialCluster(spec, token)
	require.NoError(t, err)
	dirs := map[string]string{}
	for _, m := range ms {
		dd := filepath.Join(dir, m.Name+".etcd")
		require.NoError(t, snapshot.Restore(snapshot.RestoreOptions{
			SnapshotPath: snap, DataDir: dd, Name: m.Name, InitialCluster: spec, InitialClusterToken: token,
			InitialAdvertisePeerURLs: m.PeerURLs,
		}))
		dirs[m.Name] = dd
	}
	return dirs, ms
}

// runRestored opens every restored member with store.Open, elects a leader by
// delivering messages in FIFO order, and returns a linearizable range of the
// whole keyspace served by the leader, with its header revision, and every
// member's status.
func runRestored(t testing.TB, dirs map[string]string, ms []membership.Member) ([]kvState, int64, []store.Status) {
	t.Helper()
	release := detrand.Acquire(1)
	defer release()
	nodes := map[uint64]*store.Node{}
	ids := []uint64{}
	for _, m := range ms {
		n, err := store.Open(store.Config{
			Name: m.Name, InitialCluster: ms, FS: vfs.OS(), WALDir: snapshot.WALDir(dirs[m.Name]),
			DBPath: snapshot.DBPath(dirs[m.Name]), DBNoSync: true, Clock: fixedClock{time.Unix(1e9, 0)},
		})
		require.NoError(t, err)
		nodes[m.ID] = n
		ids = append(ids, m.ID)
		defer n.Close()
	}
	slices.Sort(ids)
	var queue []*raftpb.Message
	var got *store.Response
	submitted := false
	for round := 0; round < 2000 && got == nil; round++ {
		for _, id := range ids {
			nodes[id].Tick()
		}
		for {
			for _, id := range ids {
				out := nodes[id].Drain()
				require.NoError(t, out.Err)
				queue = append(queue, out.Messages...)
				for i := range out.Responses {
					if out.Responses[i].Token == 1 {
						got = &out.Responses[i]
					}
				}
			}
			if len(queue) == 0 {
				break
			}
			m := queue[0]
			queue = queue[1:]
			if n := nodes[m.GetTo()]; n != nil {
				require.NoError(t, n.Step(proto.Clone(m).(*raftpb.Message)))
			}
		}
		if !submitted {
			for _, id := range ids {
				if nodes[id].Status().IsLeader && nodes[id].Status().Applied >= nodes[id].Status().Committed {
					nodes[id].Submit(1, store.Request{Range: &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}}})
					submitted = true
					break
				}
			}
		}
	}
	if got == nil {
		for _, id := range ids {
			t.Logf("%x: %+v", id, nodes[id].Status())
		}
		t.Fatal("the restored cluster never answered a linearizable range")
		return nil, 0, nil
	}
	require.NoError(t, got.Err)
	var sts []store.Status
	for _, id := range ids {
		sts = append(sts, nodes[id].Status())
	}
	return kvsOf(got.Range.Kvs), got.Range.Header.Revision, sts
}
