package wal

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Record types.
const (
	recHeader    byte = 1
	recMetadata  byte = 2
	recEntry     byte = 3
	recHardState byte = 4
	recSnapshot  byte = 5
)

const (
	recordHeaderBytes = 9 // length, type, crc
	segmentMagic      = "HAVOCWAL"
	segmentVersion    = 1
	headerPayloadLen  = len(segmentMagic) + 4 + 8 + 8

	snapFlagReset        = 1
	snapFlagHasConfState = 2
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var marshalOpts = proto.MarshalOptions{Deterministic: true}

// appendRecord appends a record whose payload is produced by fill (which
// appends to its argument) and returns the extended buffer.
func appendRecord(buf []byte, typ byte, fill func([]byte) []byte) []byte {
	start := len(buf)
	buf = append(buf, make([]byte, recordHeaderBytes)...)
	buf = fill(buf)
	payload := buf[start+recordHeaderBytes:]
	binary.LittleEndian.PutUint32(buf[start:], uint32(len(payload)))
	buf[start+4] = typ
	crc := crc32.Update(crc32.Update(0, castagnoli, []byte{typ}), castagnoli, payload)
	binary.LittleEndian.PutUint32(buf[start+5:], crc)
	return buf
}

func appendBytes(buf []byte, typ byte, b []byte) []byte {
	return appendRecord(buf, typ, func(dst []byte) []byte { return append(dst, b...) })
}

func appendProto(buf []byte, typ byte, m proto.Message) []byte {
	return appendRecord(buf, typ, func(dst []byte) []byte {
		out, err := marshalOpts.MarshalAppend(dst, m)
		if err != nil {
			panic(fmt.Sprintf("wal: marshal %T: %v", m, err))
		}
		return out
	})
}

func appendSegmentHeader(buf []byte, seq, first uint64) []byte {
	return appendRecord(buf, recHeader, func(dst []byte) []byte {
		dst = append(dst, segmentMagic...)
		dst = binary.LittleEndian.AppendUint32(dst, segmentVersion)
		dst = binary.LittleEndian.AppendUint64(dst, seq)
		return binary.LittleEndian.AppendUint64(dst, first)
	})
}

func decodeSegmentHeader(p []byte) (seq, first uint64, err error) {
	if len(p) != headerPayloadLen || !bytes.Equal(p[:len(segmentMagic)], []byte(segmentMagic)) {
		return 0, 0, fmt.Errorf("not a havoc WAL segment header")
	}
	p = p[len(segmentMagic):]
	if v := binary.LittleEndian.Uint32(p); v != segmentVersion {
		return 0, 0, fmt.Errorf("unsupported segment version %d", v)
	}
	return binary.LittleEndian.Uint64(p[4:]), binary.LittleEndian.Uint64(p[12:]), nil
}

func appendSnapshot(buf []byte, s Snapshot, reset bool) []byte {
	return appendRecord(buf, recSnapshot, func(dst []byte) []byte {
		dst = binary.LittleEndian.AppendUint64(dst, s.Index)
		dst = binary.LittleEndian.AppendUint64(dst, s.Term)
		var flags byte
		if reset {
			flags |= snapFlagReset
		}
		if s.ConfState != nil {
			flags |= snapFlagHasConfState
		}
		dst = append(dst, flags)
		if s.ConfState != nil {
			out, err := marshalOpts.MarshalAppend(dst, s.ConfState)
			if err != nil {
				panic(fmt.Sprintf("wal: marshal ConfState: %v", err))
			}
			dst = out
		}
		return dst
	})
}

func decodeSnapshot(p []byte) (s Snapshot, reset bool, err error) {
	if len(p) < 17 {
		return Snapshot{}, false, fmt.Errorf("snapshot record of %d bytes, want >= 17", len(p))
	}
	s.Index = binary.LittleEndian.Uint64(p)
	s.Term = binary.LittleEndian.Uint64(p[8:])
	flags := p[16]
	if flags&^(snapFlagReset|snapFlagHasConfState) != 0 {
		return Snapshot{}, false, fmt.Errorf("snapshot record with unknown flags %#x", flags)
	}
	if flags&snapFlagHasConfState != 0 {
		s.ConfState = &raftpb.ConfState{}
		if err := proto.Unmarshal(p[17:], s.ConfState); err != nil {
			return Snapshot{}, false, fmt.Errorf("snapshot ConfState: %v", err)
		}
	} else if len(p) > 17 {
		return Snapshot{}, false, fmt.Errorf("snapshot record with %d trailing bytes", len(p)-17)
	}
	return s, flags&snapFlagReset != 0, nil
}

// readRecord parses the record at off. problem is empty on success and
// otherwise says why the bytes at off are not a record.
func readRecord(b []byte, off int) (typ byte, payload []byte, next int, problem string) {
	rest := len(b) - off
	if rest < recordHeaderBytes {
		return 0, nil, 0, fmt.Sprintf("partial record header (%d bytes)", rest)
	}
	length := binary.LittleEndian.Uint32(b[off:])
	typ = b[off+4]
	crc := binary.LittleEndian.Uint32(b[off+5:])
	if length == 0 && typ == 0 && crc == 0 {
		return 0, nil, 0, "zero-filled record header"
	}
	if uint64(length) > uint64(rest-recordHeaderBytes) {
		return 0, nil, 0, fmt.Sprintf("record length %d runs past end of file (%d bytes left)", length, rest-recordHeaderBytes)
	}
	payload = b[off+recordHeaderBytes : off+recordHeaderBytes+int(length)]
	if got := crc32.Update(crc32.Update(0, castagnoli, []byte{typ}), castagnoli, payload); got != crc {
		return 0, nil, 0, fmt.Sprintf("checksum mismatch (stored %08x, computed %08x)", crc, got)
	}
	if typ < recHeader || typ > recSnapshot {
		return 0, nil, 0, fmt.Sprintf("unknown record type %d", typ)
	}
	return typ, payload, off + recordHeaderBytes + int(length), ""
}

// validRecordAfter returns the first offset >= from where a valid record
// starts, or -1. A valid record after damage proves the damage is not a torn
// tail: a torn write only ever loses a suffix.
func validRecordAfter(b []byte, from int) int {
	for p := from; p+recordHeaderBytes <= len(b); p++ {
		if t := b[p+4]; t < recHeader || t > recSnapshot {
			continue
		}
		if _, _, _, problem := readRecord(b, p); problem == "" {
			return p
		}
	}
	return -1
}
