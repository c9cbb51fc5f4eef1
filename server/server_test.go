package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/havoclab/havoc/store/mvcc"
)

func TestKV(t *testing.T) {
	c := startCluster(t, 3)
	cli := c.client()
	ctx := ctxT(t)

	put, err := cli.Put(ctx, "a/1", "x")
	require.NoError(t, err)
	assert.Equal(t, c.members[0].ClusterID(), put.Header.ClusterId)
	assert.NotZero(t, put.Header.MemberId)
	assert.NotZero(t, put.Header.RaftTerm)
	_, err = cli.Put(ctx, "a/2", "y")
	require.NoError(t, err)
	_, err = cli.Put(ctx, "b", "z")
	require.NoError(t, err)

	get, err := cli.Get(ctx, "a/1")
	require.NoError(t, err)
	require.Len(t, get.Kvs, 1)
	assert.Equal(t, "x", string(get.Kvs[0].Value))
	assert.Equal(t, put.Header.Revision, get.Kvs[0].ModRevision)

	pre, err := cli.Get(ctx, "a/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	require.NoError(t, err)
	require.Len(t, pre.Kvs, 2)
	assert.Equal(t, "a/1", string(pre.Kvs[0].Key))
	assert.Equal(t, "a/2", string(pre.Kvs[1].Key))
	assert.Empty(t, pre.Kvs[0].Value)

	// Every member serves the same data, also serializable reads.
	for i := range c.members {
		r, err := c.client(i).Get(ctx, "b", clientv3.WithSerializable())
		require.NoError(t, err)
		if len(r.Kvs) == 0 { // a follower may lag for a moment on a serializable read
			r, err = c.client(i).Get(ctx, "b")
			require.NoError(t, err)
		}
		require.Len(t, r.Kvs, 1, "member %d", i)
	}

	del, err := cli.Delete(ctx, "a/", clientv3.WithPrefix(), clientv3.WithPrevKV())
	require.NoError(t, err)
	assert.EqualValues(t, 2, del.Deleted)
	assert.Len(t, del.PrevKvs, 2)

	txn, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.Value("b"), "=", "z")).
		Then(clientv3.OpPut("t", "then")).Else(clientv3.OpPut("t", "else")).Commit()
	require.NoError(t, err)
	assert.True(t, txn.Succeeded)
	txn, err = cli.Txn(ctx).If(clientv3.Compare(clientv3.Value("b"), "=", "nope")).
		Then(clientv3.OpPut("t", "then")).Else(clientv3.OpGet("t")).Commit()
	require.NoError(t, err)
	assert.False(t, txn.Succeeded)
	assert.Equal(t, "then", string(txn.Responses[0].GetResponseRange().Kvs[0].Value))
}

func TestWatch(t *testing.T) {
	c := startCluster(t, 3)
	cli := c.client(1)
	ctx := ctxT(t)

	_, err := cli.Put(ctx, "w/a", "0")
	require.NoError(t, err)
	wch := cli.Watch(ctx, "w/", clientv3.WithPrefix(), clientv3.WithPrevKV())
	require.NoError(t, cli.RequestProgress(ctx)) // the watch is registered once progress comes back
	var resp clientv3.WatchResponse
	select {
	case resp = <-wch:
		require.True(t, resp.IsProgressNotify())
	case <-ctx.Done():
		t.Fatal("no progress notification")
	}

	w := c.client(2)
	_, err = w.Put(ctx, "w/a", "1")
	require.NoError(t, err)
	_, err = w.Put(ctx, "other", "1")
	require.NoError(t, err)
	_, err = w.Delete(ctx, "w/a")
	require.NoError(t, err)

	var evs []*clientv3.Event
	for len(evs) < 2 {
		select {
		case resp = <-wch:
			require.NoError(t, resp.Err())
			evs = append(evs, resp.Events...)
		case <-ctx.Done():
			t.Fatalf("got %d events", len(evs))
		}
	}
	require.Len(t, evs, 2)
	assert.Equal(t, mvccpb.Event_PUT, evs[0].Type)
	assert.Equal(t, "1", string(evs[0].Kv.Value))
	assert.Equal(t, "0", string(evs[0].PrevKv.Value))
	assert.Equal(t, mvccpb.Event_DELETE, evs[1].Type)
	assert.Equal(t, "w/a", string(evs[1].Kv.Key))
	assert.Equal(t, "1", string(evs[1].PrevKv.Value))

	// History from a past revision, with a filter.
	hist := cli.Watch(ctx, "w/a", clientv3.WithRev(1), clientv3.WithFilterDelete())
	resp = <-hist
	require.NoError(t, resp.Err())
	require.Len(t, resp.Events, 2)
	assert.Equal(t, "0", string(resp.Events[0].Kv.Value))
	assert.Equal(t, "1", string(resp.Events[1].Kv.Value))

	// A watch from a compacted revision is canceled with the compact revision.
	cur, err := cli.Get(ctx, "x")
	require.NoError(t, err)
	_, err = cli.Compact(ctx, cur.Header.Revision)
	require.NoError(t, err)
	old := cli.Watch(ctx, "w/a", clientv3.WithRev(2))
	resp = <-old
	assert.Equal(t, cur.Header.Revision, resp.CompactRevision)
	assert.ErrorIs(t, resp.Err(), rpctypes.ErrCompacted)
}

func TestLease(t *testing.T) {
	c := startCluster(t, 3)
	lead := c.waitLeader()
	follower := (c.index(lead) + 1) % 3
	cli := c.client(follower) // keep-alive and time-to-live are forwarded to the leader
	ctx := ctxT(t)

	g, err := cli.Grant(ctx, 5)
	require.NoError(t, err)
	assert.EqualValues(t, 5, g.TTL)
	_, err = cli.Put(ctx, "leased", "v", clientv3.WithLease(g.ID))
	require.NoError(t, err)

	ka, err := cli.KeepAliveOnce(ctx, g.ID)
	require.NoError(t, err)
	assert.EqualValues(t, 5, ka.TTL)
	ttl, err := cli.TimeToLive(ctx, g.ID, clientv3.WithAttachedKeys())
	require.NoError(t, err)
	assert.EqualValues(t, 5, ttl.GrantedTTL)
	assert.Positive(t, ttl.TTL)
	assert.Equal(t, [][]byte{[]byte("leased")}, ttl.Keys)
	ls, err := cli.Leases(ctx)
	require.NoError(t, err)
	require.Len(t, ls.Leases, 1)

	_, err = cli.Revoke(ctx, g.ID)
	require.NoError(t, err)
	get, err := cli.Get(ctx, "leased")
	require.NoError(t, err)
	assert.Empty(t, get.Kvs)
	ttl, err = cli.TimeToLive(ctx, g.ID)
	require.NoError(t, err)
	assert.EqualValues(t, -1, ttl.TTL)

	// An unrenewed lease expires and takes its key along (min TTL here is 1 s).
	g, err = cli.Grant(ctx, 1)
	require.NoError(t, err)
	_, err = cli.Put(ctx, "short", "v", clientv3.WithLease(g.ID))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		r, err := cli.Get(ctx, "short")
		return err == nil && len(r.Kvs) == 0
	}, 5*time.Second, 50*time.Millisecond)
}

func TestMembership(t *testing.T) {
	c := startCluster(t, 3)
	cli := c.client()
	ctx := ctxT(t)

	list, err := cli.MemberList(ctx)
	require.NoError(t, err)
	require.Len(t, list.Members, 3)
	for _, m := range list.Members {
		assert.NotEmpty(t, m.Name)
		assert.NotEmpty(t, m.ClientURLs)
	}
	assert.Zero(t, list.Header.Revision, "cluster headers carry no revision")

	// Add a fourth member, start it with --initial-cluster-state=existing, and
	// read through it.
	cl, pl := listen(t), listen(t)
	add, err := cli.MemberAdd(ctx, []string{"http://" + pl.Addr().String()})
	require.NoError(t, err)
	assert.Len(t, add.Members, 4)
	var parts []string
	for _, m := range add.Members {
		name := m.Name
		if m.ID == add.Member.ID {
			name = "m3"
		}
		parts = append(parts, name+"="+m.PeerURLs[0])
	}
	cfg := testConfig(t, "m3", cl, pl, strings.Join(parts, ","), StateExisting)
	m3, err := Start(cfg)
	require.NoError(t, err)
	c.members, c.cfgs = append(c.members, m3), append(c.cfgs, cfg)
	assert.Equal(t, add.Member.ID, m3.ID())
	assert.Equal(t, c.members[0].ClusterID(), m3.ClusterID())
	_, err = cli.Put(ctx, "after-join", "1")
	require.NoError(t, err)
	get, err := c.client(3).Get(ctx, "after-join")
	require.NoError(t, err)
	require.Len(t, get.Kvs, 1)

	_, err = cli.MemberAdd(ctx, []string{"http://" + pl.Addr().String()})
	assert.ErrorIs(t, err, rpctypes.ErrPeerURLExist)

	// Remove it again: it stops by itself.
	rm, err := cli.MemberRemove(ctx, m3.ID())
	require.NoError(t, err)
	assert.Len(t, rm.Members, 3)
	select {
	case <-m3.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("removed member still running")
	}
	_, err = cli.MemberRemove(ctx, m3.ID())
	assert.ErrorIs(t, err, rpctypes.ErrMemberNotFound)

	// Give member 0 a second peer URL next to its own: every member learns
	// it, and the cluster keeps working (the old URL still answers).
	id0 := c.members[0].ID()
	own := c.cfgs[0].InitialAdvertisePeerURLs[0]
	_, err = cli.MemberUpdate(ctx, id0, []string{own, "http://127.0.0.1:1"})
	require.NoError(t, err)
	for i := range 3 {
		one := c.client(i)
		require.Eventually(t, func() bool {
			l, err := one.MemberList(ctx, clientv3.WithSerializable())
			if err != nil {
				return false
			}
			for _, m := range l.Members {
				if m.ID == id0 {
					return len(m.PeerURLs) == 2
				}
			}
			return false
		}, 5*time.Second, 50*time.Millisecond, "member %d never saw the update", i)
	}
	_, err = cli.Put(ctx, "after-update", "1")
	require.NoError(t, err)
	_, err = cli.MemberUpdate(ctx, id0, []string{c.cfgs[1].InitialAdvertisePeerURLs[0]})
	assert.ErrorIs(t, err, rpctypes.ErrPeerURLExist)
	_, err = cli.MemberUpdate(ctx, m3.ID(), []string{"http://127.0.0.1:2"})
	assert.ErrorIs(t, err, rpctypes.ErrMemberNotFound)
}

func TestMaintenance(t *testing.T) {
	c := startCluster(t, 3)
	cli := c.client()
	ctx := ctxT(t)
	for i := range 20 {
		_, err := cli.Put(ctx, fmt.Sprintf("k%02d", i), strings.Repeat("v", i*100))
		require.NoError(t, err)
	}
	last, err := cli.Put(ctx, "last", "1")
	require.NoError(t, err)
	rev := last.Header.Revision

	lead := c.waitLeader()
	for i, ep := range c.endpoints() {
		st, err := cli.Status(ctx, ep)
		require.NoError(t, err)
		assert.Equal(t, Version, st.Version)
		assert.Positive(t, st.DbSize)
		assert.Positive(t, st.DbSizeInUse)
		assert.LessOrEqual(t, st.DbSizeInUse, st.DbSize)
		assert.Equal(t, lead, st.Leader)
		assert.Equal(t, c.members[i].ID(), st.Header.MemberId)
		assert.EqualValues(t, 2<<30, st.DbSizeQuota)
		assert.Empty(t, st.Errors)
		assert.NotEmpty(t, st.StorageVersion)
	}

	var hashes []uint32
	for _, ep := range c.endpoints() {
		var h *clientv3.HashKVResponse
		require.Eventually(t, func() bool { // a follower may not have applied rev yet
			h, err = cli.HashKV(ctx, ep, rev)
			return err == nil
		}, 5*time.Second, 20*time.Millisecond)
		assert.Equal(t, rev, h.HashRevision)
		hashes = append(hashes, h.Hash)
	}
	assert.Equal(t, hashes[0], hashes[1])
	assert.Equal(t, hashes[0], hashes[2])

	// Snapshot: the bbolt image then its sha256, as etcdctl expects.
	rc, err := c.client(0).Snapshot(ctx)
	require.NoError(t, err)
	data, err := io.ReadAll(rc)
	require.NoError(t, err)
	require.Equal(t, 32, len(data)%512, "size %d", len(data))
	img, sum := data[:len(data)-32], data[len(data)-32:]
	want := sha256.Sum256(img)
	assert.Equal(t, want[:], sum)
	path := t.TempDir() + "/snap.db"
	require.NoError(t, os.WriteFile(path, img, 0o600))
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	require.NoError(t, err)
	require.NoError(t, db.View(func(tx *bolt.Tx) error {
		assert.NotNil(t, tx.Bucket([]byte("key")))
		return nil
	}))
	require.NoError(t, db.Close())

	al, err := cli.AlarmList(ctx)
	require.NoError(t, err)
	assert.Empty(t, al.Alarms)

	// Hash (the whole backend minus member-local meta) agrees across members
	// that applied the same entries, and defragment changes neither it nor
	// the keyspace.
	each := []*clientv3.Client{c.client(0), c.client(1), c.client(2)}
	hashOf := func(i int) uint32 {
		r, err := pb.NewMaintenanceClient(each[i].ActiveConnection()).Hash(ctx, &pb.HashRequest{})
		require.NoError(t, err)
		assert.Equal(t, c.members[i].ID(), r.Header.MemberId)
		return r.Hash
	}
	require.Eventually(t, func() bool { return hashOf(0) == hashOf(1) && hashOf(0) == hashOf(2) },
		5*time.Second, 50*time.Millisecond)
	before := hashOf(0)
	_, err = cli.Defragment(ctx, c.endpoints()[0])
	require.NoError(t, err)
	assert.Equal(t, before, hashOf(0))
	one := each[0]
	got, err := one.Get(ctx, "k19", clientv3.WithSerializable())
	require.NoError(t, err)
	require.Len(t, got.Kvs, 1)
	assert.Equal(t, strings.Repeat("v", 1900), string(got.Kvs[0].Value))
	_, err = one.Put(ctx, "after-defrag", "1")
	require.NoError(t, err)

	// MoveLeader to another voter.
	leadCli := c.client(c.index(lead))
	target := c.members[(c.index(lead)+1)%3].ID()
	_, err = leadCli.MoveLeader(ctx, target)
	require.NoError(t, err)
	assert.Equal(t, target, c.waitLeader())
}

func TestErrors(t *testing.T) {
	c := startCluster(t, 3)
	cli := c.client()
	ctx := ctxT(t)
	for i := range 5 {
		_, err := cli.Put(ctx, "k", fmt.Sprint(i))
		require.NoError(t, err)
	}
	r, err := cli.Get(ctx, "k")
	require.NoError(t, err)
	_, err = cli.Compact(ctx, r.Header.Revision-1)
	require.NoError(t, err)

	tests := []struct {
		name string
		op   func() error
		want error
	}{
		{"compacted", func() error { _, err := cli.Get(ctx, "k", clientv3.WithRev(2)); return err }, rpctypes.ErrCompacted},
		{"future rev", func() error { _, err := cli.Get(ctx, "k", clientv3.WithRev(r.Header.Revision+100)); return err }, rpctypes.ErrFutureRev},
		{"too large", func() error { _, err := cli.Put(ctx, "big", strings.Repeat("x", 1600*1024)); return err }, rpctypes.ErrRequestTooLarge},
		{"lease not found", func() error { _, err := cli.Revoke(ctx, 12345); return err }, rpctypes.ErrLeaseNotFound},
		{"put with unknown lease", func() error { _, err := cli.Put(ctx, "k", "v", clientv3.WithLease(999)); return err }, rpctypes.ErrLeaseNotFound},
		{"empty key", func() error { _, err := cli.Put(ctx, "", "v"); return err }, rpctypes.ErrEmptyKey},
		{"compact again", func() error { _, err := cli.Compact(ctx, 1); return err }, rpctypes.ErrCompacted},
		{"member not found", func() error { _, err := cli.MemberRemove(ctx, 42); return err }, rpctypes.ErrMemberNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.ErrorIs(t, tt.op(), tt.want)
		})
	}
}

func TestLeaderKill(t *testing.T) {
	c := startCluster(t, 3)
	lead := c.waitLeader()
	li := c.index(lead)
	require.NoError(t, c.members[li].Close())
	c.members[li] = nil
	newLead := c.waitLeader()
	assert.NotEqual(t, lead, newLead)
	cli := c.client()
	ctx := ctxT(t)
	for i := range 10 {
		_, err := cli.Put(ctx, fmt.Sprint("after", i), "v")
		require.NoError(t, err)
	}
	r, err := cli.Get(ctx, "after", clientv3.WithPrefix(), clientv3.WithCountOnly())
	require.NoError(t, err)
	assert.EqualValues(t, 10, r.Count)
}

func TestHTTPEndpoints(t *testing.T) {
	c := startCluster(t, 3)
	base := c.cfgs[0].AdvertiseClientURLs[0]
	resp, err := http.Get(base + "/health")
	require.NoError(t, err)
	var h healthJSON
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&h))
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "true", h.Health)

	_, err = c.client(0).Put(ctxT(t), "m", "1")
	require.NoError(t, err)
	resp, err = http.Get(base + "/metrics")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Contains(t, string(body), "etcd_server_has_leader 1")
	assert.Contains(t, string(body), `grpc_server_handled_total{grpc_code="OK",grpc_method="/etcdserverpb.KV/Put"} 1`)
	assert.Contains(t, string(body), "etcd_mvcc_db_total_size_in_bytes")

	// A lone member of a 3-member cluster has no leader: unhealthy.
	c.members[1].Close()
	c.members[2].Close()
	c.members[1], c.members[2] = nil, nil
	require.Eventually(t, func() bool {
		resp, err := http.Get(base + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable
	}, 10*time.Second, 50*time.Millisecond)
	ctx := clientv3.WithRequireLeader(ctxT(t))
	_, err = c.client(0).Get(ctx, "m")
	assert.ErrorIs(t, err, rpctypes.ErrNoLeader)
}

func TestPeerRejectsOtherCluster(t *testing.T) {
	c := startCluster(t, 1)
	peer := c.cfgs[0].InitialAdvertisePeerURLs[0]
	req, err := http.NewRequest(http.MethodPost, peer+streamPath, bytes.NewReader(nil))
	require.NoError(t, err)
	req.Header.Set("X-Server-From", "1")
	req.Header.Set("X-Etcd-Cluster-ID", "abc")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusPreconditionFailed, resp.StatusCode)
	assert.Contains(t, string(body), "cluster ID mismatch")
}

func TestRestart(t *testing.T) {
	c := startCluster(t, 3)
	cli := c.client(0)
	ctx := ctxT(t)
	_, err := cli.Put(ctx, "durable", "yes")
	require.NoError(t, err)
	cli.Close()
	for i, m := range c.members {
		require.NoError(t, m.Close())
		c.members[i] = nil
	}
	for i, cfg := range c.cfgs {
		cfg.ClientListener, cfg.PeerListener = nil, nil // listen on the same addresses again
		m, err := Start(cfg)
		require.NoError(t, err)
		c.members[i] = m
	}
	c.waitLeader()
	get, err := c.client().Get(ctx, "durable")
	require.NoError(t, err)
	require.Len(t, get.Kvs, 1)
	assert.Equal(t, "yes", string(get.Kvs[0].Value))
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"defaults", Config{}, ""},
		{"bad url", Config{ListenClientURLs: []string{"localhost:2379"}}, "--listen-client-urls"},
		{"name not in cluster", Config{Name: "x", InitialCluster: "y=http://localhost:2380"}, "not in"},
		{"election too short", Config{HeartbeatInterval: 100 * time.Millisecond, ElectionTimeout: 400 * time.Millisecond}, "at least 5 times"},
		{"bad state", Config{InitialClusterState: "old"}, "--initial-cluster-state"},
		{"peer urls differ", Config{InitialAdvertisePeerURLs: []string{"http://127.0.0.1:9"}, InitialCluster: "default=http://localhost:2380"}, "differ"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.want == "" {
				require.NoError(t, err)
				assert.Equal(t, "default.etcd", tt.cfg.DataDir)
				return
			}
			assert.ErrorContains(t, err, tt.want)
		})
	}
}

// TestSnapshotStreamsWhileWritesGoOn reads a snapshot slowly while the member
// takes writes: the writes are not held up, and the image is the backend as
// of the moment the snapshot began.
func TestSnapshotStreamsWhileWritesGoOn(t *testing.T) {
	c := startCluster(t, 1)
	cli := c.client(0)
	ctx := ctxT(t)
	big := strings.Repeat("x", 100<<10)
	for i := range 20 {
		_, err := cli.Put(ctx, fmt.Sprintf("before/%02d", i), big)
		require.NoError(t, err)
	}
	stream, err := pb.NewMaintenanceClient(cli.ActiveConnection()).Snapshot(ctx, &pb.SnapshotRequest{})
	require.NoError(t, err)
	first, err := stream.Recv()
	require.NoError(t, err)
	require.Positive(t, first.RemainingBytes, "the image is larger than one blob")

	// The stream is stalled on flow control; the member still commits writes
	// that grow the file.
	for i := range 20 {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := cli.Put(pctx, fmt.Sprintf("after/%02d", i), big)
		cancel()
		require.NoError(t, err, "put %d during the snapshot", i)
	}

	data := append([]byte(nil), first.Blob...)
	for {
		r, err := stream.Recv()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		data = append(data, r.Blob...)
	}
	img, sum := data[:len(data)-sha256.Size], data[len(data)-sha256.Size:] // as etcdctl splits it
	want := sha256.Sum256(img)
	require.Equal(t, want[:], sum)
	path := filepath.Join(t.TempDir(), "snap.db")
	require.NoError(t, os.WriteFile(path, img, 0o600))
	kv, err := mvcc.Open(path, mvcc.Options{NoSync: true})
	require.NoError(t, err)
	defer kv.Close()
	all, err := kv.Range(&pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, KeysOnly: true})
	require.NoError(t, err)
	require.Len(t, all.Kvs, 20)
	for _, k := range all.Kvs {
		require.True(t, strings.HasPrefix(string(k.Key), "before/"), "%s", k.Key)
	}
}
