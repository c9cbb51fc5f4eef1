package etcdbin

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// newestV35 is the release the normal (non-short) suite builds and starts.
const newestV35 = "v3.5.35"

// TestReleasesBuildAndServe builds each release of HAVOC_ETCD_VERSIONS
// (comma-separated, e.g. "v3.5.35,v3.6.16": about a CPU-minute each, the
// nightly check), or else only newestV35 unless -short, into the user's cache,
// and starts a 1-member etcd of each that serves a put and a get.
func TestReleasesBuildAndServe(t *testing.T) {
	versions := strings.Split(os.Getenv("HAVOC_ETCD_VERSIONS"), ",")
	if versions[0] == "" {
		if testing.Short() {
			t.Skip("builds a real etcd (about a CPU-minute the first time); set HAVOC_ETCD_VERSIONS or drop -short")
		}
		versions = []string{newestV35}
	}
	for _, v := range versions {
		t.Run(strings.TrimSpace(v), func(t *testing.T) {
			start := time.Now()
			rel, err := Get(context.Background(), testLog{t}, strings.TrimSpace(v))
			require.NoError(t, err)
			t.Logf("etcd %s ready in %s", rel.Version, time.Since(start).Round(time.Millisecond))
			for _, p := range []string{rel.Etcdctl(), rel.Etcdutl()} {
				out, err := exec.Command(p, "version").CombinedOutput()
				require.NoError(t, err, "%s", out)
				require.Contains(t, string(out), strings.TrimPrefix(rel.Version, "v"))
			}
			acceptsFlagNames(t, rel)
			serveOne(t, rel)
		})
	}
}

// flagSamples are a value of each graduated flag.
var flagSamples = map[string]string{
	"compaction-batch-limit": "100", "compaction-sleep-interval": "10ms", "corrupt-check-time": "1m",
	"snapshot-catchup-entries": "100",
	"warning-apply-duration":   "100ms", "watch-progress-notify-interval": "1s",
}

// acceptsFlagNames checks the release parses every graduated flag under the
// name FlagName gives it (etcd --NAME=VALUE --version).
func acceptsFlagNames(t *testing.T, rel Release) {
	v, err := ParseVersion(rel.Version)
	require.NoError(t, err)
	for name := range graduated {
		flag := "--" + FlagName(v, name)
		out, err := exec.Command(rel.Etcd(), flag+"="+flagSamples[name], "--version").CombinedOutput()
		require.NoError(t, err, "%s %s: %s", rel.Version, flag, out)
	}
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// serveOne starts a 1-member etcd of rel and puts and gets a key through clientv3.
func serveOne(t *testing.T, rel Release) {
	dir := t.TempDir()
	client := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	peer := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	logf, err := os.Create(filepath.Join(dir, "etcd.log"))
	require.NoError(t, err)
	defer logf.Close()
	cmd := exec.Command(rel.Etcd(), "--name", "m0", "--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "m0="+peer)
	cmd.Stdout, cmd.Stderr = logf, logf
	require.NoError(t, cmd.Start())
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "etcd.log"))
			t.Logf("etcd log:\n%s", b)
		}
	}()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{client}, DialTimeout: 5 * time.Second})
	require.NoError(t, err)
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var putErr error
	for ctx.Err() == nil {
		if _, putErr = cli.Put(ctx, "k", rel.Version); putErr == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	require.NoError(t, putErr)
	resp, err := cli.Get(ctx, "k")
	require.NoError(t, err)
	require.Len(t, resp.Kvs, 1)
	require.Equal(t, rel.Version, string(resp.Kvs[0].Value))
	st, err := cli.Status(ctx, client)
	require.NoError(t, err)
	require.Equal(t, strings.TrimPrefix(rel.Version, "v"), st.Version)
}
