package snapshot_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/havoclab/havoc/server"
	"github.com/havoclab/havoc/store/snapshot"
)

// BenchmarkSaveRestore compares a havoc member with a real etcd holding the
// same keys (256-byte values, written through the API by 8 writers in txns
// of 128 puts): `etcdctl snapshot save` against each, status and restore
// (havoc's in-process, etcdutl's as a process). It runs only when
// HAVOC_SNAPSHOT_BENCH_KEYS is set (e.g. 1000000): loading takes minutes.
//
//	HAVOC_SNAPSHOT_BENCH_KEYS=200000 go test -run XXX -bench SaveRestore -benchtime 1x ./store/snapshot
func BenchmarkSaveRestore(b *testing.B) {
	keys, _ := strconv.Atoi(os.Getenv("HAVOC_SNAPSHOT_BENCH_KEYS"))
	if keys <= 0 {
		b.Skip("set HAVOC_SNAPSHOT_BENCH_KEYS to run")
	}
	dir := b.TempDir()
	value := strings.Repeat("x", 256)

	h := startHavoc(b, filepath.Join(dir, "havoc.data"))
	e := startEtcd(b, filepath.Join(dir, "etcd.data"), "bench", "")
	fillStart := time.Now()
	fill(b, h.cli, keys, value)
	havocFill := time.Since(fillStart)
	fillStart = time.Now()
	fill(b, e.cli, keys, value)
	etcdFill := time.Since(fillStart)

	var havocSave, havocRestore, etcdSave, etcdRestore, havocStatus, etcdStatus time.Duration
	var havocSize, etcdSize int64
	for i := 0; b.Loop(); i++ {
		save := func(endpoint, name string) (time.Duration, int64) {
			path := filepath.Join(dir, fmt.Sprintf("%s-%d.snap", name, i))
			start := time.Now()
			run(b, "etcdctl", "--endpoints", endpoint, "snapshot", "save", path)
			took := time.Since(start)
			fi, err := os.Stat(path)
			require.NoError(b, err)
			return took, fi.Size()
		}
		hs, es := filepath.Join(dir, fmt.Sprintf("havoc-%d.snap", i)), filepath.Join(dir, fmt.Sprintf("etcd-%d.snap", i))
		took, size := save(h.client, "havoc")
		havocSave, havocSize = havocSave+took, size
		took, size = save(e.client, "etcd")
		etcdSave, etcdSize = etcdSave+took, size

		start := time.Now()
		_, err := snapshot.Status(hs)
		require.NoError(b, err)
		havocStatus += time.Since(start)
		start = time.Now()
		run(b, "etcdutl", "snapshot", "status", es)
		etcdStatus += time.Since(start)

		start = time.Now()
		require.NoError(b, snapshot.Restore(snapshot.RestoreOptions{SnapshotPath: hs, DataDir: filepath.Join(dir, fmt.Sprintf("havoc-restored-%d", i))}))
		havocRestore += time.Since(start)
		start = time.Now()
		run(b, "etcdutl", "snapshot", "restore", es, "--data-dir", filepath.Join(dir, fmt.Sprintf("etcd-restored-%d", i)))
		etcdRestore += time.Since(start)
	}
	n := float64(b.N)
	mb := func(size int64, d time.Duration) float64 { return float64(size) / 1e6 / (d.Seconds() / n) }
	b.ReportMetric(havocFill.Seconds(), "havoc-fill-s")
	b.ReportMetric(etcdFill.Seconds(), "etcd-fill-s")
	b.ReportMetric(havocSave.Seconds()/n, "havoc-save-s")
	b.ReportMetric(etcdSave.Seconds()/n, "etcd-save-s")
	b.ReportMetric(havocRestore.Seconds()/n, "havoc-restore-s")
	b.ReportMetric(etcdRestore.Seconds()/n, "etcdutl-restore-s")
	b.ReportMetric(havocStatus.Seconds()/n, "havoc-status-s")
	b.ReportMetric(etcdStatus.Seconds()/n, "etcdutl-status-s")
	b.ReportMetric(mb(havocSize, havocSave), "havoc-save-MB/s")
	b.ReportMetric(mb(etcdSize, etcdSave), "etcd-save-MB/s")
	b.ReportMetric(float64(havocSize)/1e6, "havoc-MB")
	b.ReportMetric(float64(etcdSize)/1e6, "etcd-MB")
}

// fill writes keys key/000000000... with value through cli: 8 writers, 128
// puts per txn.
func fill(b *testing.B, cli *clientv3.Client, keys int, value string) {
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Go(func() {
			for start := w * 128; start < keys; start += 8 * 128 {
				var ops []clientv3.Op
				for i := start; i < min(start+128, keys); i++ {
					ops = append(ops, clientv3.OpPut(fmt.Sprintf("key/%09d", i), value))
				}
				if _, err := cli.Txn(context.Background()).Then(ops...).Commit(); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	require.NoError(b, <-errs)
}

// havocMember is one in-process havoc member serving clients.
type havocMember struct {
	client string
	cli    *clientv3.Client
}

func startHavoc(b *testing.B, dataDir string) *havocMember {
	cl, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(b, err)
	pl, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(b, err)
	client, peer := "http://"+cl.Addr().String(), "http://"+pl.Addr().String()
	m, err := server.Start(server.Config{
		Name: "bench", DataDir: dataDir,
		ListenClientURLs: []string{client}, AdvertiseClientURLs: []string{client},
		ListenPeerURLs: []string{peer}, InitialAdvertisePeerURLs: []string{peer},
		InitialCluster: "bench=" + peer, InitialClusterState: server.StateNew, InitialClusterToken: "bench",
		HeartbeatInterval: 100 * time.Millisecond, ElectionTimeout: time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), ClientListener: cl, PeerListener: pl,
	})
	require.NoError(b, err)
	b.Cleanup(func() { _ = m.Close() })
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{client}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	require.NoError(b, err)
	b.Cleanup(func() { _ = cli.Close() })
	require.Eventually(b, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := cli.Put(ctx, "health", "1")
		return err == nil
	}, 30*time.Second, 100*time.Millisecond)
	return &havocMember{client: client, cli: cli}
}
