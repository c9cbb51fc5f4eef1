package mvcc

import (
	"testing"

	"github.com/stretchr/testify/require"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

func TestEmptyStoreAndFirstPut(t *testing.T) {
	s, path := openTest(t, Options{NoSync: true})
	require.EqualValues(t, 1, s.Rev())
	require.EqualValues(t, -1, s.CompactRev())
	r := mustPut(t, s, "a", "1")
	require.EqualValues(t, 2, r.Header.Revision)
	mustPut(t, s, "a", "2")
	g := mustRange(t, s, &pb.RangeRequest{Key: []byte("a")})
	require.Len(t, g.Kvs, 1)
	require.EqualValues(t, 2, g.Kvs[0].CreateRevision)
	require.EqualValues(t, 3, g.Kvs[0].ModRevision)
	require.EqualValues(t, 2, g.Kvs[0].Version)
	require.NoError(t, s.Close())
	s2, err := Open(path, Options{NoSync: true})
	require.NoError(t, err)
	defer s2.Close()
	require.EqualValues(t, 3, s2.Rev())
	g2 := mustRange(t, s2, &pb.RangeRequest{Key: []byte("a")})
	require.Equal(t, "2", string(g2.Kvs[0].Value))
}
