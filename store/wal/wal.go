package wal

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/havoclab/havoc/vfs"
)

// Sentinel errors, always wrapped with details.
var (
	// ErrCorrupt means the log holds damage a crash cannot explain.
	ErrCorrupt = errors.New("wal: corrupt")
	// ErrNotFound means the directory holds no WAL.
	ErrNotFound = errors.New("wal: not found")
	// ErrExist means Create found a WAL already in the directory.
	ErrExist = errors.New("wal: already exists")
	// ErrClosed is returned by every call after Close.
	ErrClosed = errors.New("wal: closed")
)

// Snapshot is a raft snapshot marker: the position of a snapshot whose data
// the caller keeps elsewhere.
type Snapshot struct {
	Index, Term uint64
	ConfState   *raftpb.ConfState
}

// Options configures a WAL.
type Options struct {
	// SegmentBytes is the size at which a segment is cut; 0 means 64 MiB.
	SegmentBytes int64
}

const defaultSegmentBytes = 64 << 20

// Validate reports whether the options are usable.
func (o Options) Validate() error {
	if o.SegmentBytes < 0 {
		return fmt.Errorf("wal: Options.SegmentBytes %d < 0", o.SegmentBytes)
	}
	return nil
}

func (o Options) segmentBytes() int64 {
	if o.SegmentBytes == 0 {
		return defaultSegmentBytes
	}
	return o.SegmentBytes
}

// State is what Open recovers.
type State struct {
	Metadata []byte
	// Snapshot is the last snapshot marker (zero if none).
	Snapshot Snapshot
	// HardState is the last saved hard state (never nil; zero if none).
	HardState *raftpb.HardState
	// Entries are the entries after Snapshot.Index, contiguous, with raft's
	// overwrite rule applied.
	Entries []*raftpb.Entry
	// TruncatedTail reports that a torn record at the end of the log was cut.
	TruncatedTail bool
}

// segment is what the writer remembers of a live segment file.
type segment struct {
	seq, first uint64
	maxIndex   uint64   // largest entry index written in it (0 if none)
	markers    []uint64 // snapshot marker indexes written in it, ascending
}

func (s segment) name() string { return segmentName(s.seq, s.first) }

func segmentName(seq, first uint64) string { return fmt.Sprintf("%016x-%016x.wal", seq, first) }

// parseSegmentName parses a name made by segmentName.
func parseSegmentName(name string) (seq, first uint64, ok bool) {
	if len(name) != 37 || !strings.HasSuffix(name, ".wal") || name[16] != '-' {
		return 0, 0, false
	}
	if _, err := fmt.Sscanf(name, "%016x-%016x.wal", &seq, &first); err != nil {
		return 0, 0, false
	}
	return seq, first, segmentName(seq, first) == name
}

// WAL is an open write-ahead log. It is not safe for concurrent use.
type WAL struct {
	fs       vfs.FS
	dir      string
	opts     Options
	metadata []byte

	f    vfs.File  // the last segment, opened for appending
	size int64     // bytes in f
	segs []segment // live segments, oldest first; the last is f
	buf  []byte    // encoding scratch, reused

	hs   *raftpb.HardState // last saved, or nil
	snap Snapshot          // last marker

	// lastIndex is the index of the last entry as recovery would see it (or
	// the base the next entry continues from). terms[i] is the term of entry
	// termsBase+1+i, for the entries after the last snapshot: enough to tell
	// at SaveSnapshot whether the log holds the snapshot's entry.
	lastIndex uint64
	termsBase uint64
	terms     []uint64

	err error // sticky: set by the first failed write, sync or Close
}

// Exist reports whether dir holds a WAL segment.
func Exist(fsys vfs.FS, dir string) (bool, error) {
	names, err := fsys.List(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	for _, n := range names {
		if strings.HasSuffix(n, ".wal") {
			return true, nil
		}
	}
	return false, nil
}

// Create makes a new WAL in dir (created if missing) whose segments all carry
// metadata. The first segment is durable when Create returns.
func Create(fsys vfs.FS, dir string, metadata []byte, opts Options) (*WAL, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	dir = path.Clean(dir)
	ok, err := Exist(fsys, dir)
	if err != nil {
		return nil, err
	}
	if ok {
		return nil, fmt.Errorf("%w: %s", ErrExist, dir)
	}
	if err := fsys.MkdirAll(dir); err != nil {
		return nil, fmt.Errorf("wal: create %s: %w", dir, err)
	}
	w := &WAL{fs: fsys, dir: dir, opts: opts, metadata: append([]byte(nil), metadata...)}
	if err := w.cut(0, 1); err != nil {
		return nil, err
	}
	return w, nil
}

// cut writes a new segment (seq, first) durably and makes it the current one.
// The previous segment, if any, must already be synced: a synced later
// segment behind an unsynced earlier one would turn a crash into corruption
// in a non-final segment.
func (w *WAL) cut(seq, first uint64) error {
	seg := segment{seq: seq, first: first}
	final := path.Join(w.dir, seg.name())
	tmp := final + ".tmp"
	buf := appendSegmentHeader(w.buf[:0], seq, first)
	buf = appendBytes(buf, recMetadata, w.metadata)
	if w.hs != nil {
		buf = appendProto(buf, recHardState, w.hs)
	}
	w.buf = buf
	f, err := w.fs.Create(tmp)
	if err != nil {
		return w.fail("create segment", tmp, err)
	}
	if _, err := f.Write(buf); err != nil {
		f.Close()
		return w.fail("write segment header", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return w.fail("sync", tmp, err)
	}
	if err := f.Close(); err != nil {
		return w.fail("close", tmp, err)
	}
	if err := w.fs.Rename(tmp, final); err != nil {
		return w.fail("rename", tmp, err)
	}
	if err := w.fs.SyncDir(w.dir); err != nil {
		return w.fail("sync dir", w.dir, err)
	}
	f, err = w.fs.OpenAppend(final)
	if err != nil {
		return w.fail("open", final, err)
	}
	if w.f != nil {
		if err := w.f.Close(); err != nil {
			f.Close()
			return w.fail("close", w.segs[len(w.segs)-1].name(), err)
		}
	}
	w.f, w.size = f, int64(len(buf))
	w.segs = append(w.segs, seg)
	return nil
}

func (w *WAL) fail(op, name string, err error) error {
	w.err = fmt.Errorf("wal: %s %s: %w", op, name, err)
	return w.err
}

func (w *WAL) current() *segment { return &w.segs[len(w.segs)-1] }

func isEmptyHardState(hs *raftpb.HardState) bool {
	return hs.GetTerm() == 0 && hs.GetVote() == 0 && hs.GetCommit() == 0
}

// Save appends ents and then hs (if non-nil and non-empty) and, if sync,
// makes everything written so far durable. Entries must be contiguous and
// continue or overwrite the log (ents[0].Index <= last index + 1), and come
// after the last snapshot marker; violating that is a caller bug and panics.
func (w *WAL) Save(hs *raftpb.HardState, ents []*raftpb.Entry, sync bool) error {
	if w.err != nil {
		return w.err
	}
	if len(ents) > 0 {
		first := ents[0].GetIndex()
		if first == 0 || first <= w.snap.Index || first > w.lastIndex+1 {
			panic(fmt.Sprintf("wal: Save entries from index %d: last index %d, snapshot index %d", first, w.lastIndex, w.snap.Index))
		}
		for i, e := range ents {
			if e.GetIndex() != first+uint64(i) {
				panic(fmt.Sprintf("wal: Save non-contiguous entries: index %d at position %d after %d", e.GetIndex(), i, first))
			}
		}
	}
	buf := w.buf[:0]
	for _, e := range ents {
		buf = appendProto(buf, recEntry, e)
	}
	saveHS := hs != nil && !isEmptyHardState(hs)
	if saveHS {
		buf = appendProto(buf, recHardState, hs)
	}
	w.buf = buf
	if len(buf) > 0 {
		if _, err := w.f.Write(buf); err != nil {
			return w.fail("write", w.current().name(), err)
		}
		w.size += int64(len(buf))
	}
	for _, e := range ents {
		w.noteEntry(e.GetIndex(), e.GetTerm())
	}
	if saveHS {
		w.hs = proto.CloneOf(hs)
	}
	if w.size >= w.opts.segmentBytes() {
		return w.roll()
	}
	if sync {
		if err := w.f.Sync(); err != nil {
			return w.fail("sync", w.current().name(), err)
		}
	}
	return nil
}

func (w *WAL) noteEntry(index, term uint64) {
	if index <= w.termsBase {
		w.termsBase, w.terms = index-1, w.terms[:0]
	}
	w.terms = append(w.terms[:index-w.termsBase-1], term)
	w.lastIndex = index
	if cur := w.current(); index > cur.maxIndex {
		cur.maxIndex = index
	}
}

// roll syncs the current segment and cuts the next one.
func (w *WAL) roll() error {
	if err := w.f.Sync(); err != nil {
		return w.fail("sync", w.current().name(), err)
	}
	return w.cut(w.current().seq+1, max(w.lastIndex, w.snap.Index)+1)
}

// holds reports whether the log holds the entry (index, term), or cannot
// tell because the entry lies before the tracked window (committed history).
func (w *WAL) holds(index, term uint64) bool {
	switch {
	case index > w.lastIndex:
		return false
	case index < w.termsBase:
		return true
	case index == w.termsBase:
		return w.snap.Index != index || w.snap.Term == term
	}
	return w.terms[index-w.termsBase-1] == term
}

// SaveSnapshot appends a snapshot marker durably and cuts a new segment.
// Entries up to s.Index are dropped from what Open returns; if the log does
// not hold the entry (s.Index, s.Term), every earlier entry is dropped too,
// as raft does when it restores a snapshot over a divergent or short log.
func (w *WAL) SaveSnapshot(s Snapshot) error {
	if w.err != nil {
		return w.err
	}
	if s.Index < w.snap.Index {
		panic(fmt.Sprintf("wal: SaveSnapshot index %d before last snapshot index %d", s.Index, w.snap.Index))
	}
	reset := !w.holds(s.Index, s.Term)
	w.buf = appendSnapshot(w.buf[:0], s, reset)
	if _, err := w.f.Write(w.buf); err != nil {
		return w.fail("write", w.current().name(), err)
	}
	w.size += int64(len(w.buf))
	if reset {
		w.lastIndex, w.termsBase, w.terms = s.Index, s.Index, w.terms[:0]
	} else if s.Index > w.termsBase {
		w.terms = append(w.terms[:0], w.terms[s.Index-w.termsBase:]...)
		w.termsBase = s.Index
	}
	w.snap = Snapshot{Index: s.Index, Term: s.Term}
	if s.ConfState != nil {
		w.snap.ConfState = proto.CloneOf(s.ConfState)
	}
	cur := w.current()
	cur.markers = append(cur.markers, s.Index)
	return w.roll()
}

// ReleaseTo removes the oldest segments that recovery no longer needs: let M
// be the last snapshot marker with M.Index <= index; every segment before the
// one holding M whose entries are all <= M.Index goes (only a contiguous
// prefix, so the sequence stays gap-free). The segment holding M is kept: it
// is where recovery starts.
func (w *WAL) ReleaseTo(index uint64) error {
	if w.err != nil {
		return w.err
	}
	k, marker := -1, uint64(0)
	for i, s := range w.segs {
		for _, m := range s.markers {
			if m <= index {
				k, marker = i, m
			}
		}
	}
	n := 0
	for n < k && w.segs[n].maxIndex <= marker {
		n++
	}
	if n == 0 {
		return nil
	}
	for _, s := range w.segs[:n] {
		if err := w.fs.Remove(path.Join(w.dir, s.name())); err != nil {
			return w.fail("remove", s.name(), err)
		}
	}
	w.segs = append(w.segs[:0], w.segs[n:]...)
	if err := w.fs.SyncDir(w.dir); err != nil {
		return w.fail("sync dir", w.dir, err)
	}
	return nil
}

// Close syncs and closes the WAL. Later calls return ErrClosed.
func (w *WAL) Close() error {
	if errors.Is(w.err, ErrClosed) {
		return w.err
	}
	var err error
	if w.err == nil {
		if err = w.f.Sync(); err != nil {
			err = fmt.Errorf("wal: sync %s: %w", w.current().name(), err)
		}
	}
	if cerr := w.f.Close(); err == nil && cerr != nil && w.err == nil {
		err = fmt.Errorf("wal: close %s: %w", w.current().name(), cerr)
	}
	w.err = ErrClosed
	return err
}
