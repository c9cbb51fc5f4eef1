package scenarios

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/havoclab/havoc/chaos"
	"github.com/havoclab/havoc/cluster"
	"github.com/havoclab/havoc/linearizability"
)

// maxTerm is the highest raft term the members report.
func maxTerm(t *testing.T, p *cluster.Process) uint64 {
	t.Helper()
	var term uint64
	for _, m := range p.Members() {
		cli, err := p.Client(m)
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		st, err := cli.Status(ctx, p.ClientURL(m))
		cancel()
		require.NoError(t, err, "status of %s", m)
		term = max(term, st.RaftTerm)
	}
	return term
}

// runSecure runs a short workload on a secured process cluster with the
// leader isolated for 3 s, and checks that the run passes, that the
// partition cut the peer links (a new term was elected), and that the proxies
// identified the sender of every peer link through TLS.
func runSecure(t *testing.T, target cluster.Target, bin string, sec cluster.Security) *cluster.Process {
	dir := t.TempDir()
	w := Workload{Clients: 4, Rate: 200}
	sec.Prefixes = w.KeyPrefixes()
	p, err := cluster.NewProcess(cluster.ProcessConfig{Target: target, Binary: bin, Dir: filepath.Join(dir, "run"), Seed: 3, Security: sec})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	require.NoError(t, p.Start(context.Background()))
	before := maxTerm(t, p)

	c := Config{
		Seed: 3, Duration: 6 * time.Second, Workload: w, LivenessTimeout: 20 * time.Second, Out: filepath.Join(dir, "out"),
		Schedule: chaos.Schedule{{At: time.Second, Duration: 3 * time.Second, Kind: chaos.IsolateLeader}},
	}
	res, err := RunReal(context.Background(), p, c)
	require.NoError(t, err)
	t.Logf("%s %+v: verdict=%s ops=%d ok=%d fail=%d unknown=%d", target, sec, res.Verdict, res.Operations, res.OK, res.Failed, res.Unknown)
	require.True(t, res.Passed(), "%s: %s (artifacts %s)", res.Verdict, res.Reason, res.Dir)
	require.Greater(t, res.OK, 100)
	// The workload user may do all but defragment (an admin RPC in etcd).
	for _, op := range res.History {
		if strings.Contains(op.Error, "permission denied") {
			require.Equal(t, linearizability.KindDefrag, op.Kind, "%+v", op)
		}
	}
	require.Contains(t, strings.Join(res.FaultLog, "\n"), "start isolate leader")
	after := maxTerm(t, p)
	t.Logf("raft term %d -> %d", before, after)
	require.Greater(t, after, before, "isolating the leader must force an election")
	if sec.TLS {
		acc := p.Network().Accepted()
		for _, a := range p.Members() {
			for _, b := range p.Members() {
				if a != b {
					require.Positive(t, acc[a+"->"+b], "no identified connection %s->%s through TLS: %v", a, b, acc)
				}
			}
		}
	}
	return p
}

// requireTLSEnforced: the members speak https only and refuse a client
// without a certificate of the run's CA.
func requireTLSEnforced(t *testing.T, p *cluster.Process) {
	url := p.ClientURL("m1")
	require.True(t, strings.HasPrefix(url, "https://"), url)
	require.True(t, strings.HasPrefix(p.PeerURL("m1"), "https://"), p.PeerURL("m1"))
	_, err := (&http.Client{Timeout: time.Second}).Get(url + "/health")
	require.Error(t, err, "a client that does not trust the run's CA")
}

// requireAuthEnforced: the workload's user may write its prefix only.
func requireAuthEnforced(t *testing.T, p *cluster.Process) {
	cli, err := p.Dial("m1", cluster.AsWorkload)
	require.NoError(t, err)
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = cli.Put(ctx, "k/secure-test", "v")
	require.NoError(t, err)
	_, err = cli.Put(ctx, "outside/x", "v")
	require.True(t, errors.Is(err, rpctypes.ErrPermissionDenied), "write outside the workload's prefix: %v", err)
	admin, err := p.Client("m1")
	require.NoError(t, err)
	st, err := admin.AuthStatus(ctx)
	require.NoError(t, err)
	require.True(t, st.Enabled)
}

func secureBin(t *testing.T, target cluster.Target) string {
	if target == cluster.TargetEtcd {
		return pinnedEtcd(t).Etcd()
	}
	return buildBin(t, "harness", "github.com/havoclab/havoc/cmd/harness")
}

// TestSecureTLS runs havoc and etcd with TLS on every link and the leader
// isolated through the TLS-terminating link proxies.
func TestSecureTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real clusters for 6 s each")
	}
	for _, target := range []cluster.Target{cluster.TargetHavoc, cluster.TargetEtcd} {
		t.Run(string(target), func(t *testing.T) {
			p := runSecure(t, target, secureBin(t, target), cluster.Security{TLS: true})
			requireTLSEnforced(t, p)
		})
	}
}

// TestSecureAuth runs havoc and etcd with auth on: the workload's clients log
// in by password, or with TLS by their certificate's common name; the
// workload user may write its keys only.
func TestSecureAuth(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real clusters for 6 s each")
	}
	for _, target := range []cluster.Target{cluster.TargetHavoc, cluster.TargetEtcd} {
		for _, sec := range []cluster.Security{{Auth: true}, {Auth: true, TLS: true}} {
			name := string(target) + "/password"
			if sec.TLS {
				name = string(target) + "/certificate"
			}
			t.Run(name, func(t *testing.T) {
				p := runSecure(t, target, secureBin(t, target), sec)
				requireAuthEnforced(t, p)
			})
		}
	}
}
