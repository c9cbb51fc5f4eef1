package mvcc

import (
	"fmt"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

func opsPerSec(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// BenchmarkPut: 128-byte values over 100k keys, committed in batches of 10000 writes.
func BenchmarkPut(b *testing.B) {
	s, _ := openTest(b, Options{NoSync: true})
	val := make([]byte, 128)
	keys := make([][]byte, 100000)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "key/%08d", i)
	}
	b.ResetTimer()
	for i := range b.N {
		if _, err := s.Put(&pb.PutRequest{Key: keys[i%len(keys)], Value: val}); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Commit(); err != nil {
		b.Fatal(err)
	}
	opsPerSec(b)
}

func loaded(b *testing.B, n int) *Store {
	s, _ := openTest(b, Options{NoSync: true})
	val := make([]byte, 128)
	for i := range n {
		if _, err := s.Put(&pb.PutRequest{Key: fmt.Appendf(nil, "key/%08d", i), Value: val}); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Commit(); err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkRangeSingleKey: point reads over 100k keys.
func BenchmarkRangeSingleKey(b *testing.B) {
	s := loaded(b, 100000)
	b.ResetTimer()
	for i := range b.N {
		r, err := s.Range(&pb.RangeRequest{Key: fmt.Appendf(nil, "key/%08d", (i*7919)%100000)})
		if err != nil || len(r.Kvs) != 1 {
			b.Fatal(err, r)
		}
	}
	opsPerSec(b)
}

// BenchmarkRangePrefixLimit100: a prefix covering every key, limit 100 (counts all).
func BenchmarkRangePrefixLimit100(b *testing.B) {
	s := loaded(b, 100000)
	b.ResetTimer()
	for b.Loop() {
		r, err := s.Range(&pb.RangeRequest{Key: []byte("key/"), RangeEnd: []byte("key0"), Limit: 100})
		if err != nil || len(r.Kvs) != 100 {
			b.Fatal(err)
		}
	}
	opsPerSec(b)
}

// BenchmarkTxnCAS: compare mod revision, put on success (always succeeds).
func BenchmarkTxnCAS(b *testing.B) {
	s := loaded(b, 1000)
	mod := make([]int64, 1000)
	for i := range mod {
		mod[i] = int64(i + 2)
	}
	val := make([]byte, 128)
	b.ResetTimer()
	for i := range b.N {
		k := i % 1000
		key := fmt.Appendf(nil, "key/%08d", k)
		r, err := s.Txn(&pb.TxnRequest{
			Compare: []*pb.Compare{{Key: key, Target: pb.Compare_MOD, Result: pb.Compare_EQUAL, TargetUnion: &pb.Compare_ModRevision{ModRevision: mod[k]}}},
			Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: key, Value: val}}}},
		})
		if err != nil || !r.Succeeded {
			b.Fatal(err, r)
		}
		mod[k] = r.Header.Revision
	}
	opsPerSec(b)
}
