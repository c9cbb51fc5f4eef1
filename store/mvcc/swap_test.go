package mvcc

import (
	"bytes"
	"path"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/havoclab/havoc/vfs"
)

// opRecorder is vfs.OS that logs renames and directory syncs.
type opRecorder struct {
	vfs.FS
	ops []string
}

func (r *opRecorder) Rename(o, n string) error {
	r.ops = append(r.ops, "rename "+path.Base(o)+" "+path.Base(n))
	return r.FS.Rename(o, n)
}

func (r *opRecorder) SyncDir(dir string) error {
	r.ops = append(r.ops, "syncdir "+dir)
	return r.FS.SyncDir(dir)
}

// TestSwapSyncsDirectory: Defragment and ReplaceWith rename a new file over the
// backend; the rename is durable only once the directory is synced, so a power
// loss right after either must not bring the old file back.
func TestSwapSyncsDirectory(t *testing.T) {
	s, p := openTest(t, Options{})
	rec := &opRecorder{FS: vfs.OS()}
	s.fs = rec
	_, err := s.Put(&pb.PutRequest{Key: []byte("k"), Value: []byte("v")})
	require.NoError(t, err)
	require.NoError(t, s.Commit())
	dir := filepath.ToSlash(filepath.Dir(p))

	require.NoError(t, s.Defragment())
	require.Equal(t, []string{"rename db.defrag db", "syncdir " + dir}, rec.ops)

	var img bytes.Buffer
	_, err = s.WriteSnapshot(&img)
	require.NoError(t, err)
	rec.ops = nil
	require.NoError(t, s.ReplaceWith(&img))
	require.Equal(t, []string{"rename db.replace db", "syncdir " + dir}, rec.ops)

	ns, _ := openTest(t, Options{NoSync: true})
	rec = &opRecorder{FS: vfs.OS()}
	ns.fs = rec
	require.NoError(t, ns.Defragment())
	require.Equal(t, []string{"rename db.defrag db"}, rec.ops, "NoSync skips the directory sync as it skips every fsync")
}
