package server

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// RangeStream answers as etcd 3.7's: chunks whose kvs concatenate to Range's,
// the header (pinned revision), more and count on the last chunk only, so
// that clientv3's GetStream merges them into Get's answer.
func TestRangeStream(t *testing.T) {
	c := startCluster(t, 3)
	cli := c.client(1)
	ctx := ctxT(t)
	for i := range 300 {
		_, err := cli.Put(ctx, fmt.Sprintf("s/%03d", i), strings.Repeat("v", i))
		require.NoError(t, err)
	}
	_, err := cli.Put(ctx, "t", "outside")
	require.NoError(t, err)

	for _, tt := range []struct {
		name string
		opts []clientv3.OpOption
	}{
		{"prefix", []clientv3.OpOption{clientv3.WithPrefix()}},
		{"limit", []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithLimit(123)}},
		{"keys only, serializable", []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithSerializable()}},
		{"count only", []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithCountOnly()}},
		{"at a revision", []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithRev(100)}},
		{"single key", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			key := "s/"
			if tt.opts == nil {
				key = "s/007"
			}
			want, err := cli.Get(ctx, key, tt.opts...)
			require.NoError(t, err)
			ch, err := cli.GetStream(ctx, key, tt.opts...)
			require.NoError(t, err)
			got, err := clientv3.GetStreamToGetResponse(ch)
			require.NoError(t, err)
			assert.Equal(t, want.Header.Revision, got.Header.Revision)
			assert.Equal(t, want.Count, got.Count)
			assert.Equal(t, want.More, got.More)
			require.Equal(t, len(want.Kvs), len(got.Kvs))
			for i := range want.Kvs {
				require.True(t, proto.Equal(want.Kvs[i], got.Kvs[i]), "kv %d", i)
			}
		})
	}

	// Chunks on the wire: several, the header only on the last.
	rs, err := pb.NewKVClient(c.rawConn(1)).RangeStream(ctx, &pb.RangeRequest{Key: []byte("s/"), RangeEnd: []byte("s0")})
	require.NoError(t, err)
	var chunks []*pb.RangeResponse
	for {
		r, err := rs.Recv()
		if err != nil {
			break
		}
		chunks = append(chunks, r.RangeResponse)
	}
	require.Greater(t, len(chunks), 1)
	for _, ch := range chunks[:len(chunks)-1] {
		assert.Nil(t, ch.Header)
	}
	last := chunks[len(chunks)-1]
	require.NotNil(t, last.Header)
	assert.Equal(t, c.members[1].ID(), last.Header.MemberId)
	assert.EqualValues(t, 300, last.Count)

	// etcd's refusals.
	for _, tt := range []struct {
		name string
		req  *pb.RangeRequest
		code codes.Code
		want error
	}{
		{"empty key", &pb.RangeRequest{}, codes.InvalidArgument, rpctypes.ErrGRPCEmptyKey},
		{"sorted by value", &pb.RangeRequest{Key: []byte("s/"), SortTarget: pb.RangeRequest_VALUE, SortOrder: pb.RangeRequest_ASCEND}, codes.Unimplemented, nil},
		{"revision filter", &pb.RangeRequest{Key: []byte("s/"), MinModRevision: 3}, codes.Unimplemented, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rs, err := pb.NewKVClient(c.rawConn(1)).RangeStream(ctx, tt.req)
			require.NoError(t, err)
			_, err = rs.Recv()
			assert.Equal(t, tt.code, status.Code(err), "%v", err)
			if tt.want != nil {
				assert.Equal(t, status.Convert(tt.want).Message(), status.Convert(err).Message())
			}
		})
	}
}
