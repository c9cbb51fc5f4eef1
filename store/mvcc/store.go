package mvcc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"

	"github.com/havoclab/havoc/vfs"

	"github.com/havoclab/havoc/internal/mutant"
)

// Bucket names of etcd v3.7.3's backend (go.etcd.io/etcd/server/v3/storage/schema, bucket.go).
const (
	BucketKey            = "key"
	BucketMeta           = "meta"
	BucketLease          = "lease"
	BucketAlarm          = "alarm"
	BucketCluster        = "cluster"
	BucketMembers        = "members"
	BucketMembersRemoved = "members_removed"
	BucketAuth           = "auth"
	BucketAuthUsers      = "authUsers"
	BucketAuthRoles      = "authRoles"
)

// allBuckets are created on Open, as etcd 3.7.3 creates them all at start.
var allBuckets = []string{BucketKey, BucketMeta, BucketLease, BucketAlarm, BucketCluster,
	BucketMembers, BucketMembersRemoved, BucketAuth, BucketAuthUsers, BucketAuthRoles}

// Keys of the meta bucket (go.etcd.io/etcd/server/v3/storage/schema: bucket.go, cindex.go, version.go).
var (
	metaConsistentIndex     = []byte("consistent_index")
	metaTerm                = []byte("term")
	metaScheduledCompactRev = []byte("scheduledCompactRev")
	metaFinishedCompactRev  = []byte("finishedCompactRev")
	metaStorageVersion      = []byte("storageVersion")
)

// StorageVersion is the meta storageVersion havoc writes: etcd 3.7's schema.
const StorageVersion = "3.7.0"

// defaultBatchLimit is Options.BatchLimit's zero value.
const defaultBatchLimit = 10000

// Options configure Open.
type Options struct {
	// NoSync skips fsync on commit (tmpfs, simulator). Zero value: fsync on every commit.
	NoSync bool
	// BatchLimit is the number of bucket writes after which the batch commits by itself
	// at the end of an operation; 0 means 10000. Negative is invalid.
	BatchLimit int
	// InitialMmapSize is how much of the file bbolt maps up front (etcd maps
	// 10 GiB). While a Snapshot is open the file can grow without blocking
	// only within this mapping; 0 lets bbolt choose.
	InitialMmapSize int
}

// Validate reports an invalid option.
func (o Options) Validate() error {
	if o.BatchLimit < 0 {
		return fmt.Errorf("mvcc: negative BatchLimit %d", o.BatchLimit)
	}
	if o.InitialMmapSize < 0 {
		return fmt.Errorf("mvcc: negative InitialMmapSize %d", o.InitialMmapSize)
	}
	return nil
}

// LeaseHooks connect the keyspace to the member's lessor. The store calls Exists before
// a put with a lease, Attach when a key gains a lease, Detach when it loses it (put with
// another lease or none, delete).
type LeaseHooks interface {
	Exists(id int64) bool
	Attach(id int64, key []byte)
	Detach(id int64, key []byte)
}

// Store is the MVCC keyspace on one bbolt file. It is not safe for concurrent use: one
// goroutine drives it (see the package doc).
type Store struct {
	path string
	opts Options
	// fs renames a new file over path and syncs its directory (Defragment,
	// ReplaceWith); vfs.OS, or a recorder in tests.
	fs vfs.FS
	db *bolt.DB
	// tx is the open batch; every read and write goes through it.
	tx *bolt.Tx
	// writes counts bucket writes in the batch, for BatchLimit.
	writes int

	idx        *treeIndex
	rev        int64
	compactRev int64
	cindex     uint64
	term       uint64
	// cindexDirty is set when cindex and term are not yet in the batch.
	cindexDirty bool
	hooks       LeaseHooks

	// cache holds decoded KeyValues by revision (see fetch); restore clears it.
	cache []kvSlot

	watch watchState
	// watchChunk is watchChunkEntries, lowered by tests to exercise chunked catch-up.
	watchChunk int
}

// Open opens (creating if needed) the store at path, creates every etcd bucket, and
// rebuilds the index from the key bucket.
func Open(path string, opts Options) (*Store, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.BatchLimit == 0 {
		opts.BatchLimit = defaultBatchLimit
	}
	s := &Store{path: path, opts: opts, fs: vfs.OS(), watchChunk: watchChunkEntries}
	s.watch.init()
	if err := s.openDB(); err != nil {
		return nil, err
	}
	return s, nil
}

// openDB opens the bolt file, prepares its schema, restores the index and starts a batch.
func (s *Store) openDB() error {
	if err := s.openBolt(); err != nil {
		return err
	}
	if err := s.restore(); err != nil {
		s.tx.Rollback()
		s.db.Close()
		s.db, s.tx = nil, nil
		return err
	}
	return nil
}

// prepareSchema creates every etcd bucket and the storage version if missing.
func prepareSchema(tx *bolt.Tx) error {
	for _, b := range allBuckets {
		if _, err := tx.CreateBucketIfNotExists([]byte(b)); err != nil {
			return err
		}
	}
	m := tx.Bucket([]byte(BucketMeta))
	if m.Get(metaStorageVersion) == nil {
		return m.Put(metaStorageVersion, []byte(StorageVersion))
	}
	return nil
}

var errSchemaMissing = errors.New("mvcc: schema missing")

// openBolt opens the bolt file, prepares its schema and starts a batch.
func (s *Store) openBolt() error {
	// bbolt trusts the file: a truncated one crashes the process (SIGBUS, or
	// a panic in a goroutine of its own) while it maps or scans it.
	if err := CheckFile(s.path); err != nil {
		return err
	}
	// The timeout only applies while another process holds the file lock: a
	// second member on the same data dir gets an error instead of hanging.
	db, err := bolt.Open(s.path, 0o600, &bolt.Options{NoSync: s.opts.NoSync, NoFreelistSync: true, Timeout: 2 * time.Second,
		InitialMmapSize: s.opts.InitialMmapSize})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return fmt.Errorf("mvcc: open %s: %w: the file is locked by another process (is another member using this data dir?)", s.path, ErrLocked)
	}
	if err != nil {
		return fmt.Errorf("mvcc: open %s: %w", s.path, err)
	}
	// Write the schema only if it is missing: an empty bbolt transaction still
	// writes a meta page, and a member that refuses to start (e.g. its log is
	// corrupt) must leave its backend as it found it.
	ready := db.View(func(tx *bolt.Tx) error {
		for _, b := range allBuckets {
			if tx.Bucket([]byte(b)) == nil {
				return errSchemaMissing
			}
		}
		if tx.Bucket([]byte(BucketMeta)).Get(metaStorageVersion) == nil {
			return errSchemaMissing
		}
		return nil
	}) == nil
	if !ready {
		err = db.Update(prepareSchema)
	}
	if err != nil {
		db.Close()
		return fmt.Errorf("mvcc: prepare %s: %w", s.path, err)
	}
	tx, err := db.Begin(true)
	if err != nil {
		db.Close()
		return fmt.Errorf("mvcc: begin batch: %w", err)
	}
	s.db, s.tx, s.writes = db, tx, 0
	return nil
}

// restore rebuilds the index, revisions and consistent index from the batch's view of
// the file, as etcd's store.restore does.
func (s *Store) restore() error {
	s.idx = &treeIndex{}
	s.cache = nil
	s.cindexDirty = false
	s.rev, s.compactRev = 1, -1
	meta := s.bucket(BucketMeta)
	s.cindex, s.term = readU64(meta.Get(metaConsistentIndex)), readU64(meta.Get(metaTerm))
	finished, hasFinished := readRev(meta.Get(metaFinishedCompactRev))
	if hasFinished {
		s.compactRev = finished
	}
	scheduled, hasScheduled := readRev(meta.Get(metaScheduledCompactRev))

	c := s.bucket(BucketKey).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		r, tomb := parseRevKey(k)
		kv := &mvccpb.KeyValue{}
		if err := proto.Unmarshal(v, kv); err != nil {
			return fmt.Errorf("mvcc: undecodable value at %x: %w", k, err)
		}
		s.rev = r.main
		ki := s.idx.get(kv.Key)
		switch {
		case ki == nil && tomb:
			ki = &keyIndex{key: kv.Key}
			ki.restoreTombstone(r.main, r.sub)
			s.idx.insert(ki)
		case ki == nil:
			ki = &keyIndex{key: kv.Key}
			ki.restore(revision{main: kv.CreateRevision}, r, kv.Version)
			s.idx.insert(ki)
		case tomb:
			ki.tombstone(r.main, r.sub) // etcd only warns if the key was not live
		default:
			ki.put(r.main, r.sub)
		}
		if tomb {
			ki.lease = 0
		} else {
			ki.lease = kv.Lease
		}
	}
	s.rev = max(s.rev, s.compactRev, scheduled)
	if hasScheduled && scheduled > s.compactRev {
		// A compaction was scheduled but did not finish (an etcd image, or a crash of
		// etcd mid-compaction): finish it, as etcd's restore does.
		s.compactAt(scheduled)
	}
	return nil
}

func readU64(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

func readRev(b []byte) (int64, bool) {
	if b == nil {
		return 0, false
	}
	r, _ := parseRevKey(b)
	return r.main, true
}

func (s *Store) bucket(name string) *bolt.Bucket {
	if s.tx == nil {
		panic(ErrClosed)
	}
	b := s.tx.Bucket([]byte(name))
	if b == nil {
		panic(fmt.Sprintf("mvcc: no bucket %q", name))
	}
	return b
}

// put writes into a bucket of the batch.
func (s *Store) put(bucket string, k, v []byte) {
	b := s.bucket(bucket)
	if bucket == BucketKey {
		b.FillPercent = 0.9 // appends in revision order, like etcd's UnsafeSeqPut
	}
	if err := b.Put(k, v); err != nil {
		panic(fmt.Sprintf("mvcc: put %s/%x: %v", bucket, k, err))
	}
	s.writes++
}

func (s *Store) del(bucket string, k []byte) {
	if err := s.bucket(bucket).Delete(k); err != nil {
		panic(fmt.Sprintf("mvcc: delete %s/%x: %v", bucket, k, err))
	}
	s.writes++
}

// maybeCommit commits the batch once it holds BatchLimit writes. It runs only between
// operations, so a batch never splits a txn.
func (s *Store) maybeCommit() error {
	if s.writes >= s.opts.BatchLimit {
		return s.Commit()
	}
	return nil
}

// Commit commits the batch and opens the next one.
func (s *Store) Commit() error {
	if err := s.commitOnly(); err != nil {
		return err
	}
	return s.begin()
}

func (s *Store) commitOnly() error {
	if s.tx == nil {
		return ErrClosed
	}
	s.writeConsistentIndex()
	tx := s.tx
	s.tx = nil
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("mvcc: commit: %w", err)
	}
	s.writes = 0
	return nil
}

func (s *Store) begin() error {
	tx, err := s.db.Begin(true)
	if err != nil {
		return fmt.Errorf("mvcc: begin batch: %w", err)
	}
	s.tx = tx
	return nil
}

// Close commits the batch and closes the file.
func (s *Store) Close() error {
	if s.db == nil {
		return ErrClosed
	}
	err := s.commitOnly()
	if cerr := s.db.Close(); err == nil {
		err = cerr
	}
	s.db = nil
	return err
}

// Abort simulates a crash: the batch is rolled back and the file closed without commit.
// The Store is unusable afterwards; Open the path again to recover.
func (s *Store) Abort() error {
	if s.db == nil {
		return ErrClosed
	}
	var err error
	if s.tx != nil {
		err = s.tx.Rollback()
		s.tx = nil
	}
	if cerr := s.db.Close(); err == nil {
		err = cerr
	}
	s.db = nil
	return err
}

// Pending returns the number of bucket writes in the open batch (0: a
// commit has nothing to write).
func (s *Store) Pending() int { return s.writes }

// Closed reports whether the store can no longer be used (closed, aborted, or
// a Defragment that could not reopen the file).
func (s *Store) Closed() bool { return s.tx == nil }

// Rev returns the current revision (1 for an empty store).
func (s *Store) Rev() int64 { return s.rev }

// CompactRev returns the compaction revision, -1 if never compacted.
func (s *Store) CompactRev() int64 { return s.compactRev }

// ConsistentIndex returns the raft index and term last set by SetConsistentIndex (or
// read from meta at Open).
func (s *Store) ConsistentIndex() (index, term uint64) { return s.cindex, s.term }

// SetConsistentIndex records the raft index and term of the last applied entry.
// They are written to meta consistent_index and term when the batch commits,
// so they commit atomically with the entries applied in it. Index 0 is never
// written, as in etcd.
func (s *Store) SetConsistentIndex(index, term uint64) {
	s.cindex, s.term = index, term
	if index != 0 {
		s.cindexDirty = true
	}
}

// writeConsistentIndex puts the consistent index and term into the batch if
// they changed since it was last written. Every commit does this first, so
// the file never holds an applied entry without its index.
func (s *Store) writeConsistentIndex() {
	if !s.cindexDirty || s.cindex == 0 {
		return
	}
	ci := s.cindex
	if mutant.On(mutant.ConsistentIndexAhead) {
		ci++
	}
	s.put(BucketMeta, metaConsistentIndex, binary.BigEndian.AppendUint64(nil, ci))
	s.put(BucketMeta, metaTerm, binary.BigEndian.AppendUint64(nil, s.term))
	s.cindexDirty = false
}

// Size returns the size of the db file as bbolt sees it in the batch.
func (s *Store) Size() int64 {
	if s.tx == nil {
		return 0
	}
	return s.tx.Size()
}

// SizeInUse returns Size minus the free pages, as etcd's backend SizeInUse.
func (s *Store) SizeInUse() int64 {
	if s.tx == nil {
		return 0
	}
	return s.tx.Size() - int64(s.db.Stats().FreePageN)*int64(s.db.Info().PageSize)
}

// PutRaw writes key=value into a non-MVCC bucket (lease, alarm, members, ...) in the
// batch. The key bucket is off limits: it would corrupt the index.
func (s *Store) PutRaw(bucket string, key, value []byte) {
	if bucket == BucketKey {
		panic("mvcc: PutRaw on the key bucket")
	}
	s.put(bucket, key, value)
}

// DeleteRaw deletes key from a non-MVCC bucket in the batch.
func (s *Store) DeleteRaw(bucket string, key []byte) {
	if bucket == BucketKey {
		panic("mvcc: DeleteRaw on the key bucket")
	}
	s.del(bucket, key)
}

// GetRaw returns a copy of the value of key in bucket, nil if absent.
func (s *Store) GetRaw(bucket string, key []byte) []byte {
	v := s.bucket(bucket).Get(key)
	if v == nil {
		return nil
	}
	return bytes.Clone(v)
}

// ForEachRaw calls fn on every pair of bucket in key order; k and v are valid only
// during the call. It stops at the first error and returns it.
func (s *Store) ForEachRaw(bucket string, fn func(k, v []byte) error) error {
	return s.bucket(bucket).ForEach(fn)
}

// SetLeaseHooks installs the lessor hooks and attaches every live key that carries a
// lease, in key order (etcd's restore attaches them the same way at boot).
func (s *Store) SetLeaseHooks(h LeaseHooks) {
	s.hooks = h
	s.attachAll()
}

func (s *Store) attachAll() {
	if s.hooks == nil {
		return
	}
	s.idx.all(func(ki *keyIndex) {
		if ki.lease != 0 && ki.live() {
			s.hooks.Attach(ki.lease, ki.key)
		}
	})
}

// WriteSnapshot commits the batch and writes a consistent image of the whole
// bbolt file (tx.WriteTo), as etcd's Maintenance.Snapshot does.
func (s *Store) WriteSnapshot(w io.Writer) (int64, error) {
	snap, err := s.OpenSnapshot()
	if err != nil {
		return 0, err
	}
	// Nothing commits in this goroutine until the snapshot is closed, so a
	// growing file cannot wait on its read transaction here.
	n, err := snap.WriteTo(w)
	return n, errors.Join(err, snap.Close())
}

// Snapshot is a consistent image of the backend, taken at one commit, that
// another goroutine can stream while the store goes on (etcd streams its
// snapshot the same way). Close it when done: until then bbolt keeps the
// pages it holds, the file can grow only within InitialMmapSize without
// waiting for it, and Defragment, ReplaceWith and Close wait for it.
type Snapshot struct {
	tx *bolt.Tx
}

// OpenSnapshot commits the batch and opens a Snapshot of the file as of now.
func (s *Store) OpenSnapshot() (*Snapshot, error) {
	if err := s.commitOnly(); err != nil {
		return nil, err
	}
	rtx, err := s.db.Begin(false)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("mvcc: snapshot: %w", err), s.begin())
	}
	if err := s.begin(); err != nil {
		return nil, errors.Join(err, rtx.Rollback())
	}
	return &Snapshot{tx: rtx}, nil
}

// Size is the number of bytes WriteTo writes.
func (p *Snapshot) Size() int64 { return p.tx.Size() }

// WriteTo writes the image to w.
func (p *Snapshot) WriteTo(w io.Writer) (int64, error) { return p.tx.WriteTo(w) }

// Close releases the snapshot.
func (p *Snapshot) Close() error { return p.tx.Rollback() }

// Hash returns etcd's Hash of the whole backend: CRC-32C over every bucket in
// name order (its name, then each key and value), leaving out the meta keys
// that differ between members (term, consistent index, storage version), as
// etcd's backend.Hash with schema.DefaultIgnores does.
func (s *Store) Hash() (uint32, error) {
	if s.tx == nil {
		return 0, ErrClosed
	}
	h := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	c := s.tx.Cursor()
	for name, _ := c.First(); name != nil; name, _ = c.Next() {
		b := s.tx.Bucket(name)
		if b == nil {
			return 0, fmt.Errorf("mvcc: hash: %q is not a bucket", name)
		}
		h.Write(name)
		meta := string(name) == BucketMeta
		err := b.ForEach(func(k, v []byte) error {
			if meta && (bytes.Equal(k, metaTerm) || bytes.Equal(k, metaConsistentIndex) || bytes.Equal(k, metaStorageVersion)) {
				return nil
			}
			h.Write(k)
			h.Write(v)
			return nil
		})
		if err != nil {
			return 0, err
		}
	}
	return h.Sum32(), nil
}

// Defragment rewrites the backend into a fresh file holding only the pages in
// use, and swaps it in, as etcd's defrag does: Size drops to about SizeInUse.
// The keyspace, revisions, index and watchers are unchanged. On error the old
// file stays in place and the store stays usable.
func (s *Store) Defragment() error {
	if err := s.commitOnly(); err != nil {
		return err
	}
	tmp := s.path + ".defrag"
	os.Remove(tmp)
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{NoSync: true, NoFreelistSync: true})
	if err != nil {
		return errors.Join(fmt.Errorf("mvcc: defragment: %w", err), s.begin())
	}
	err = bolt.Compact(dst, s.db, defragTxBytes)
	if err == nil && !s.opts.NoSync {
		err = dst.Sync()
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return errors.Join(fmt.Errorf("mvcc: defragment: %w", err), s.begin())
	}
	if err := s.db.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("mvcc: defragment: close: %w", err)
	}
	s.db = nil
	if err := s.fs.Rename(filepath.ToSlash(tmp), filepath.ToSlash(s.path)); err != nil {
		os.Remove(tmp)
		return errors.Join(fmt.Errorf("mvcc: defragment: %w", err), s.openBolt())
	}
	if err := s.syncDir(); err != nil {
		return errors.Join(fmt.Errorf("mvcc: defragment: %w", err), s.openBolt())
	}
	return s.openBolt()
}

// syncDir makes a rename over the file durable: without it a power loss can
// bring the old file back under its name (the rename lives in the directory).
func (s *Store) syncDir() error {
	if s.opts.NoSync {
		return nil
	}
	return s.fs.SyncDir(filepath.ToSlash(filepath.Dir(s.path)))
}

// defragTxBytes bounds the bytes Defragment copies per transaction.
const defragTxBytes = 64 << 20

// ReplaceWith replaces the whole database with a bbolt image (a raft snapshot from the
// leader): the uncommitted batch is dropped, the image is checked and renamed over the
// file, and index and revisions are reloaded. Watchers keep their position and catch up
// from the new history (or are compacted). If lease hooks are set, keys with leases are
// attached again, so the caller resets its lessor first.
func (s *Store) ReplaceWith(image io.Reader) error {
	if s.db == nil {
		return ErrClosed
	}
	tmp := s.path + ".replace"
	if err := writeFile(tmp, image, !s.opts.NoSync); err != nil {
		return err
	}
	if err := checkImage(tmp); err != nil {
		os.Remove(tmp)
		return err
	}
	oldRev := s.rev
	if err := s.Abort(); err != nil {
		return err
	}
	if err := s.fs.Rename(filepath.ToSlash(tmp), filepath.ToSlash(s.path)); err != nil {
		return fmt.Errorf("mvcc: replace: %w", err)
	}
	if err := s.syncDir(); err != nil {
		return fmt.Errorf("mvcc: replace: %w", err)
	}
	if err := s.openDB(); err != nil {
		return err
	}
	s.watch.resync(oldRev)
	s.attachAll()
	return nil
}

func writeFile(path string, r io.Reader, sync bool) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("mvcc: replace: %w", err)
	}
	_, err = io.Copy(f, r)
	if err == nil && sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("mvcc: replace: %w", err)
	}
	return nil
}

// checkImage opens a candidate image read-only and requires a meta bucket, like
// etcdutl snapshot restore.
func checkImage(path string) error {
	if err := CheckFile(path); err != nil {
		return fmt.Errorf("mvcc: replace: image: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("mvcc: replace: image: %w", err)
	}
	defer db.Close()
	return db.View(func(tx *bolt.Tx) error {
		if tx.Bucket([]byte(BucketMeta)) == nil {
			return errors.New("mvcc: replace: image has no meta bucket")
		}
		return nil
	})
}

// ForEachRawKey calls fn on every key of the key bucket, in order (for tests and
// diagnostics; k is valid only during the call).
func (s *Store) ForEachRawKey(fn func(k []byte)) error {
	return s.bucket(BucketKey).ForEach(func(k, _ []byte) error { fn(k); return nil })
}
