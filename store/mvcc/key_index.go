package mvcc

import (
	"bytes"
	"fmt"
)

// keyIndex is the revision history of one key, in etcd's shape (go.etcd.io/etcd/server/v3/storage/mvcc, key_index.go): a list of
// generations, each from a creation to a tombstone; the last generation is the live one
// (empty when the key is deleted). Keeping etcd's shape keeps Version, compaction and
// HashKV's keep set identical to etcd's, including its edge cases.
type keyIndex struct {
	key         []byte
	modified    revision
	generations []generation
	// lease is the lease of the key's live value (0 if none or deleted). etcd keeps this
	// in the lessor; havoc keeps it here so a put knows which lease to detach.
	lease int64
}

// generation is one life of a key: created at revs[0], tombstoned at revs[len-1] unless
// it is the live generation.
type generation struct {
	ver     int64
	created revision
	revs    []revision
}

func (g *generation) isEmpty() bool { return g == nil || len(g.revs) == 0 }

// walk calls f on revs newest first and returns the index of the first rev where f
// returns false, or -1.
func (g *generation) walk(f func(r revision) bool) int {
	for i := len(g.revs) - 1; i >= 0; i-- {
		if !f(g.revs[i]) {
			return i
		}
	}
	return -1
}

func (ki *keyIndex) isEmpty() bool {
	return len(ki.generations) == 1 && ki.generations[0].isEmpty()
}

func (ki *keyIndex) put(main, sub int64) {
	r := revision{main: main, sub: sub}
	if !r.greaterThan(ki.modified) {
		panic(fmt.Sprintf("mvcc: put of key %q at %v not after %v", ki.key, r, ki.modified))
	}
	if len(ki.generations) == 0 {
		ki.generations = append(ki.generations, generation{})
	}
	g := &ki.generations[len(ki.generations)-1]
	if len(g.revs) == 0 {
		g.created = r
	}
	g.revs = append(g.revs, r)
	g.ver++
	ki.modified = r
}

// restore starts the index of a key first met at modified during Open.
func (ki *keyIndex) restore(created, modified revision, ver int64) {
	if len(ki.generations) != 0 {
		panic(fmt.Sprintf("mvcc: restore of non-empty key index %q", ki.key))
	}
	ki.modified = modified
	ki.generations = append(ki.generations, generation{created: created, ver: ver, revs: []revision{modified}})
}

// restoreTombstone starts the index of a key first met as a tombstone during Open (its
// older revisions were compacted away).
func (ki *keyIndex) restoreTombstone(main, sub int64) {
	ki.restore(revision{}, revision{main: main, sub: sub}, 1)
	ki.generations = append(ki.generations, generation{})
}

// tombstone ends the live generation; it reports false if the key is not live.
func (ki *keyIndex) tombstone(main, sub int64) bool {
	if ki.isEmpty() {
		panic(fmt.Sprintf("mvcc: tombstone of empty key index %q", ki.key))
	}
	if ki.generations[len(ki.generations)-1].isEmpty() {
		return false
	}
	ki.put(main, sub)
	ki.generations = append(ki.generations, generation{})
	ki.lease = 0
	return true
}

// live reports whether the key currently has a value.
func (ki *keyIndex) live() bool {
	return len(ki.generations) > 0 && !ki.generations[len(ki.generations)-1].isEmpty()
}

// get returns the revision of the key visible at atRev, its generation's creation and
// its version; ok is false if the key did not exist at atRev.
func (ki *keyIndex) get(atRev int64) (modified, created revision, ver int64, ok bool) {
	if ki.isEmpty() {
		panic(fmt.Sprintf("mvcc: get of empty key index %q", ki.key))
	}
	g := ki.findGeneration(atRev)
	if g.isEmpty() {
		return revision{}, revision{}, 0, false
	}
	n := g.walk(func(r revision) bool { return r.main > atRev })
	if n != -1 {
		return g.revs[n], g.created, g.ver - int64(len(g.revs)-n-1), true
	}
	return revision{}, revision{}, 0, false
}

func (ki *keyIndex) findGeneration(rev int64) *generation {
	lastg := len(ki.generations) - 1
	for cg := lastg; cg >= 0; cg-- {
		if len(ki.generations[cg].revs) == 0 {
			continue
		}
		g := &ki.generations[cg]
		if cg != lastg {
			if tomb := g.revs[len(g.revs)-1].main; tomb <= rev {
				return nil
			}
		}
		if g.revs[0].main <= rev {
			return g
		}
	}
	return nil
}

// doCompact finds the generation and revision that survive a compaction at atRev and
// adds the surviving revision at or below atRev to available.
func (ki *keyIndex) doCompact(atRev int64, available map[revision]struct{}) (genIdx, revIndex int) {
	f := func(r revision) bool {
		if r.main <= atRev {
			available[r] = struct{}{}
			return false
		}
		return true
	}
	g := &ki.generations[0]
	for genIdx < len(ki.generations)-1 {
		if tomb := g.revs[len(g.revs)-1].main; tomb >= atRev {
			break
		}
		genIdx++
		g = &ki.generations[genIdx]
	}
	return genIdx, g.walk(f)
}

// compact drops the history that a compaction at atRev removes.
func (ki *keyIndex) compact(atRev int64, available map[revision]struct{}) {
	if ki.isEmpty() {
		panic(fmt.Sprintf("mvcc: compact of empty key index %q", ki.key))
	}
	genIdx, revIndex := ki.doCompact(atRev, available)
	g := &ki.generations[genIdx]
	if !g.isEmpty() && revIndex != -1 {
		g.revs = g.revs[revIndex:]
	}
	ki.generations = ki.generations[genIdx:]
}

// keep adds what a compaction at atRev would keep, minus tombstones (etcd's Keep, used
// by HashKV).
func (ki *keyIndex) keep(atRev int64, available map[revision]struct{}) {
	if ki.isEmpty() {
		return
	}
	genIdx, revIndex := ki.doCompact(atRev, available)
	g := &ki.generations[genIdx]
	if !g.isEmpty() && revIndex == len(g.revs)-1 && genIdx != len(ki.generations)-1 {
		delete(available, g.revs[revIndex])
	}
}

func (ki *keyIndex) less(key []byte) bool { return bytes.Compare(ki.key, key) < 0 }
