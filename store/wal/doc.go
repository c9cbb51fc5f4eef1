// Package wal is the store's write-ahead log: raft entries, hard states and
// snapshot markers appended to numbered segment files in one directory of a
// vfs.FS, and recovered by Open into everything needed to rebuild raft's
// MemoryStorage.
//
// # Contract
//
// A Save with sync=true, and every SaveSnapshot, is durable when it returns:
// after any crash, Open returns it (unless a later Save overwrote it by
// raft's rule). Data saved with sync=false may or may not survive, but
// recovery never invents data and always returns the effect of a prefix of
// the records written. Any damage that a crash cannot explain (bad checksum
// followed by valid data, damage in a non-final segment, a missing segment,
// an entry index gap, metadata that differs between segments, a foreign
// segment file) makes Open fail with an error wrapping ErrCorrupt that names
// the segment and offset; the log is never silently shortened there.
//
// After a write or sync error the WAL is broken: every later call returns
// the same error, and the caller must Close and Open again (which cuts the
// partial tail).
//
// # Files
//
// Segments are named "%016x-%016x.wal" (sequence, first index): the sequence
// numbers are contiguous and order recovery; the first index is the index the
// next entry was expected to have when the segment was cut. A new segment is
// written as name+".tmp", synced, renamed and the directory synced, so a
// segment name on disk always holds a complete header; leftover .tmp files
// are removed by Open.
//
// A segment is cut when it reaches Options.SegmentBytes and after every
// snapshot marker. Every segment starts with a header record, a metadata
// record and (if one was ever saved) the current hard state, so that removing
// old segments (ReleaseTo) never loses the metadata or the hard state.
//
// # Records
//
// Every record is
//
//	length  uint32 little-endian, bytes of payload
//	type    byte (1 header, 2 metadata, 3 entry, 4 hard state, 5 snapshot)
//	crc     uint32 little-endian, CRC-32C (Castagnoli) of type and payload
//	payload length bytes
//
// Payloads: header = "HAVOCWAL", version uint32, sequence uint64, first index
// uint64 (little-endian; a file whose header does not match its name is
// refused as misplaced or foreign); metadata = the caller's bytes; entry =
// proto-marshalled raftpb.Entry; hard state = proto-marshalled
// raftpb.HardState; snapshot = index uint64, term uint64, flags byte (bit 0:
// reset, bit 1: has ConfState), then the proto-marshalled raftpb.ConfState.
//
// # Recovery
//
// Records are replayed in order. An entry at index i discards any entry at
// index >= i (raft's overwrite rule) and must not leave a gap. A snapshot
// marker at (index, term) drops entries <= index; when the log did not
// contain the entry (index, term) at the time it was written (a snapshot sent
// by the leader replacing a divergent or short log, as raft's restore does),
// the writer flags it "reset" and recovery drops every earlier entry too.
//
// Only the last segment may end in a torn record: a partial header, a length
// that runs past the end of the file, a checksum mismatch or a zero-filled
// tail, with no valid record anywhere after it. Open cuts it away (on disk,
// synced) and reports State.TruncatedTail; such a tail was never synced, so
// it was never acknowledged.
package wal
