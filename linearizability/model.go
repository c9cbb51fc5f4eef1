package linearizability

import (
	"fmt"
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

// put writes value to key at revision mod, or if mod is 0 at an unknown
// revision above lb, with lease. The caller has taken the revision.
func (s *kvState) put(key, value string, mod, lb, lease int64) {
	old, present := s.get(key)
	ks := keyState{key: key, value: value, mod: mod, lease: lease}
	if mod == 0 {
		ks.modLB = lb
	}
	if present {
		ks.create, ks.createLB, ks.version = old.create, old.createLB, old.version+1
	} else {
		ks.create, ks.createLB, ks.version = ks.mod, ks.modLB, 1
	}
	s.set(ks)
}

// matchRev checks an observed revision against a possibly unknown one and
// returns the (now known) revision.
func matchRev(have, lb, seen int64) (int64, bool) {
	if have != 0 {
		return have, seen == have
	}
	return seen, seen > lb
}

// observe checks that a read of key returning (found, kv) at header
// revision h agrees with s. If the read fixes unknown revisions it returns
// the key's new state in fix (s itself never changes).
func (s *kvState) observe(key string, found bool, kv KV, h int64) (ok bool, fix *keyState) {
	ks, present := s.get(key)
	if !found {
		return !present, nil
	}
	if !present || ks.value != kv.Value || ks.version != kv.Version || ks.lease != kv.Lease {
		return false, nil
	}
	if h != 0 && kv.ModRevision > h {
		return false, nil
	}
	mod, ok := matchRev(ks.mod, ks.modLB, kv.ModRevision)
	if !ok {
		return false, nil
	}
	create, ok := matchRev(ks.create, ks.createLB, kv.CreateRevision)
	if !ok || create > mod || ks.version == 1 && mod != create {
		return false, nil
	}
	if mod != ks.mod || create != ks.create {
		ks.mod, ks.create = mod, create
		return true, &ks
	}
	return true, nil
}

// afterRead returns the state after a read at header revision h (0 =
// unrecorded) that fixed the given keys, or false if h is below the
// revision already linearized. It copies st only if something changes.
func (st *kvState) afterRead(h int64, fixes []keyState) (bool, *kvState) {
	if h != 0 && h < st.rev {
		return false, st
	}
	if len(fixes) == 0 && h <= st.rev {
		return true, st
	}
	s := st.clone()
	s.rev = max(s.rev, h)
	for _, ks := range fixes {
		s.set(ks)
	}
	return true, s
}

// writeRev checks and takes the revision r of a write (0 = unknown). An
// unknown revision leaves rev alone: bumping it to the next revision no
// known write owns would be sound (for complete histories) but makes the
// states reached by placing an unknown write at different points differ,
// which defeats Porcupine's cache (measured: 60x slower at 5% unknown).
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

// input is what the model steps on: an operation and what Check learned
// about it from the whole history.
type input struct {
	op *Operation
	// rev is the revision of the write: its response's, or for an unknown
	// write the mod_revision a read saw it at; 0 if unknown.
	rev int64
}

// step applies in to st. An unknown op may be applied anywhere (it took
// effect here); an acknowledged op must match its response.
func step(st *kvState, in *input) (bool, *kvState) {
	op := in.op
	known := op.Outcome == OutcomeOK
	r := in.rev
	if known {
		r = op.Resp.Revision
	}
	read := func(key string, found bool, kv KV) (bool, *kvState) {
		ok, fix := st.observe(key, found, kv, r)
		if !ok {
			return false, st
		}
		if fix == nil {
			return st.afterRead(r, nil)
		}
		return st.afterRead(r, []keyState{*fix})
	}
	write := func(apply func(s *kvState)) (bool, *kvState) {
		s := st.clone()
		if !s.writeRev(r) {
			return false, st
		}
		apply(s)
		return true, s
	}
	put := func(lease int64) (bool, *kvState) {
		return write(func(s *kvState) {
			if r != 0 {
				s.put(op.Key, op.Value, r, 0, lease)
				return
			}
			// Unknown revision. Not recording the lower bound it has
			// (s.rev) keeps the states reached by placing an unknown
			// write at different points equal, which Porcupine's cache
			// needs; the revision checks still pin it if a read sees it.
			s.put(op.Key, op.Value, 0, 0, lease)
		})
	}
	switch op.Kind {
	case KindGet:
		return read(op.Key, op.Resp.Found, respKV(op))
	case KindRange:
		n := 0
		var fixes []keyState
		for _, ks := range st.keys {
			if !strings.HasPrefix(ks.key, op.Prefix) {
				continue
			}
			if n >= len(op.Resp.KVs) || op.Resp.KVs[n].Key != ks.key {
				return false, st
			}
			ok, fix := st.observe(ks.key, true, op.Resp.KVs[n], r)
			if !ok {
				return false, st
			}
			if fix != nil {
				fixes = append(fixes, *fix)
			}
			n++
		}
		if n != len(op.Resp.KVs) {
			return false, st
		}
		return st.afterRead(r, fixes)
	case KindPut:
		return put(0)
	case KindPutLease:
		if !st.live(op.Lease) {
			// etcd rejects a put to a lease that does not exist.
			return !known && r == 0, st
		}
		return put(op.Lease)
	case KindDelete:
		if _, present := st.get(op.Key); !present {
			if !known {
				return r == 0, st
			}
			if op.Resp.Deleted != 0 {
				return false, st
			}
			return st.afterRead(r, nil)
		}
		if known && op.Resp.Deleted != 1 {
			return false, st
		}
		return write(func(s *kvState) { s.remove(op.Key) })
	case KindCAS:
		ks, present := st.get(op.Key)
		cond := !present
		if !op.ExpectAbsent {
			cond = present && ks.value == op.Expect
		}
		if !known {
			if !cond {
				return r == 0, st // a cas seen to have written cannot fail here
			}
			return put(0)
		}
		if op.Resp.Succeeded != cond {
			return false, st
		}
		if cond {
			return put(0)
		}
		return read(op.Key, op.Resp.Found, respKV(op))
	case KindTxn:
		return stepTxn(st, in)
	case KindLeaseGrant:
		if st.live(op.Lease) {
			// etcd refuses to grant a lease ID that is in use.
			return !known, st
		}
		if known && r != 0 && r < st.rev {
			return false, st
		}
		s := st.clone()
		s.rev = max(s.rev, r)
		i, _ := slices.BinarySearch(s.leases, op.Lease)
		s.leases = slices.Insert(s.leases, i, op.Lease)
		return true, s
	case KindLeaseRevoke:
		i, live := slices.BinarySearch(st.leases, op.Lease)
		if !live {
			return !known, st
		}
		s := st.clone()
		s.leases = slices.Delete(s.leases, i, i+1)
		n := len(s.keys)
		s.keys = slices.DeleteFunc(s.keys, func(ks keyState) bool { return ks.lease == op.Lease })
		if n == len(s.keys) {
			// Nothing deleted: no new revision, the header is the current one.
			if known && r != 0 && r < s.rev {
				return false, st
			}
			s.rev = max(s.rev, r)
			return true, s
		}
		if !known {
			r = 0 // its revision is never learned
		}
		if !s.writeRev(r) {
			return false, st
		}
		return true, s
	}
	panic(fmt.Sprintf("linearizability: model step of unknown kind %q (op %d)", op.Kind, op.ID))
}

func equalStates(a, b *kvState) bool {
	return a.rev == b.rev && slices.Equal(a.keys, b.keys) && slices.Equal(a.leases, b.leases)
}

// hashState mixes the fields that usually differ between states; Equal
// settles collisions. Values are unique per write, so value and mod
// identify a key's state well enough.
func hashState(s *kvState) uint64 {
	const prime = 1099511628211
	h := uint64(14695981039346656037)
	mix := func(v uint64) { h = (h ^ v) * prime }
	mix(uint64(s.rev))
	for _, ks := range s.keys {
		for i := 0; i < len(ks.value); i++ {
			mix(uint64(ks.value[i]))
		}
		for i := 0; i < len(ks.key); i++ {
			mix(uint64(ks.key[i]))
		}
		mix(uint64(ks.mod))
		mix(uint64(ks.modLB))
		mix(uint64(ks.create))
		mix(uint64(ks.createLB))
		mix(uint64(ks.lease))
		mix(uint64(ks.version))
	}
	for _, l := range s.leases {
		mix(uint64(l))
	}
	return h
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
		if op.From != "" {
			req = fmt.Sprintf("range(%q*, from %q)", op.Prefix, op.From)
		}
		if op.Limit != 0 {
			req += fmt.Sprintf(" limit %d", op.Limit)
		}
		if op.Opts != nil {
			req += " " + op.Opts.String()
		}
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
	case KindCompact:
		req = fmt.Sprintf("compact(%d)", op.Rev)
	case KindDefrag:
		req = "defrag"
	case KindTxn:
		req = describeTxn(op.Txn)
	default:
		req = string(op.Kind)
	}
	if op.Rev != 0 && op.Kind != KindCompact {
		req += fmt.Sprintf(" at rev %d", op.Rev)
	}
	if op.Serializable {
		req += " serializable"
	}
	switch {
	case op.refused(ErrTextCompacted):
		return fmt.Sprintf("%s -> refused: compacted", req)
	case op.refused(ErrTextFutureRev):
		return fmt.Sprintf("%s -> refused: future revision", req)
	case op.Outcome != OutcomeOK:
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
		if op.Resp.More {
			resp += " more"
		}
		if op.Opts != nil {
			resp += fmt.Sprintf(" count %d", op.Resp.Count)
		}
	case KindCAS:
		if op.Resp.Succeeded {
			resp = "succeeded"
		} else {
			resp = "failed, " + describeKV(op.Resp.Found, respKV(op))
		}
	case KindTxn:
		resp = describeTxnResults(op.Resp.Succeeded, op.Resp.Results)
	case KindDelete:
		resp = fmt.Sprintf("deleted %d", op.Resp.Deleted)
	default:
		resp = "ok"
	}
	return fmt.Sprintf("%s -> %s @rev %d", req, resp, op.Resp.Revision)
}

// kvModel returns the Porcupine model of etcd's KV store. Its inputs and
// outputs are both the *input Check builds (porcupineHistory): unknown
// operations have an infinite return time, failed and serializable
// operations are left out. Its Partition splits a history into the
// independent key groups of partition.
func kvModel() porcupine.Model {
	return porcupine.Model{
		Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
			ops := make([]*Operation, len(history))
			for i := range history {
				ops[i] = history[i].Input.(*input).op
			}
			var parts [][]porcupine.Operation
			for _, idx := range partition(ops, nil) {
				p := make([]porcupine.Operation, len(idx))
				for j, i := range idx {
					p[j] = history[i]
				}
				parts = append(parts, p)
			}
			return parts
		},
		Init: func() any { return &kvState{} },
		Step: func(state, in, _ any) (bool, any) {
			return step(state.(*kvState), in.(*input))
		},
		Equal: func(a, b any) bool { return equalStates(a.(*kvState), b.(*kvState)) },
		Hash:  func(s any) uint64 { return hashState(s.(*kvState)) },
		DescribeOperation: func(in, _ any) string {
			op := in.(*input).op
			// Porcupine labels its rows 0, 1, ... (denseClients): the
			// client's own name goes in every operation's text.
			return fmt.Sprintf("#%d c%02d %s", op.ID, op.Client, Describe(op))
		},
		DescribeState: func(s any) string { return describeState(s.(*kvState)) },
		DescribeOperationMetadata: func(info any) string {
			if op, ok := info.(*Operation); ok {
				return fmt.Sprintf("op %d by c%02d on member %s", op.ID, op.Client, op.Member)
			}
			if info == nil {
				return ""
			}
			return fmt.Sprint(info)
		},
	}
}
