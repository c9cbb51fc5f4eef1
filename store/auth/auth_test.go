package auth

import (
	"encoding/base64"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"
)

// memBackend is an in-memory Backend.
type memBackend map[string]map[string][]byte

func (m memBackend) PutRaw(b string, k, v []byte) {
	if m[b] == nil {
		m[b] = map[string][]byte{}
	}
	m[b][string(k)] = slices.Clone(v)
}
func (m memBackend) DeleteRaw(b string, k []byte) { delete(m[b], string(k)) }
func (m memBackend) ForEachRaw(b string, fn func(k, v []byte) error) error {
	keys := make([]string, 0, len(m[b]))
	for k := range m[b] {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if err := fn([]byte(k), m[b][k]); err != nil {
			return err
		}
	}
	return nil
}

var now = time.Unix(1000, 0)

func apply(t *testing.T, s *Store, ai Info, ir *pb.InternalRaftRequest) (proto.Message, error) {
	t.Helper()
	return s.Apply(ai, ir, 7, now, &pb.ResponseHeader{})
}

func mustApply(t *testing.T, s *Store, ai Info, ir *pb.InternalRaftRequest) proto.Message {
	t.Helper()
	resp, err := apply(t, s, ai, ir)
	require.NoError(t, err)
	return resp
}

// setup gives a store with root (root role) and alice (role r: readwrite on
// [a, c), read on key k), auth enabled.
func setup(t *testing.T) (*Store, memBackend) {
	be := memBackend{}
	s := New(be, 0)
	require.NoError(t, s.Load())
	hash := base64.StdEncoding.EncodeToString([]byte("not-a-real-hash"))
	for _, ir := range []*pb.InternalRaftRequest{
		{AuthUserAdd: &pb.AuthUserAddRequest{Name: "root", HashedPassword: hash}},
		{AuthUserGrantRole: &pb.AuthUserGrantRoleRequest{User: "root", Role: "root"}},
		{AuthUserAdd: &pb.AuthUserAddRequest{Name: "alice", HashedPassword: hash}},
		{AuthRoleAdd: &pb.AuthRoleAddRequest{Name: "r"}},
		{AuthRoleGrantPermission: &pb.AuthRoleGrantPermissionRequest{Name: "r", Perm: &authpb.Permission{PermType: authpb.Permission_READWRITE, Key: []byte("a"), RangeEnd: []byte("c")}}},
		{AuthRoleGrantPermission: &pb.AuthRoleGrantPermissionRequest{Name: "r", Perm: &authpb.Permission{PermType: authpb.Permission_READ, Key: []byte("k")}}},
		{AuthUserGrantRole: &pb.AuthUserGrantRoleRequest{User: "alice", Role: "r"}},
	} {
		mustApply(t, s, Info{}, ir)
	}
	_, err := apply(t, s, Info{}, &pb.InternalRaftRequest{AuthEnable: &pb.AuthEnableRequest{}})
	require.NoError(t, err)
	return s, be
}

func TestPermissions(t *testing.T) {
	s, _ := setup(t)
	alice := Info{User: "alice", Revision: s.Revision()}
	root := Info{User: "root", Revision: s.Revision()}
	require.NoError(t, s.IsPutPermitted(alice, []byte("b")))
	require.NoError(t, s.IsRangePermitted(alice, []byte("a"), []byte("c")))
	require.NoError(t, s.IsRangePermitted(alice, []byte("k"), nil))
	require.ErrorIs(t, s.IsPutPermitted(alice, []byte("k")), ErrPermissionDenied)
	require.ErrorIs(t, s.IsRangePermitted(alice, []byte("a"), []byte("d")), ErrPermissionDenied)
	require.ErrorIs(t, s.IsRangePermitted(alice, []byte("a"), []byte{0}), ErrPermissionDenied)
	require.ErrorIs(t, s.IsDeleteRangePermitted(alice, []byte("c"), []byte("d")), ErrPermissionDenied)
	require.NoError(t, s.IsRangePermitted(root, []byte{0}, []byte{0}))
	require.ErrorIs(t, s.IsRangePermitted(Info{}, []byte("a"), nil), ErrUserEmpty)
	require.ErrorIs(t, s.IsAdminPermitted(alice), ErrPermissionDenied)
	require.ErrorIs(t, s.IsAdminPermitted(Info{}), ErrUserEmpty)
	require.NoError(t, s.IsAdminPermitted(root))

	// A second role adjoining the first extends the covered range.
	mustApply(t, s, root, &pb.InternalRaftRequest{AuthRoleAdd: &pb.AuthRoleAddRequest{Name: "r2"}})
	mustApply(t, s, root, &pb.InternalRaftRequest{AuthRoleGrantPermission: &pb.AuthRoleGrantPermissionRequest{Name: "r2",
		Perm: &authpb.Permission{PermType: authpb.Permission_READ, Key: []byte("c"), RangeEnd: []byte{0}}}})
	mustApply(t, s, root, &pb.InternalRaftRequest{AuthUserGrantRole: &pb.AuthUserGrantRoleRequest{User: "alice", Role: "r2"}})
	require.ErrorIs(t, s.IsRangePermitted(alice, []byte("a"), []byte{0}), ErrAuthOldRevision, "alice's identity predates the grant")
	alice.Revision = s.Revision()
	require.NoError(t, s.IsRangePermitted(alice, []byte("a"), []byte{0}))
	require.ErrorIs(t, s.IsPutPermitted(alice, []byte("x")), ErrPermissionDenied)

	// Revoking the permission denies again.
	mustApply(t, s, root, &pb.InternalRaftRequest{AuthRoleRevokePermission: &pb.AuthRoleRevokePermissionRequest{Role: "r", Key: []byte("a"), RangeEnd: []byte("c")}})
	alice.Revision = s.Revision()
	require.ErrorIs(t, s.IsPutPermitted(alice, []byte("b")), ErrPermissionDenied)
	_, err := apply(t, s, root, &pb.InternalRaftRequest{AuthRoleRevokePermission: &pb.AuthRoleRevokePermissionRequest{Role: "r", Key: []byte("a"), RangeEnd: []byte("c")}})
	require.ErrorIs(t, err, ErrPermissionNotGranted)
}

func TestManagementErrorsAndPersistence(t *testing.T) {
	s, be := setup(t)
	root := Info{User: "root", Revision: s.Revision()}
	alice := Info{User: "alice", Revision: s.Revision()}
	for _, c := range []struct {
		ai   Info
		ir   *pb.InternalRaftRequest
		want error
	}{
		{alice, &pb.InternalRaftRequest{AuthUserAdd: &pb.AuthUserAddRequest{Name: "bob"}}, ErrPermissionDenied},
		{Info{}, &pb.InternalRaftRequest{AuthRoleList: &pb.AuthRoleListRequest{}}, ErrUserEmpty},
		{root, &pb.InternalRaftRequest{AuthUserAdd: &pb.AuthUserAddRequest{Name: "alice"}}, ErrUserAlreadyExist},
		{root, &pb.InternalRaftRequest{AuthUserAdd: &pb.AuthUserAddRequest{}}, ErrUserEmpty},
		{root, &pb.InternalRaftRequest{AuthUserDelete: &pb.AuthUserDeleteRequest{Name: "root"}}, ErrInvalidAuthMgmt},
		{root, &pb.InternalRaftRequest{AuthUserRevokeRole: &pb.AuthUserRevokeRoleRequest{Name: "root", Role: "root"}}, ErrInvalidAuthMgmt},
		{root, &pb.InternalRaftRequest{AuthUserRevokeRole: &pb.AuthUserRevokeRoleRequest{Name: "alice", Role: "nope"}}, ErrRoleNotGranted},
		{root, &pb.InternalRaftRequest{AuthUserGrantRole: &pb.AuthUserGrantRoleRequest{User: "alice", Role: "nope"}}, ErrRoleNotFound},
		{root, &pb.InternalRaftRequest{AuthUserGrantRole: &pb.AuthUserGrantRoleRequest{User: "nobody", Role: "r"}}, ErrUserNotFound},
		{root, &pb.InternalRaftRequest{AuthRoleAdd: &pb.AuthRoleAddRequest{Name: "r"}}, ErrRoleAlreadyExist},
		{root, &pb.InternalRaftRequest{AuthRoleDelete: &pb.AuthRoleDeleteRequest{Role: "root"}}, ErrInvalidAuthMgmt},
		{root, &pb.InternalRaftRequest{AuthRoleGrantPermission: &pb.AuthRoleGrantPermissionRequest{Name: "r"}}, ErrPermissionNotGiven},
		{root, &pb.InternalRaftRequest{AuthRoleGrantPermission: &pb.AuthRoleGrantPermissionRequest{Name: "r", Perm: &authpb.Permission{Key: []byte("z"), RangeEnd: []byte("a")}}}, ErrInvalidAuthMgmt},
		{alice, &pb.InternalRaftRequest{AuthUserGet: &pb.AuthUserGetRequest{Name: "root"}}, ErrPermissionDenied},
	} {
		_, err := apply(t, s, c.ai, c.ir)
		require.ErrorIs(t, err, c.want, "%v", c.ir)
	}
	got := mustApply(t, s, alice, &pb.InternalRaftRequest{AuthUserGet: &pb.AuthUserGetRequest{Name: "alice"}}).(*pb.AuthUserGetResponse)
	require.Equal(t, []string{"r"}, got.Roles)
	list := mustApply(t, s, root, &pb.InternalRaftRequest{AuthUserList: &pb.AuthUserListRequest{}}).(*pb.AuthUserListResponse)
	require.Equal(t, []string{"alice", "root"}, list.Users)

	// The buckets hold etcd's encoding; a reload gives the same state.
	require.Equal(t, []byte{1}, be[BucketAuth]["authEnabled"])
	var u authpb.User
	require.NoError(t, proto.Unmarshal(be[BucketUsers]["alice"], &u))
	require.Equal(t, []string{"r"}, u.Roles)
	s2 := New(be, 0)
	require.NoError(t, s2.Load())
	require.True(t, s2.Enabled())
	require.Equal(t, s.Revision(), s2.Revision())
	require.Equal(t, s.Users(), s2.Users())
}

func TestTokens(t *testing.T) {
	s, _ := setup(t)
	resp := mustApply(t, s, Info{}, &pb.InternalRaftRequest{Authenticate: &pb.InternalAuthenticateRequest{Name: "alice", SimpleToken: "abc"}}).(*pb.AuthenticateResponse)
	require.Equal(t, "abc.7", resp.Token)
	ai, ok := s.Lookup("abc.7", now.Add(time.Minute))
	require.True(t, ok)
	require.Equal(t, Info{User: "alice", Revision: s.Revision()}, ai)
	_, ok = s.Lookup("abc.7", now.Add(time.Minute+DefaultTokenTTL+time.Second))
	require.False(t, ok, "expired")
	_, ok = s.Lookup("garbage", now)
	require.False(t, ok)
	_, err := apply(t, s, Info{}, &pb.InternalRaftRequest{Authenticate: &pb.InternalAuthenticateRequest{Name: "nobody", SimpleToken: "x"}})
	require.ErrorIs(t, err, ErrAuthFailed)

	// Disabling drops every token.
	mustApply(t, s, Info{}, &pb.InternalRaftRequest{Authenticate: &pb.InternalAuthenticateRequest{Name: "alice", SimpleToken: "def"}})
	mustApply(t, s, Info{User: "root"}, &pb.InternalRaftRequest{AuthDisable: &pb.AuthDisableRequest{}})
	_, ok = s.Lookup("def.7", now)
	require.False(t, ok)
	_, err = apply(t, s, Info{}, &pb.InternalRaftRequest{Authenticate: &pb.InternalAuthenticateRequest{Name: "alice", SimpleToken: "x"}})
	require.ErrorIs(t, err, ErrAuthNotEnabled)
}

func TestEnableNeedsRoot(t *testing.T) {
	s := New(memBackend{}, 0)
	require.NoError(t, s.Load())
	_, err := apply(t, s, Info{}, &pb.InternalRaftRequest{AuthEnable: &pb.AuthEnableRequest{}})
	require.ErrorIs(t, err, ErrRootUserNotExist)
	mustApply(t, s, Info{}, &pb.InternalRaftRequest{AuthUserAdd: &pb.AuthUserAddRequest{Name: "root", Options: &authpb.UserAddOptions{NoPassword: true}}})
	_, err = apply(t, s, Info{}, &pb.InternalRaftRequest{AuthEnable: &pb.AuthEnableRequest{}})
	require.ErrorIs(t, err, ErrRootRoleNotExist)
	require.False(t, s.Enabled())
}
