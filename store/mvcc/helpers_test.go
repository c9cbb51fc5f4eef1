package mvcc

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// testLeases is a LeaseHooks that knows a fixed set of leases and records attachments.
type testLeases struct {
	exists   map[int64]bool
	attached map[int64]map[string]bool
}

func newTestLeases(ids ...int64) *testLeases {
	l := &testLeases{exists: map[int64]bool{}, attached: map[int64]map[string]bool{}}
	for _, id := range ids {
		l.exists[id] = true
	}
	return l
}

func (l *testLeases) Exists(id int64) bool { return l.exists[id] }
func (l *testLeases) Attach(id int64, key []byte) {
	if l.attached[id] == nil {
		l.attached[id] = map[string]bool{}
	}
	l.attached[id][string(key)] = true
}
func (l *testLeases) Detach(id int64, key []byte) { delete(l.attached[id], string(key)) }

func openTest(t testing.TB, opts Options) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "db")
	s, err := Open(path, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s, path
}

func mustPut(t testing.TB, s *Store, k, v string) *pb.PutResponse {
	t.Helper()
	r, err := s.Put(&pb.PutRequest{Key: []byte(k), Value: []byte(v)})
	require.NoError(t, err)
	return r
}

func mustRange(t testing.TB, s *Store, r *pb.RangeRequest) *pb.RangeResponse {
	t.Helper()
	resp, err := s.Range(r)
	require.NoError(t, err)
	return resp
}

func keysOf(r *pb.RangeResponse) []string {
	var out []string
	for _, kv := range r.Kvs {
		out = append(out, string(kv.Key))
	}
	return out
}
