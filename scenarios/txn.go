package scenarios

import (
	"slices"

	"github.com/havoclab/havoc/linearizability"
)

// txnGroup is how many neighbouring keys one txn touches: every txn stays
// inside one group, so that the Porcupine partitions (which a txn ties
// together) stay two keys wide. With four, a partition gathered the writes
// of unknown outcome of four keys (about twenty in a default run with every
// fault kind), and the checker's budget ran out on 4 of seeds 1-100; with
// two, all 100 are decided and the txn mutants are still caught by seed 1.
const txnGroup = 2

// txn draws a multi-operation transaction over the keys of one group: one
// to three compares (value, version, create and mod revision, lease; each
// result), mostly against what the session last saw of the key so that
// both branches run; branches of one to three puts, deletes, gets, ranges
// over the group (a third at a past revision) and, at the top level, a
// nested txn. No branch writes a key twice, its nested txn included
// (etcd refuses that as a duplicate key).
func (s *Session) txn() *linearizability.Txn {
	g := s.rnd.IntN(max(1, s.w.Keys/txnGroup))
	var keys []string
	for j := 0; j < txnGroup && g*txnGroup+j < s.w.Keys; j++ {
		keys = append(keys, s.w.key(g*txnGroup+j))
	}
	return s.txnIn(keys, 0)
}

func (s *Session) txnIn(keys []string, depth int) *linearizability.Txn {
	t := &linearizability.Txn{}
	for range 1 + s.rnd.IntN(3) {
		t.If = append(t.If, s.compare(keys[s.rnd.IntN(len(keys))]))
	}
	t.Then = s.txnBranch(keys, map[string]bool{}, true, depth)
	t.Else = s.txnBranch(keys, map[string]bool{}, false, depth)
	return t
}

// compare draws one compare of key.
func (s *Session) compare(key string) linearizability.Compare {
	c := linearizability.Compare{Key: key}
	switch p := s.rnd.IntN(11); {
	case p < 2:
		c.Target, c.Value = linearizability.TargetValue, s.lastSeen[key]
	case p < 5:
		c.Target, c.Num = linearizability.TargetVersion, s.lastVer[key]
	case p < 7:
		c.Target, c.Num = linearizability.TargetCreate, s.lastCreate[key]
	case p < 10:
		c.Target, c.Num = linearizability.TargetMod, s.lastMod[key]
	default:
		c.Target = linearizability.TargetLease
		if len(s.leases) > 0 && s.rnd.IntN(2) == 0 {
			c.Num = s.leases[s.rnd.IntN(len(s.leases))]
		}
	}
	switch p := s.rnd.IntN(20); {
	case p < 10:
		c.Result = linearizability.ResultEqual
	case p < 14:
		c.Result = linearizability.ResultNotEqual
	case p < 17:
		c.Result = linearizability.ResultGreater
	default:
		c.Result = linearizability.ResultLess
	}
	if c.Target != linearizability.TargetValue && c.Result != linearizability.ResultEqual && c.Result != linearizability.ResultNotEqual {
		c.Num = max(0, c.Num+s.rnd.Int64N(3)-1)
	}
	return c
}

// txnBranch draws the ops of one branch; written holds the keys the branch
// (with its nested txn) already writes. A then branch starts with a put, an
// else branch with a get, as etcd's cas idioms do.
func (s *Session) txnBranch(keys []string, written map[string]bool, then bool, depth int) []linearizability.TxnOp {
	var ops []linearizability.TxnOp
	pick := func() string { return keys[s.rnd.IntN(len(keys))] }
	unwritten := func() (string, bool) {
		k := pick()
		for range len(keys) {
			if !written[k] {
				written[k] = true
				return k, true
			}
			k = keys[(slices.Index(keys, k)+1)%len(keys)]
		}
		return "", false
	}
	n := 1 + s.rnd.IntN(3)
	for i := range n {
		p := s.rnd.IntN(20)
		if i == 0 {
			p = 0
			if !then {
				p = 10
			}
		}
		switch {
		case p < 8:
			if k, ok := unwritten(); ok {
				ops = append(ops, linearizability.TxnOp{Kind: linearizability.KindPut, Key: k, Value: s.value()})
				continue
			}
			ops = append(ops, linearizability.TxnOp{Kind: linearizability.KindGet, Key: pick()})
		case p < 10:
			if k, ok := unwritten(); ok {
				ops = append(ops, linearizability.TxnOp{Kind: linearizability.KindDelete, Key: k})
				continue
			}
			ops = append(ops, linearizability.TxnOp{Kind: linearizability.KindGet, Key: pick()})
		case p < 15:
			ops = append(ops, linearizability.TxnOp{Kind: linearizability.KindGet, Key: pick()})
		case p < 18 || depth > 0:
			o := linearizability.TxnOp{Kind: linearizability.KindRange, Key: keys[0], End: keys[len(keys)-1] + "\x00"}
			if s.rnd.IntN(3) == 0 {
				o.Rev = s.pastRev()
			}
			ops = append(ops, o)
		default:
			nested := &linearizability.Txn{}
			for range 1 + s.rnd.IntN(2) {
				nested.If = append(nested.If, s.compare(pick()))
			}
			// Both nested branches share the outer branch's written keys.
			nested.Then = s.txnBranch(keys, written, true, depth+1)
			nested.Else = s.txnBranch(keys, written, false, depth+1)
			ops = append(ops, linearizability.TxnOp{Kind: linearizability.KindTxn, Txn: nested})
		}
	}
	return ops
}

// wrote notes a put of key at revision rev: its version grows by one if
// known, and it was created at rev if it was absent.
func (s *Session) wrote(key string, rev int64) {
	if v, ok := s.lastVer[key]; ok {
		s.lastVer[key] = v + 1
		if v == 0 {
			s.lastCreate[key] = rev
		}
	}
}

// observeTxn updates the session's knowledge from an acknowledged txn: its
// gets, puts and deletes of the current revision, in order.
func (s *Session) observeTxn(op linearizability.Operation, r linearizability.Response) {
	op.Txn.Taken(r.Succeeded, r.Results, func(o *linearizability.TxnOp, res *linearizability.TxnResult) {
		switch o.Kind {
		case linearizability.KindGet:
			if len(res.KVs) == 0 {
				s.lastSeen[o.Key], s.lastMod[o.Key], s.lastVer[o.Key], s.lastCreate[o.Key] = "", 0, 0, 0
				return
			}
			kv := res.KVs[0]
			s.lastSeen[o.Key], s.lastMod[o.Key], s.lastVer[o.Key], s.lastCreate[o.Key] = kv.Value, kv.ModRevision, kv.Version, kv.CreateRevision
		case linearizability.KindPut:
			s.lastSeen[o.Key], s.lastMod[o.Key] = o.Value, r.Revision
			s.wrote(o.Key, r.Revision)
		case linearizability.KindDelete:
			s.lastSeen[o.Key], s.lastMod[o.Key], s.lastVer[o.Key], s.lastCreate[o.Key] = "", 0, 0, 0
		}
	})
}

// rangeOptions draws the options of a range read after a plain one that
// returned kvs: sort orders and targets, keys-only, count-only, and
// revision filters at revisions kvs hold (so that they cut).
func (s *Session) rangeOptions(kvs []linearizability.KV) *linearizability.RangeOptions {
	o := &linearizability.RangeOptions{}
	targets := []linearizability.SortTarget{"", linearizability.SortByKey, linearizability.SortByVersion,
		linearizability.SortByCreate, linearizability.SortByMod, linearizability.SortByValue}
	orders := []linearizability.SortOrder{linearizability.SortNone, linearizability.SortAscend, linearizability.SortDescend}
	o.SortTarget = targets[s.rnd.IntN(len(targets))]
	o.SortOrder = orders[s.rnd.IntN(len(orders))]
	o.KeysOnly = s.rnd.IntN(4) == 0
	o.CountOnly = s.rnd.IntN(6) == 0
	at := func() linearizability.KV {
		if len(kvs) == 0 {
			return linearizability.KV{ModRevision: s.maxRev, CreateRevision: s.maxRev}
		}
		return kvs[s.rnd.IntN(len(kvs))]
	}
	switch s.rnd.IntN(6) {
	case 0:
		o.MinMod = at().ModRevision
	case 1:
		o.MaxMod = at().ModRevision
	case 2:
		o.MinCreate = at().CreateRevision
	case 3:
		o.MaxCreate = at().CreateRevision
	}
	return o
}
