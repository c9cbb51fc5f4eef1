package snapshot_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/havoclab/havoc/store/mvcc"
	"github.com/havoclab/havoc/store/snapshot"
)

// BenchmarkSaveRestore compares havoc's save (backend image + trailer, fsync)
// and restore with etcdctl snapshot save and etcdutl snapshot restore on the
// same number of 256-byte values. It runs only when HAVOC_SNAPSHOT_BENCH_KEYS
// is set (e.g. 1000000): loading a real etcd takes minutes.
//
//	HAVOC_SNAPSHOT_BENCH_KEYS=200000 go test -run XXX -bench SaveRestore -benchtime 1x ./store/snapshot
func BenchmarkSaveRestore(b *testing.B) {
	keys, _ := strconv.Atoi(os.Getenv("HAVOC_SNAPSHOT_BENCH_KEYS"))
	if keys <= 0 {
		b.Skip("set HAVOC_SNAPSHOT_BENCH_KEYS to run")
	}
	dir := b.TempDir()
	value := bytes.Repeat([]byte("x"), 256)

	// havoc: a backend with the keys.
	kv, err := mvcc.Open(filepath.Join(dir, "havoc.db"), mvcc.Options{NoSync: true, BatchLimit: 100000})
	require.NoError(b, err)
	for i := range keys {
		_, err := kv.Put(&pb.PutRequest{Key: fmt.Appendf(nil, "key/%09d", i), Value: value})
		require.NoError(b, err)
	}
	require.NoError(b, kv.Commit())

	// etcd: the same keys through the API, 128 puts per txn, 8 writers.
	e := startEtcd(b, filepath.Join(dir, "etcd.data"), "bench", "")
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Go(func() {
			for start := w * 128; start < keys; start += 8 * 128 {
				var ops []clientv3.Op
				for i := start; i < min(start+128, keys); i++ {
					ops = append(ops, clientv3.OpPut(fmt.Sprintf("key/%09d", i), string(value)))
				}
				if _, err := e.cli.Txn(context.Background()).Then(ops...).Commit(); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	require.NoError(b, <-errs)

	var havocSave, havocRestore, etcdSave, etcdRestore, havocStatus, etcdStatus time.Duration
	var havocSize, etcdSize int64
	for i := 0; b.Loop(); i++ {
		hs := filepath.Join(dir, fmt.Sprintf("havoc-%d.snap", i))
		start := time.Now()
		f, err := os.Create(hs)
		require.NoError(b, err)
		var img bytes.Buffer
		_, err = kv.WriteSnapshot(&img)
		require.NoError(b, err)
		havocSize, err = snapshot.Write(f, &img)
		require.NoError(b, err)
		require.NoError(b, f.Sync())
		require.NoError(b, f.Close())
		havocSave += time.Since(start)

		start = time.Now()
		_, err = snapshot.Status(hs)
		require.NoError(b, err)
		havocStatus += time.Since(start)

		start = time.Now()
		require.NoError(b, snapshot.Restore(snapshot.RestoreOptions{SnapshotPath: hs, DataDir: filepath.Join(dir, fmt.Sprintf("havoc-restored-%d", i))}))
		havocRestore += time.Since(start)

		es := filepath.Join(dir, fmt.Sprintf("etcd-%d.snap", i))
		start = time.Now()
		run(b, "etcdctl", "--endpoints", e.client, "snapshot", "save", es)
		etcdSave += time.Since(start)
		fi, err := os.Stat(es)
		require.NoError(b, err)
		etcdSize = fi.Size()

		start = time.Now()
		run(b, "etcdutl", "snapshot", "status", es)
		etcdStatus += time.Since(start)

		start = time.Now()
		run(b, "etcdutl", "snapshot", "restore", es, "--data-dir", filepath.Join(dir, fmt.Sprintf("etcd-restored-%d", i)))
		etcdRestore += time.Since(start)
	}
	n := float64(b.N)
	mb := func(size int64, d time.Duration) float64 { return float64(size) / 1e6 / (d.Seconds() / n) }
	b.ReportMetric(havocSave.Seconds()/n, "havoc-save-s")
	b.ReportMetric(etcdSave.Seconds()/n, "etcdctl-save-s")
	b.ReportMetric(havocRestore.Seconds()/n, "havoc-restore-s")
	b.ReportMetric(etcdRestore.Seconds()/n, "etcdutl-restore-s")
	b.ReportMetric(havocStatus.Seconds()/n, "havoc-status-s")
	b.ReportMetric(etcdStatus.Seconds()/n, "etcdutl-status-s")
	b.ReportMetric(mb(havocSize, havocSave), "havoc-save-MB/s")
	b.ReportMetric(mb(etcdSize, etcdSave), "etcdctl-save-MB/s")
	b.ReportMetric(float64(havocSize)/1e6, "havoc-MB")
	b.ReportMetric(float64(etcdSize)/1e6, "etcd-MB")
	require.NoError(b, kv.Close())
}
