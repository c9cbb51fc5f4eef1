package linearizability

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// RangeOptions are the options of a range beyond its span and limit:
// etcd's count_only, keys_only, sort order and target, and the mod and
// create revision filters (0: none).
type RangeOptions struct {
	CountOnly  bool       `json:"count_only,omitempty"`
	KeysOnly   bool       `json:"keys_only,omitempty"`
	SortOrder  SortOrder  `json:"sort_order,omitempty"`
	SortTarget SortTarget `json:"sort_target,omitempty"`
	MinMod     int64      `json:"min_mod,omitempty"`
	MaxMod     int64      `json:"max_mod,omitempty"`
	MinCreate  int64      `json:"min_create,omitempty"`
	MaxCreate  int64      `json:"max_create,omitempty"`
}

// SortOrder is a range's sort order ("": none, which sorts by key, or
// ascending for another target, as etcd does).
type SortOrder string

// The sort orders.
const (
	SortNone    SortOrder = ""
	SortAscend  SortOrder = "ascend"
	SortDescend SortOrder = "descend"
)

// SortTarget is what a range sorts by ("": the key).
type SortTarget string

// The sort targets.
const (
	SortByKey     SortTarget = "key"
	SortByVersion SortTarget = "version"
	SortByCreate  SortTarget = "create"
	SortByMod     SortTarget = "mod"
	SortByValue   SortTarget = "value"
)

var (
	sortOrders  = []SortOrder{SortNone, SortAscend, SortDescend}
	sortTargets = []SortTarget{"", SortByKey, SortByVersion, SortByCreate, SortByMod, SortByValue}
)

func (o *RangeOptions) validate(id int64) error {
	if !slices.Contains(sortOrders, o.SortOrder) || !slices.Contains(sortTargets, o.SortTarget) {
		return fmt.Errorf("%w: op %d: sort %q by %q", ErrMalformed, id, o.SortOrder, o.SortTarget)
	}
	if o.MinMod < 0 || o.MaxMod < 0 || o.MinCreate < 0 || o.MaxCreate < 0 {
		return fmt.Errorf("%w: op %d: a negative revision filter", ErrMalformed, id)
	}
	return nil
}

// order returns the effective order: etcd sorts a range with a target
// other than the key ascending when no order is given.
func (o *RangeOptions) order() SortOrder {
	if o.SortOrder == SortNone && o.SortTarget != "" && o.SortTarget != SortByKey {
		return SortAscend
	}
	return o.SortOrder
}

// filtered reports whether the revision filters leave kv out.
func (o *RangeOptions) filtered(kv *KV) bool {
	return o.MaxMod != 0 && kv.ModRevision > o.MaxMod || o.MinMod != 0 && kv.ModRevision < o.MinMod ||
		o.MaxCreate != 0 && kv.CreateRevision > o.MaxCreate || o.MinCreate != 0 && kv.CreateRevision < o.MinCreate
}

// compareBy orders two key-values by the sort target.
func (o *RangeOptions) compareBy(a, b *KV) int {
	switch o.SortTarget {
	case SortByVersion:
		return cmp.Compare(a.Version, b.Version)
	case SortByCreate:
		return cmp.Compare(a.CreateRevision, b.CreateRevision)
	case SortByMod:
		return cmp.Compare(a.ModRevision, b.ModRevision)
	case SortByValue:
		return strings.Compare(a.Value, b.Value)
	}
	return strings.Compare(a.Key, b.Key)
}

// String renders the options for humans ("keys-only, sort descend by mod").
func (o *RangeOptions) String() string {
	var parts []string
	if o.CountOnly {
		parts = append(parts, "count-only")
	}
	if o.KeysOnly {
		parts = append(parts, "keys-only")
	}
	if o.SortOrder != SortNone || o.SortTarget != "" {
		parts = append(parts, fmt.Sprintf("sort %s by %s", o.order(), cmp.Or(o.SortTarget, SortByKey)))
	}
	for _, f := range []struct {
		name string
		v    int64
	}{{"min-mod", o.MinMod}, {"max-mod", o.MaxMod}, {"min-create", o.MinCreate}, {"max-create", o.MaxCreate}} {
		if f.v != 0 {
			parts = append(parts, fmt.Sprintf("%s %d", f.name, f.v))
		}
	}
	return strings.Join(parts, ", ")
}

// readRev is the revision a successful read saw the keyspace at.
func (op *Operation) readRev() int64 {
	if op.Rev != 0 {
		return op.Rev
	}
	return op.Resp.Revision
}

// checkRangeOptions checks every acknowledged range with options against
// a plain range of the same span at the same revision (the workload reads
// one, then the other pinned to its revision): the plain range is checked
// against the replay of the history (checkRevisions), so the options
// range must be what etcd makes of it: the keys the filters keep, sorted
// by the target in the order (keys of equal target in any order), without
// values if keys-only, none if count-only, and Count the number of keys in
// the span whatever the filters. An options range without such a plain
// range is not checked here.
func checkRangeOptions(ops []Operation) *violation {
	type span struct {
		prefix string
		rev    int64
	}
	base := map[span]int{}
	for i := range ops {
		op := &ops[i]
		if op.Kind == KindRange && op.Outcome == OutcomeOK && op.Opts == nil && op.Limit == 0 && op.From == "" && op.readRev() != 0 {
			base[span{op.Prefix, op.readRev()}] = i
		}
	}
	for i := range ops {
		op := &ops[i]
		if op.Kind != KindRange || op.Outcome != OutcomeOK || op.Opts == nil {
			continue
		}
		b, ok := base[span{op.Prefix, op.readRev()}]
		if !ok {
			continue
		}
		if v := matchOptions(op, &ops[b]); v != "" {
			return &violation{reason: fmt.Sprintf("#%d %s: %s, but #%d read the same span at revision %d: %s",
				op.ID, Describe(op), v, ops[b].ID, op.readRev(), Describe(&ops[b])),
				ops: []int64{ops[b].ID, op.ID}, keys: []string{op.Prefix}, at: 1}
		}
	}
	return nil
}

// matchOptions returns why the range op with options disagrees with the
// plain range b of its span at its revision ("" if it agrees).
func matchOptions(op, b *Operation) string {
	o := op.Opts
	if op.Resp.Count != int64(len(b.Resp.KVs)) {
		return fmt.Sprintf("count %d, not %d", op.Resp.Count, len(b.Resp.KVs))
	}
	var want []KV
	for _, kv := range b.Resp.KVs {
		if !o.filtered(&kv) {
			if o.KeysOnly {
				kv.Value = ""
			}
			want = append(want, kv)
		}
	}
	if o.CountOnly {
		want = nil
	}
	got := op.Resp.KVs
	if len(got) != len(want) {
		return fmt.Sprintf("%d keys, not %d", len(got), len(want))
	}
	for j := 1; j < len(got); j++ {
		c := o.compareBy(&got[j-1], &got[j])
		if o.order() == SortDescend {
			c = -c
		}
		if c > 0 {
			return fmt.Sprintf("keys %q and %q out of order", got[j-1].Key, got[j].Key)
		}
	}
	sorted := slices.Clone(got)
	slices.SortFunc(sorted, func(a, b KV) int { return strings.Compare(a.Key, b.Key) })
	if !slices.Equal(sorted, want) {
		return "other keys or values"
	}
	return ""
}
