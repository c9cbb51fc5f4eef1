package mvcc

import (
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"
)

func TestErrorStrings(t *testing.T) {
	for err, want := range map[error]string{
		ErrCompacted:         "mvcc: required revision has been compacted",
		ErrFutureRev:         "mvcc: required revision is a future revision",
		ErrKeyNotFound:       "etcdserver: key not found",
		ErrLeaseNotFound:     "etcdserver: requested lease not found",
		ErrValueProvided:     "etcdserver: value is provided",
		ErrLeaseProvided:     "etcdserver: lease is provided",
		ErrEmptyKey:          "etcdserver: key is not provided",
		ErrTooManyOps:        "etcdserver: too many operations in txn request",
		ErrDuplicateKey:      "etcdserver: duplicate key given in txn request",
		ErrInvalidSortOption: "etcdserver: invalid sort option",
	} {
		assert.Equal(t, want, err.Error())
	}
}

// fill writes a=1 (rev 2), b=2 (3), c=3 (4), a=4 (5), delete b (6), ab=5 (7).
func fill(t testing.TB, s *Store) {
	mustPut(t, s, "a", "1")
	mustPut(t, s, "b", "2")
	mustPut(t, s, "c", "3")
	mustPut(t, s, "a", "4")
	_, err := s.DeleteRange(&pb.DeleteRangeRequest{Key: []byte("b")})
	require.NoError(t, err)
	mustPut(t, s, "ab", "5")
}

func TestRangeOptions(t *testing.T) {
	s, _ := openTest(t, Options{NoSync: true})
	fill(t, s)
	require.EqualValues(t, 7, s.Rev())
	for _, tc := range []struct {
		name  string
		req   *pb.RangeRequest
		keys  []string
		count int64
		more  bool
		err   error
	}{
		{"single", &pb.RangeRequest{Key: []byte("a")}, []string{"a"}, 1, false, nil},
		{"missing", &pb.RangeRequest{Key: []byte("b")}, nil, 0, false, nil},
		{"range", &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("c")}, []string{"a", "ab"}, 2, false, nil},
		{"prefix", &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("b")}, []string{"a", "ab"}, 2, false, nil},
		{"from key", &pb.RangeRequest{Key: []byte("ab"), RangeEnd: []byte{0}}, []string{"ab", "c"}, 2, false, nil},
		{"all", &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}}, []string{"a", "ab", "c"}, 3, false, nil},
		{"limit", &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, Limit: 2}, []string{"a", "ab"}, 3, true, nil},
		{"limit exact", &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, Limit: 3}, []string{"a", "ab", "c"}, 3, false, nil},
		{"old rev", &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, Revision: 4}, []string{"a", "b", "c"}, 3, false, nil},
		{"rev 1", &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, Revision: 1}, nil, 0, false, nil},
		{"future", &pb.RangeRequest{Key: []byte("a"), Revision: 8}, nil, 0, false, ErrFutureRev},
		{"count only", &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, CountOnly: true}, nil, 3, false, nil},
		{"sort desc key", &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, SortOrder: pb.RangeRequest_DESCEND}, []string{"c", "ab", "a"}, 3, false, nil},
		{"sort mod desc limit", &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, SortOrder: pb.RangeRequest_DESCEND, SortTarget: pb.RangeRequest_MOD, Limit: 2}, []string{"ab", "a"}, 3, true, nil},
		{"sort value asc", &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, SortOrder: pb.RangeRequest_ASCEND, SortTarget: pb.RangeRequest_VALUE}, []string{"c", "a", "ab"}, 3, false, nil},
		{"sort create asc", &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, SortOrder: pb.RangeRequest_ASCEND, SortTarget: pb.RangeRequest_CREATE}, []string{"a", "c", "ab"}, 3, false, nil},
		{"sort version desc", &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, SortOrder: pb.RangeRequest_DESCEND, SortTarget: pb.RangeRequest_VERSION, Limit: 1}, []string{"a"}, 3, true, nil},
		// etcd quirk: order NONE with a target sorts only the first limit+1 keys.
		{"sort target none order", &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, SortTarget: pb.RangeRequest_VALUE, Limit: 1}, []string{"a"}, 3, true, nil},
		{"min mod", &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, MinModRevision: 5}, []string{"a", "ab"}, 3, false, nil},
		{"max mod", &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, MaxModRevision: 4}, []string{"c"}, 3, false, nil},
		{"min create", &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, MinCreateRevision: 4}, []string{"ab", "c"}, 3, false, nil},
		{"max create limit", &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, MaxCreateRevision: 4, Limit: 1}, []string{"a"}, 3, true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := s.Range(tc.req)
			if tc.err != nil {
				require.ErrorIs(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.keys, keysOf(resp))
			assert.Equal(t, tc.count, resp.Count)
			assert.Equal(t, tc.more, resp.More)
			assert.EqualValues(t, 7, resp.Header.Revision)
		})
	}
	t.Run("keys only drops value and lease", func(t *testing.T) {
		s.SetLeaseHooks(newTestLeases(9))
		_, err := s.Put(&pb.PutRequest{Key: []byte("l"), Value: []byte("x"), Lease: 9})
		require.NoError(t, err)
		resp := mustRange(t, s, &pb.RangeRequest{Key: []byte("l"), KeysOnly: true})
		require.True(t, proto.Equal(&mvccpb.KeyValue{Key: []byte("l"), CreateRevision: 8, ModRevision: 8, Version: 1}, resp.Kvs[0]), "%v", resp.Kvs[0])
		// With a VALUE sort etcd reads the value from the db: the lease stays.
		resp = mustRange(t, s, &pb.RangeRequest{Key: []byte("l"), KeysOnly: true, SortTarget: pb.RangeRequest_VALUE, SortOrder: pb.RangeRequest_ASCEND})
		require.EqualValues(t, 9, resp.Kvs[0].Lease)
		require.Nil(t, resp.Kvs[0].Value)
	})
}

func TestPutOptions(t *testing.T) {
	s, _ := openTest(t, Options{NoSync: true})
	leases := newTestLeases(7, 8)
	s.SetLeaseHooks(leases)
	mustPut(t, s, "k", "v1")

	r, err := s.Put(&pb.PutRequest{Key: []byte("k"), Value: []byte("v2"), PrevKv: true, Lease: 7})
	require.NoError(t, err)
	require.Equal(t, "v1", string(r.PrevKv.Value))
	require.EqualValues(t, 3, r.Header.Revision)
	require.Equal(t, map[string]bool{"k": true}, leases.attached[7])

	_, err = s.Put(&pb.PutRequest{Key: []byte("k"), IgnoreValue: true, Lease: 8})
	require.NoError(t, err)
	kv := mustRange(t, s, &pb.RangeRequest{Key: []byte("k")}).Kvs[0]
	require.Equal(t, "v2", string(kv.Value))
	require.EqualValues(t, 8, kv.Lease)
	require.Empty(t, leases.attached[7])
	require.Equal(t, map[string]bool{"k": true}, leases.attached[8])

	_, err = s.Put(&pb.PutRequest{Key: []byte("k"), Value: []byte("v3"), IgnoreLease: true})
	require.NoError(t, err)
	kv = mustRange(t, s, &pb.RangeRequest{Key: []byte("k")}).Kvs[0]
	require.Equal(t, "v3", string(kv.Value))
	require.EqualValues(t, 8, kv.Lease)
	require.EqualValues(t, 4, kv.Version)

	_, err = s.Put(&pb.PutRequest{Key: []byte("k"), Value: []byte("v4")})
	require.NoError(t, err)
	require.Empty(t, leases.attached[8], "a put without lease detaches")

	for _, tc := range []struct {
		name string
		req  *pb.PutRequest
		err  error
		val  bool // error from Validate rather than apply
	}{
		{"unknown lease", &pb.PutRequest{Key: []byte("k"), Lease: 99}, ErrLeaseNotFound, false},
		{"ignore value missing key", &pb.PutRequest{Key: []byte("nope"), IgnoreValue: true}, ErrKeyNotFound, false},
		{"ignore lease missing key", &pb.PutRequest{Key: []byte("nope"), IgnoreLease: true}, ErrKeyNotFound, false},
		{"value provided", &pb.PutRequest{Key: []byte("k"), IgnoreValue: true, Value: []byte("x")}, ErrValueProvided, true},
		{"lease provided", &pb.PutRequest{Key: []byte("k"), IgnoreLease: true, Lease: 7}, ErrLeaseProvided, true},
		{"empty key", &pb.PutRequest{Value: []byte("x")}, ErrEmptyKey, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rev := s.Rev()
			if tc.val {
				require.ErrorIs(t, ValidatePut(tc.req), tc.err)
				return
			}
			require.NoError(t, ValidatePut(tc.req))
			_, err := s.Put(tc.req)
			require.ErrorIs(t, err, tc.err)
			require.Equal(t, rev, s.Rev(), "a failed put does not bump the revision")
		})
	}
}

func TestDeleteRange(t *testing.T) {
	s, _ := openTest(t, Options{NoSync: true})
	leases := newTestLeases(5)
	s.SetLeaseHooks(leases)
	fill(t, s)
	_, err := s.Put(&pb.PutRequest{Key: []byte("ac"), Value: []byte("6"), Lease: 5})
	require.NoError(t, err)
	r, err := s.DeleteRange(&pb.DeleteRangeRequest{Key: []byte("a"), RangeEnd: []byte("b"), PrevKv: true})
	require.NoError(t, err)
	require.EqualValues(t, 3, r.Deleted)
	require.Equal(t, []string{"a", "ab", "ac"}, keysOf(&pb.RangeResponse{Kvs: r.PrevKvs}))
	require.EqualValues(t, 9, r.Header.Revision)
	require.Empty(t, leases.attached[5])
	r, err = s.DeleteRange(&pb.DeleteRangeRequest{Key: []byte("zz")})
	require.NoError(t, err)
	require.EqualValues(t, 0, r.Deleted)
	require.EqualValues(t, 9, r.Header.Revision, "deleting nothing does not bump")
	require.EqualValues(t, 9, s.Rev())

	rev, err := s.DeleteKeys([][]byte{[]byte("c"), []byte("missing"), []byte("c")})
	require.NoError(t, err)
	require.EqualValues(t, 10, rev)
	rev, err = s.DeleteKeys([][]byte{[]byte("c")})
	require.NoError(t, err)
	require.EqualValues(t, 10, rev)
	require.ErrorIs(t, ValidateDeleteRange(&pb.DeleteRangeRequest{}), ErrEmptyKey)
}

func put(k, v string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(k), Value: []byte(v)}}}
}

func get(k string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte(k)}}}
}

func del(k, end string) *pb.RequestOp {
	r := &pb.DeleteRangeRequest{Key: []byte(k)}
	if end != "" {
		r.RangeEnd = []byte(end)
	}
	return &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: r}}
}

func nested(r *pb.TxnRequest) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: r}}
}

func TestTxnCompares(t *testing.T) {
	s, _ := openTest(t, Options{NoSync: true})
	s.SetLeaseHooks(newTestLeases(3))
	mustPut(t, s, "a", "1")                                                         // rev 2
	mustPut(t, s, "a", "2")                                                         // rev 3
	_, err := s.Put(&pb.PutRequest{Key: []byte("b"), Value: []byte("9"), Lease: 3}) // rev 4
	require.NoError(t, err)
	cmp := func(key string, target pb.Compare_CompareTarget, result pb.Compare_CompareResult, u any) *pb.Compare {
		c := &pb.Compare{Key: []byte(key), Target: target, Result: result}
		switch v := u.(type) {
		case string:
			c.TargetUnion = &pb.Compare_Value{Value: []byte(v)}
		case int:
			switch target {
			case pb.Compare_VERSION:
				c.TargetUnion = &pb.Compare_Version{Version: int64(v)}
			case pb.Compare_CREATE:
				c.TargetUnion = &pb.Compare_CreateRevision{CreateRevision: int64(v)}
			case pb.Compare_MOD:
				c.TargetUnion = &pb.Compare_ModRevision{ModRevision: int64(v)}
			case pb.Compare_LEASE:
				c.TargetUnion = &pb.Compare_Lease{Lease: int64(v)}
			}
		}
		return c
	}
	for _, tc := range []struct {
		name string
		c    *pb.Compare
		want bool
	}{
		{"value equal", cmp("a", pb.Compare_VALUE, pb.Compare_EQUAL, "2"), true},
		{"value not equal", cmp("a", pb.Compare_VALUE, pb.Compare_NOT_EQUAL, "2"), false},
		{"value greater", cmp("a", pb.Compare_VALUE, pb.Compare_GREATER, "1"), true},
		{"value less", cmp("a", pb.Compare_VALUE, pb.Compare_LESS, "3"), true},
		{"version", cmp("a", pb.Compare_VERSION, pb.Compare_EQUAL, 2), true},
		{"create", cmp("a", pb.Compare_CREATE, pb.Compare_EQUAL, 2), true},
		{"mod", cmp("a", pb.Compare_MOD, pb.Compare_GREATER, 2), true},
		{"lease", cmp("b", pb.Compare_LEASE, pb.Compare_EQUAL, 3), true},
		{"missing version 0", cmp("zz", pb.Compare_VERSION, pb.Compare_EQUAL, 0), true},
		{"missing create 0", cmp("zz", pb.Compare_CREATE, pb.Compare_EQUAL, 0), true},
		{"missing value is false", cmp("zz", pb.Compare_VALUE, pb.Compare_NOT_EQUAL, "x"), false},
		{"missing value less", cmp("zz", pb.Compare_VALUE, pb.Compare_LESS, "x"), false},
		{"range all", func() *pb.Compare {
			c := cmp("a", pb.Compare_MOD, pb.Compare_GREATER, 2)
			c.RangeEnd = []byte("c")
			return c
		}(), true},
		{"range one fails", func() *pb.Compare {
			c := cmp("a", pb.Compare_MOD, pb.Compare_LESS, 4)
			c.RangeEnd = []byte("c")
			return c
		}(), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &pb.TxnRequest{Compare: []*pb.Compare{tc.c}, Success: []*pb.RequestOp{get("a")}, Failure: []*pb.RequestOp{get("b")}}
			require.NoError(t, ValidateTxn(r, 0))
			resp, err := s.Txn(r)
			require.NoError(t, err)
			require.Equal(t, tc.want, resp.Succeeded)
			require.EqualValues(t, 4, resp.Header.Revision, "read-only txn does not bump")
		})
	}
}

func TestTxnWrites(t *testing.T) {
	s, _ := openTest(t, Options{NoSync: true})
	mustPut(t, s, "a", "1") // rev 2
	r := &pb.TxnRequest{
		Compare: []*pb.Compare{{Key: []byte("a"), Target: pb.Compare_VERSION, Result: pb.Compare_EQUAL, TargetUnion: &pb.Compare_Version{Version: 1}}},
		Success: []*pb.RequestOp{
			put("b", "x"), get("b"), del("a", ""),
			nested(&pb.TxnRequest{
				Compare: []*pb.Compare{{Key: []byte("a"), Target: pb.Compare_VERSION, Result: pb.Compare_EQUAL}},
				Success: []*pb.RequestOp{put("c", "y"), get("b")},
				Failure: []*pb.RequestOp{put("d", "z")},
			}),
		},
	}
	require.NoError(t, ValidateTxn(r, 0))
	resp, err := s.Txn(r)
	require.NoError(t, err)
	require.True(t, resp.Succeeded)
	require.EqualValues(t, 3, resp.Header.Revision)
	require.EqualValues(t, 3, resp.Responses[0].GetResponsePut().Header.Revision)
	rr := resp.Responses[1].GetResponseRange()
	require.Equal(t, "x", string(rr.Kvs[0].Value), "reads see the txn's earlier writes")
	require.EqualValues(t, 3, rr.Header.Revision)
	require.EqualValues(t, 1, resp.Responses[2].GetResponseDeleteRange().Deleted)
	sub := resp.Responses[3].GetResponseTxn()
	// The nested compare ran before the txn's writes: a had version 1, so it failed.
	require.False(t, sub.Succeeded)
	require.Len(t, sub.Responses, 1)
	require.EqualValues(t, 0, sub.Header.Revision, "nested txn headers stay empty, as in etcd")

	// Sub-revisions in order: b=0, a tombstone=1, d=2.
	var keys []string
	err = s.ForEachRawKey(func(k []byte) { keys = append(keys, string(k)) })
	require.NoError(t, err)
	require.Equal(t, []string{
		string(revKey(revision{2, 0}, false)), string(revKey(revision{3, 0}, false)),
		string(revKey(revision{3, 1}, true)), string(revKey(revision{3, 2}, false)),
	}, keys)

	// A txn whose chosen branch fails a check writes nothing.
	bad := &pb.TxnRequest{Success: []*pb.RequestOp{put("e", "1"), {Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("nope"), IgnoreValue: true}}}}}
	require.NoError(t, ValidateTxn(bad, 0))
	_, err = s.Txn(bad)
	require.ErrorIs(t, err, ErrKeyNotFound)
	_, err = s.Txn(&pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("a"), Revision: 9}}}}})
	require.ErrorIs(t, err, ErrFutureRev)
	require.EqualValues(t, 3, s.Rev())
}

func TestValidateTxn(t *testing.T) {
	many := make([]*pb.RequestOp, 129)
	for i := range many {
		many[i] = get("a")
	}
	for _, tc := range []struct {
		name string
		r    *pb.TxnRequest
		err  error
	}{
		{"ok", &pb.TxnRequest{Success: []*pb.RequestOp{put("a", "1"), put("b", "1")}}, nil},
		{"too many", &pb.TxnRequest{Success: many}, ErrTooManyOps},
		{"empty compare key", &pb.TxnRequest{Compare: []*pb.Compare{{}}}, ErrEmptyKey},
		{"empty op", &pb.TxnRequest{Success: []*pb.RequestOp{{}}}, ErrKeyNotFound},
		{"empty range key", &pb.TxnRequest{Failure: []*pb.RequestOp{get("")}}, ErrEmptyKey},
		{"bad sort", &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("a"), SortOrder: 7}}}}}, ErrInvalidSortOption},
		{"dup put", &pb.TxnRequest{Success: []*pb.RequestOp{put("a", "1"), put("a", "2")}}, ErrDuplicateKey},
		{"dup in failure", &pb.TxnRequest{Failure: []*pb.RequestOp{put("a", "1"), put("a", "2")}}, ErrDuplicateKey},
		{"put deleted", &pb.TxnRequest{Success: []*pb.RequestOp{del("a", "c"), put("b", "2")}}, ErrDuplicateKey},
		{"put deleted from key", &pb.TxnRequest{Success: []*pb.RequestOp{del("a", "\x00"), put("b", "2")}}, ErrDuplicateKey},
		{"put outside delete", &pb.TxnRequest{Success: []*pb.RequestOp{del("a", "b"), put("b", "2")}}, nil},
		{"both branches of nested", &pb.TxnRequest{Success: []*pb.RequestOp{nested(&pb.TxnRequest{Success: []*pb.RequestOp{put("a", "1")}, Failure: []*pb.RequestOp{put("a", "2")}})}}, nil},
		{"nested and outer", &pb.TxnRequest{Success: []*pb.RequestOp{put("a", "0"), nested(&pb.TxnRequest{Success: []*pb.RequestOp{put("a", "1")}})}}, ErrDuplicateKey},
		{"nested put outer delete", &pb.TxnRequest{Success: []*pb.RequestOp{del("a", ""), nested(&pb.TxnRequest{Failure: []*pb.RequestOp{put("a", "1")}})}}, ErrDuplicateKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateTxn(tc.r, 128)
			if tc.err == nil {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, tc.err)
			}
		})
	}
}

func TestCompaction(t *testing.T) {
	s, path := openTest(t, Options{NoSync: true})
	fill(t, s) // a@2,b@3,c@4,a@5,b tomb@6,ab@7
	_, err := s.Compact(8)
	require.ErrorIs(t, err, ErrFutureRev)
	resp, err := s.Compact(6)
	require.NoError(t, err)
	require.EqualValues(t, 7, resp.Header.Revision)
	require.EqualValues(t, 6, s.CompactRev())
	_, err = s.Compact(6)
	require.ErrorIs(t, err, ErrCompacted)
	_, err = s.Compact(3)
	require.ErrorIs(t, err, ErrCompacted)
	_, err = s.Range(&pb.RangeRequest{Key: []byte("a"), Revision: 5})
	require.ErrorIs(t, err, ErrCompacted)
	got := mustRange(t, s, &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte{0}, Revision: 6})
	require.Equal(t, []string{"a", "c"}, keysOf(got), "the compaction revision itself stays readable")

	// Physically: a@5, c@4, the tombstone of b at exactly 6, ab@7.
	var keys []string
	require.NoError(t, s.ForEachRawKey(func(k []byte) { keys = append(keys, string(k)) }))
	require.Equal(t, []string{
		string(revKey(revision{4, 0}, false)), string(revKey(revision{5, 0}, false)),
		string(revKey(revision{6, 0}, true)), string(revKey(revision{7, 0}, false)),
	}, keys)

	// Next compaction removes the tombstone; the state survives reopen.
	_, err = s.Compact(7)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	s2, err := Open(path, Options{NoSync: true})
	require.NoError(t, err)
	defer s2.Close()
	require.EqualValues(t, 7, s2.CompactRev())
	require.EqualValues(t, 7, s2.Rev())
	keys = nil
	require.NoError(t, s2.ForEachRawKey(func(k []byte) { keys = append(keys, string(k)) }))
	require.Len(t, keys, 3)
	mustPut(t, s2, "b", "new")
	kv := mustRange(t, s2, &pb.RangeRequest{Key: []byte("b")}).Kvs[0]
	require.EqualValues(t, 1, kv.Version)
	require.EqualValues(t, 8, kv.CreateRevision)
}

func TestCompactAllThenReopenKeepsRevision(t *testing.T) {
	s, path := openTest(t, Options{NoSync: true})
	mustPut(t, s, "a", "1")
	_, err := s.DeleteRange(&pb.DeleteRangeRequest{Key: []byte("a")})
	require.NoError(t, err)
	_, err = s.Compact(3)
	require.NoError(t, err)
	_, err = s.Compact(3)
	require.ErrorIs(t, err, ErrCompacted)
	require.NoError(t, s.Close())
	s2, err := Open(path, Options{NoSync: true})
	require.NoError(t, err)
	defer s2.Close()
	require.EqualValues(t, 3, s2.Rev())
	require.EqualValues(t, 3, s2.CompactRev())
}

// refHash is an independent HashKV: it reads the bolt file directly and applies the
// rules of etcd's HashByRev (go.etcd.io/etcd/server/v3/storage/mvcc, hash.go) with a keep set computed from the file alone.
func refHash(t *testing.T, s *Store, rev, compactRev int64) uint32 {
	path := filepath.Join(t.TempDir(), "snap.db")
	f, err := os.Create(path)
	require.NoError(t, err)
	_, err = s.WriteSnapshot(f)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	require.NoError(t, err)
	defer db.Close()
	type ent struct {
		k, v []byte
		main int64
		tomb bool
		key  string
	}
	var ents []ent
	require.NoError(t, db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("key")).ForEach(func(k, v []byte) error {
			kv := &mvccpb.KeyValue{}
			require.NoError(t, proto.Unmarshal(v, kv))
			ents = append(ents, ent{append([]byte(nil), k...), append([]byte(nil), v...), int64(binary.BigEndian.Uint64(k[:8])), len(k) == 18, string(kv.Key)})
			return nil
		})
	}))
	// keep: for each key live at rev, its newest entry <= rev.
	newest := map[string]int{}
	for i, e := range ents {
		if e.main <= rev {
			newest[e.key] = i
		}
	}
	keep := map[int]bool{}
	for _, i := range newest {
		if !ents[i].tomb {
			keep[i] = true
		}
	}
	h := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	h.Write([]byte("key"))
	for i, e := range ents {
		if e.main > rev || (e.main <= compactRev && len(keep) > 0 && !keep[i]) || (e.main == compactRev && e.tomb) {
			continue
		}
		h.Write(e.k)
		h.Write(e.v)
	}
	return h.Sum32()
}

func TestHashKV(t *testing.T) {
	a, pathA := openTest(t, Options{NoSync: true})
	b, _ := openTest(t, Options{NoSync: true})
	for _, s := range []*Store{a, b} {
		fill(t, s)
		mustPut(t, s, "c", "again")
	}
	ha, hr, cr, err := a.HashKV(0)
	require.NoError(t, err)
	require.EqualValues(t, 8, hr)
	require.EqualValues(t, -1, cr)
	hb, _, _, err := b.HashKV(0)
	require.NoError(t, err)
	require.Equal(t, ha, hb, "same ops, same hash")
	require.NoError(t, a.Commit())
	require.Equal(t, refHash(t, a, 8, -1), ha)

	h6, _, _, err := a.HashKV(6)
	require.NoError(t, err)
	require.Equal(t, refHash(t, a, 6, -1), h6)
	require.NotEqual(t, ha, h6)

	// Compacting a at 6 removes history; the hash at 8 with compact revision 6 equals
	// the reference computed over b's uncompacted file: removal does not change it.
	_, err = a.Compact(6)
	require.NoError(t, err)
	require.NoError(t, a.Commit())
	require.NoError(t, b.Commit())
	hc, _, cr, err := a.HashKV(8)
	require.NoError(t, err)
	require.EqualValues(t, 6, cr)
	require.Equal(t, refHash(t, b, 8, 6), hc)
	require.Equal(t, refHash(t, a, 8, 6), hc)
	_, err = b.Compact(6)
	require.NoError(t, err)
	hb, _, _, err = b.HashKV(8)
	require.NoError(t, err)
	require.Equal(t, hc, hb)

	// Stable under later writes and reopen.
	mustPut(t, a, "z", "1")
	h2, _, _, err := a.HashKV(8)
	require.NoError(t, err)
	require.Equal(t, hc, h2)
	require.NoError(t, a.Close())
	a2, err := Open(pathA, Options{NoSync: true})
	require.NoError(t, err)
	defer a2.Close()
	h3, _, _, err := a2.HashKV(8)
	require.NoError(t, err)
	require.Equal(t, hc, h3)

	_, _, _, err = a2.HashKV(5)
	require.ErrorIs(t, err, ErrCompacted)
	_, _, _, err = a2.HashKV(10)
	require.ErrorIs(t, err, ErrFutureRev)
}

func TestHashKVSkipsTombstoneAtCompactRev(t *testing.T) {
	s, _ := openTest(t, Options{NoSync: true})
	mustPut(t, s, "a", "1")
	_, err := s.DeleteRange(&pb.DeleteRangeRequest{Key: []byte("a")})
	require.NoError(t, err)
	_, err = s.Compact(3)
	require.NoError(t, err)
	h, _, _, err := s.HashKV(3)
	require.NoError(t, err)
	empty := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	empty.Write([]byte("key"))
	require.Equal(t, empty.Sum32(), h, "no live key: only the bucket name is hashed")
	require.Equal(t, refHash(t, s, 3, 3), h)
}
