package store

import (
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/encoding/protowire"
)

// proposalLog remembers the request ID of every entry in this member's raft log, so
// that a forwarded proposal (MsgProp) delivered twice by the network is appended
// once. Without it a duplicated MsgProp makes the leader append the same client
// write twice, and the write takes effect twice (two revisions, version +2): havoc's
// duplication fault found exactly that. Every member keeps the index from its own
// log, so a new leader knows the requests its log already holds. Entries leave the
// index when raft's log is compacted past them.
type proposalLog struct {
	ids   map[uint64]uint64 // request ID -> log index
	order []idAt            // by index, for pruning
}

type idAt struct {
	index, id uint64
}

func (p *proposalLog) add(ents []*raftpb.Entry) {
	for _, e := range ents {
		if e.GetType() != raftpb.EntryNormal {
			continue
		}
		if id := requestID(e.GetData()); id != 0 {
			if p.ids == nil {
				p.ids = map[uint64]uint64{}
			}
			p.ids[id] = e.GetIndex()
			if n := len(p.order); n == 0 || p.order[n-1].index <= e.GetIndex() {
				p.order = append(p.order, idAt{e.GetIndex(), id})
			}
		}
	}
}

func (p *proposalLog) has(id uint64) bool {
	_, ok := p.ids[id]
	return ok
}

// pruneBelow forgets entries with index < first.
func (p *proposalLog) pruneBelow(first uint64) {
	i := 0
	for ; i < len(p.order) && p.order[i].index < first; i++ {
		if p.ids[p.order[i].id] == p.order[i].index {
			delete(p.ids, p.order[i].id)
		}
	}
	p.order = p.order[i:]
}

// filter drops the entries of a forwarded proposal that the log already holds or
// that an earlier delivery brought (it may not be in the log yet); it reports
// whether anything is left to step. next is the index the entries would get.
func (p *proposalLog) filter(m *raftpb.Message, next uint64) bool {
	ents := m.GetEntries()
	kept := ents[:0:0]
	for _, e := range ents {
		id := requestID(e.GetData())
		if id != 0 && p.has(id) {
			continue
		}
		if id != 0 {
			if p.ids == nil {
				p.ids = map[uint64]uint64{}
			}
			p.ids[id] = next
			p.order = append(p.order, idAt{next, id})
		}
		kept = append(kept, e)
	}
	if len(kept) == len(ents) {
		return true
	}
	m.Entries = kept
	return len(kept) > 0
}

// requestID reads InternalRaftRequest.header.ID (field 100, then field 1) without
// decoding the whole request; 0 if absent or malformed.
func requestID(data []byte) uint64 {
	for len(data) > 0 {
		num, typ, n := protowire.ConsumeTag(data)
		if n < 0 {
			return 0
		}
		data = data[n:]
		if num == 100 && typ == protowire.BytesType {
			hdr, m := protowire.ConsumeBytes(data)
			if m < 0 {
				return 0
			}
			for len(hdr) > 0 {
				hn, ht, k := protowire.ConsumeTag(hdr)
				if k < 0 {
					return 0
				}
				hdr = hdr[k:]
				if hn == 1 && ht == protowire.VarintType {
					v, k := protowire.ConsumeVarint(hdr)
					if k < 0 {
						return 0
					}
					return v
				}
				k = protowire.ConsumeFieldValue(hn, ht, hdr)
				if k < 0 {
					return 0
				}
				hdr = hdr[k:]
			}
			return 0
		}
		m := protowire.ConsumeFieldValue(num, typ, data)
		if m < 0 {
			return 0
		}
		data = data[m:]
	}
	return 0
}
