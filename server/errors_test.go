package server

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/havoclab/havoc/store/membership"
)

// rawConn is a gRPC connection to member i without clientv3's retries, so a
// test sees the status the member sent.
func (c *testCluster) rawConn(i int) *grpc.ClientConn {
	c.t.Helper()
	conn, err := grpc.NewClient(hostOf(c.cfgs[i].AdvertiseClientURLs[0]), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(c.t, err)
	c.t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// loseQuorum stops every member but the first and waits until it has no leader.
func (c *testCluster) loseQuorum() {
	c.t.Helper()
	for i := 1; i < len(c.members); i++ {
		require.NoError(c.t, c.members[i].Close())
		c.members[i] = nil
	}
	require.Eventually(c.t, func() bool { return c.members[0].Leader() == 0 }, 10*time.Second, 10*time.Millisecond)
}

// awaitLeaderWait waits until more requests on member 0 wait for a leader than
// the base counted before the test's request was sent: another request may
// already be waiting (under load a test's request can still be on its way
// when the count first rises, and it was then served after the election).
func (c *testCluster) awaitLeaderWait(base int64) {
	c.t.Helper()
	require.Eventually(c.t, func() bool { return c.members[0].leaderWaits.Load() > base }, 10*time.Second, time.Millisecond)
}

// restart starts member i again on its addresses and data dir.
func (c *testCluster) restart(i int) {
	c.t.Helper()
	cfg := c.cfgs[i]
	cfg.ClientListener, cfg.PeerListener = nil, nil
	m, err := Start(cfg)
	require.NoError(c.t, err)
	c.members[i] = m
}

// A linearizable read that finds no leader waits, as etcd re-sends its
// ReadIndex, and fails with etcd's retryable "leader changed" once a leader is
// elected (v3 read.go requestCurrentIndex); havoc used to answer "no leader" at
// once. Beside a CPU hog the read was served after the election in about one
// run in ten (a linearizable answer, which etcd may give too once its
// ReadIndex completes; why the read was not still waiting is not understood),
// so the scenario runs up to three times: every answer must be "leader
// changed" or a served read, never "no leader", and "leader changed" must come.
func TestReadDuringElectionSaysLeaderChanged(t *testing.T) {
	sawLeaderChanged := false
	for attempt := 0; attempt < 3 && !sawLeaderChanged; attempt++ {
		c := startCluster(t, 3)
		conn := c.rawConn(0)
		c.loseQuorum()

		errc := make(chan error, 1)
		base := c.members[0].leaderWaits.Load()
		go func() {
			_, err := pb.NewKVClient(conn).Range(ctxT(t), &pb.RangeRequest{Key: []byte("k")})
			errc <- err
		}()
		c.awaitLeaderWait(base)
		c.restart(1)
		err := <-errc
		if err != nil {
			assert.Equal(t, codes.Unavailable, status.Code(err))
			assert.ErrorIs(t, rpctypes.Error(err), rpctypes.ErrLeaderChanged, "got %v", err)
			sawLeaderChanged = true
		} else {
			t.Logf("attempt %d: the read was served after the election", attempt+1)
		}
		c.waitLeader()
		_, err = pb.NewKVClient(conn).Range(ctxT(t), &pb.RangeRequest{Key: []byte("k")})
		require.NoError(t, err)
	}
	require.True(t, sawLeaderChanged, "a read waiting through an election never got 'leader changed'")
}

// A write that finds no leader waits for one, as etcd's raft Propose blocks
// while there is none, and then commits.
func TestWriteWaitsForLeader(t *testing.T) {
	c := startCluster(t, 3)
	conn := c.rawConn(0)
	c.loseQuorum()

	errc := make(chan error, 1)
	base := c.members[0].leaderWaits.Load()
	go func() {
		_, err := pb.NewKVClient(conn).Put(ctxT(t), &pb.PutRequest{Key: []byte("k"), Value: []byte("v")})
		errc <- err
	}()
	c.awaitLeaderWait(base)
	c.restart(1)
	require.NoError(t, <-errc)
	r, err := pb.NewKVClient(conn).Range(ctxT(t), &pb.RangeRequest{Key: []byte("k")})
	require.NoError(t, err)
	require.Len(t, r.Kvs, 1)
}

// timeoutCause says why a proposal timed out as etcd's parseProposeCtxErr does.
func TestTimeoutCause(t *testing.T) {
	t0 := time.Unix(1000, 0)
	sec := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	members := []membership.Member{{ID: 1}, {ID: 2}, {ID: 3}}
	tests := []struct {
		name    string
		start   time.Time
		elected time.Time
		lead    uint64
		active  map[uint64]time.Time
		want    error
	}{
		{"became leader just after the request: previous leader failed", sec(10), sec(11), 1, nil, rpctypes.ErrGRPCTimeoutDueToLeaderFail},
		{"became leader long after the request", sec(10), sec(13), 0, nil, rpctypes.ErrGRPCTimeout},
		{"no leader", sec(10), time.Time{}, 0, nil, rpctypes.ErrGRPCTimeout},
		{"leader connected to a quorum", sec(10), sec(1), 1, map[uint64]time.Time{2: sec(5)}, rpctypes.ErrGRPCTimeout},
		{"leader connected to one peer only since the request", sec(10), sec(1), 1, map[uint64]time.Time{2: sec(12)}, rpctypes.ErrGRPCTimeoutDueToConnectionLost},
		{"follower connected to its leader", sec(10), time.Time{}, 2, map[uint64]time.Time{2: sec(5)}, rpctypes.ErrGRPCTimeout},
		{"follower not connected to its leader", sec(10), time.Time{}, 2, map[uint64]time.Time{3: sec(5)}, rpctypes.ErrGRPCTimeoutDueToConnectionLost},
		{"follower reconnected to its leader after the request", sec(10), time.Time{}, 2, map[uint64]time.Time{2: sec(11)}, rpctypes.ErrGRPCTimeoutDueToConnectionLost},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := timeoutCause(tt.start, tt.elected, 2*time.Second, 1, tt.lead, members,
				func(id uint64) time.Time { return tt.active[id] })
			assert.Equal(t, tt.want, got)
		})
	}
}

// A write that finds no leader and gets none fails after etcd's request timeout
// with a deadline error (raft's Propose returns its context's error), not "no
// leader" at once.
func TestWriteWithoutLeaderTimesOut(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the 5 s request timeout")
	}
	c := startCluster(t, 3)
	conn := c.rawConn(0)
	c.loseQuorum()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	began := time.Now()
	_, err := pb.NewKVClient(conn).Put(ctx, &pb.PutRequest{Key: []byte("k"), Value: []byte("v")})
	assert.Equal(t, codes.DeadlineExceeded, status.Code(err), fmt.Sprint(err))
	assert.GreaterOrEqual(t, time.Since(began), c.members[0].requestTimeout())
}

// A restarted member that cannot reach a quorum serves no client until it is
// ready, as etcd (which serves clients after its publish applied): clients wait
// instead of getting "no leader" (kube-apiserver's require-leader watches) or
// stale serializable reads, and are served on the same connection once a
// quorum is back.
func TestServeClientsOnlyWhenReady(t *testing.T) {
	c := startCluster(t, 3)
	_, err := c.client(0).Put(ctxT(t), "k", "v")
	require.NoError(t, err)
	for i, m := range c.members {
		require.NoError(t, m.Close())
		c.members[i] = nil
	}
	c.restart(0)
	conn := c.rawConn(0)
	kv := pb.NewKVClient(conn)

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	_, err = kv.Range(ctx, &pb.RangeRequest{Key: []byte("k"), Serializable: true})
	cancel()
	assert.Equal(t, codes.DeadlineExceeded, status.Code(err), "serializable read before ready: %v", err)

	ctx, cancel = context.WithTimeout(context.Background(), time.Second)
	ctx = metadata.AppendToOutgoingContext(ctx, rpctypes.MetadataRequireLeaderKey, rpctypes.MetadataHasLeader)
	err = func() error {
		ws, err := pb.NewWatchClient(conn).Watch(ctx)
		if err != nil {
			return err
		}
		if err := ws.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{
			CreateRequest: &pb.WatchCreateRequest{Key: []byte("k")}}}); err != nil {
			return err
		}
		_, err = ws.Recv()
		return err
	}()
	cancel()
	assert.Equal(t, codes.DeadlineExceeded, status.Code(err), "require-leader watch before ready: %v", err)
	select {
	case <-c.members[0].ReadyNotify():
		t.Fatal("a member without a quorum is ready")
	default:
	}

	c.restart(1)
	select {
	case <-c.members[0].ReadyNotify():
	case <-time.After(10 * time.Second):
		t.Fatal("member 0 not ready after a quorum came back")
	}
	r, err := kv.Range(ctxT(t), &pb.RangeRequest{Key: []byte("k"), Serializable: true})
	require.NoError(t, err)
	require.Len(t, r.Kvs, 1)
}
