package mvcc

import "errors"

// Sentinel errors. Their messages are etcd's exact wire strings (go.etcd.io/etcd/api/v3/v3rpc/rpctypes), so the
// gRPC layer can send err.Error() as the status message and clientv3 recognises it.
var (
	// ErrCompacted is returned for a revision below the compaction revision.
	ErrCompacted = errors.New("mvcc: required revision has been compacted")
	// ErrFutureRev is returned for a revision above the current revision.
	ErrFutureRev = errors.New("mvcc: required revision is a future revision")
	// ErrKeyNotFound is returned for ignore_value/ignore_lease on a missing key, and for
	// a RequestOp without a request.
	ErrKeyNotFound = errors.New("etcdserver: key not found")
	// ErrLeaseNotFound is returned for a put attaching a lease the LeaseHooks do not know.
	ErrLeaseNotFound = errors.New("etcdserver: requested lease not found")
	// ErrValueProvided is returned for ignore_value together with a value.
	ErrValueProvided = errors.New("etcdserver: value is provided")
	// ErrLeaseProvided is returned for ignore_lease together with a lease.
	ErrLeaseProvided = errors.New("etcdserver: lease is provided")
	// ErrEmptyKey is returned for an empty key in a request or compare.
	ErrEmptyKey = errors.New("etcdserver: key is not provided")
	// ErrTooManyOps is returned for a txn with more compares or ops than allowed.
	ErrTooManyOps = errors.New("etcdserver: too many operations in txn request")
	// ErrDuplicateKey is returned for a txn that writes a key twice.
	ErrDuplicateKey = errors.New("etcdserver: duplicate key given in txn request")
	// ErrInvalidSortOption is returned for an unknown sort order or target.
	ErrInvalidSortOption = errors.New("etcdserver: invalid sort option")
	// ErrClosed is returned by operations on a closed or aborted Store.
	ErrClosed = errors.New("mvcc: store is closed")
	// ErrLocked reports a backend file held by another process.
	ErrLocked = errors.New("mvcc: backend is locked")
	// ErrCorrupt reports a backend file that is damaged (truncated, or without a
	// valid meta page): opening it would crash the process.
	ErrCorrupt = errors.New("mvcc: backend file is corrupt")
	// ErrWatchIDExists is returned by Watch for an id that is already watching.
	ErrWatchIDExists = errors.New("mvcc: watch id already exists")
)
