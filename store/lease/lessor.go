// Package lease is the store's lessor: the set of granted leases, the keys attached to
// each, and (on the primary, the raft leader) their expiry.
//
// The lessor is deterministic: it never reads a clock. Every method that needs time
// takes "now" from the caller, which reads the member's injected clock. Grants, revokes
// and attachments are applied on every member in log order; expiry is decided only by
// the primary, which proposes a revoke through raft (so followers never expire a lease
// on their own clock).
package lease

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Sentinel errors, with etcd's messages so that the gRPC layer can map them.
var (
	ErrNotFound    = errors.New("etcdserver: requested lease not found")
	ErrExists      = errors.New("etcdserver: lease already exists")
	ErrTTLTooLarge = errors.New("etcdserver: too large lease TTL")
	ErrNotPrimary  = errors.New("etcdserver: not leader")
)

// MaxTTL is etcd's largest lease TTL in seconds.
const MaxTTL = 9_000_000_000

// Lease is one granted lease.
type Lease struct {
	ID  int64
	TTL int64 // seconds, as granted (after raising to the minimum)
	// expiry is meaningful only on the primary; zero means "never" (not primary).
	expiry time.Time
	keys   map[string]struct{}
}

// Keys returns the attached keys in byte order.
func (l *Lease) Keys() [][]byte {
	ks := make([]string, 0, len(l.keys))
	for k := range l.keys {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	out := make([][]byte, len(ks))
	for i, k := range ks {
		out[i] = []byte(k)
	}
	return out
}

// Backend persists lease records; the store writes them into bbolt's lease bucket.
type Backend interface {
	PutLease(id, ttl int64)
	DeleteLease(id int64)
}

// Lessor holds every lease of a member.
type Lessor struct {
	minTTL  int64
	leases  map[int64]*Lease
	primary bool
	backend Backend
}

// New returns an empty lessor. minTTLSeconds raises smaller grants (etcd: ceil(1.5 ×
// election timeout)); backend may be nil.
func New(minTTLSeconds int64, backend Backend) *Lessor {
	return &Lessor{minTTL: minTTLSeconds, leases: make(map[int64]*Lease), backend: backend}
}

// Recover loads a lease from the backend at boot without writing it back.
func (le *Lessor) Recover(id, ttl int64) {
	le.leases[id] = &Lease{ID: id, TTL: max(ttl, le.minTTL), keys: make(map[string]struct{})}
}

// Reset forgets every lease (before recovering from a new snapshot).
func (le *Lessor) Reset() { le.leases = make(map[int64]*Lease) }

// Grant creates a lease; now is used only on the primary for its expiry.
func (le *Lessor) Grant(id, ttl int64, now time.Time) (*Lease, error) {
	if id == 0 {
		return nil, fmt.Errorf("lease: grant of lease ID 0: %w", ErrNotFound)
	}
	if ttl > MaxTTL {
		return nil, ErrTTLTooLarge
	}
	if _, ok := le.leases[id]; ok {
		return nil, ErrExists
	}
	l := &Lease{ID: id, TTL: max(ttl, le.minTTL), keys: make(map[string]struct{})}
	if le.primary {
		l.expiry = now.Add(time.Duration(l.TTL) * time.Second)
	}
	le.leases[id] = l
	if le.backend != nil {
		le.backend.PutLease(id, l.TTL)
	}
	return l, nil
}

// Revoke removes a lease and returns the keys that were attached to it, in byte
// order; the caller deletes them in the same write.
func (le *Lessor) Revoke(id int64) ([][]byte, error) {
	l, ok := le.leases[id]
	if !ok {
		return nil, ErrNotFound
	}
	delete(le.leases, id)
	if le.backend != nil {
		le.backend.DeleteLease(id)
	}
	return l.Keys(), nil
}

// Lookup returns the lease or nil.
func (le *Lessor) Lookup(id int64) *Lease { return le.leases[id] }

// Exists reports whether the lease is granted.
func (le *Lessor) Exists(id int64) bool { _, ok := le.leases[id]; return ok }

// Attach records that key is attached to lease id (ignored if the lease is gone).
func (le *Lessor) Attach(id int64, key []byte) {
	if l, ok := le.leases[id]; ok {
		l.keys[string(key)] = struct{}{}
	}
}

// Detach removes key from lease id.
func (le *Lessor) Detach(id int64, key []byte) {
	if l, ok := le.leases[id]; ok {
		delete(l.keys, string(key))
	}
}

// Renew extends a lease on the primary and returns its TTL. A lease whose expiry
// has passed cannot be renewed: its revoke may already be in the log (etcd's
// lessor waits for that revoke and then answers "not found"; havoc answers at
// once). Renewing it would promise a TTL the committed revoke then breaks — the
// lease checker found exactly that.
func (le *Lessor) Renew(id int64, now time.Time) (int64, error) {
	if !le.primary {
		return 0, ErrNotPrimary
	}
	l, ok := le.leases[id]
	if !ok || !now.Before(l.expiry) {
		return 0, ErrNotFound
	}
	l.expiry = now.Add(time.Duration(l.TTL) * time.Second)
	return l.TTL, nil
}

// Remaining returns the seconds left before expiry as the primary sees it, or the
// granted TTL on a follower (which does not track expiry, like etcd's followers).
func (le *Lessor) Remaining(id int64, now time.Time) (int64, error) {
	l, ok := le.leases[id]
	if !ok {
		return 0, ErrNotFound
	}
	if !le.primary || l.expiry.IsZero() {
		return l.TTL, nil
	}
	rem := l.expiry.Sub(now)
	if rem < 0 {
		return 0, nil
	}
	return int64((rem + time.Second - 1) / time.Second), nil
}

// Promote makes this lessor the primary: every lease gets a fresh expiry of now + TTL
// + extend (etcd extends by the election timeout so that leases do not expire just
// because leadership moved).
func (le *Lessor) Promote(now time.Time, extend time.Duration) {
	le.primary = true
	for _, l := range le.leases {
		l.expiry = now.Add(time.Duration(l.TTL)*time.Second + extend)
	}
}

// Demote stops expiry tracking (the member is no longer leader).
func (le *Lessor) Demote() {
	le.primary = false
	for _, l := range le.leases {
		l.expiry = time.Time{}
	}
}

// Primary reports whether this lessor decides expiry.
func (le *Lessor) Primary() bool { return le.primary }

// Expired returns up to limit IDs of leases whose expiry has passed, in ID order.
func (le *Lessor) Expired(now time.Time, limit int) []int64 {
	if !le.primary {
		return nil
	}
	var ids []int64
	for id, l := range le.leases {
		if !l.expiry.IsZero() && !now.Before(l.expiry) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	if len(ids) > limit {
		ids = ids[:limit]
	}
	return ids
}

// Leases returns every lease in ID order.
func (le *Lessor) Leases() []*Lease {
	out := make([]*Lease, 0, len(le.leases))
	for _, l := range le.leases {
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b *Lease) int { return cmp.Compare(a.ID, b.ID) })
	return out
}
