// Package mutant names the zoo of deliberately broken store variants that
// `harness mutants` uses to measure how many real bugs a sweep finds. Each
// mutant is a small plausible bug at one site in store/ (or server/), guarded by
//
//	if mutant.On(mutant.StaleReadFollower) { ...broken... }
//
// Without the build tag havoc_mutants, On is a constant false, so every site
// compiles away and a normal build carries no mutation. With the tag, On reports
// whether id is the mutant named by the environment variable HAVOC_MUTANT, read
// once when the process starts (an unknown name stops the process).
package mutant

// ID names one mutant; it is the value HAVOC_MUTANT takes.
type ID string

// EnvVar is the environment variable a tagged build reads its mutant from.
const EnvVar = "HAVOC_MUTANT"

// BuildTag is the build tag that makes On read EnvVar.
const BuildTag = "havoc_mutants"

// The mutants. Each comment says the bug and the class of real bug it stands for.
const (
	// StaleReadFollower: a follower serves a linearizable read from its own
	// state without asking the leader for a read index.
	StaleReadFollower ID = "stale-read-follower"
	// StaleReadLeader: the leader serves a linearizable read locally without
	// confirming it still leads (a deposed leader answers stale data).
	StaleReadLeader ID = "stale-read-leader"
	// AckBeforeSync: a follower does not fsync appended entries before it
	// acknowledges them to the leader.
	AckBeforeSync ID = "ack-before-sync"
	// VoteBeforeSync: a term or vote change alone is not fsynced before the vote
	// is sent, so a restart can vote twice in one term.
	VoteBeforeSync ID = "vote-before-sync"
	// ApplyUncommitted: the leader applies (and answers) entries as soon as it
	// appends them, before a quorum has them.
	ApplyUncommitted ID = "apply-uncommitted"
	// LeaseExpireFollower: a deposed leader keeps its lessor primary, so as a
	// follower it still revokes leases it believes expired by its own clock
	// (keep-alives now go to the new leader).
	LeaseExpireFollower ID = "lease-expire-follower"
	// LeaseNoExtendOnPromote: a new leader does not extend the remaining TTLs
	// of leases, so it expires leases that were kept alive on the old leader.
	LeaseNoExtendOnPromote ID = "lease-no-extend-on-promote"
	// WatchResumeOffByOne: a watch that starts or resumes from history skips
	// the events of its first revision.
	WatchResumeOffByOne ID = "watch-resume-off-by-one"
	// CompactOffByOne: compaction at revision r also drops the versions that
	// were live at r.
	CompactOffByOne ID = "compact-off-by-one"
	// ConsistentIndexAhead: the consistent index persisted with a batch is one
	// ahead of the entries applied in it, so a restart skips an entry.
	ConsistentIndexAhead ID = "consistent-index-ahead"
	// SnapshotNoReload: a member installing a raft snapshot replaces its
	// backend file but keeps serving its old in-memory state.
	SnapshotNoReload ID = "snapshot-no-reload"
	// DedupeOff: a proposal delivered twice is appended and applied twice.
	DedupeOff ID = "dedupe-off"
	// TxnCompareVersion: a transaction's version compare is off by one.
	TxnCompareVersion ID = "txn-compare-version"
	// TxnCompareModCreate: a transaction's mod_revision compare reads the
	// create revision.
	TxnCompareModCreate ID = "txn-compare-mod-create"
	// ConfChangeEarly: a membership change updates the member list when it is
	// proposed instead of when it commits.
	ConfChangeEarly ID = "conf-change-early"
	// RangeMoreWrong: a range with a limit reports more=false when it cut
	// results off.
	RangeMoreWrong ID = "range-more-wrong"
	// DeleteNoTombstone: a delete removes the key from the index but writes no
	// tombstone, so history and watches miss it.
	DeleteNoTombstone ID = "delete-no-tombstone"
	// WatchDropPrevKV: a watch that asked for prev_kv gets events without it.
	WatchDropPrevKV ID = "watch-drop-prev-kv"
	// HashSkipBucket: HashKV hashes the key bucket's keys but not their
	// values, so replicas whose values diverge hash the same.
	HashSkipBucket ID = "hash-skip-bucket"
	// HeaderRevisionStale: a response header carries the revision before the
	// latest write (one behind).
	HeaderRevisionStale ID = "header-revision-stale"
)

// Mutant describes one mutant.
type Mutant struct {
	ID   ID
	Site string // where the mutation is (package and function)
	Bug  string // the bug in one line
}

// All lists every mutant in a fixed order.
var All = []Mutant{
	{StaleReadFollower, "store readQueue.issue", "follower serves linearizable reads locally"},
	{StaleReadLeader, "store readQueue.issue", "leader serves linearizable reads locally without a read index"},
	{AckBeforeSync, "store Node.handleReady", "follower acknowledges appends before fsync"},
	{VoteBeforeSync, "store Node.handleReady", "vote/term change sent before fsync"},
	{ApplyUncommitted, "store Node.handleReady", "leader applies entries before they commit"},
	{LeaseExpireFollower, "store Node.onSoftState", "deposed leader keeps revoking leases by its own clock"},
	{LeaseNoExtendOnPromote, "store Node.onSoftState", "new leader does not extend lease TTLs"},
	{WatchResumeOffByOne, "store/mvcc Store.Watch", "watch from history starts one revision late"},
	{CompactOffByOne, "store/mvcc Store.compactAt", "compaction drops the version live at the compact revision"},
	{ConsistentIndexAhead, "store/mvcc Store.writeConsistentIndex", "persisted consistent index one ahead of its data"},
	{SnapshotNoReload, "store Node.installSnapshot", "snapshot installed without reloading in-memory state"},
	{DedupeOff, "store Node.Step", "duplicated proposal applied twice"},
	{TxnCompareVersion, "store/mvcc compareKV", "txn version compare off by one"},
	{TxnCompareModCreate, "store/mvcc compareKV", "txn mod_revision compare reads create_revision"},
	{ConfChangeEarly, "store Node.proposeMemberChange", "member list changed before the conf change commits"},
	{RangeMoreWrong, "store/mvcc executeRange", "range limit reports more=false"},
	{DeleteNoTombstone, "store/mvcc writeTxn.delete", "delete writes no tombstone"},
	{WatchDropPrevKV, "store/mvcc Store.watchEvent", "watch drops prev_kv"},
	{HashSkipBucket, "store/mvcc Store.HashKV", "HashKV ignores the values in the key bucket"},
	{HeaderRevisionStale, "store Node.fillHeader", "response header revision one behind"},
}

// Lookup returns the mutant named id.
func Lookup(id ID) (Mutant, bool) {
	for _, m := range All {
		if m.ID == id {
			return m, true
		}
	}
	return Mutant{}, false
}
