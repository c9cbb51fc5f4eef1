package lazyfs

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
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
		last := pattern(8000, byte('A'+round))
		_, err = f.WriteAt(last, 4096)
		require.NoError(t, err)
		require.NoError(t, f.Close())
		rep, err := l.Crash(true)
		require.NoError(t, err)
		require.True(t, rep.Torn)
		require.Equal(t, 8000, rep.TornLen)
		require.Zero(t, rep.Kept%512, "whole sectors only")
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
		cmd := exec.Command(os.Args[0]) // TestMain: the helper
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
		// A mount elsewhere detaches it; one at the same path works.
		other := filepath.Join(dir, "other")
		require.NoError(t, os.Mkdir(other, 0o755))
		l, err := Mount(other, back, Options{})
		require.NoError(t, err)
		ok, err = Mounted(mnt)
		require.NoError(t, err)
		require.False(t, ok, "the dead mount was detached")
		require.NoError(t, l.Close())
		l, err = Mount(mnt, back, Options{})
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(mnt, "y"), []byte("y"), 0o644))
		require.NoError(t, l.Close())
		ok, err = Mounted(mnt)
		require.NoError(t, err)
		require.False(t, ok)
	}
}

// TestMain runs the test binary as TestNoStaleMount's child when
// LAZYFS_HELPER names a mount: it mounts, says "ready", and holds the mount
// until SIGINT (or a minute).
func TestMain(m *testing.M) {
	if spec := os.Getenv("LAZYFS_HELPER"); spec != "" {
		os.Exit(helperMount(spec))
	}
	os.Exit(m.Run())
}

func helperMount(spec string) int {
	mnt, back, _ := strings.Cut(spec, ":")
	l, err := Mount(mnt, back, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Stdout.WriteString("ready\n")
	select {
	case <-ctx.Done():
	case <-time.After(time.Minute):
	}
	if err := l.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// TestCrashOracle drives random writes, fsyncs and truncates on a few files
// through the mount, crashes (torn half the time) every few operations, and
// compares every file with an oracle: its content at its last fsync, with
// truncates applied at once and, for a torn crash, the kept prefix of the
// newest unsynced write.
func TestCrashOracle(t *testing.T) {
	l := mountT(t, 11)
	rnd := rand.New(rand.NewPCG(5, 5))
	const nfiles = 3
	type model struct{ durable, current []byte }
	put := func(b []byte, off int, data []byte) []byte {
		if need := off + len(data); need > len(b) {
			b = append(b, make([]byte, need-len(b))...)
		}
		copy(b[off:], data)
		return b
	}
	resize := func(b []byte, n int) []byte {
		if n <= len(b) {
			return b[:n:n]
		}
		return append(b, make([]byte, n-len(b))...)
	}
	files := make([]*os.File, nfiles)
	models := make([]model, nfiles)
	open := func() {
		for i := range files {
			f, err := os.OpenFile(filepath.Join(l.Mountpoint(), fmt.Sprint("f", i)), os.O_RDWR|os.O_CREATE, 0o644)
			require.NoError(t, err)
			files[i] = f
		}
	}
	open()
	crashes, torn, dropped := 0, 0, int64(0)
	for range 300 {
		type write struct {
			file, off int
			data      []byte
		}
		var last *write
		for range 1 + rnd.IntN(12) {
			i := rnd.IntN(nfiles)
			m := &models[i]
			switch r := rnd.IntN(10); {
			case r < 6:
				w := write{file: i, off: rnd.IntN(20000), data: make([]byte, 1+rnd.IntN(9000))}
				for k := range w.data {
					w.data[k] = byte(rnd.Uint32())
				}
				_, err := files[i].WriteAt(w.data, int64(w.off))
				require.NoError(t, err)
				m.current = put(m.current, w.off, w.data)
				if last != nil && last.file == i && last.off+len(last.data) == w.off {
					last.data = append(last.data, w.data...) // one run, as the FS tracks it
				} else {
					last = &w
				}
			case r < 9:
				require.NoError(t, files[i].Sync())
				m.durable = slices.Clone(m.current)
				if last != nil && last.file == i {
					last = nil
				}
			default:
				n := rnd.IntN(25000)
				require.NoError(t, files[i].Truncate(int64(n)))
				m.current, m.durable = resize(m.current, n), resize(m.durable, n)
				if last != nil && last.file == i {
					last = nil
				}
			}
		}
		for _, f := range files {
			require.NoError(t, f.Close())
		}
		tear := rnd.IntN(2) == 0
		rep, err := l.Crash(tear)
		require.NoError(t, err)
		crashes++
		dropped += rep.Dropped
		require.Equal(t, tear && last != nil, rep.Torn)
		if rep.Torn {
			torn++
			require.Equal(t, len(last.data), rep.TornLen)
			require.True(t, rep.Kept == 0 || (last.off+rep.Kept)%512 == 0, "the tear ends on a sector boundary: %d+%d", last.off, rep.Kept)
			if rep.Kept > 0 {
				models[last.file].durable = put(models[last.file].durable, last.off, last.data[:rep.Kept])
			}
		}
		for i := range models {
			models[i].current = slices.Clone(models[i].durable)
			got, err := os.ReadFile(filepath.Join(l.Mountpoint(), fmt.Sprint("f", i)))
			require.NoError(t, err)
			require.True(t, bytes.Equal(models[i].durable, got), "crash %d file %d: %d bytes, want %d", crashes, i, len(got), len(models[i].durable))
		}
		open()
	}
	for _, f := range files {
		require.NoError(t, f.Close())
	}
	t.Logf("%d crashes (%d torn), %d unsynced bytes dropped, every file as the oracle says", crashes, torn, dropped)
}

// BenchmarkAppendSync appends 4 KiB and fdatasyncs, as a WAL does, on the
// mount and, for comparison, on the backing dir itself.
func BenchmarkAppendSync(b *testing.B) {
	if err := Check(); err != nil {
		b.Skip(err)
	}
	dir := b.TempDir()
	mnt, back := filepath.Join(dir, "mnt"), filepath.Join(dir, "disk")
	require.NoError(b, os.Mkdir(mnt, 0o755))
	require.NoError(b, os.Mkdir(back, 0o755))
	l, err := Mount(mnt, back, Options{})
	require.NoError(b, err)
	defer l.Close()
	for _, where := range []string{"lazyfs", "backing"} {
		b.Run(where, func(b *testing.B) {
			d := mnt
			if where == "backing" {
				d = back
			}
			f, err := os.Create(filepath.Join(d, "wal-"+where))
			require.NoError(b, err)
			defer f.Close()
			buf := pattern(4096, 'w')
			b.SetBytes(int64(len(buf)))
			for b.Loop() {
				_, err := f.Write(buf)
				require.NoError(b, err)
				require.NoError(b, syscall.Fdatasync(int(f.Fd())))
			}
		})
	}
}
