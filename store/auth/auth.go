// Package auth is etcd's authentication and authorization state: users, roles,
// key permissions, the enabled flag, the auth revision and simple tokens, kept
// in memory and written through to etcd's bbolt buckets (auth, authUsers,
// authRoles) with etcd's encoding, so that an etcd snapshot restores here with
// its users and a havoc snapshot restores in etcd with them.
//
// Contract: the Store is deterministic. It has no goroutine, lock or clock: the
// member core calls it from its one goroutine, applies every mutation in log
// order on every member (Apply), and passes the time for token expiry. Hashing
// passwords (bcrypt) is the caller's job before proposing, as etcd's server
// does; Apply hashes only a request that carries a plain password.
package auth

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/authpb"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/protobuf/proto"
)

// Bucket names and keys, etcd's (server/storage/schema/auth*.go).
const (
	BucketAuth  = "auth"
	BucketUsers = "authUsers"
	BucketRoles = "authRoles"
)

var (
	keyEnabled  = []byte("authEnabled")
	keyRevision = []byte("authRevision")
)

// RootUser and RootRole are etcd's administrator user and role.
const (
	RootUser = "root"
	RootRole = "root"
)

// DefaultTokenTTL is how long a simple token lives unused (etcd --auth-token-ttl).
const DefaultTokenTTL = 300 * time.Second

// Errors, with etcd's messages (server/auth/store.go).
var (
	ErrRootUserNotExist     = errors.New("auth: root user does not exist")
	ErrRootRoleNotExist     = errors.New("auth: root user does not have root role")
	ErrUserAlreadyExist     = errors.New("auth: user already exists")
	ErrUserEmpty            = errors.New("auth: user name is empty")
	ErrUserNotFound         = errors.New("auth: user not found")
	ErrRoleAlreadyExist     = errors.New("auth: role already exists")
	ErrRoleNotFound         = errors.New("auth: role not found")
	ErrRoleEmpty            = errors.New("auth: role name is empty")
	ErrPermissionNotGiven   = errors.New("auth: permission not given")
	ErrAuthFailed           = errors.New("auth: authentication failed, invalid user ID or password")
	ErrNoPasswordUser       = errors.New("auth: authentication failed, password was given for no password user")
	ErrPermissionDenied     = errors.New("auth: permission denied")
	ErrRoleNotGranted       = errors.New("auth: role is not granted to the user")
	ErrPermissionNotGranted = errors.New("auth: permission is not granted to the role")
	ErrAuthNotEnabled       = errors.New("auth: authentication is not enabled")
	ErrAuthOldRevision      = errors.New("auth: revision in header is old")
	ErrInvalidAuthToken     = errors.New("auth: invalid auth token")
	ErrInvalidAuthMgmt      = errors.New("auth: invalid auth management")
)

// Backend is the part of the MVCC backend the Store writes through to.
type Backend interface {
	PutRaw(bucket string, key, value []byte)
	DeleteRaw(bucket string, key []byte)
	ForEachRaw(bucket string, fn func(k, v []byte) error) error
}

// Tokens makes and checks tokens other than simple ones (etcd's JWT): a
// runtime's, since signing reads the wall clock and randomness. Info's
// revision is the one the token was made at, so a token older than the last
// auth change is refused as old (clientv3 then authenticates again).
type Tokens interface {
	Assign(user string, revision uint64) (string, error)
	Info(token string) (Info, bool)
}

// Info is who sends a request, as etcd's AuthInfo: the user and the auth
// revision the identity was resolved at (0: no identity).
type Info struct {
	User     string
	Revision uint64
}

// Store is one member's auth state.
type Store struct {
	be       Backend
	enabled  bool
	rev      uint64
	users    map[string]*authpb.User
	roles    map[string]*authpb.Role
	tokens   map[string]*token
	tokenTTL time.Duration
	provider Tokens
	// BcryptCost hashes the rare plain password that reaches Apply.
	BcryptCost int
}

type token struct {
	user    string
	expires time.Time
}

// SetTokens makes the Store issue and check tokens with p instead of simple
// tokens (nil: simple tokens).
func (s *Store) SetTokens(p Tokens) { s.provider = p }

// New returns an empty Store over be; call Load before use.
func New(be Backend, tokenTTL time.Duration) *Store {
	if tokenTTL <= 0 {
		tokenTTL = DefaultTokenTTL
	}
	return &Store{be: be, tokenTTL: tokenTTL, BcryptCost: bcrypt.DefaultCost, rev: 1,
		users: map[string]*authpb.User{}, roles: map[string]*authpb.Role{}, tokens: map[string]*token{}}
}

// Load reads the state from the backend (at boot and after a snapshot is
// installed). A missing revision counts as 1, the revision etcd writes when it
// creates the buckets. Tokens survive unless auth is now disabled.
func (s *Store) Load() error {
	s.enabled, s.rev = false, 1
	s.users, s.roles = map[string]*authpb.User{}, map[string]*authpb.Role{}
	err := s.be.ForEachRaw(BucketAuth, func(k, v []byte) error {
		switch {
		case bytes.Equal(k, keyEnabled):
			s.enabled = len(v) == 1 && v[0] == 1
		case bytes.Equal(k, keyRevision) && len(v) == 8:
			s.rev = max(binary.BigEndian.Uint64(v), 1)
		}
		return nil
	})
	if err != nil {
		return err
	}
	err = s.be.ForEachRaw(BucketUsers, func(k, v []byte) error {
		u := &authpb.User{}
		if err := proto.Unmarshal(v, u); err != nil {
			return fmt.Errorf("auth: user %q: %w", k, err)
		}
		s.users[string(k)] = u
		return nil
	})
	if err != nil {
		return err
	}
	err = s.be.ForEachRaw(BucketRoles, func(k, v []byte) error {
		r := &authpb.Role{}
		if err := proto.Unmarshal(v, r); err != nil {
			return fmt.Errorf("auth: role %q: %w", k, err)
		}
		s.roles[string(k)] = r
		return nil
	})
	if err != nil {
		return err
	}
	if !s.enabled {
		clear(s.tokens)
	}
	return nil
}

// Enabled reports whether auth is on.
func (s *Store) Enabled() bool { return s.enabled }

// Revision is the auth revision: it grows with every change of users, roles or
// permissions and every disable.
func (s *Store) Revision() uint64 { return s.rev }

func (s *Store) commitRevision() {
	s.rev++
	s.be.PutRaw(BucketAuth, keyRevision, binary.BigEndian.AppendUint64(nil, s.rev))
}

func (s *Store) putUser(u *authpb.User) {
	b, err := proto.Marshal(u)
	if err != nil {
		panic(fmt.Sprintf("auth: encode user %q: %v", u.Name, err))
	}
	s.users[string(u.Name)] = u
	s.be.PutRaw(BucketUsers, u.Name, b)
}

func (s *Store) putRole(r *authpb.Role) {
	b, err := proto.Marshal(r)
	if err != nil {
		panic(fmt.Sprintf("auth: encode role %q: %v", r.Name, err))
	}
	s.roles[string(r.Name)] = r
	s.be.PutRaw(BucketRoles, r.Name, b)
}

// PasswordHash returns the bcrypt hash of name's password and the revision it
// was read at, for the caller to compare (etcd's CheckPassword, minus bcrypt).
func (s *Store) PasswordHash(name string) ([]byte, uint64, error) {
	if !s.enabled {
		return nil, 0, ErrAuthNotEnabled
	}
	u := s.users[name]
	if u == nil {
		return nil, 0, ErrAuthFailed
	}
	if u.Options != nil && u.Options.NoPassword {
		return nil, 0, ErrNoPasswordUser
	}
	return slices.Clone(u.Password), s.rev, nil
}

// HasRole reports whether user has role.
func (s *Store) HasRole(user, role string) bool {
	u := s.users[user]
	return u != nil && slices.Contains(u.Roles, role)
}

// Users returns the users by name (for tests and diagnostics).
func (s *Store) Users() []*authpb.User {
	out := make([]*authpb.User, 0, len(s.users))
	for _, n := range sortedNames(s.users) {
		out = append(out, proto.Clone(s.users[n]).(*authpb.User))
	}
	return out
}

func sortedNames[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func hasRootRole(u *authpb.User) bool { return u != nil && slices.Contains(u.Roles, RootRole) }

// Lookup resolves a simple token at time now (etcd's tokenSimple.info): the
// user and the current revision, and it extends the token's life. A token of
// the form "<prefix>.<index>" only: anything else, unknown or expired, is false.
func (s *Store) Lookup(tok string, now time.Time) (Info, bool) {
	if s.provider != nil {
		if !s.enabled {
			return Info{}, false
		}
		return s.provider.Info(tok)
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 2 {
		return Info{}, false
	}
	if _, err := strconv.ParseUint(parts[1], 10, 64); err != nil {
		return Info{}, false
	}
	t, ok := s.tokens[tok]
	if !ok || !s.enabled {
		return Info{}, false
	}
	if now.After(t.expires) {
		delete(s.tokens, tok)
		return Info{}, false
	}
	t.expires = now.Add(s.tokenTTL)
	return Info{User: t.user, Revision: s.rev}, true
}

func (s *Store) invalidateUser(user string) {
	for k, t := range s.tokens {
		if t.user == user {
			delete(s.tokens, k)
		}
	}
}

func (s *Store) expireTokens(now time.Time) {
	for k, t := range s.tokens {
		if now.After(t.expires) {
			delete(s.tokens, k)
		}
	}
}

// selectPassword is etcd's: the request's base64 hash, or a hash of its plain password.
func (s *Store) selectPassword(password, hashed string) ([]byte, error) {
	if password != "" && hashed == "" {
		return bcrypt.GenerateFromPassword([]byte(password), s.BcryptCost)
	}
	return base64.StdEncoding.DecodeString(hashed)
}
