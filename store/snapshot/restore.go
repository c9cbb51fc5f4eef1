package snapshot

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/havoclab/havoc/store/membership"
	"github.com/havoclab/havoc/store/wal"
	"github.com/havoclab/havoc/vfs"
)

// ErrBadRestore reports restore options that cannot work (name not in the
// initial cluster, advertise URLs that differ from its entry, a data dir that is
// not empty). Nothing has been written when it is returned.
var ErrBadRestore = errors.New("snapshot: invalid restore")

// RestoreOptions are `etcdutl snapshot restore`'s flags. Zero values take
// etcdutl's defaults.
type RestoreOptions struct {
	// SnapshotPath is the snapshot file (required).
	SnapshotPath string
	// DataDir must be absent or empty ("<Name>.etcd" when empty).
	DataDir string
	// Name is the restored member's name ("default").
	Name string
	// InitialCluster is "name=peerURL,..." ("default=http://localhost:2380").
	InitialCluster string
	// InitialClusterToken seeds the member and cluster IDs ("etcd-cluster").
	InitialClusterToken string
	// InitialAdvertisePeerURLs must equal Name's entry in InitialCluster
	// (["http://localhost:2380"]).
	InitialAdvertisePeerURLs []string
	// SkipHashCheck accepts a file without a trailer or with a wrong one (a
	// trailer, if present, is still stripped). The image is checked anyway.
	SkipHashCheck bool
}

// Validate fills defaults and checks everything that does not need the disk.
func (o *RestoreOptions) Validate() error {
	if o.SnapshotPath == "" {
		return fmt.Errorf("%w: a snapshot file is required", ErrBadRestore)
	}
	if o.Name == "" {
		o.Name = "default"
	}
	if o.InitialCluster == "" {
		o.InitialCluster = "default=http://localhost:2380"
	}
	if o.InitialClusterToken == "" {
		o.InitialClusterToken = "etcd-cluster"
	}
	if len(o.InitialAdvertisePeerURLs) == 0 {
		o.InitialAdvertisePeerURLs = []string{"http://localhost:2380"}
	}
	if o.DataDir == "" {
		o.DataDir = o.Name + ".etcd"
	}
	_, _, err := o.members()
	return err
}

// members parses the initial cluster and finds Name in it (etcd's
// VerifyBootstrap: the advertised peer URLs must be Name's entry).
func (o *RestoreOptions) members() ([]membership.Member, membership.Member, error) {
	ms, err := membership.ParseInitialCluster(o.InitialCluster, o.InitialClusterToken)
	if err != nil {
		return nil, membership.Member{}, fmt.Errorf("%w: %w", ErrBadRestore, err)
	}
	i := slices.IndexFunc(ms, func(m membership.Member) bool { return m.Name == o.Name })
	if i < 0 {
		return nil, membership.Member{}, fmt.Errorf("%w: member %q is not in --initial-cluster %q", ErrBadRestore, o.Name, o.InitialCluster)
	}
	adv := slices.Clone(o.InitialAdvertisePeerURLs)
	for _, u := range adv {
		if err := membership.ValidateURL(u); err != nil {
			return nil, membership.Member{}, fmt.Errorf("%w: --initial-advertise-peer-urls: %w", ErrBadRestore, err)
		}
	}
	slices.Sort(adv)
	if !slices.Equal(adv, ms[i].PeerURLs) {
		return nil, membership.Member{}, fmt.Errorf("%w: --initial-advertise-peer-urls %q does not match %s's entry %q in --initial-cluster",
			ErrBadRestore, strings.Join(o.InitialAdvertisePeerURLs, ","), o.Name, strings.Join(ms[i].PeerURLs, ","))
	}
	return ms, ms[i], nil
}

// DBPath and WALDir are where Restore puts the backend and the log inside a
// data dir (etcd's layout).
func DBPath(dataDir string) string { return filepath.Join(dataDir, "member", "snap", "db") }

// WALDir is the log directory inside a data dir.
func WALDir(dataDir string) string { return filepath.Join(dataDir, "member", "wal") }

// Restore builds a data dir from a snapshot file, as `etcdutl snapshot restore`
// does, for havoc's store: the backend at DBPath(DataDir) with the new
// membership and consistent index N (the number of members), term 1, and a
// confState of all members as voters; a log at WALDir(DataDir) holding a
// snapshot marker {N, 1, voters} and hard state {term 1, commit N}. The data dir
// is built next to DataDir and renamed into place at the end, so a failure
// leaves nothing behind.
func Restore(opts RestoreOptions) error {
	p, err := prepare(opts)
	if err != nil {
		return err
	}
	defer p.f.Close()
	if err := emptyOrAbsent(p.opts.DataDir); err != nil {
		return err
	}
	parent := filepath.Dir(filepath.Clean(p.opts.DataDir))
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return fmt.Errorf("snapshot: restore: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(p.opts.DataDir)+".restore-")
	if err != nil {
		return fmt.Errorf("snapshot: restore: %w", err)
	}
	done := false
	defer func() {
		if !done {
			os.RemoveAll(tmp)
		}
	}()
	if err := os.MkdirAll(filepath.Dir(DBPath(tmp)), 0o700); err != nil {
		return fmt.Errorf("snapshot: restore: %w", err)
	}
	if err := p.write(DBPath(tmp), vfs.OS(), WALDir(tmp)); err != nil {
		return err
	}
	if err := emptyOrAbsent(p.opts.DataDir); err != nil { // it may have filled meanwhile
		return err
	}
	if err := os.Remove(p.opts.DataDir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("snapshot: restore: %w", err)
	}
	if err := os.Rename(tmp, p.opts.DataDir); err != nil {
		return fmt.Errorf("snapshot: restore: %w", err)
	}
	done = true
	return syncDir(parent)
}

func emptyOrAbsent(dir string) error {
	names, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("%w: data dir %q could not be read: %w", ErrBadRestore, dir, err)
	case len(names) > 0:
		return fmt.Errorf("%w: data dir %q is not empty", ErrBadRestore, dir)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("snapshot: restore: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("snapshot: restore: sync %s: %w", dir, err)
	}
	return nil
}

// RestoreFiles is Restore without the data dir: it writes the backend to dbPath
// (a real file, which must not exist) and the log to walDir on walFS (for
// example a simulated host's disk). It checks the snapshot before it writes
// anything, but is not atomic: on error the caller removes what it gave.
func RestoreFiles(opts RestoreOptions, dbPath string, walFS vfs.FS, walDir string) error {
	p, err := prepare(opts)
	if err != nil {
		return err
	}
	defer p.f.Close()
	return p.write(dbPath, walFS, walDir)
}

// plan is a checked restore: options, members and the snapshot file.
type plan struct {
	opts      RestoreOptions
	all       []membership.Member
	self      membership.Member
	f         *file
	imageSize int64
}

// prepare checks the options and the snapshot file without writing anything.
func prepare(opts RestoreOptions) (*plan, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	all, self, err := opts.members()
	if err != nil {
		return nil, err
	}
	f, err := openFile(opts.SnapshotPath)
	if err != nil {
		return nil, err
	}
	size := f.size
	imageSize := size
	if hasTrailer(size) {
		imageSize = size - hashSize
	}
	if !opts.SkipHashCheck {
		err = checkHash(f, size)
	}
	if err == nil {
		_, err = scan(f, imageSize)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return &plan{opts: opts, all: all, self: self, f: f, imageSize: imageSize}, nil
}

// write copies the image to dbPath, rewrites its membership and raft position,
// and creates the log.
func (p *plan) write(dbPath string, walFS vfs.FS, walDir string) error {
	if err := copyImage(dbPath, io.NewSectionReader(p.f, 0, p.imageSize)); err != nil {
		return err
	}
	n := uint64(len(p.all))
	voters := make([]uint64, len(p.all))
	for i, m := range p.all {
		voters[i] = m.ID
	}
	cs := &raftpb.ConfState{Voters: voters}
	if err := rewriteBackend(dbPath, p.all, n, cs); err != nil {
		return err
	}
	meta, _ := json.Marshal(walMetadata{Name: p.self.Name, MemberID: p.self.ID, ClusterID: membership.ClusterID(voters)})
	w, err := wal.Create(walFS, walDir, meta, wal.Options{})
	if err != nil {
		return fmt.Errorf("snapshot: restore: create log: %w", err)
	}
	err = w.SaveSnapshot(wal.Snapshot{Index: n, Term: 1, ConfState: cs})
	if err == nil {
		err = w.Save(&raftpb.HardState{Term: new(uint64(1)), Commit: new(n)}, nil, true)
	}
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("snapshot: restore: write log: %w", err)
	}
	return nil
}

// walMetadata is store's log metadata (store/node.go walMetadata): the member
// and cluster the log belongs to.
type walMetadata struct {
	Name      string `json:"name"`
	MemberID  uint64 `json:"member_id"`
	ClusterID uint64 `json:"cluster_id"`
}

func copyImage(dst string, src io.Reader) error {
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("snapshot: restore: %w", err)
	}
	_, err = io.Copy(out, src)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("snapshot: restore: copy image: %w", err)
	}
	return nil
}

// rewriteBackend replaces the membership and sets the raft position in one
// bbolt transaction (etcdutl's TrimMembershipFromBackend, AddMember and
// UpdateConsistentIndexForce, plus the confState havoc's store reads at boot).
func rewriteBackend(path string, members []membership.Member, n uint64, cs *raftpb.ConfState) error {
	db, err := bolt.Open(path, 0o600, &bolt.Options{NoFreelistSync: true})
	if err != nil {
		return fmt.Errorf("%w: open restored image: %w", ErrCorrupt, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range []string{"members", "members_removed"} {
			if tx.Bucket([]byte(name)) != nil {
				if err := tx.DeleteBucket([]byte(name)); err != nil {
					return err
				}
			}
		}
		mb, err := tx.CreateBucket([]byte("members"))
		if err != nil {
			return err
		}
		if _, err := tx.CreateBucket([]byte("members_removed")); err != nil {
			return err
		}
		for _, m := range members {
			b, err := json.Marshal(m)
			if err != nil {
				return err
			}
			if err := mb.Put(m.Key(), b); err != nil {
				return err
			}
		}
		meta := tx.Bucket([]byte("meta"))
		if meta == nil {
			return fmt.Errorf("%w: no meta bucket", ErrCorrupt)
		}
		csJSON, err := json.Marshal(cs)
		if err != nil {
			return err
		}
		for _, kv := range [][2][]byte{
			{[]byte("consistent_index"), binary.BigEndian.AppendUint64(nil, n)},
			{[]byte("term"), binary.BigEndian.AppendUint64(nil, 1)},
			{[]byte("confState"), csJSON},
		} {
			if err := meta.Put(kv[0], kv[1]); err != nil {
				return err
			}
		}
		return nil
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("snapshot: restore: rewrite backend: %w", err)
	}
	return nil
}
