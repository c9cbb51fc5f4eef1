package linearizability

import (
	"fmt"
	"slices"
	"strings"
)

// Txn is a multi-operation transaction (KindTxn), etcd's TxnRequest: if
// every compare of If holds, the ops of Then run, else those of Else. The
// ops of a branch run in order in one write transaction: reads see the
// branch's earlier writes, and every write of the branch (and of the txns
// nested in it) gets the same revision. As in etcd, every compare, nested
// ones too, reads the keyspace as it was before the txn.
type Txn struct {
	If   []Compare `json:"if,omitempty"`
	Then []TxnOp   `json:"then,omitempty"`
	Else []TxnOp   `json:"else,omitempty"`
}

// CompareTarget names what a compare reads of its key.
type CompareTarget string

// The compare targets.
const (
	TargetValue   CompareTarget = "value"
	TargetVersion CompareTarget = "version"
	TargetCreate  CompareTarget = "create"
	TargetMod     CompareTarget = "mod"
	TargetLease   CompareTarget = "lease"
)

// CompareResult names how a compare relates the key's target to its operand.
type CompareResult string

// The compare results.
const (
	ResultEqual    CompareResult = "="
	ResultNotEqual CompareResult = "!="
	ResultGreater  CompareResult = ">"
	ResultLess     CompareResult = "<"
)

// Compare is one condition of a txn: the Target of Key compared with Value
// (TargetValue) or Num (the others). As in etcd, a missing key compares as
// version, revisions and lease 0, and a value compare on it is false.
type Compare struct {
	Key    string        `json:"key"`
	Target CompareTarget `json:"target"`
	Result CompareResult `json:"result"`
	Value  string        `json:"value,omitempty"`
	Num    int64         `json:"num,omitempty"`
}

// TxnOp is one request of a txn branch: a get of Key, a put of Value to Key
// (without a lease), a delete of Key, a range over [Key, End) (at revision
// Rev if not 0), or a nested Txn.
type TxnOp struct {
	Kind  Kind   `json:"kind"`
	Key   string `json:"key,omitempty"`
	End   string `json:"end,omitempty"`
	Value string `json:"value,omitempty"`
	Rev   int64  `json:"at_rev,omitempty"`
	Txn   *Txn   `json:"txn,omitempty"`
}

// TxnResult is what one op of a txn's taken branch returned: the key-values
// of a get (none or one) or range, the count of a delete, the branch and
// results of a nested txn.
type TxnResult struct {
	KVs       []KV        `json:"kvs,omitempty"`
	Deleted   int64       `json:"deleted,omitempty"`
	Succeeded bool        `json:"succeeded,omitempty"`
	Results   []TxnResult `json:"results,omitempty"`
}

var txnOpKinds = []Kind{KindGet, KindPut, KindDelete, KindRange, KindTxn}

var compareTargets = []CompareTarget{TargetValue, TargetVersion, TargetCreate, TargetMod, TargetLease}

var compareResults = []CompareResult{ResultEqual, ResultNotEqual, ResultGreater, ResultLess}

// branch returns the ops of the branch taken when the compares hold or not.
func (t *Txn) branch(succeeded bool) []TxnOp {
	if succeeded {
		return t.Then
	}
	return t.Else
}

// each calls fn on every op of t, in every branch, nested ones included.
func (t *Txn) each(fn func(o *TxnOp)) {
	for _, ops := range [][]TxnOp{t.Then, t.Else} {
		for i := range ops {
			fn(&ops[i])
			if ops[i].Txn != nil {
				ops[i].Txn.each(fn)
			}
		}
	}
}

// Writes reports whether some branch of t puts or deletes.
func (t *Txn) Writes() bool {
	w := false
	t.each(func(o *TxnOp) { w = w || o.Kind == KindPut || o.Kind == KindDelete })
	return w
}

// Taken calls fn on every op of the branches an acknowledged txn took, in
// order, with its result (nested txns after their own op).
func (t *Txn) Taken(succeeded bool, results []TxnResult, fn func(o *TxnOp, r *TxnResult)) {
	ops := t.branch(succeeded)
	for i := range ops {
		if i >= len(results) {
			return // validate rejects this; be safe in a model step
		}
		fn(&ops[i], &results[i])
		if ops[i].Txn != nil {
			ops[i].Txn.Taken(results[i].Succeeded, results[i].Results, fn)
		}
	}
}

// validate checks the shape of a txn and, if it was acknowledged (ok), of
// the results of the branches it took.
func (t *Txn) validate(id int64, ok, succeeded bool, results []TxnResult) error {
	for _, c := range t.If {
		if !slices.Contains(compareTargets, c.Target) || !slices.Contains(compareResults, c.Result) || c.Key == "" {
			return fmt.Errorf("%w: op %d: bad compare %+v", ErrMalformed, id, c)
		}
	}
	var err error
	t.each(func(o *TxnOp) {
		switch {
		case err != nil:
		case !slices.Contains(txnOpKinds, o.Kind):
			err = fmt.Errorf("%w: op %d: txn op of kind %q", ErrMalformed, id, o.Kind)
		case (o.Kind == KindTxn) != (o.Txn != nil):
			err = fmt.Errorf("%w: op %d: a txn op of kind %q with txn %t", ErrMalformed, id, o.Kind, o.Txn != nil)
		case o.Kind != KindTxn && o.Key == "":
			err = fmt.Errorf("%w: op %d: a txn %s without a key", ErrMalformed, id, o.Kind)
		case o.Kind == KindPut && o.Value == "":
			err = fmt.Errorf("%w: op %d: a txn put without a value", ErrMalformed, id)
		case o.Rev < 0 || o.Rev != 0 && o.Kind != KindRange:
			err = fmt.Errorf("%w: op %d: revision %d on a txn %s", ErrMalformed, id, o.Rev, o.Kind)
		case o.End != "" && o.Kind != KindRange:
			err = fmt.Errorf("%w: op %d: range end on a txn %s", ErrMalformed, id, o.Kind)
		}
	})
	if err != nil || !ok {
		return err
	}
	var check func(t *Txn, succeeded bool, results []TxnResult) error
	check = func(t *Txn, succeeded bool, results []TxnResult) error {
		ops := t.branch(succeeded)
		if len(ops) != len(results) {
			return fmt.Errorf("%w: op %d: a txn branch of %d ops has %d results", ErrMalformed, id, len(ops), len(results))
		}
		for i := range ops {
			if ops[i].Kind == KindGet && len(results[i].KVs) > 1 {
				return fmt.Errorf("%w: op %d: a txn get returned %d keys", ErrMalformed, id, len(results[i].KVs))
			}
			if ops[i].Txn != nil {
				if err := check(ops[i].Txn, results[i].Succeeded, results[i].Results); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return check(t, succeeded, results)
}

// keyWrite is one key a write changed: its new value, or deleted.
type keyWrite struct {
	key, value string
	delete     bool
}

// txnWrites returns what an acknowledged txn changed (the puts, and the
// deletes that removed a key, of the branches it took), or for a txn of
// unknown outcome every put and delete it may have made.
func txnWrites(op *Operation) []keyWrite {
	var ws []keyWrite
	add := func(o *TxnOp, deleted bool) {
		switch {
		case o.Kind == KindPut:
			ws = append(ws, keyWrite{key: o.Key, value: o.Value})
		case o.Kind == KindDelete && deleted:
			ws = append(ws, keyWrite{key: o.Key, delete: true})
		}
	}
	switch op.Outcome {
	case OutcomeOK:
		op.Txn.Taken(op.Resp.Succeeded, op.Resp.Results, func(o *TxnOp, r *TxnResult) { add(o, r.Deleted > 0) })
	case OutcomeUnknown:
		op.Txn.each(func(o *TxnOp) { add(o, true) })
	}
	return ws
}

// txnWrote reports whether an acknowledged txn wrote value (in a branch it took).
func txnWrote(op *Operation, value string) bool {
	return slices.ContainsFunc(txnWrites(op), func(w keyWrite) bool { return !w.delete && w.value == value })
}

// compareInts relates a and b as a compare result.
func compareInts(a, b int64, res CompareResult) bool {
	switch res {
	case ResultEqual:
		return a == b
	case ResultNotEqual:
		return a != b
	case ResultGreater:
		return a > b
	}
	return a < b
}

// compare evaluates c against s. It returns determined false if the answer
// depends on a revision the model does not know (a key written by a write
// of unknown outcome that no read has seen).
func (s *kvState) compare(c *Compare) (holds, determined bool) {
	ks, present := s.get(c.Key)
	if !present {
		if c.Target == TargetValue {
			return false, true
		}
		return compareInts(0, c.Num, c.Result), true
	}
	switch c.Target {
	case TargetValue:
		return compareInts(int64(strings.Compare(ks.value, c.Value)), 0, c.Result), true
	case TargetVersion:
		return compareInts(ks.version, c.Num, c.Result), true
	case TargetLease:
		return compareInts(ks.lease, c.Num, c.Result), true
	case TargetCreate:
		if ks.create == 0 {
			return false, false
		}
		return compareInts(ks.create, c.Num, c.Result), true
	}
	if ks.mod == 0 {
		return false, false
	}
	return compareInts(ks.mod, c.Num, c.Result), true
}

// txnRun applies a txn to a state in a model step.
type txnRun struct {
	pre   *kvState // the state before the txn: what compares read
	s     *kvState // the state being built (a clone)
	r     int64    // the txn's revision (0: unknown)
	known bool
	wrote bool
}

// run applies the branch of t that the compares choose (or that the
// acknowledged txn took, if the model cannot tell) and reports whether it
// agrees with the results.
func (t *txnRun) run(txn *Txn, succeeded bool, results []TxnResult) bool {
	cond := true
	determined := true
	for i := range txn.If {
		h, d := t.pre.compare(&txn.If[i])
		determined = determined && d
		cond = cond && h
		if d && !h {
			determined, cond = true, false
			break
		}
	}
	switch {
	case !determined && !t.known:
		// The model cannot tell which branch a txn of unknown outcome took
		// here: it is not placed here (a search places it elsewhere, or
		// never). Undetermined compares need a write of unknown outcome
		// that no read saw on the compared key, right before this txn.
		return false
	case !determined:
		cond = succeeded
	case t.known && cond != succeeded:
		return false
	}
	ops := txn.branch(cond)
	for i := range ops {
		o := &ops[i]
		var res *TxnResult
		if t.known {
			if i >= len(results) {
				return false
			}
			res = &results[i]
		}
		switch o.Kind {
		case KindGet:
			if res == nil {
				continue
			}
			found := len(res.KVs) == 1
			var kv KV
			if found {
				kv = res.KVs[0]
				if kv.Key != o.Key {
					return false
				}
			}
			ok, fix := t.s.observe(o.Key, found, kv, t.r)
			if !ok {
				return false
			}
			if fix != nil {
				t.s.set(*fix)
			}
		case KindPut:
			t.s.put(o.Key, o.Value, t.r, 0, 0)
			t.wrote = true
		case KindDelete:
			_, present := t.s.get(o.Key)
			if res != nil && (res.Deleted == 1) != present {
				return false
			}
			if present {
				t.s.remove(o.Key)
				t.wrote = true
			}
		case KindRange:
			// Ranges span keys outside the txn's partition: the
			// revision check covers them.
		case KindTxn:
			var sub []TxnResult
			subOK := false
			if res != nil {
				sub, subOK = res.Results, res.Succeeded
			}
			if !t.run(o.Txn, subOK, sub) {
				return false
			}
		}
	}
	return true
}

// stepTxn is the model step of a txn.
func stepTxn(st *kvState, in *input) (bool, *kvState) {
	op := in.op
	known := op.Outcome == OutcomeOK
	r := in.rev
	if known {
		r = op.Resp.Revision
	}
	t := &txnRun{pre: st, s: st.clone(), r: r, known: known}
	if !t.run(op.Txn, op.Resp.Succeeded, op.Resp.Results) {
		return false, st
	}
	switch {
	case t.wrote && r != 0:
		// Its writes made a new revision.
		if r <= st.rev {
			return false, st
		}
		t.s.rev = r
	case t.wrote:
		// A write of unknown revision leaves rev alone (see writeRev).
	case known && r != 0 && r < st.rev:
		return false, st
	case known:
		t.s.rev = max(st.rev, r)
	}
	return true, t.s
}

// txnKeys returns the keys a txn's compares, gets, puts and deletes touch
// (its ranges excepted), sorted and without duplicates.
func txnKeys(t *Txn) []string {
	var keys []string
	for _, c := range t.If {
		keys = append(keys, c.Key)
	}
	t.each(func(o *TxnOp) {
		if o.Txn != nil {
			for _, c := range o.Txn.If {
				keys = append(keys, c.Key)
			}
		}
		if o.Kind == KindGet || o.Kind == KindPut || o.Kind == KindDelete {
			keys = append(keys, o.Key)
		}
	})
	slices.Sort(keys)
	return slices.Compact(keys)
}

// txnValues returns every value a txn may write.
func txnValues(t *Txn) []string {
	var vs []string
	t.each(func(o *TxnOp) {
		if o.Kind == KindPut {
			vs = append(vs, o.Value)
		}
	})
	return vs
}

// describeTxn renders a txn request for humans.
func describeTxn(t *Txn) string {
	var b strings.Builder
	b.WriteString("txn(if ")
	for i, c := range t.If {
		if i > 0 {
			b.WriteString(" && ")
		}
		operand := fmt.Sprint(c.Num)
		if c.Target == TargetValue {
			operand = fmt.Sprintf("%q", c.Value)
		}
		fmt.Fprintf(&b, "%s(%q) %s %s", c.Target, c.Key, c.Result, operand)
	}
	ops := func(os []TxnOp) {
		for i, o := range os {
			if i > 0 {
				b.WriteString(", ")
			}
			switch o.Kind {
			case KindPut:
				fmt.Fprintf(&b, "put(%q, %q)", o.Key, o.Value)
			case KindRange:
				fmt.Fprintf(&b, "range(%q, %q)", o.Key, o.End)
			case KindTxn:
				b.WriteString(describeTxn(o.Txn))
			default:
				fmt.Fprintf(&b, "%s(%q)", o.Kind, o.Key)
			}
			if o.Rev != 0 {
				fmt.Fprintf(&b, " at rev %d", o.Rev)
			}
		}
	}
	b.WriteString(" then ")
	ops(t.Then)
	b.WriteString(" else ")
	ops(t.Else)
	b.WriteString(")")
	return b.String()
}

// describeTxnResults renders what a txn returned for humans.
func describeTxnResults(succeeded bool, results []TxnResult) string {
	var b strings.Builder
	if succeeded {
		b.WriteString("then [")
	} else {
		b.WriteString("else [")
	}
	for i, r := range results {
		if i > 0 {
			b.WriteString(", ")
		}
		switch {
		case r.Results != nil || r.Succeeded:
			b.WriteString(describeTxnResults(r.Succeeded, r.Results))
		case r.Deleted > 0:
			fmt.Fprintf(&b, "deleted %d", r.Deleted)
		default:
			parts := make([]string, len(r.KVs))
			for j, kv := range r.KVs {
				parts[j] = fmt.Sprintf("%q=%s", kv.Key, describeKV(true, kv))
			}
			b.WriteString("{" + strings.Join(parts, ", ") + "}")
		}
	}
	b.WriteString("]")
	return b.String()
}

// opKeys returns the keys op touches as Porcupine's partitions see them.
func opKeys(op *Operation) []string {
	if op.Kind == KindTxn {
		return txnKeys(op.Txn)
	}
	if op.Key == "" {
		return nil
	}
	return []string{op.Key}
}

// txnObservations appends what the reads of an acknowledged txn (op, at
// index i) saw to obs, their key-values to side: a get or range of the
// current revision at the txn's header revision, a range at a past
// revision at that revision. A current read of a key the txn itself
// writes is left out (it may see the key before or after the write; the
// model checks gets of it). A range also sees absent the written keys of
// its span it did not return.
func txnObservations(op *Operation, i int32, sortedKeys []string, obs []observation, side []KV) ([]observation, []KV, *violation) {
	own := map[string]bool{}
	for _, w := range txnWrites(op) {
		own[w.key] = true
	}
	var v *violation
	add := func(key string, kv *KV, h int64) {
		o := observation{op: i, kvAt: -1, key: key, h: h}
		if kv != nil {
			o.found, o.kvAt = true, int32(-2-len(side))
			side = append(side, *kv)
		}
		obs = append(obs, o)
	}
	op.Txn.Taken(op.Resp.Succeeded, op.Resp.Results, func(o *TxnOp, r *TxnResult) {
		if v != nil {
			return
		}
		h := op.Resp.Revision
		switch o.Kind {
		case KindGet:
			if own[o.Key] {
				return
			}
			if len(r.KVs) == 0 {
				add(o.Key, nil, h)
				return
			}
			if r.KVs[0].Key != o.Key {
				v = &violation{reason: fmt.Sprintf("#%d %s: its get of %q returned key %q", op.ID, Describe(op), o.Key, r.KVs[0].Key), ops: []int64{op.ID}, keys: []string{o.Key}}
				return
			}
			add(o.Key, &r.KVs[0], h)
		case KindRange:
			if o.Rev != 0 {
				h = o.Rev
			}
			skip := func(key string) bool { return o.Rev == 0 && own[key] }
			for j, kv := range r.KVs {
				if kv.Key < o.Key || kv.Key >= o.End || j > 0 && kv.Key <= r.KVs[j-1].Key {
					v = &violation{reason: fmt.Sprintf("#%d %s: its range [%q, %q) returned key %q out of order or outside the range", op.ID, Describe(op), o.Key, o.End, kv.Key), ops: []int64{op.ID}, keys: []string{kv.Key}}
					return
				}
				if !skip(kv.Key) {
					add(kv.Key, &r.KVs[j], h)
				}
			}
			k, _ := slices.BinarySearch(sortedKeys, o.Key)
			j := 0
			for ; k < len(sortedKeys) && sortedKeys[k] < o.End; k++ {
				for j < len(r.KVs) && r.KVs[j].Key < sortedKeys[k] {
					j++
				}
				if (j == len(r.KVs) || r.KVs[j].Key != sortedKeys[k]) && !skip(sortedKeys[k]) {
					add(sortedKeys[k], nil, h)
				}
			}
		}
	})
	return obs, side, v
}
