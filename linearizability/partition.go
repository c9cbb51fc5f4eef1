package linearizability

import (
	"slices"
	"sort"
	"strconv"
	"strings"
)

// partition splits ops into groups that no operation spans, so each group
// can be checked on its own (linearizability is compositional over
// independent objects). Keys are the objects, but three things tie them:
//  1. a lease ties every key ever put with it (a revoke deletes them all,
//     in one step), together with its grant and revoke;
//  2. a range ties every key that starts with its prefix, including keys
//     that only appear in range responses;
//  3. nothing else: a cas, get, put or delete touches one key.
//
// Groups come out in the order of their first operation, each listing
// indexes into ops in increasing order, so the result is deterministic.
func partition(ops []*Operation) [][]int {
	ids := map[string]int{} // node names: "k"+key, "l"+lease, "p"+prefix
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
	keySet := map[string]struct{}{}
	var prefixes []string
	for i, op := range ops {
		switch op.Kind {
		case KindRange:
			opNode[i] = node("p" + op.Prefix)
			prefixes = append(prefixes, op.Prefix)
			for _, kv := range op.Resp.KVs {
				keySet[kv.Key] = struct{}{}
				uf.union(opNode[i], node("k"+kv.Key))
			}
		case KindLeaseGrant, KindLeaseRevoke:
			opNode[i] = leaseNode(op.Lease)
		case KindPutLease:
			keySet[op.Key] = struct{}{}
			opNode[i] = node("k" + op.Key)
			uf.union(opNode[i], leaseNode(op.Lease))
		default:
			keySet[op.Key] = struct{}{}
			opNode[i] = node("k" + op.Key)
		}
	}
	// Keys sharing a prefix are contiguous once sorted: union each range
	// prefix with its run of keys, once per distinct prefix.
	keys := make([]string, 0, len(keySet))
	for k := range keySet {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	slices.Sort(prefixes)
	prefixes = slices.Compact(prefixes)
	for _, p := range prefixes {
		pn := ids["p"+p]
		i, _ := slices.BinarySearch(keys, p)
		for ; i < len(keys) && strings.HasPrefix(keys[i], p); i++ {
			uf.union(pn, ids["k"+keys[i]])
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
