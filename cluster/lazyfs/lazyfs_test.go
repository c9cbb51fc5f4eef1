package lazyfs

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// mountT mounts a lazyfs in a temporary directory, or skips the test when the
// machine cannot (no /dev/fuse, not root and no fusermount3).
func mountT(t *testing.T, seed uint64) *FS {
	t.Helper()
	if err := Check(); err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	mnt, back := filepath.Join(dir, "mnt"), filepath.Join(dir, "disk")
	require.NoError(t, os.Mkdir(mnt, 0o755))
	require.NoError(t, os.Mkdir(back, 0o755))
	l, err := Mount(mnt, back, Options{Seed: seed})
	require.NoError(t, err)
	t.Cleanup(func() {
		require.NoError(t, l.Close())
		ok, err := Mounted(mnt)
		require.NoError(t, err)
		require.False(t, ok, "mount left behind")
	})
	return l
}

func pattern(n int, b byte) []byte { return bytes.Repeat([]byte{b}, n) }

// TestCrashKeepsExactlySynced writes a file in three parts, syncs after the
// second, writes a third, crashes: exactly the first two survive, in the
// backing dir and through the mount; a second file never synced is empty.
func TestCrashKeepsExactlySynced(t *testing.T) {
	l := mountT(t, 1)
	p := filepath.Join(l.Mountpoint(), "wal")
	f, err := os.Create(p)
	require.NoError(t, err)
	_, err = f.Write(pattern(5000, 'a'))
	require.NoError(t, err)
	_, err = f.Write(pattern(3000, 'b'))
	require.NoError(t, err)
	require.NoError(t, f.Sync())
	_, err = f.Write(pattern(7000, 'c'))
	require.NoError(t, err)
	_, err = f.WriteAt(pattern(10, 'd'), 100) // overwrites synced bytes, unsynced
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(l.Mountpoint(), "other"), []byte("never synced"), 0o644))

	// Before the crash the mount shows everything, the backing dir only the synced part.
	got, err := os.ReadFile(p)
	require.NoError(t, err)
	require.Len(t, got, 15000)
	require.Equal(t, pattern(10, 'd'), got[100:110])
	disk, err := os.ReadFile(filepath.Join(l.Backing(), "wal"))
	require.NoError(t, err)
	require.Equal(t, append(pattern(5000, 'a'), pattern(3000, 'b')...), disk)
	bytes, files := l.Unsynced()
	require.EqualValues(t, 7000+10+12, bytes)
	require.Equal(t, 2, files)
	require.NoError(t, f.Close())

	rep, err := l.Crash(false)
	require.NoError(t, err)
	require.Equal(t, CrashReport{Files: 2, Dropped: 7022}, rep)
	// The kernel cached the size and pages of the unsynced writes: Crash
	// must have made it forget them (stat first, before any open).
	st, err := os.Stat(p)
	require.NoError(t, err)
	require.EqualValues(t, 8000, st.Size())
	got, err = os.ReadFile(p)
	require.NoError(t, err)
	require.Equal(t, append(pattern(5000, 'a'), pattern(3000, 'b')...), got)
	other, err := os.ReadFile(filepath.Join(l.Mountpoint(), "other"))
	require.NoError(t, err)
	require.Empty(t, other, "created (metadata survives) but its data was never synced")
}

// TestTornCrash: a torn crash keeps a prefix of the last write and nothing of
// the earlier unsynced ones; over seeds the prefix takes several lengths.
func TestTornCrash(t *testing.T) {
	l := mountT(t, 7)
	p := filepath.Join(l.Mountpoint(), "f")
	synced := pattern(4096, 's')
	lens := map[int]bool{}
	for round := range 8 {
		require.NoError(t, os.WriteFile(p, synced, 0o644))
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		require.NoError(t, err)
		require.NoError(t, f.Sync())
		_, err = f.WriteAt(pattern(100, 'x'), 0) // unsynced, not last
		require.NoError(t, err)
		last := pattern(1000, byte('A'+round))
		_, err = f.WriteAt(last, 4096)
		require.NoError(t, err)
		require.NoError(t, f.Close())
		rep, err := l.Crash(true)
		require.NoError(t, err)
		require.True(t, rep.Torn)
		require.Equal(t, 1000, rep.TornLen)
		got, err := os.ReadFile(p)
		require.NoError(t, err)
		require.Equal(t, synced, got[:4096], "round %d: the earlier unsynced write must be gone", round)
		require.Equal(t, last[:rep.Kept], got[4096:], "round %d: exactly the kept prefix of the last write", round)
		lens[rep.Kept] = true
		require.NoError(t, os.Remove(p))
	}
	require.Greater(t, len(lens), 4, "the kept prefix should vary: %v", lens)
}

// TestTruncateRenameUnlink: metadata passes through; a truncate forgets the
// unsynced data it cut; a renamed file keeps its unsynced data; an unlinked
// file's data does not leak into a new file.
func TestTruncateRenameUnlink(t *testing.T) {
	l := mountT(t, 2)
	m := l.Mountpoint()
	a := filepath.Join(m, "a.tmp")
	require.NoError(t, os.WriteFile(a, pattern(10000, 'a'), 0o644))
	require.NoError(t, os.Truncate(a, 3000))
	st, err := os.Stat(a)
	require.NoError(t, err)
	require.EqualValues(t, 3000, st.Size())
	require.NoError(t, os.Rename(a, filepath.Join(m, "a")))
	got, err := os.ReadFile(filepath.Join(m, "a"))
	require.NoError(t, err)
	require.Equal(t, pattern(3000, 'a'), got)
	f, err := os.OpenFile(filepath.Join(m, "a"), os.O_RDWR, 0)
	require.NoError(t, err)
	require.NoError(t, f.Sync())
	require.NoError(t, f.Close())
	require.NoError(t, os.WriteFile(filepath.Join(m, "gone"), pattern(500, 'g'), 0o644))
	require.NoError(t, os.Remove(filepath.Join(m, "gone")))
	require.NoError(t, os.WriteFile(filepath.Join(m, "new"), nil, 0o644))
	got, err = os.ReadFile(filepath.Join(m, "new"))
	require.NoError(t, err)
	require.Empty(t, got)

	_, err = l.Crash(false)
	require.NoError(t, err)
	got, err = os.ReadFile(filepath.Join(m, "a"))
	require.NoError(t, err)
	require.Equal(t, pattern(3000, 'a'), got, "synced after the rename: survives")
	_, err = os.Stat(a)
	require.ErrorIs(t, err, os.ErrNotExist, "the rename survives")
	_, err = os.Stat(filepath.Join(m, "gone"))
	require.ErrorIs(t, err, os.ErrNotExist)
}

// TestSyncAndClose: Sync writes everything back; Close (tested in cleanup)
// leaves no mount and keeps what was written.
func TestSyncAndClose(t *testing.T) {
	l := mountT(t, 3)
	require.NoError(t, os.WriteFile(filepath.Join(l.Mountpoint(), "x"), []byte("hello"), 0o644))
	require.NoError(t, l.Sync())
	rep, err := l.Crash(true)
	require.NoError(t, err)
	require.Equal(t, CrashReport{}, rep, "nothing left to drop or tear")
	got, err := os.ReadFile(filepath.Join(l.Backing(), "x"))
	require.NoError(t, err)
	require.Equal(t, "hello", string(got))
}

// TestNoStaleMount: a process that mounts and is interrupted unmounts (its
// signal handler closes the FS); one killed with -9 leaves a dead mount that
// the next Mount detaches.
func TestNoStaleMount(t *testing.T) {
	if err := Check(); err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	mnt, back := filepath.Join(dir, "mnt"), filepath.Join(dir, "disk")
	require.NoError(t, os.Mkdir(mnt, 0o755))
	require.NoError(t, os.Mkdir(back, 0o755))
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGKILL} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperMount$")
		cmd.Env = append(os.Environ(), "LAZYFS_HELPER="+mnt+":"+back)
		out, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		line := make([]byte, 6)
		_, err = out.Read(line)
		require.NoError(t, err)
		require.Equal(t, "ready\n", string(line))
		ok, err := Mounted(mnt)
		require.NoError(t, err)
		require.True(t, ok)
		require.NoError(t, cmd.Process.Signal(sig))
		_ = cmd.Wait()
		ok, err = Mounted(mnt)
		require.NoError(t, err)
		if sig == syscall.SIGINT {
			require.False(t, ok, "interrupted: unmounted")
			continue
		}
		require.True(t, ok, "killed: the dead mount stays until the next Mount")
		l, err := Mount(mnt, back, Options{})
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(mnt, "y"), []byte("y"), 0o644))
		require.NoError(t, l.Close())
		ok, err = Mounted(mnt)
		require.NoError(t, err)
		require.False(t, ok)
	}
}

// TestHelperMount is the child of TestNoStaleMount.
func TestHelperMount(t *testing.T) {
	spec := os.Getenv("LAZYFS_HELPER")
	if spec == "" {
		t.Skip("helper process only")
	}
	mnt, back, _ := strings.Cut(spec, ":")
	l, err := Mount(mnt, back, Options{})
	require.NoError(t, err)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Stdout.WriteString("ready\n")
	select {
	case <-ctx.Done():
	case <-time.After(time.Minute):
	}
	require.NoError(t, l.Close())
}
