package mvcc

import (
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"
)

func fuzzStore(f *testing.F) *Store {
	s, _ := openTest(f, Options{NoSync: true, BatchLimit: 1000})
	s.SetLeaseHooks(newTestLeases(1))
	fill(f, s)
	_, _ = s.Compact(3)
	return s
}

func seedProto(f *testing.F, msgs ...proto.Message) {
	for _, m := range msgs {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// FuzzRangeRequest: any bytes that decode and validate as a RangeRequest apply without
// panicking.
func FuzzRangeRequest(f *testing.F) {
	s := fuzzStore(f)
	seedProto(f,
		&pb.RangeRequest{Key: []byte("a")},
		&pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, Limit: 2, SortOrder: 2, SortTarget: 4, Revision: 4},
		&pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("b"), KeysOnly: true, MinModRevision: 3, MaxCreateRevision: 9},
		&pb.RangeRequest{Key: []byte("a"), Limit: -1, Revision: -5, CountOnly: true},
	)
	f.Fuzz(func(t *testing.T, data []byte) {
		r := &pb.RangeRequest{}
		if proto.Unmarshal(data, r) != nil || ValidateRange(r) != nil {
			return
		}
		resp, err := s.Range(r)
		if err == nil && resp.Header.Revision != s.Rev() {
			t.Fatalf("header revision %d, store at %d", resp.Header.Revision, s.Rev())
		}
	})
}

// FuzzTxnRequest: any bytes that decode and validate as a TxnRequest apply without
// panicking, and a failed txn changes nothing.
func FuzzTxnRequest(f *testing.F) {
	s := fuzzStore(f)
	seedProto(f,
		&pb.TxnRequest{Success: []*pb.RequestOp{put("a", "1"), get("a"), del("b", "c")}},
		&pb.TxnRequest{Compare: []*pb.Compare{{Key: []byte("a"), Target: pb.Compare_VALUE, TargetUnion: &pb.Compare_Value{Value: []byte("4")}}},
			Success: []*pb.RequestOp{nested(&pb.TxnRequest{Failure: []*pb.RequestOp{put("z", "1")}})},
			Failure: []*pb.RequestOp{del("a", "\x00")}},
		&pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("a"), IgnoreValue: true, Lease: 1}}}}},
	)
	f.Fuzz(func(t *testing.T, data []byte) {
		r := &pb.TxnRequest{}
		if proto.Unmarshal(data, r) != nil || ValidateTxn(r, DefaultMaxTxnOps) != nil {
			return
		}
		before := s.Rev()
		resp, err := s.Txn(r)
		if err != nil {
			if s.Rev() != before {
				t.Fatalf("failed txn moved the revision %d -> %d", before, s.Rev())
			}
			return
		}
		if resp.Header.Revision != s.Rev() {
			t.Fatalf("header revision %d, store at %d", resp.Header.Revision, s.Rev())
		}
		if _, err := proto.Marshal(resp); err != nil {
			t.Fatalf("response does not marshal: %v", err)
		}
	})
}
