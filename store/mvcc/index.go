package mvcc

import (
	"bytes"
	"sort"
)

// blockMax is the size at which a block of the index splits. Blocks keep inserts at
// O(blockMax) copying instead of O(keys) for one sorted slice.
const blockMax = 512

// treeIndex is the ordered map key -> *keyIndex: a list of sorted blocks, each non-empty,
// every key of a block below every key of the next. It plays the role of etcd's btree.
type treeIndex struct {
	blocks [][]*keyIndex
	n      int
}

// find returns the block and position where key is or would be inserted.
func (t *treeIndex) find(key []byte) (bi, i int, found bool) {
	bi = sort.Search(len(t.blocks), func(j int) bool {
		b := t.blocks[j]
		return !b[len(b)-1].less(key)
	})
	if bi == len(t.blocks) {
		return bi, 0, false
	}
	b := t.blocks[bi]
	i = sort.Search(len(b), func(j int) bool { return !b[j].less(key) })
	return bi, i, i < len(b) && bytes.Equal(b[i].key, key)
}

func (t *treeIndex) get(key []byte) *keyIndex {
	bi, i, ok := t.find(key)
	if !ok {
		return nil
	}
	return t.blocks[bi][i]
}

// insert adds ki, whose key must be absent.
func (t *treeIndex) insert(ki *keyIndex) {
	t.n++
	bi, i, ok := t.find(ki.key)
	if ok {
		panic("mvcc: index insert of an existing key " + string(ki.key))
	}
	if len(t.blocks) == 0 {
		t.blocks = append(t.blocks, []*keyIndex{ki})
		return
	}
	if bi == len(t.blocks) {
		bi = len(t.blocks) - 1
		i = len(t.blocks[bi])
	}
	b := append(t.blocks[bi], nil)
	copy(b[i+1:], b[i:])
	b[i] = ki
	if len(b) < 2*blockMax {
		t.blocks[bi] = b
		return
	}
	lo := append([]*keyIndex(nil), b[:blockMax]...)
	hi := append([]*keyIndex(nil), b[blockMax:]...)
	t.blocks = append(t.blocks, nil)
	copy(t.blocks[bi+2:], t.blocks[bi+1:])
	t.blocks[bi], t.blocks[bi+1] = lo, hi
}

// delete removes key if present.
func (t *treeIndex) delete(key []byte) {
	bi, i, ok := t.find(key)
	if !ok {
		return
	}
	t.n--
	b := t.blocks[bi]
	copy(b[i:], b[i+1:])
	b[len(b)-1] = nil
	b = b[:len(b)-1]
	if len(b) > 0 {
		t.blocks[bi] = b
		return
	}
	t.blocks = append(t.blocks[:bi], t.blocks[bi+1:]...)
}

// ascend calls fn on every keyIndex with key >= from and (end empty or key < end), in
// key order, until fn returns false.
func (t *treeIndex) ascend(from, end []byte, fn func(ki *keyIndex) bool) {
	bi, i, _ := t.find(from)
	for ; bi < len(t.blocks); bi, i = bi+1, 0 {
		b := t.blocks[bi]
		for ; i < len(b); i++ {
			if len(end) > 0 && !b[i].less(end) {
				return
			}
			if !fn(b[i]) {
				return
			}
		}
	}
}

// all calls fn on every keyIndex in key order.
func (t *treeIndex) all(fn func(ki *keyIndex)) {
	for _, b := range t.blocks {
		for _, ki := range b {
			fn(ki)
		}
	}
}
