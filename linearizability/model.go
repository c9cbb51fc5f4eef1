package linearizability

import (
	"fmt"
	"hash/fnv"
	"slices"
	"strings"

	"github.com/anishathalye/porcupine"
)

// keyState is the model's view of one present key. A revision of 0 is
// unknown: it was created by a write whose outcome is unknown, and is only
// known to be greater than the matching lower bound (the highest revision
// linearized before that write). The first read that returns it fixes it.
type keyState struct {
	key      string
	value    string
	mod      int64
	modLB    int64
	create   int64
	createLB int64
	version  int64
	lease    int64
}

// kvState is the state of one partition: its present keys sorted by key,
// its live leases sorted, and rev, the highest revision any operation
// linearized so far carried. Revisions must grow along the linearization:
// a write's revision must exceed rev, a read's header revision must be at
// least rev. States are immutable: steps copy before they change anything.
type kvState struct {
	keys   []keyState
	leases []int64
	rev    int64
}

func (s *kvState) find(key string) (int, bool) {
	return slices.BinarySearchFunc(s.keys, key, func(k keyState, key string) int { return strings.Compare(k.key, key) })
}

func (s *kvState) get(key string) (keyState, bool) {
	i, ok := s.find(key)
	if !ok {
		return keyState{}, false
	}
	return s.keys[i], true
}

func (s *kvState) live(lease int64) bool {
	_, ok := slices.BinarySearch(s.leases, lease)
	return ok
}

func (s *kvState) clone() *kvState {
	return &kvState{keys: slices.Clone(s.keys), leases: slices.Clone(s.leases), rev: s.rev}
}

// set stores ks (in a clone made by the caller).
func (s *kvState) set(ks keyState) {
	i, ok := s.find(ks.key)
	if ok {
		s.keys[i] = ks
		return
	}
	s.keys = slices.Insert(s.keys, i, ks)
}

func (s *kvState) remove(key string) {
	if i, ok := s.find(key); ok {
		s.keys = slices.Delete(s.keys, i, i+1)
	}
}

// put writes value to key at revision rev (0 = unknown) with lease.
func (s *kvState) put(key, value string, rev, lease int64) {
	old, present := s.get(key)
	ks := keyState{key: key, value: value, mod: rev, lease: lease}
	if rev == 0 {
		ks.modLB = s.rev
	}
	if present {
		ks.create, ks.createLB, ks.version = old.create, old.createLB, old.version+1
	} else {
		ks.create, ks.createLB, ks.version = ks.mod, ks.modLB, 1
	}
	s.set(ks)
	if rev != 0 {
		s.rev = rev
	}
}

// matchRev checks an observed revision against a possibly unknown one and
// returns the (now known) revision.
func matchRev(have, lb, seen int64) (int64, bool) {
	if have != 0 {
		return have, seen == have
	}
	return seen, seen > lb
}

// observe checks that a read of key returning (found, kv) at header revision
// h agrees with s, and returns the state with any unknown revisions fixed.
// s must be a clone if a change is possible; observe changes it in place.
func (s *kvState) observe(key string, found bool, kv KV, h int64) bool {
	ks, present := s.get(key)
	if !found {
		return !present
	}
	if !present || ks.value != kv.Value || ks.version != kv.Version || ks.lease != kv.Lease {
		return false
	}
	if h != 0 && kv.ModRevision > h {
		return false
	}
	mod, ok := matchRev(ks.mod, ks.modLB, kv.ModRevision)
	if !ok {
		return false
	}
	create, ok := matchRev(ks.create, ks.createLB, kv.CreateRevision)
	if !ok || create > mod {
		return false
	}
	if mod != ks.mod || create != ks.create {
		ks.mod, ks.create = mod, create
		if ks.version == 1 && ks.mod != ks.create {
			return false
		}
		s.set(ks)
	}
	return true
}

// readRev checks a header revision of an operation that wrote nothing.
func (s *kvState) readRev(h int64) bool {
	if h == 0 {
		return true
	}
	if h < s.rev {
		return false
	}
	s.rev = h
	return true
}

// writeRev checks the revision of an operation that wrote.
func (s *kvState) writeRev(r int64) bool {
	if r == 0 {
		return true
	}
	if r <= s.rev {
		return false
	}
	s.rev = r
	return true
}

func respKV(op *Operation) KV {
	return KV{Key: op.Key, Value: op.Resp.Value, ModRevision: op.Resp.ModRevision,
		CreateRevision: op.Resp.CreateRevision, Version: op.Resp.Version, Lease: op.Resp.Lease}
}

// step applies op to st. An unknown op is applied without checking
// anything (it took effect here, with an unknown revision); an acknowledged
// op must match its response.
func step(st *kvState, op *Operation) (bool, *kvState) {
	s := st.clone()
	known := op.Outcome == OutcomeOK
	r := op.Resp.Revision
	if !known {
		r = 0
	}
	switch op.Kind {
	case KindGet:
		if !s.observe(op.Key, op.Resp.Found, respKV(op), r) {
			return false, st
		}
		return s.readRev(r), s
	case KindRange:
		var want []string
		for _, ks := range s.keys {
			if strings.HasPrefix(ks.key, op.Prefix) {
				want = append(want, ks.key)
			}
		}
		if len(want) != len(op.Resp.KVs) {
			return false, st
		}
		for i, kv := range op.Resp.KVs {
			if kv.Key != want[i] || !s.observe(kv.Key, true, kv, r) {
				return false, st
			}
		}
		return s.readRev(r), s
	case KindPut, KindPutLease:
		lease := int64(0)
		if op.Kind == KindPutLease {
			lease = op.Lease
			if !s.live(lease) {
				// etcd rejects a put to a lease that does not exist.
				return !known, st
			}
		}
		if known && !s.writeRev(r) {
			return false, st
		}
		s.put(op.Key, op.Value, r, lease)
		return true, s
	case KindDelete:
		_, present := s.get(op.Key)
		if !known {
			s.remove(op.Key)
			return true, s
		}
		if !present {
			return op.Resp.Deleted == 0 && s.readRev(r), s
		}
		if op.Resp.Deleted != 1 || !s.writeRev(r) {
			return false, st
		}
		s.remove(op.Key)
		return true, s
	case KindCAS:
		ks, present := s.get(op.Key)
		cond := !present
		if !op.ExpectAbsent {
			cond = present && ks.value == op.Expect
		}
		if !known {
			if cond {
				s.put(op.Key, op.Value, 0, 0)
			}
			return true, s
		}
		if op.Resp.Succeeded != cond {
			return false, st
		}
		if cond {
			if !s.writeRev(r) {
				return false, st
			}
			s.put(op.Key, op.Value, r, 0)
			return true, s
		}
		if !s.observe(op.Key, op.Resp.Found, respKV(op), r) {
			return false, st
		}
		return s.readRev(r), s
	case KindLeaseGrant:
		if s.live(op.Lease) {
			// etcd refuses to grant a lease ID that is in use.
			return !known, st
		}
		if known && !s.readRev(r) {
			return false, st
		}
		i, _ := slices.BinarySearch(s.leases, op.Lease)
		s.leases = slices.Insert(s.leases, i, op.Lease)
		return true, s
	case KindLeaseRevoke:
		i, live := slices.BinarySearch(s.leases, op.Lease)
		if !live {
			return !known, st
		}
		s.leases = slices.Delete(s.leases, i, i+1)
		deleted := false
		s.keys = slices.DeleteFunc(s.keys, func(ks keyState) bool {
			if ks.lease == op.Lease {
				deleted = true
				return true
			}
			return false
		})
		if known {
			if deleted && !s.writeRev(r) || !deleted && !s.readRev(r) {
				return false, st
			}
		}
		return true, s
	}
	panic(fmt.Sprintf("linearizability: model step of unknown kind %q (op %d)", op.Kind, op.ID))
}

func equalStates(a, b *kvState) bool {
	return a.rev == b.rev && slices.Equal(a.keys, b.keys) && slices.Equal(a.leases, b.leases)
}

func hashState(s *kvState) uint64 {
	h := fnv.New64a()
	var buf [8]byte
	putInt := func(v int64) {
		for i := range buf {
			buf[i] = byte(v >> (8 * i))
		}
		h.Write(buf[:])
	}
	putInt(s.rev)
	for _, ks := range s.keys {
		h.Write([]byte(ks.key))
		h.Write([]byte{0})
		h.Write([]byte(ks.value))
		h.Write([]byte{0})
		putInt(ks.mod)
		putInt(ks.modLB)
		putInt(ks.create)
		putInt(ks.version)
		putInt(ks.lease)
	}
	for _, l := range s.leases {
		putInt(l)
	}
	return h.Sum64()
}

func describeRev(r, lb int64) string {
	if r == 0 {
		return fmt.Sprintf(">%d", lb)
	}
	return fmt.Sprint(r)
}

func describeState(s *kvState) string {
	var b strings.Builder
	fmt.Fprintf(&b, "rev %d", s.rev)
	for _, ks := range s.keys {
		fmt.Fprintf(&b, "; %q=%q mod %s create %s ver %d", ks.key, ks.value,
			describeRev(ks.mod, ks.modLB), describeRev(ks.create, ks.createLB), ks.version)
		if ks.lease != 0 {
			fmt.Fprintf(&b, " lease %d", ks.lease)
		}
	}
	if len(s.leases) > 0 {
		fmt.Fprintf(&b, "; leases %v", s.leases)
	}
	return b.String()
}

func describeKV(found bool, kv KV) string {
	if !found {
		return "absent"
	}
	s := fmt.Sprintf("%q mod %d create %d ver %d", kv.Value, kv.ModRevision, kv.CreateRevision, kv.Version)
	if kv.Lease != 0 {
		s += fmt.Sprintf(" lease %d", kv.Lease)
	}
	return s
}

// Describe renders op for humans: the request, then what the client saw.
func Describe(op *Operation) string {
	var req string
	switch op.Kind {
	case KindGet:
		req = fmt.Sprintf("get(%q)", op.Key)
	case KindRange:
		req = fmt.Sprintf("range(%q*)", op.Prefix)
	case KindPut:
		req = fmt.Sprintf("put(%q, %q)", op.Key, op.Value)
	case KindPutLease:
		req = fmt.Sprintf("put(%q, %q, lease %d)", op.Key, op.Value, op.Lease)
	case KindDelete:
		req = fmt.Sprintf("delete(%q)", op.Key)
	case KindCAS:
		if op.ExpectAbsent {
			req = fmt.Sprintf("cas(%q, absent -> %q)", op.Key, op.Value)
		} else {
			req = fmt.Sprintf("cas(%q, %q -> %q)", op.Key, op.Expect, op.Value)
		}
	case KindLeaseGrant:
		req = fmt.Sprintf("lease-grant(%d, ttl %d)", op.Lease, op.TTL)
	case KindLeaseRevoke:
		req = fmt.Sprintf("lease-revoke(%d)", op.Lease)
	default:
		req = string(op.Kind)
	}
	if op.Serializable {
		req += " serializable"
	}
	if op.Outcome != OutcomeOK {
		return fmt.Sprintf("%s -> %s", req, op.Outcome)
	}
	var resp string
	switch op.Kind {
	case KindGet:
		resp = describeKV(op.Resp.Found, respKV(op))
	case KindRange:
		parts := make([]string, len(op.Resp.KVs))
		for i, kv := range op.Resp.KVs {
			parts[i] = fmt.Sprintf("%q=%s", kv.Key, describeKV(true, kv))
		}
		resp = "[" + strings.Join(parts, ", ") + "]"
	case KindCAS:
		if op.Resp.Succeeded {
			resp = "succeeded"
		} else {
			resp = "failed, " + describeKV(op.Resp.Found, respKV(op))
		}
	case KindDelete:
		resp = fmt.Sprintf("deleted %d", op.Resp.Deleted)
	default:
		resp = "ok"
	}
	return fmt.Sprintf("%s -> %s @rev %d", req, resp, op.Resp.Revision)
}

// Model returns the Porcupine model of etcd's KV store that Check uses. Its
// inputs and outputs are both *Operation (the same pointer); unknown
// operations must be given an infinite (math.MaxInt64) return time, and
// failed and serializable operations must be left out, as Check does. Its
// Partition splits a history into the independent key groups of Partition.
func Model() porcupine.Model {
	return porcupine.Model{
		Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
			ops := make([]*Operation, len(history))
			for i := range history {
				ops[i] = history[i].Input.(*Operation)
			}
			var parts [][]porcupine.Operation
			for _, idx := range partition(ops) {
				p := make([]porcupine.Operation, len(idx))
				for j, i := range idx {
					p[j] = history[i]
				}
				parts = append(parts, p)
			}
			return parts
		},
		Init: func() any { return &kvState{} },
		Step: func(state, input, _ any) (bool, any) {
			return step(state.(*kvState), input.(*Operation))
		},
		Equal: func(a, b any) bool { return equalStates(a.(*kvState), b.(*kvState)) },
		Hash:  func(s any) uint64 { return hashState(s.(*kvState)) },
		DescribeOperation: func(input, _ any) string {
			op := input.(*Operation)
			return fmt.Sprintf("#%d %s", op.ID, Describe(op))
		},
		DescribeState: func(s any) string { return describeState(s.(*kvState)) },
		DescribeOperationMetadata: func(info any) string {
			if info == nil {
				return ""
			}
			return fmt.Sprint(info)
		},
	}
}
