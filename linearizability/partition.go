package linearizability

import (
	"fmt"
	"strconv"
)

// partition splits ops into groups that no operation spans, so each group
// can be checked on its own (linearizability is compositional over
// independent objects). Keys are the objects, but two things tie them:
//  1. a lease ties every key ever put with it (a revoke deletes them all,
//     in one step), together with its grant and revoke;
//  2. nothing else: a cas, get, put or delete touches one key. Ranges, which
//     span many keys, never reach Porcupine: the revision check covers them.
//
// Groups come out in the order of their first operation, each listing
// indexes into ops in increasing order, so the result is deterministic.
func partition(ops []*Operation) [][]int {
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
	leaseNode := func(l int64) int { return node("l" + strconv.FormatInt(l, 10)) }
	opNode := make([]int, len(ops))
	for i, op := range ops {
		switch op.Kind {
		case KindRange:
			panic(fmt.Sprintf("linearizability: range #%d reached the Porcupine partitions", op.ID))
		case KindLeaseGrant, KindLeaseRevoke:
			opNode[i] = leaseNode(op.Lease)
		case KindPutLease:
			opNode[i] = node("k" + op.Key)
			uf.union(opNode[i], leaseNode(op.Lease))
		default:
			opNode[i] = node("k" + op.Key)
		}
	}
	group := map[int]int{} // root -> index in groups
	var groups [][]int
	for i := range ops {
		root := uf.find(opNode[i])
		g, ok := group[root]
		if !ok {
			g = len(groups)
			group[root] = g
			groups = append(groups, nil)
		}
		groups[g] = append(groups[g], i)
	}
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
