package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/havoclab/havoc/cluster/etcdbin"
	"github.com/havoclab/havoc/scenarios"
	"github.com/havoclab/havoc/scenarios/report"
)

// TestRealSweep sweeps two seeds of 5 s on the process backend, two clusters
// at once, against havoc and against an etcd release: every seed runs to a
// verdict, the fault kinds a process cannot suffer are dropped and said so,
// and each seed's reproduce line carries the backend flags.
func TestRealSweep(t *testing.T) {
	if testing.Short() {
		t.Skip("runs four real clusters for 5 s each")
	}
	t.Setenv("HAVOC_HARNESS_MAIN", "1") // the workers and havoc's members are this binary
	for _, tc := range []struct {
		target string
		extra  []string
		repro  string
	}{
		{"havoc", nil, " --backend process"},
		{"etcd", []string{"--etcd-version", etcdbin.Pinned}, " --backend process --target etcd --etcd-version " + etcdbin.Pinned},
	} {
		t.Run(tc.target, func(t *testing.T) {
			out := t.TempDir()
			junit := filepath.Join(out, "junit.xml")
			args := append([]string{"sweep", "--backend", "process", "--target", tc.target, "--seeds", "1-2", "--parallel", "2",
				"--duration", "5s", "--clients", "4", "--rate", "200", "--faults", "crash,clock-skew,partition-minority", "--profile", "all",
				"--out", out, "--run-dir", t.TempDir(), "--junit", junit, "--quiet"}, tc.extra...)
			root, _, _ := newRoot()
			var stdout bytes.Buffer
			root.SetOut(&stdout)
			root.SetErr(&stdout)
			root.SetArgs(args)
			err := root.Execute()
			t.Log(stdout.String())
			s := stdout.String()
			require.Contains(t, s, "skipping fault kinds it cannot express: clock-skew\n")
			require.Contains(t, s, "with 2 workers")
			res, rerr := report.Read(filepath.Join(out, "results.json"))
			require.NoError(t, rerr)
			require.Len(t, res.Cases, 2)
			profiles := scenarios.ProfileNames()
			for _, c := range res.Cases {
				require.NotContains(t, []string{verdictError, verdictWorkerError}, c.Verdict, c.Reason)
				require.True(t, strings.HasSuffix(c.Repro, tc.repro), c.Repro)
				require.Contains(t, c.Repro, "--faults crash,partition-minority ")
				if p := profiles[c.Seed%uint64(len(profiles))]; p != scenarios.ProfileEtcd {
					require.Contains(t, c.Repro, "--profile "+p)
				}
				require.Positive(t, c.Ops)
			}
			require.FileExists(t, junit)
			if err != nil {
				// A real seed may fail; it must then have left its artifacts.
				for _, c := range res.Cases {
					if c.Verdict != scenarios.VerdictOK {
						require.FileExists(t, filepath.Join(c.Dir, "history.json.gz"))
					}
				}
			}
		})
	}
}
