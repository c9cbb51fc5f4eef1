package wal

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/havoclab/havoc/vfs"
)

// replay is the recovery state machine: records are fed in log order.
type replay struct {
	st      State
	hasSnap bool
	last    uint64 // index of the last entry, or the base the log continues from
}

func (r *replay) entry(e *raftpb.Entry) string {
	idx := e.GetIndex()
	switch {
	case idx == 0:
		return "entry without index"
	case idx > r.last+1:
		return fmt.Sprintf("entry index gap: entry %d follows %d", idx, r.last)
	case r.hasSnap && idx <= r.st.Snapshot.Index:
		return fmt.Sprintf("entry %d at or before snapshot index %d", idx, r.st.Snapshot.Index)
	}
	ents := r.st.Entries
	if len(ents) > 0 {
		if first := ents[0].GetIndex(); idx < first {
			ents = ents[:0]
		} else {
			ents = ents[:idx-first]
		}
	}
	r.st.Entries = append(ents, e)
	r.last = idx
	return ""
}

func (r *replay) snapshot(s Snapshot, reset bool) string {
	if r.hasSnap && s.Index < r.st.Snapshot.Index {
		return fmt.Sprintf("snapshot index %d before previous snapshot index %d", s.Index, r.st.Snapshot.Index)
	}
	ents := r.st.Entries
	if reset {
		ents, r.last = nil, s.Index
	} else {
		if len(ents) > 0 && ents[0].GetIndex() <= s.Index {
			if k := s.Index - ents[0].GetIndex() + 1; k >= uint64(len(ents)) {
				ents = nil
			} else {
				ents = ents[k:]
			}
		}
		r.last = max(r.last, s.Index)
	}
	r.st.Entries = ents
	r.st.Snapshot = s
	r.hasSnap = true
	return ""
}

func corrupt(segment string, offset int, format string, args ...any) error {
	return fmt.Errorf("%w: segment %s offset %d: %s", ErrCorrupt, segment, offset, fmt.Sprintf(format, args...))
}

// Open recovers the WAL in dir and returns it ready for appends, with the
// recovered State. A torn tail of the last segment is cut on disk (synced)
// before Open returns; any other damage fails with ErrCorrupt.
func Open(fsys vfs.FS, dir string, opts Options) (*WAL, *State, error) {
	if err := opts.Validate(); err != nil {
		return nil, nil, err
	}
	dir = path.Clean(dir)
	names, err := fsys.List(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("%w: %s", ErrNotFound, dir)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("wal: open %s: %w", dir, err)
	}
	var segs []segment
	var tmps []string
	for _, n := range names {
		switch {
		case strings.HasSuffix(n, ".wal.tmp"):
			tmps = append(tmps, n)
		case strings.HasSuffix(n, ".wal"):
			seq, first, ok := parseSegmentName(n)
			if !ok {
				return nil, nil, fmt.Errorf("%w: %s: foreign file with a segment suffix", ErrCorrupt, path.Join(dir, n))
			}
			segs = append(segs, segment{seq: seq, first: first})
		}
	}
	if len(segs) == 0 {
		return nil, nil, fmt.Errorf("%w: %s", ErrNotFound, dir)
	}
	if segs[0].first == 0 {
		return nil, nil, fmt.Errorf("%w: %s: segment %s has first index 0", ErrCorrupt, dir, segs[0].name())
	}
	// Names sort by sequence (fixed-width hex), so a gap or repeat is damage.
	for i := 1; i < len(segs); i++ {
		if segs[i].seq != segs[i-1].seq+1 {
			return nil, nil, fmt.Errorf("%w: %s: missing segment: %s followed by %s", ErrCorrupt, dir, segs[i-1].name(), segs[i].name())
		}
	}

	r := &replay{last: segs[0].first - 1}
	var hs *raftpb.HardState
	var validLen int
	for i := range segs {
		seg := &segs[i]
		isLast := i == len(segs)-1
		b, err := readFile(fsys, path.Join(dir, seg.name()))
		if err != nil {
			return nil, nil, fmt.Errorf("wal: open %s: %w", dir, err)
		}
		n, torn, err := replaySegment(r, seg, b, isLast, &hs)
		if err != nil {
			return nil, nil, err
		}
		if torn {
			r.st.TruncatedTail = true
		}
		validLen = n
	}
	if r.hasSnap && len(r.st.Entries) > 0 && r.st.Entries[0].GetIndex() != r.st.Snapshot.Index+1 {
		return nil, nil, fmt.Errorf("%w: %s: entry index gap: first entry %d after snapshot index %d",
			ErrCorrupt, dir, r.st.Entries[0].GetIndex(), r.st.Snapshot.Index)
	}

	w := &WAL{fs: fsys, dir: dir, opts: opts, metadata: r.st.Metadata, segs: segs, hs: hs, snap: r.st.Snapshot}
	w.lastIndex = r.last
	if r.hasSnap {
		w.termsBase = r.st.Snapshot.Index
	} else if len(r.st.Entries) > 0 {
		w.termsBase = r.st.Entries[0].GetIndex() - 1
	} else {
		w.termsBase = r.last
	}
	for _, e := range r.st.Entries {
		w.terms = append(w.terms, e.GetTerm())
	}
	last := path.Join(dir, segs[len(segs)-1].name())
	f, err := fsys.OpenAppend(last)
	if err != nil {
		return nil, nil, fmt.Errorf("wal: open %s: %w", last, err)
	}
	w.f, w.size = f, int64(validLen)
	if r.st.TruncatedTail {
		if err := f.Truncate(int64(validLen)); err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("wal: truncate torn tail of %s: %w", last, err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("wal: sync %s: %w", last, err)
		}
	}
	if len(tmps) > 0 {
		for _, t := range tmps {
			if err := fsys.Remove(path.Join(dir, t)); err != nil {
				f.Close()
				return nil, nil, fmt.Errorf("wal: remove leftover %s: %w", t, err)
			}
		}
		if err := fsys.SyncDir(dir); err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("wal: sync dir %s: %w", dir, err)
		}
	}
	st := r.st
	st.HardState = &raftpb.HardState{}
	if hs != nil {
		st.HardState = proto.CloneOf(hs)
	}
	if st.Metadata == nil {
		st.Metadata = []byte{}
	}
	return w, &st, nil
}

func readFile(fsys vfs.FS, name string) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return nil, err
	}
	b := make([]byte, size)
	if _, err := f.ReadAt(b, 0); err != nil && !(errors.Is(err, io.EOF) && size == 0) {
		return nil, err
	}
	return b, nil
}

// replaySegment feeds the records of one segment to r. It returns the length
// of the valid prefix and whether a torn tail followed it (last segment
// only); any other damage is an ErrCorrupt error.
func replaySegment(r *replay, seg *segment, b []byte, isLast bool, hs **raftpb.HardState) (int, bool, error) {
	name := seg.name()
	off, nrec := 0, 0
	for ; off < len(b); nrec++ {
		typ, payload, next, problem := readRecord(b, off)
		if problem != "" {
			// A torn write loses a suffix of the last segment, never its
			// header (segments are renamed into place only once synced).
			if !isLast || nrec < 2 {
				return 0, false, corrupt(name, off, "%s", problem)
			}
			if p := validRecordAfter(b, off+1); p >= 0 {
				return 0, false, corrupt(name, off, "%s, yet a valid record follows at offset %d", problem, p)
			}
			return off, true, nil
		}
		switch {
		case nrec == 0:
			if typ != recHeader {
				return 0, false, corrupt(name, off, "segment does not start with a header record (type %d)", typ)
			}
			seq, first, err := decodeSegmentHeader(payload)
			if err != nil {
				return 0, false, corrupt(name, off, "%v", err)
			}
			if seq != seg.seq || first != seg.first {
				return 0, false, corrupt(name, off, "misplaced segment: header says sequence %d first index %d", seq, first)
			}
		case nrec == 1:
			if typ != recMetadata {
				return 0, false, corrupt(name, off, "header not followed by metadata (type %d)", typ)
			}
			if r.st.Metadata == nil {
				r.st.Metadata = append([]byte{}, payload...)
			} else if !bytes.Equal(r.st.Metadata, payload) {
				return 0, false, corrupt(name, off, "metadata mismatch: %q, earlier segments %q", payload, r.st.Metadata)
			}
		default:
			if err := replayRecord(r, seg, typ, payload, hs); err != "" {
				return 0, false, corrupt(name, off, "%s", err)
			}
		}
		off = next
	}
	if nrec < 2 {
		return 0, false, corrupt(name, off, "segment ends before its header and metadata records")
	}
	return off, false, nil
}

func replayRecord(r *replay, seg *segment, typ byte, payload []byte, hs **raftpb.HardState) string {
	switch typ {
	case recEntry:
		e := &raftpb.Entry{}
		if err := proto.Unmarshal(payload, e); err != nil {
			return fmt.Sprintf("entry: %v", err)
		}
		if p := r.entry(e); p != "" {
			return p
		}
		seg.maxIndex = max(seg.maxIndex, e.GetIndex())
	case recHardState:
		h := &raftpb.HardState{}
		if err := proto.Unmarshal(payload, h); err != nil {
			return fmt.Sprintf("hard state: %v", err)
		}
		*hs = h
	case recSnapshot:
		s, reset, err := decodeSnapshot(payload)
		if err != nil {
			return err.Error()
		}
		if p := r.snapshot(s, reset); p != "" {
			return p
		}
		seg.markers = append(seg.markers, s.Index)
	default:
		return fmt.Sprintf("unexpected record type %d after the segment header", typ)
	}
	return ""
}
