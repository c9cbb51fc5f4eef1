package auth

import (
	"bytes"
	"slices"

	"go.etcd.io/etcd/api/v3/authpb"
)

// IsRangePermitted is etcd's: may ai read [key, rangeEnd) (key alone when
// rangeEnd is empty; to the end of the keyspace when rangeEnd is "\x00")?
func (s *Store) IsRangePermitted(ai Info, key, rangeEnd []byte) error {
	return s.isOpPermitted(ai, key, rangeEnd, authpb.Permission_READ)
}

// IsPutPermitted is etcd's: may ai write key?
func (s *Store) IsPutPermitted(ai Info, key []byte) error {
	return s.isOpPermitted(ai, key, nil, authpb.Permission_WRITE)
}

// IsDeleteRangePermitted is etcd's: may ai delete [key, rangeEnd)?
func (s *Store) IsDeleteRangePermitted(ai Info, key, rangeEnd []byte) error {
	return s.isOpPermitted(ai, key, rangeEnd, authpb.Permission_WRITE)
}

// IsAdminPermitted is etcd's: is ai a user with the root role? Always nil while
// auth is disabled.
func (s *Store) IsAdminPermitted(ai Info) error {
	if !s.enabled {
		return nil
	}
	if ai.User == "" {
		return ErrUserEmpty
	}
	u := s.users[ai.User]
	if u == nil {
		return ErrUserNotFound
	}
	if !hasRootRole(u) {
		return ErrPermissionDenied
	}
	return nil
}

// isOpPermitted is etcd's authStore.isOpPermitted: no identity is ErrUserEmpty,
// an identity resolved before the last auth change is ErrAuthOldRevision, root
// may do anything, others need their roles' permissions to cover the range.
func (s *Store) isOpPermitted(ai Info, key, rangeEnd []byte, typ authpb.Permission_Type) error {
	if !s.enabled {
		return nil
	}
	if ai.Revision == 0 {
		return ErrUserEmpty
	}
	if ai.Revision < s.rev {
		return ErrAuthOldRevision
	}
	u := s.users[ai.User]
	if u == nil {
		return ErrPermissionDenied
	}
	if hasRootRole(u) {
		return nil
	}
	ivs := s.intervals(u, typ)
	if len(rangeEnd) == 0 {
		for _, iv := range ivs {
			if cmpAffine(iv.begin, key) <= 0 && cmpAffine(key, iv.end) < 0 {
				return nil
			}
		}
		return ErrPermissionDenied
	}
	if isOpenEnded(rangeEnd) {
		rangeEnd = nil // the end of the keyspace
	}
	if covers(ivs, key, rangeEnd) {
		return nil
	}
	return ErrPermissionDenied
}

// interval is [begin, end) in etcd's affine byte order: an empty end is +inf.
type interval struct{ begin, end []byte }

// cmpAffine compares keys where an empty slice is the largest (etcd's
// BytesAffineComparable as an interval end).
func cmpAffine(a, b []byte) int {
	switch {
	case len(a) == 0 && len(b) == 0:
		return 0
	case len(a) == 0:
		return 1
	case len(b) == 0:
		return -1
	}
	return bytes.Compare(a, b)
}

func isOpenEnded(rangeEnd []byte) bool { return len(rangeEnd) == 1 && rangeEnd[0] == 0 }

// intervals are the user's permitted intervals of one type, merged from its
// roles (etcd's getMergedPerms), sorted by begin.
func (s *Store) intervals(u *authpb.User, typ authpb.Permission_Type) []interval {
	var out []interval
	for _, rn := range u.Roles {
		r := s.roles[rn]
		if r == nil {
			continue
		}
		for _, p := range r.KeyPermission {
			if p.PermType != typ && p.PermType != authpb.Permission_READWRITE {
				continue
			}
			var iv interval
			switch {
			case len(p.RangeEnd) == 0:
				iv = interval{p.Key, append(bytes.Clone(p.Key), 0)}
			case isOpenEnded(p.RangeEnd):
				iv = interval{p.Key, nil}
			default:
				iv = interval{p.Key, p.RangeEnd}
			}
			out = append(out, iv)
		}
	}
	slices.SortFunc(out, func(a, b interval) int { return bytes.Compare(a.begin, b.begin) })
	return out
}

// covers reports whether the union of ivs (sorted by begin) contains [begin, end).
func covers(ivs []interval, begin, end []byte) bool {
	cur := begin
	for _, iv := range ivs {
		if cmpAffine(cur, end) >= 0 {
			return true
		}
		if cmpAffine(iv.end, cur) <= 0 {
			continue
		}
		if cmpAffine(iv.begin, cur) > 0 {
			return false
		}
		cur = iv.end
	}
	return cmpAffine(cur, end) >= 0
}

// validPermissionRange is etcd's isValidPermissionRange: a key, and a range end
// that is empty, after the key, or "\x00".
func validPermissionRange(key, rangeEnd []byte) bool {
	if len(key) == 0 {
		return false
	}
	if len(rangeEnd) == 0 {
		return true
	}
	return cmpAffine(key, rangeEnd) < 0 || isOpenEnded(rangeEnd)
}
