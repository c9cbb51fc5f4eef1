package linearizability

import (
	"fmt"
	"slices"
	"strconv"
)

// partition splits ops into groups that no operation spans, so each group
// can be checked on its own (linearizability is compositional over
// independent objects). Keys are the objects, but two things tie them:
//  1. a lease ties every key ever put with it (a revoke deletes them all,
//     in one step), together with its grant and revoke, unless the lease
//     is anchored (see below);
//  2. a txn ties the keys it compares, gets, puts and deletes;
//  3. nothing else: a cas, get, put or delete touches one key. Ranges, which
//     span many keys, never reach Porcupine: the revision check covers them.
//
// An anchored lease (anchored(lease) is true) ties nothing: its grants and
// revokes go into the group of every key ever put with it (and into a
// group of their own if there is none). Each group then places the revoke
// on its own, which is sound only where the revision order pins it: the
// caller anchors a lease only if each of its revokes is acknowledged with
// a revision and every operation checked has one, so in every group the
// revoke falls at the same point of the one revision order (a read at a
// header revision below it before it, anything at or above after), and
// the groups' linearizations merge into one. A revoke whose outcome or
// revision is unknown has no such point, so its lease still ties its keys.
//
// Groups come out in the order of their first operation, each listing
// indexes into ops in increasing order, so the result is deterministic.
// Only the grants and revokes of anchored leases are in more than one group.
func partition(ops []*Operation, anchored func(lease int64) bool) [][]int {
	ids := map[string]int{} // node names: "k"+key, "l"+lease
	var uf unionFind
	node := func(name string) int {
		if id, ok := ids[name]; ok {
			return id
		}
		id := uf.add()
		ids[name] = id
		return id
	}
	isAnchored := func(l int64) bool { return anchored != nil && anchored(l) }
	leaseNode := func(l int64) int { return node("l" + strconv.FormatInt(l, 10)) }
	opNode := make([]int, len(ops))
	var leases []int64             // anchored leases, in order of first operation
	leaseOps := map[int64][]int{}  // anchored lease -> its grants and revokes
	leaseKeys := map[int64][]int{} // anchored lease -> nodes of the keys put with it
	see := func(l int64) {
		if _, ok := leaseOps[l]; !ok {
			leases = append(leases, l)
			leaseOps[l] = []int{}
		}
	}
	for i, op := range ops {
		switch op.Kind {
		case KindRange:
			panic(fmt.Sprintf("linearizability: range #%d reached the Porcupine partitions", op.ID))
		case KindLeaseGrant, KindLeaseRevoke:
			if isAnchored(op.Lease) {
				see(op.Lease)
				leaseOps[op.Lease] = append(leaseOps[op.Lease], i)
				opNode[i] = -1
				continue
			}
			opNode[i] = leaseNode(op.Lease)
		case KindPutLease:
			opNode[i] = node("k" + op.Key)
			if isAnchored(op.Lease) {
				see(op.Lease)
				leaseKeys[op.Lease] = append(leaseKeys[op.Lease], opNode[i])
				continue
			}
			uf.union(opNode[i], leaseNode(op.Lease))
		case KindTxn:
			// A txn ties the keys it compares, reads (ranges excepted),
			// puts and deletes.
			keys := txnKeys(op.Txn)
			if len(keys) == 0 {
				opNode[i] = node("t" + strconv.FormatInt(op.ID, 10))
				continue
			}
			opNode[i] = node("k" + keys[0])
			for _, k := range keys[1:] {
				uf.union(opNode[i], node("k"+k))
			}
		default:
			opNode[i] = node("k" + op.Key)
		}
	}
	group := map[int]int{} // root -> index in groups
	var groups [][]int
	for i := range ops {
		if opNode[i] < 0 {
			continue
		}
		root := uf.find(opNode[i])
		g, ok := group[root]
		if !ok {
			g = len(groups)
			group[root] = g
			groups = append(groups, nil)
		}
		groups[g] = append(groups[g], i)
	}
	if len(leases) == 0 {
		return groups
	}
	for _, l := range leases {
		var in []int // groups of the keys put with l
		for _, n := range leaseKeys[l] {
			in = append(in, group[uf.find(n)])
		}
		slices.Sort(in)
		in = slices.Compact(in)
		if len(in) == 0 {
			if len(leaseOps[l]) > 0 {
				groups = append(groups, slices.Clone(leaseOps[l]))
			}
			continue
		}
		for _, g := range in {
			groups[g] = append(groups[g], leaseOps[l]...)
		}
	}
	for _, g := range groups {
		slices.Sort(g)
	}
	slices.SortStableFunc(groups, func(a, b []int) int { return a[0] - b[0] })
	return groups
}

// unionFind is a disjoint-set forest with path halving and union by size.
type unionFind struct {
	parent []int
	size   []int
}

func (u *unionFind) add() int {
	u.parent = append(u.parent, len(u.parent))
	u.size = append(u.size, 1)
	return len(u.parent) - 1
}

func (u *unionFind) find(x int) int {
	for u.parent[x] != x {
		u.parent[x] = u.parent[u.parent[x]]
		x = u.parent[x]
	}
	return x
}

func (u *unionFind) union(a, b int) {
	a, b = u.find(a), u.find(b)
	if a == b {
		return
	}
	if u.size[a] < u.size[b] {
		a, b = b, a
	}
	u.parent[b] = a
	u.size[a] += u.size[b]
}
