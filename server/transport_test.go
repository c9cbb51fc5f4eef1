package server

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/havoclab/havoc/store/membership"
	"github.com/havoclab/havoc/store/mvcc"
)

func TestFrameRoundTrip(t *testing.T) {
	msgs := []*raftpb.Message{
		{Type: raftpb.MsgHeartbeat.Enum(), To: new(uint64(2)), From: new(uint64(1)), Term: new(uint64(3))},
		{Type: raftpb.MsgApp.Enum(), To: new(uint64(2)), Entries: []*raftpb.Entry{{Index: new(uint64(7)), Data: []byte("x")}}},
		{Type: raftpb.MsgSnap.Enum(), To: new(uint64(3)), Snapshot: &raftpb.Snapshot{Data: bytes.Repeat([]byte{1}, 100000),
			Metadata: &raftpb.SnapshotMetadata{Index: new(uint64(9)), Term: new(uint64(2))}}},
	}
	var b []byte
	for _, m := range msgs {
		var err error
		b, err = appendFrame(b, m)
		require.NoError(t, err)
	}
	r := bytes.NewReader(b)
	for _, want := range msgs {
		got, err := readFrame(r, 1<<20)
		require.NoError(t, err)
		assert.True(t, proto.Equal(want, got), "%v != %v", want, got)
	}
	_, err := readFrame(r, 1<<20)
	assert.ErrorIs(t, err, io.EOF)
}

func TestFrameErrors(t *testing.T) {
	big := binary.BigEndian.AppendUint64(nil, 1<<40)
	_, err := readFrame(bytes.NewReader(big), 1<<20)
	assert.ErrorIs(t, err, ErrFrameTooLarge)

	short := append(binary.BigEndian.AppendUint64(nil, 10), 1, 2, 3)
	_, err = readFrame(bytes.NewReader(short), 1<<20)
	assert.ErrorIs(t, err, io.ErrUnexpectedEOF)

	garbage := append(binary.BigEndian.AppendUint64(nil, 3), 0xff, 0xff, 0xff)
	_, err = readFrame(bytes.NewReader(garbage), 1<<20)
	require.Error(t, err)
	assert.False(t, errors.Is(err, io.EOF))
}

// FuzzReadFrame: the peer frame decoder never panics, and whatever it decodes
// re-encodes to a frame that decodes to the same message.
func FuzzReadFrame(f *testing.F) {
	seed, _ := appendFrame(nil, &raftpb.Message{Type: raftpb.MsgApp.Enum(), To: new(uint64(2)),
		Entries: []*raftpb.Entry{{Index: new(uint64(1)), Data: []byte("data")}}})
	f.Add(seed)
	f.Add(append(seed, seed...))
	f.Add(binary.BigEndian.AppendUint64(nil, 1<<62))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 2, 0x08})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		for {
			m, err := readFrame(r, 1<<16)
			if err != nil {
				return
			}
			again, err := appendFrame(nil, m)
			require.NoError(t, err)
			m2, err := readFrame(bytes.NewReader(again), 1<<20)
			require.NoError(t, err)
			require.True(t, proto.Equal(m, m2))
		}
	})
}

// throttled reads at most rate bytes a second (a slow link or follower).
type throttled struct {
	r    io.Reader
	rate int
}

func (t throttled) Read(p []byte) (int, error) {
	if len(p) > 32<<10 {
		p = p[:32<<10]
	}
	n, err := t.r.Read(p)
	time.Sleep(time.Duration(n) * time.Second / time.Duration(t.rate))
	return n, err
}

// A snapshot to a slow follower goes on its own connection, as etcd's
// snapshotSender: heartbeats sent after it arrive while it is still on its
// way, and the member hears it was sent.
func TestSnapshotDoesNotHoldUpHeartbeats(t *testing.T) {
	type arrival struct {
		typ raftpb.MessageType
		at  time.Time
	}
	got := make(chan arrival, 1000)
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	recv := &transport{id: 2, clusterID: 7, log: discard, maxFrameBytes: 64 << 20,
		recv: func(m *raftpb.Message) { got <- arrival{m.GetType(), time.Now()} }}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = io.NopCloser(throttled{r.Body, 1 << 20}) // 1 MiB/s per connection
		recv.Handler().ServeHTTP(w, r)
	}))
	defer srv.Close()

	sent := make(chan uint64, 1)
	lost := make(chan bool, 100)
	send := &transport{id: 1, clusterID: 7, log: discard, maxFrameBytes: 64 << 20,
		report: func(_ uint64, snap bool) { lost <- snap },
		snapshotDone: func(id uint64, ok bool) {
			if ok {
				sent <- id
			} else {
				lost <- true
			}
		}}
	send.SetPeers([]membership.Member{{ID: 2, PeerURLs: []string{srv.URL}}})
	defer send.Close()

	msg := func(typ raftpb.MessageType) *raftpb.Message {
		return &raftpb.Message{Type: typ.Enum(), From: new(uint64(1)), To: new(uint64(2)), Term: new(uint64(1))}
	}
	require.NoError(t, send.Send(msg(raftpb.MsgHeartbeat))) // the stream is up
	first := <-got
	require.Equal(t, raftpb.MsgHeartbeat, first.typ)

	snap := msg(raftpb.MsgSnap)
	snap.Snapshot = &raftpb.Snapshot{Data: bytes.Repeat([]byte{1}, 3<<20),
		Metadata: &raftpb.SnapshotMetadata{Index: new(uint64(9)), Term: new(uint64(1))}}
	began := time.Now()
	require.NoError(t, send.Send(snap))
	for range 20 {
		time.Sleep(20 * time.Millisecond)
		require.NoError(t, send.Send(msg(raftpb.MsgHeartbeat)))
	}
	heartbeats := 0
	for {
		a := <-got
		if a.typ == raftpb.MsgSnap {
			break
		}
		heartbeats++
		if heartbeats == 1 {
			assert.Less(t, a.at.Sub(began), time.Second, "first heartbeat after the snapshot")
		}
	}
	assert.Equal(t, 20, heartbeats, "heartbeats that arrived before the snapshot")
	assert.Greater(t, time.Since(began), 2*time.Second, "the snapshot took its time")
	select {
	case id := <-sent:
		assert.EqualValues(t, 2, id)
	case <-time.After(5 * time.Second):
		t.Fatal("the sender never reported the snapshot sent")
	}
	assert.Empty(t, lost)
}

// A follower that fell behind the leader's log catches up from a snapshot sent
// on its own connection.
func TestFollowerCatchesUpFromSnapshot(t *testing.T) {
	var logs lockedWriter
	logs.w = &bytes.Buffer{}
	c := startClusterWith(t, 3, func(cfg *Config) {
		cfg.SnapshotCount, cfg.SnapshotCatchUpEntries = 50, 10
		cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	lead := c.waitLeader()
	behind := (c.index(lead) + 1) % 3
	require.NoError(t, c.members[behind].Close())
	c.members[behind] = nil
	cli := c.client()
	ctx := ctxT(t)
	value := string(bytes.Repeat([]byte("v"), 2048))
	for i := range 200 {
		_, err := cli.Put(ctx, fmt.Sprintf("k%03d", i), value)
		require.NoError(t, err)
	}
	c.restart(behind)
	select {
	case <-c.members[behind].ReadyNotify():
	case <-time.After(10 * time.Second):
		t.Fatal("the follower did not catch up")
	}
	r, err := c.client(behind).Get(ctx, "k", clientv3.WithPrefix(), clientv3.WithCountOnly(), clientv3.WithSerializable())
	require.NoError(t, err)
	assert.EqualValues(t, 200, r.Count)
	logs.mu.Lock()
	defer logs.mu.Unlock()
	assert.Contains(t, logs.w.String(), "msg=\"sent snapshot\"")
}

// snapshotFrame streams the image of a MsgSnap into the same message that the
// in-memory frame carries, without the image in memory.
func TestSnapshotFrameStreamsTheImage(t *testing.T) {
	kv, err := mvcc.Open(filepath.Join(t.TempDir(), "db"), mvcc.Options{NoSync: true})
	require.NoError(t, err)
	defer kv.Close()
	for i := range 100 {
		_, err := kv.Put(&pb.PutRequest{Key: fmt.Appendf(nil, "k%d", i), Value: bytes.Repeat([]byte("v"), 1000)})
		require.NoError(t, err)
	}
	img, err := kv.OpenSnapshot()
	require.NoError(t, err)
	defer img.Close()
	var image bytes.Buffer
	_, err = img.WriteTo(&image)
	require.NoError(t, err)

	m := &raftpb.Message{Type: raftpb.MsgSnap.Enum(), From: new(uint64(1)), To: new(uint64(2)), Term: new(uint64(3)),
		Snapshot: &raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{Index: new(uint64(9)), Term: new(uint64(2)),
			ConfState: &raftpb.ConfState{Voters: []uint64{1, 2, 3}}}}}
	r, size, done, err := snapshotFrame(m, img)
	require.NoError(t, err)
	frame, err := io.ReadAll(r)
	done()
	require.NoError(t, err)
	assert.EqualValues(t, size, len(frame))
	got, err := readFrame(bytes.NewReader(frame), 64<<20)
	require.NoError(t, err)
	want := proto.Clone(m).(*raftpb.Message)
	want.Snapshot.Data = image.Bytes()
	assert.True(t, proto.Equal(want, got))
}
