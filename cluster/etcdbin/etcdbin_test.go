package etcdbin

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseVersion(t *testing.T) {
	v, err := ParseVersion("3.5.21")
	require.NoError(t, err)
	assert.Equal(t, Version{3, 5, 21, ""}, v)
	assert.Equal(t, "v3.5.21", v.String())
	v, err = ParseVersion("v3.6.0-rc.2")
	require.NoError(t, err)
	assert.Equal(t, "v3.6.0-rc.2", v.String())
	assert.True(t, v.AtLeast(3, 6))
	assert.False(t, v.AtLeast(3, 7))
	assert.True(t, v.AtLeast(2, 9))
	for _, bad := range []string{"", "v3.5", "latest", "v3.5.x", "../v3.5.1"} {
		_, err := ParseVersion(bad)
		assert.Error(t, err, bad)
	}
}

func TestWrapperModulePinsEveryModuleToTheRelease(t *testing.T) {
	v35, _ := ParseVersion("v3.5.21")
	gomod, tools, err := WrapperModule(v35)
	require.NoError(t, err)
	for _, m := range []string{"api/v3", "client/pkg/v3", "client/v3", "etcdctl/v3", "etcdutl/v3", "pkg/v3", "server/v3", "raft/v3"} {
		assert.Contains(t, gomod, "\tgo.etcd.io/etcd/"+m+" v3.5.21\n")
	}
	assert.Equal(t, 8, strings.Count(gomod, " v3.5.21\n"), "no module at another version")
	assert.NotContains(t, gomod, "replace")
	for _, p := range packages {
		assert.Contains(t, tools, `_ "`+p+`"`)
	}

	v36, _ := ParseVersion("v3.6.5")
	gomod, _, err = WrapperModule(v36)
	require.NoError(t, err)
	assert.NotContains(t, gomod, "raft", "3.6 uses go.etcd.io/raft/v3, chosen by the server's own go.mod")
	assert.Contains(t, gomod, "\tgo.etcd.io/etcd/server/v3 v3.6.5\n")
}

func TestWrapperModuleRefusesV34WithTheReason(t *testing.T) {
	v, _ := ParseVersion("v3.4.37")
	_, _, err := WrapperModule(v)
	require.ErrorIs(t, err, errV34)
	assert.Contains(t, err.Error(), "v3.4.37")
	assert.Contains(t, err.Error(), "--etcd-bin")
}

// fakeBuild writes the three programs as small files and counts its calls.
func fakeBuild(calls *atomic.Int32, seen *string) func(context.Context, string, string) error {
	return func(_ context.Context, modDir, outDir string) error {
		calls.Add(1)
		if seen != nil {
			b, err := os.ReadFile(filepath.Join(modDir, "go.mod"))
			if err != nil {
				return err
			}
			*seen = string(b)
		}
		for _, p := range Programs {
			if err := os.WriteFile(filepath.Join(outDir, p), []byte("#!/bin/sh\n"), 0o755); err != nil {
				return err
			}
		}
		return nil
	}
}

func TestGetBuildsOnceThenReusesTheCache(t *testing.T) {
	root := t.TempDir()
	var calls atomic.Int32
	var gomod string
	b := &Builder{Root: root, build: fakeBuild(&calls, &gomod)}
	rel, err := b.Get(context.Background(), "3.5.21")
	require.NoError(t, err)
	assert.Equal(t, Release{Version: "v3.5.21", Dir: filepath.Join(root, "v3.5.21")}, rel)
	assert.Equal(t, filepath.Join(root, "v3.5.21", "etcdctl"), rel.Etcdctl())
	assert.FileExists(t, rel.Etcd())
	assert.FileExists(t, rel.Etcdutl())
	assert.Contains(t, gomod, "go.etcd.io/etcd/server/v3 v3.5.21")
	_, err = b.Get(context.Background(), "v3.5.21")
	require.NoError(t, err)
	assert.EqualValues(t, 1, calls.Load(), "the second Get uses the cache")
	entries, err := os.ReadDir(root)
	require.NoError(t, err)
	require.Len(t, entries, 1, "no temporary build directory is left")
}

func TestGetRebuildsAnIncompleteCacheEntry(t *testing.T) {
	root := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(root, "v3.6.5"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, "v3.6.5", "etcd"), nil, 0o755))
	var calls atomic.Int32
	b := &Builder{Root: root, build: fakeBuild(&calls, nil)}
	// The half-filled directory is in the way of the rename: the error says so
	// rather than using a release without etcdctl.
	_, err := b.Get(context.Background(), "v3.6.5")
	require.Error(t, err)
	require.NoError(t, os.RemoveAll(filepath.Join(root, "v3.6.5")))
	_, err = b.Get(context.Background(), "v3.6.5")
	require.NoError(t, err)
	assert.EqualValues(t, 2, calls.Load())
}

func TestConcurrentGetsOfOneVersionAgree(t *testing.T) {
	root := t.TempDir()
	var calls atomic.Int32
	b := &Builder{Root: root, build: fakeBuild(&calls, nil)}
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = b.Get(context.Background(), "v3.5.21")
		}()
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	assert.True(t, complete(filepath.Join(root, "v3.5.21")))
	entries, err := os.ReadDir(root)
	require.NoError(t, err)
	require.Len(t, entries, 1, "every losing build is discarded")
}

func TestGetReportsAFailedBuildAndCachesNothing(t *testing.T) {
	root := t.TempDir()
	b := &Builder{Root: root, build: func(context.Context, string, string) error { return errors.New("no network") }}
	_, err := b.Get(context.Background(), "v3.5.21")
	require.ErrorContains(t, err, "building etcd v3.5.21: no network")
	entries, err := os.ReadDir(root)
	require.NoError(t, err)
	assert.Empty(t, entries)
}

func TestPinnedIsGoModsEtcd(t *testing.T) {
	b, err := os.ReadFile("../../go.mod")
	require.NoError(t, err)
	assert.Contains(t, string(b), "go.etcd.io/etcd/server/v3 "+Pinned)
}
