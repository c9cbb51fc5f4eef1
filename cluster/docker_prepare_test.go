package cluster

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/havoclab/havoc/store/snapshot"
)

func TestWriteTar(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "m2.data")
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "member", "snap"), 0o700))
	require.NoError(t, os.Chmod(dir, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "member", "snap", "db"), []byte("bolt"), 0o600))
	var buf bytes.Buffer
	n, err := writeTar(&buf, dir, "m2")
	require.NoError(t, err)
	require.EqualValues(t, 4, n)
	type entry struct {
		name string
		mode int64
	}
	var got []entry
	tr := tar.NewReader(&buf)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		require.Zero(t, h.Uid)
		got = append(got, entry{h.Name, h.Mode & 0o777})
	}
	require.Equal(t, []entry{{"m2/", 0o700}, {"m2/member/", 0o700}, {"m2/member/snap/", 0o700}, {"m2/member/snap/db", 0o600}}, got)

	require.NoError(t, os.Symlink("db", filepath.Join(dir, "member", "link")))
	_, err = writeTar(io.Discard, dir, "m2")
	require.ErrorContains(t, err, "not a regular file")
}

// TestDockerPrepare restores a snapshot of one havoc cluster into every member
// of a second through DockerConfig.Prepare: the second serves the first's data,
// under its own member IDs. A failing Prepare fails Start and leaves nothing.
func TestDockerPrepare(t *testing.T) {
	requireDocker(t, true)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	t0 := time.Now()
	a := newTestDocker(t, DockerConfig{Members: 1})
	require.NoError(t, a.Start(ctx))
	ca, err := a.Client("m1")
	require.NoError(t, err)
	require.NoError(t, put(ca, "restored", "yes", 10*time.Second))
	snap := filepath.Join(t.TempDir(), "backup.snap")
	rc, err := ca.Snapshot(ctx)
	require.NoError(t, err)
	f, err := os.Create(snap)
	require.NoError(t, err)
	_, err = io.Copy(f, rc)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	require.NoError(t, rc.Close())
	require.NoError(t, a.Close())
	t.Logf("source cluster and snapshot in %s", time.Since(t0).Round(time.Millisecond))

	t1 := time.Now()
	var got ProcessSpec
	b := newTestDocker(t, DockerConfig{Members: 3, Prepare: func(spec ProcessSpec) error {
		got = spec
		for _, m := range spec.Members {
			err := snapshot.Restore(snapshot.RestoreOptions{SnapshotPath: snap, DataDir: m.DataDir, Name: m.Name,
				InitialCluster: spec.InitialCluster, InitialClusterToken: spec.Token, InitialAdvertisePeerURLs: []string{m.PeerURL}})
			if err != nil {
				return err
			}
		}
		return nil
	}})
	require.NoError(t, b.Start(ctx))
	require.Len(t, got.Members, 3)
	require.Equal(t, "havoc-"+b.RunID(), got.Token)
	for _, m := range got.Members {
		_, err := os.Stat(m.DataDir)
		require.True(t, os.IsNotExist(err), "the host copy of %s is removed after the copy", m.Name)
		c, err := b.Client(m.Name)
		require.NoError(t, err)
		v, err := get(c, "restored", 5*time.Second)
		require.NoError(t, err, m.Name)
		require.Equal(t, "yes", v, "%s serves the restored key", m.Name)
	}
	cb, err := b.Client("m2")
	require.NoError(t, err)
	require.NoError(t, put(cb, "after", "x", 10*time.Second), "the restored cluster commits")
	// Stop is graceful and not a member failure; Restart resumes on the volume.
	require.NoError(t, b.Stop("m3"))
	require.NoError(t, b.Err())
	require.NoError(t, b.Restart("m3"))
	require.NoError(t, b.WaitHealthy(ctx, "m3"))
	c3, err := b.Client("m3")
	require.NoError(t, err)
	eventually(t, 20*time.Second, "m3 serves after its restart", func() error {
		v, err := get(c3, "restored", 2*time.Second)
		if err == nil && v != "yes" {
			err = errors.New("read " + v)
		}
		return err
	})
	require.NoError(t, b.Close())
	left, err := Leftovers(context.Background(), b.RunID())
	require.NoError(t, err)
	require.True(t, left.Empty(), "left behind: %+v", left)
	t.Logf("restored cluster: start, reads, stop/restart, close in %s", time.Since(t1).Round(time.Millisecond))

	boom := errors.New("boom")
	c := newTestDocker(t, DockerConfig{Members: 1, Prepare: func(ProcessSpec) error { return boom }})
	require.ErrorIs(t, c.Start(ctx), boom)
	left, err = Leftovers(context.Background(), c.RunID())
	require.NoError(t, err)
	require.True(t, left.Empty(), "a failed Prepare leaves nothing: %+v", left)
}
