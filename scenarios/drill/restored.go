package drill

import (
	"fmt"
	"slices"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/havoclab/havoc/linearizability"
	"github.com/havoclab/havoc/scenarios"
)

// Keyspace is what checkRestored reads of a restored store: in the simulator
// a copy of the restored backend, on a real cluster the restored members over
// gRPC before anything else writes to them.
type Keyspace interface {
	// Rev is the store's current revision.
	Rev() (int64, error)
	// Range reads [key, end) at revision rev (etcd's RangeRequest semantics).
	Range(key, end []byte, rev int64) ([]*mvccpb.KeyValue, error)
	// Leases returns the IDs of the live leases.
	Leases() (map[int64]bool, error)
	// Close releases it.
	Close() error
}

// writesValue reports whether an acknowledged op wrote op.Value at its revision.
func writesValue(op *linearizability.Operation) bool {
	switch op.Kind {
	case linearizability.KindPut, linearizability.KindPutLease:
		return true
	case linearizability.KindCAS:
		return op.Resp.Succeeded
	}
	return false
}

// checkRestored proves the restored keyspace kv is cluster 1's state at the
// snapshot revision R, as its checked history implies:
//   - kv is at revision R exactly (nothing after R);
//   - every acknowledged write with revision <= R is in kv's history at that
//     revision (a put's value, a delete's absence), and every acknowledged
//     write that returned before the save began has a revision <= R;
//   - acknowledged writes with revision > R are reported lost (an error for
//     save-restore only if they returned before the save began);
//   - every key in kv at R holds a value some operation of the history wrote,
//     at the revision that operation was acknowledged with.
//
// It returns the preamble that recreates the restored keys for the checker.
func checkRestored(kv Keyspace, h1 []linearizability.Operation, saveStart time.Duration, r *Report, lose bool) ([]linearizability.Operation, error) {
	R := r.SnapshotRevision
	if rev, err := kv.Rev(); err != nil || rev != R {
		r.fail(scenarios.VerdictFailed, "restored revision %d (%v), snapshot revision %d", rev, err, R)
		return nil, nil
	}
	writer := map[string]*linearizability.Operation{}
	after := 0
	for i := range h1 {
		op := &h1[i]
		if op.Outcome == linearizability.OutcomeFail {
			continue
		}
		if writesValue(op) || (op.Outcome == linearizability.OutcomeUnknown && op.Value != "") {
			writer[op.Value] = op
		}
		if op.Outcome != linearizability.OutcomeOK || op.Resp.Revision == 0 {
			continue
		}
		rev := op.Resp.Revision
		isDelete := op.Kind == linearizability.KindDelete && op.Resp.Deleted > 0
		if !writesValue(op) && !isDelete {
			continue
		}
		if rev > R {
			after++
			if lose {
				r.Lost = append(r.Lost, fmt.Sprintf("%s=%s@%d", op.Key, op.Value, rev))
			}
			if time.Duration(op.Return) < saveStart {
				r.fail(scenarios.VerdictFailed, "write %s=%q acknowledged at %s with revision %d before the save began at %s, but the snapshot is at revision %d",
					op.Key, op.Value, time.Duration(op.Return), rev, saveStart, R)
			}
			continue
		}
		r.RevisionsChecked++
		got, err := kv.Range([]byte(op.Key), nil, rev)
		if err != nil {
			r.fail(scenarios.VerdictFailed, "restored history at revision %d: %v", rev, err)
			continue
		}
		switch {
		case isDelete && len(got) != 0:
			r.fail(scenarios.VerdictFailed, "delete of %s at revision %d is missing from the restored history", op.Key, rev)
		case !isDelete && (len(got) != 1 || string(got[0].Value) != op.Value || got[0].ModRevision != rev):
			r.fail(scenarios.VerdictFailed, "write %s=%q at revision %d is missing from the restored history (found %v)", op.Key, op.Value, rev, got)
		}
	}
	if !lose && after > 0 {
		r.notef("%d acknowledged writes came after the snapshot (revision > %d): correctly absent from the restore", after, R)
	}
	all, err := kv.Range([]byte{0}, []byte{0}, R)
	if err != nil {
		return nil, err
	}
	var preamble []linearizability.Operation
	leases := map[int64]bool{}
	for _, k := range all {
		r.KeysChecked++
		w, ok := writer[string(k.Value)]
		switch {
		case !ok:
			r.fail(scenarios.VerdictFailed, "restored key %s holds %q, which no operation wrote", k.Key, k.Value)
		case w.Key != string(k.Key):
			r.fail(scenarios.VerdictFailed, "restored key %s holds %q, which was written to %s", k.Key, k.Value, w.Key)
		case w.Outcome == linearizability.OutcomeOK && w.Resp.Revision != 0 && w.Resp.Revision != k.ModRevision:
			r.fail(scenarios.VerdictFailed, "restored key %s=%q at revision %d, acknowledged at revision %d", k.Key, k.Value, k.ModRevision, w.Resp.Revision)
		}
		// The preamble: every put of the key's current generation, oldest first.
		var gen []linearizability.Operation
		for rev := k.ModRevision; rev >= k.CreateRevision; {
			g, err := kv.Range(k.Key, nil, rev)
			if err != nil || len(g) != 1 {
				r.fail(scenarios.VerdictFailed, "restored history of %s at revision %d: %v %v", k.Key, rev, err, g)
				break
			}
			v := g[0]
			op := linearizability.Operation{Kind: linearizability.KindPut, Key: string(v.Key), Value: string(v.Value),
				Outcome: linearizability.OutcomeOK, Resp: linearizability.Response{Revision: v.ModRevision}}
			if v.Lease != 0 {
				op.Kind, op.Lease = linearizability.KindPutLease, v.Lease
				leases[v.Lease] = true
			}
			gen = append(gen, op)
			rev = v.ModRevision - 1
		}
		slices.Reverse(gen)
		preamble = append(preamble, gen...)
	}
	slices.SortStableFunc(preamble, func(a, b linearizability.Operation) int { return int(a.Resp.Revision - b.Resp.Revision) })
	var grants []linearizability.Operation
	for _, id := range sortedKeys(leases) {
		grants = append(grants, linearizability.Operation{Kind: linearizability.KindLeaseGrant, Lease: id, TTL: 3600,
			Outcome: linearizability.OutcomeOK, Resp: linearizability.Response{LeaseID: id}})
	}
	// Leases that intermediate versions used but that are gone at R are
	// revoked at the end of the preamble (deleting nothing).
	liveLeases, err := kv.Leases()
	if err != nil {
		return nil, err
	}
	preamble = append(grants, preamble...)
	for _, id := range sortedKeys(leases) {
		if !liveLeases[id] {
			preamble = append(preamble, linearizability.Operation{Kind: linearizability.KindLeaseRevoke, Lease: id, Outcome: linearizability.OutcomeOK})
		}
	}
	return preamble, nil
}

// prependHistory puts a sequential preamble (client 0, before everything)
// ahead of ops, renumbering IDs and shifting ops' times after it.
func prependHistory(pre, ops []linearizability.Operation) []linearizability.Operation {
	out := make([]linearizability.Operation, 0, len(pre)+len(ops))
	for i, op := range pre {
		op.ID, op.Client, op.Member = int64(i), 0, "restore"
		op.Call, op.Return = int64(2*i), int64(2*i+1)
		out = append(out, op)
	}
	shift := int64(2*len(pre) + 1)
	for _, op := range ops {
		op.ID += int64(len(pre))
		op.Call += shift
		op.Return += shift
		out = append(out, op)
	}
	return out
}

func sortedKeys[K int64 | string, V any](m map[K]V) []K {
	ks := make([]K, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
