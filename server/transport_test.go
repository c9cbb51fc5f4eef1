package server

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
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
