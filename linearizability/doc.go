// Package linearizability records client histories and checks them against
// independent models of etcd's KV semantics with Porcupine.
//
// The models re-implement etcd's semantics on their own and never import
// the store: a checker that shares code with what it checks shares its bugs.
//
// # History format
//
// A history is a slice of Operation, stored as JSON lines (one Operation per
// line, WriteHistory/ReadHistory). Clients build it with a Recorder. Rules
// the clients must keep (Validate enforces the checkable ones):
//   - every written value (put, put-lease, cas) is unique in the history, so
//     a value read names the write that produced it; never retry a write
//     with the same value;
//   - one outstanding request per client; an unknown request frees its
//     client at its Return (when the client gave up);
//   - the history holds every request made to the cluster;
//   - Call and Return are nanoseconds on one clock (virtual in the
//     simulator, wall clock on real backends);
//   - Outcome "ok": Resp is the store's answer; "fail": the request
//     certainly did not take effect (it is ignored); "unknown": it may take
//     effect at any time after Call, or never (its Resp is ignored);
//   - Resp.Revision is the header revision, for a write the revision it
//     created; 0 means not recorded and disables revision checks for that
//     operation. Revisions follow etcd: an empty store is at revision 1,
//     each write bumps it by one, a cas or delete that writes nothing and a
//     lease grant do not, a revoke that deletes keys bumps it once;
//   - a get (and the else branch of a failed cas) reports Found, Value,
//     ModRevision, CreateRevision, Version and Lease of the key; a range
//     reports every key with Prefix in KVs, sorted;
//   - a cas with ByMod compared mod_revision == ExpectMod on the wire (0:
//     absent); Expect still holds the value the client saw at that
//     mod_revision (or ExpectAbsent is set), and the checker reads those:
//     with unique values the two compares agree on a correct store;
//   - Rev is the revision a get or range read at (0: the current one), or
//     the revision a compact compacted to; a read or compact refused with
//     ErrTextCompacted or ErrTextFutureRev in Error has outcome "fail";
//   - a range with Limit is one page of a list: it covers Prefix from the
//     key From on, and Resp.More says the limit cut it;
//   - leases are assumed not to expire during the history (use TTLs longer
//     than the run): expiry is not modelled.
//
// # Checking
//
// Check runs, in order:
//  1. global revision checks, O(n log n): acknowledged writes have distinct
//     revisions; revisions agree with real time (an operation called after
//     another returned has a higher write revision or an equal or higher
//     header revision); every value a read or range returns was written to
//     that key, at the mod_revision reported, with no known write of the
//     key (or revoke of its lease) between that and the read's header
//     revision; a key found absent was not put (at a known revision) before
//     the header revision unless a delete or lease could have removed it.
//     Serializable reads, which may be stale, are checked only here;
//  2. Porcupine on every partition of the linearizable operations: keys are
//     independent except where a lease ties them (a revoke deletes all its
//     keys at once), and even then only if one of its revokes has an
//     unknown outcome or revision, or the history has an acknowledged
//     operation without a revision: otherwise the revoke's revision fixes
//     its place in every key's partition, and its grants and revokes go
//     into each (ranges never reach Porcupine). The model keeps value, mod and create
//     revision, version and lease per key, the live leases, and the highest
//     revision linearized; it requires revisions to grow along the
//     linearization, which etcd's revision order always allows. Unknown
//     writes get an infinite return time (clamped to the first return of a
//     read that saw their value) and an unknown revision until a read pins
//     it; unknown reads and failed operations are left out. An unknown
//     grant of a lease granted once took effect before the first
//     operation that needed the lease live returned, and an unknown
//     revoke after the last one was called: their windows shrink to
//     that, which spares Porcupine trying them everywhere in between.
//
// Options.Budget bounds the work on each partition, counted in model steps
// (not wall time, so the verdict is the same on a fast idle machine and a
// slow busy one); past it the verdict is VerdictInconclusive, never a hang,
// unless another partition is illegal. Histories with many unknown writes
// on few keys are the expensive case (Porcupine explores where each may
// have taken effect). An illegal verdict names the rule, the keys and the
// operations; Options.VisualizePath gets Porcupine's HTML for the partition
// that holds the operation that broke the rule (for a range, the keys it
// read with the range added), or for the partition that ran out of budget.
//
// # Jepsen
//
// ReadJepsen, CheckRegister and CheckJepsen check Jepsen's etcd register
// logs (read, write, cas; :info and timed-out reads are unknown, :fail did
// not happen) with a register model. CheckFile accepts either format.
package linearizability
