package snapshot_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/havoclab/havoc/store/snapshot"
)

func TestWriteFormat(t *testing.T) {
	img := bytes.Repeat([]byte{7}, 4096)
	var out bytes.Buffer
	n, err := snapshot.Write(&out, bytes.NewReader(img))
	require.NoError(t, err)
	require.EqualValues(t, 4096+32, n)
	sum := sha256.Sum256(img)
	require.Equal(t, append(img, sum[:]...), out.Bytes())
	require.EqualValues(t, 32, out.Len()%512, "etcd recognises the trailer by size%%512 == 32")

	_, err = snapshot.Write(&bytes.Buffer{}, bytes.NewReader(make([]byte, 1000)))
	require.ErrorIs(t, err, snapshot.ErrCorrupt)
}

func TestStatusOfHavocSnapshot(t *testing.T) {
	dir := t.TempDir()
	path, rev, want := buildBackend(t, dir, 200, 10)
	require.NoError(t, snapshot.Verify(path))
	st, err := snapshot.Status(path)
	require.NoError(t, err)
	assert.Equal(t, rev, st.Revision)
	assert.Equal(t, len(want), st.TotalKey)
	assert.Equal(t, "3.7.0", st.Version)
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, fi.Size()-32, st.TotalSize)
	assert.NotZero(t, st.Hash)
}

// corruptions are damaged copies of a valid snapshot and the error each must give.
func corruptions(t *testing.T, good []byte) []struct {
	name string
	data []byte
	want error
} {
	img := good[:len(good)-32]
	flip := func(off int) []byte { b := bytes.Clone(good); b[off] ^= 0xff; return b }
	return []struct {
		name string
		data []byte
		want error
	}{
		{"missing hash", bytes.Clone(img), snapshot.ErrMissingHash},
		{"hash flipped", flip(len(good) - 1), snapshot.ErrHashMismatch},
		{"data flipped", flip(len(good) / 2), snapshot.ErrHashMismatch},
		{"truncated by 100", good[:len(good)-100], snapshot.ErrCorrupt},
		{"truncated by a page", append(bytes.Clone(img[:len(img)-4096]), good[len(good)-32:]...), snapshot.ErrHashMismatch},
		{"not bbolt", bytes.Repeat([]byte("x"), 544), snapshot.ErrCorrupt},
		{"empty", nil, snapshot.ErrCorrupt},
		{"short", []byte("abc"), snapshot.ErrCorrupt},
	}
}

func TestVerifyRejects(t *testing.T) {
	dir := t.TempDir()
	path, _, _ := buildBackend(t, dir, 50, 10)
	good, err := os.ReadFile(path)
	require.NoError(t, err)
	for _, c := range corruptions(t, good) {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "bad.snap")
			require.NoError(t, os.WriteFile(p, c.data, 0o600))
			err := snapshot.Verify(p)
			require.ErrorIs(t, err, c.want)
			if c.want == snapshot.ErrMissingHash {
				require.Contains(t, err.Error(), "snapshot missing hash")
			}
		})
	}
	t.Run("valid hash over a damaged image", func(t *testing.T) {
		img := bytes.Clone(good[:len(good)-32])
		// Point the meta pages' root at a page past the end (checksums fixed by
		// rewriting through the hash): the structure check must refuse it.
		for i := 4096 * 2; i < len(img); i++ {
			img[i] = 0xAB
		}
		var out bytes.Buffer
		_, err := snapshot.Write(&out, bytes.NewReader(img))
		require.NoError(t, err)
		p := filepath.Join(t.TempDir(), "bad.snap")
		require.NoError(t, os.WriteFile(p, out.Bytes(), 0o600))
		require.ErrorIs(t, snapshot.Verify(p), snapshot.ErrCorrupt)
		_, err = snapshot.Status(p)
		require.ErrorIs(t, err, snapshot.ErrCorrupt)
	})
}

func TestRestoreOpensAsNewCluster(t *testing.T) {
	dir := t.TempDir()
	path, rev, want := buildBackend(t, dir, 300, 10)
	spec := "a=http://127.0.0.1:12380,b=http://127.0.0.1:22380,c=http://127.0.0.1:32380"
	dirs, ms := restoreAll(t, path, filepath.Join(dir, "out"), spec, "restored")
	got, hdrRev, sts := runRestored(t, dirs, ms)
	require.Equal(t, want, got)
	require.Equal(t, rev, hdrRev)
	for _, st := range sts {
		require.Equal(t, rev, st.Revision)
		require.Len(t, st.Voters, 3)
		require.GreaterOrEqual(t, st.SnapshotIndex, uint64(3))
	}
	// The restored db carries the new membership, as etcdutl writes it.
	st, err := snapshot.Status(path)
	require.NoError(t, err)
	require.Equal(t, rev, st.Revision)
}

func TestRestoreRefuses(t *testing.T) {
	dir := t.TempDir()
	path, _, _ := buildBackend(t, dir, 20, 10)
	good, err := os.ReadFile(path)
	require.NoError(t, err)
	base := snapshot.RestoreOptions{Name: "a", InitialCluster: "a=http://h:1,b=http://h:2", InitialClusterToken: "t",
		InitialAdvertisePeerURLs: []string{"http://h:1"}}
	type tc struct {
		name   string
		data   []byte
		mutate func(o *snapshot.RestoreOptions, dataDir string)
		want   error
	}
	cases := []tc{
		{"name not in cluster", good, func(o *snapshot.RestoreOptions, _ string) { o.Name = "z" }, snapshot.ErrBadRestore},
		{"advertise mismatch", good, func(o *snapshot.RestoreOptions, _ string) { o.InitialAdvertisePeerURLs = []string{"http://h:2"} }, snapshot.ErrBadRestore},
		{"bad initial cluster", good, func(o *snapshot.RestoreOptions, _ string) { o.InitialCluster = "a" }, snapshot.ErrBadRestore},
		{"non-empty data dir", good, func(o *snapshot.RestoreOptions, dd string) {
			require.NoError(t, os.MkdirAll(dd, 0o700))
			require.NoError(t, os.WriteFile(filepath.Join(dd, "x"), nil, 0o600))
		}, snapshot.ErrBadRestore},
	}
	for _, c := range corruptions(t, good) {
		cases = append(cases, tc{name: c.name, data: c.data, want: c.want})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := t.TempDir()
			p := filepath.Join(d, "in.snap")
			require.NoError(t, os.WriteFile(p, c.data, 0o600))
			o := base
			o.SnapshotPath, o.DataDir = p, filepath.Join(d, "out", "data")
			if c.mutate != nil {
				c.mutate(&o, o.DataDir)
			}
			before := listTree(t, filepath.Join(d, "out"))
			require.ErrorIs(t, snapshot.Restore(o), c.want)
			require.Equal(t, before, listTree(t, filepath.Join(d, "out")), "a refused restore writes nothing")
		})
	}
	t.Run("skip hash check accepts a bare db", func(t *testing.T) {
		d := t.TempDir()
		p := filepath.Join(d, "bare.db")
		require.NoError(t, os.WriteFile(p, good[:len(good)-32], 0o600))
		o := base
		o.SnapshotPath, o.DataDir, o.SkipHashCheck = p, filepath.Join(d, "data"), true
		require.NoError(t, snapshot.Restore(o))
		_, err := os.Stat(snapshot.DBPath(o.DataDir))
		require.NoError(t, err)
	})
	t.Run("empty data dir is fine", func(t *testing.T) {
		d := t.TempDir()
		o := base
		o.SnapshotPath, o.DataDir = path, filepath.Join(d, "data")
		require.NoError(t, os.MkdirAll(o.DataDir, 0o700))
		require.NoError(t, snapshot.Restore(o))
		st, err := snapshot.Status(snapshot.DBPath(o.DataDir))
		require.NoError(t, err)
		require.NotZero(t, st.Revision)
	})
}

// listTree names every path under dir (nil if dir is absent).
func listTree(t *testing.T, dir string) []string {
	var out []string
	_ = filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err == nil {
			out = append(out, p)
		}
		return nil
	})
	return out
}

func TestStatusJSON(t *testing.T) {
	b, err := json.Marshal(snapshot.DBStatus{Hash: 1, Revision: 2, TotalKey: 3, TotalSize: 4, Version: "3.7.0"})
	require.NoError(t, err)
	require.JSONEq(t, `{"hash":1,"revision":2,"totalKey":3,"totalSize":4,"version":"3.7.0"}`, string(b))
}

func FuzzVerify(f *testing.F) {
	dir := f.TempDir()
	path, _, _ := buildBackend(f, dir, 30, 5)
	good, err := os.ReadFile(path)
	require.NoError(f, err)
	f.Add(good)
	f.Add(good[:len(good)-32])
	f.Add(good[:8192])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		// Never panic or fault; a file that verifies also has a status.
		err := snapshot.VerifyBytes(data)
		_, serr := snapshot.StatusBytes(data)
		if err == nil {
			require.NoError(t, serr)
		}
	})
}

// TestMutationsNeverPanic flips random bytes of a valid image (hash fixed up,
// so the structure checks run) and requires an error or a consistent answer,
// never a panic: a seeded stand-in for long fuzzing runs.
func TestMutationsNeverPanic(t *testing.T) {
	path, _, _ := buildBackend(t, t.TempDir(), 30, 5)
	good, err := os.ReadFile(path)
	require.NoError(t, err)
	img := good[:len(good)-32]
	rnd := rand.New(rand.NewPCG(1, 2))
	rejected := 0
	for range 3000 {
		b := bytes.Clone(img)
		for range 1 + rnd.IntN(8) {
			b[rnd.IntN(len(b))] = byte(rnd.Uint32())
		}
		var out bytes.Buffer
		_, err := snapshot.Write(&out, bytes.NewReader(b))
		require.NoError(t, err)
		if snapshot.VerifyBytes(out.Bytes()) != nil {
			rejected++
		}
		_, _ = snapshot.StatusBytes(out.Bytes())
	}
	require.Positive(t, rejected)
}

// TestMappedFileAgreesWithReadAt runs Status and Verify on files (mapped into
// memory) and on the same bytes through ReadAt, for a valid snapshot and for
// damaged ones: same answers, same errors.
func TestMappedFileAgreesWithReadAt(t *testing.T) {
	dir := t.TempDir()
	path, _, _ := buildBackend(t, dir, 30, 5)
	good, err := os.ReadFile(path)
	require.NoError(t, err)
	rnd := rand.New(rand.NewPCG(3, 4))
	cases := [][]byte{good, good[:len(good)-32], good[:8192], good[:len(good)-100]}
	for range 200 {
		b := bytes.Clone(good[:len(good)-32])
		for range 1 + rnd.IntN(4) {
			b[rnd.IntN(len(b))] = byte(rnd.Uint32())
		}
		var out bytes.Buffer
		_, err := snapshot.Write(&out, bytes.NewReader(b))
		require.NoError(t, err)
		cases = append(cases, out.Bytes())
	}
	for i, b := range cases {
		p := filepath.Join(dir, fmt.Sprintf("case-%d.snap", i))
		require.NoError(t, os.WriteFile(p, b, 0o600))
		st, err := snapshot.Status(p)
		stBytes, errBytes := snapshot.StatusBytes(b)
		require.Equal(t, fmt.Sprint(errBytes), fmt.Sprint(err), "case %d", i)
		require.Equal(t, stBytes, st, "case %d", i)
		require.Equal(t, fmt.Sprint(snapshot.VerifyBytes(b)), fmt.Sprint(snapshot.Verify(p)), "case %d", i)
	}
}
