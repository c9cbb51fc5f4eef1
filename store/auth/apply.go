package auth

import (
	"bytes"
	"fmt"
	"slices"
	"time"

	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"
)

// IsRequest reports whether a raft request is an auth request (one Apply takes).
func IsRequest(ir *pb.InternalRaftRequest) bool {
	return ir.AuthEnable != nil || ir.AuthDisable != nil || ir.AuthStatus != nil || ir.Authenticate != nil ||
		ir.AuthUserAdd != nil || ir.AuthUserDelete != nil || ir.AuthUserGet != nil || ir.AuthUserList != nil ||
		ir.AuthUserChangePassword != nil || ir.AuthUserGrantRole != nil || ir.AuthUserRevokeRole != nil ||
		ir.AuthRoleAdd != nil || ir.AuthRoleDelete != nil || ir.AuthRoleGet != nil || ir.AuthRoleList != nil ||
		ir.AuthRoleGrantPermission != nil || ir.AuthRoleRevokePermission != nil
}

// needsAdmin is etcd's needAdminPermission (server/etcdserver/apply/auth.go).
func needsAdmin(ir *pb.InternalRaftRequest) bool {
	return ir.AuthEnable != nil || ir.AuthDisable != nil || ir.AuthUserAdd != nil || ir.AuthUserDelete != nil ||
		ir.AuthUserChangePassword != nil || ir.AuthUserGrantRole != nil || ir.AuthUserRevokeRole != nil ||
		ir.AuthRoleAdd != nil || ir.AuthRoleGrantPermission != nil || ir.AuthRoleRevokePermission != nil ||
		ir.AuthRoleDelete != nil || ir.AuthUserList != nil || ir.AuthRoleList != nil
}

// Apply applies one committed auth request sent by ai, at raft index index and
// time now, as etcd's auth applier does, and returns its response with header
// hdr. The same log gives the same state and answers on every member.
func (s *Store) Apply(ai Info, ir *pb.InternalRaftRequest, index uint64, now time.Time, hdr *pb.ResponseHeader) (proto.Message, error) {
	if needsAdmin(ir) {
		if err := s.IsAdminPermitted(ai); err != nil {
			return nil, err
		}
	}
	switch {
	case ir.AuthEnable != nil:
		if err := s.enable(); err != nil {
			return nil, err
		}
		return &pb.AuthEnableResponse{Header: hdr}, nil
	case ir.AuthDisable != nil:
		s.disable()
		return &pb.AuthDisableResponse{Header: hdr}, nil
	case ir.AuthStatus != nil:
		return &pb.AuthStatusResponse{Header: hdr, Enabled: s.enabled, AuthRevision: s.rev}, nil
	case ir.Authenticate != nil:
		tok, err := s.authenticate(ir.Authenticate.Name, ir.Authenticate.SimpleToken, index, now)
		if err != nil {
			return nil, err
		}
		return &pb.AuthenticateResponse{Header: hdr, Token: tok}, nil
	case ir.AuthUserAdd != nil:
		return &pb.AuthUserAddResponse{Header: hdr}, s.userAdd(ir.AuthUserAdd)
	case ir.AuthUserDelete != nil:
		return &pb.AuthUserDeleteResponse{Header: hdr}, s.userDelete(ir.AuthUserDelete.Name)
	case ir.AuthUserChangePassword != nil:
		return &pb.AuthUserChangePasswordResponse{Header: hdr}, s.userChangePassword(ir.AuthUserChangePassword)
	case ir.AuthUserGrantRole != nil:
		return &pb.AuthUserGrantRoleResponse{Header: hdr}, s.userGrantRole(ir.AuthUserGrantRole.User, ir.AuthUserGrantRole.Role)
	case ir.AuthUserRevokeRole != nil:
		return &pb.AuthUserRevokeRoleResponse{Header: hdr}, s.userRevokeRole(ir.AuthUserRevokeRole.Name, ir.AuthUserRevokeRole.Role)
	case ir.AuthUserGet != nil:
		// A user may read itself; anything else needs root.
		if err := s.IsAdminPermitted(ai); err != nil && ir.AuthUserGet.Name != ai.User {
			return nil, err
		}
		u := s.users[ir.AuthUserGet.Name]
		if u == nil {
			return nil, ErrUserNotFound
		}
		return &pb.AuthUserGetResponse{Header: hdr, Roles: slices.Clone(u.Roles)}, nil
	case ir.AuthUserList != nil:
		return &pb.AuthUserListResponse{Header: hdr, Users: sortedNames(s.users)}, nil
	case ir.AuthRoleAdd != nil:
		return &pb.AuthRoleAddResponse{Header: hdr}, s.roleAdd(ir.AuthRoleAdd.Name)
	case ir.AuthRoleDelete != nil:
		return &pb.AuthRoleDeleteResponse{Header: hdr}, s.roleDelete(ir.AuthRoleDelete.Role)
	case ir.AuthRoleGet != nil:
		// A user may read its own roles; anything else needs root.
		if err := s.IsAdminPermitted(ai); err != nil && !s.HasRole(ai.User, ir.AuthRoleGet.Role) {
			return nil, err
		}
		r := s.roles[ir.AuthRoleGet.Role]
		if r == nil {
			return nil, ErrRoleNotFound
		}
		resp := &pb.AuthRoleGetResponse{Header: hdr}
		if string(r.Name) == RootRole {
			resp.Perm = []*authpb.Permission{rootPerm()}
		} else {
			for _, p := range r.KeyPermission {
				resp.Perm = append(resp.Perm, proto.Clone(p).(*authpb.Permission))
			}
		}
		return resp, nil
	case ir.AuthRoleList != nil:
		return &pb.AuthRoleListResponse{Header: hdr, Roles: sortedNames(s.roles)}, nil
	case ir.AuthRoleGrantPermission != nil:
		return &pb.AuthRoleGrantPermissionResponse{Header: hdr}, s.roleGrantPermission(ir.AuthRoleGrantPermission)
	case ir.AuthRoleRevokePermission != nil:
		r := ir.AuthRoleRevokePermission
		return &pb.AuthRoleRevokePermissionResponse{Header: hdr}, s.roleRevokePermission(r.Role, r.Key, r.RangeEnd)
	}
	return nil, fmt.Errorf("auth: not an auth request")
}

// rootPerm is what RoleGet shows for the root role: read and write on everything.
func rootPerm() *authpb.Permission {
	return &authpb.Permission{PermType: authpb.Permission_READWRITE, Key: []byte{}, RangeEnd: []byte{0}}
}

func (s *Store) enable() error {
	if s.enabled {
		return nil
	}
	u := s.users[RootUser]
	if u == nil {
		return ErrRootUserNotExist
	}
	if !hasRootRole(u) {
		return ErrRootRoleNotExist
	}
	s.enabled = true
	s.be.PutRaw(BucketAuth, keyEnabled, []byte{1})
	return nil
}

func (s *Store) disable() {
	if !s.enabled {
		return
	}
	s.enabled = false
	s.be.PutRaw(BucketAuth, keyEnabled, []byte{0})
	s.commitRevision()
	clear(s.tokens)
}

func (s *Store) authenticate(name, prefix string, index uint64, now time.Time) (string, error) {
	if !s.enabled {
		return "", ErrAuthNotEnabled
	}
	u := s.users[name]
	if u == nil || (u.Options != nil && u.Options.NoPassword) {
		return "", ErrAuthFailed
	}
	if s.provider != nil {
		return s.provider.Assign(name, s.rev)
	}
	s.expireTokens(now)
	tok := fmt.Sprintf("%s.%d", prefix, index)
	s.tokens[tok] = &token{user: name, expires: now.Add(s.tokenTTL)}
	return tok, nil
}

func (s *Store) userAdd(r *pb.AuthUserAddRequest) error {
	if r.Name == "" {
		return ErrUserEmpty
	}
	if s.users[r.Name] != nil {
		return ErrUserAlreadyExist
	}
	opts := r.Options
	if opts == nil {
		opts = &authpb.UserAddOptions{}
	}
	var password []byte
	if !opts.NoPassword {
		var err error
		if password, err = s.selectPassword(r.Password, r.HashedPassword); err != nil {
			return ErrNoPasswordUser
		}
	}
	s.putUser(&authpb.User{Name: []byte(r.Name), Password: password, Options: proto.Clone(opts).(*authpb.UserAddOptions)})
	s.commitRevision()
	return nil
}

func (s *Store) userDelete(name string) error {
	if s.enabled && name == RootUser {
		return ErrInvalidAuthMgmt
	}
	if s.users[name] == nil {
		return ErrUserNotFound
	}
	delete(s.users, name)
	s.be.DeleteRaw(BucketUsers, []byte(name))
	s.commitRevision()
	s.invalidateUser(name)
	return nil
}

func (s *Store) userChangePassword(r *pb.AuthUserChangePasswordRequest) error {
	u := s.users[r.Name]
	if u == nil {
		return ErrUserNotFound
	}
	var password []byte
	if u.Options == nil || !u.Options.NoPassword {
		var err error
		if password, err = s.selectPassword(r.Password, r.HashedPassword); err != nil {
			return ErrNoPasswordUser
		}
	}
	s.putUser(&authpb.User{Name: u.Name, Roles: u.Roles, Password: password, Options: u.Options})
	s.commitRevision()
	s.invalidateUser(r.Name)
	return nil
}

func (s *Store) userGrantRole(user, role string) error {
	u := s.users[user]
	if u == nil {
		return ErrUserNotFound
	}
	if role != RootRole && s.roles[role] == nil {
		return ErrRoleNotFound
	}
	if slices.Contains(u.Roles, role) {
		return nil // etcd ignores a repeated grant, without a new revision
	}
	nu := proto.Clone(u).(*authpb.User)
	nu.Roles = append(nu.Roles, role)
	slices.Sort(nu.Roles)
	s.putUser(nu)
	s.commitRevision()
	return nil
}

func (s *Store) userRevokeRole(user, role string) error {
	if s.enabled && user == RootUser && role == RootRole {
		return ErrInvalidAuthMgmt
	}
	u := s.users[user]
	if u == nil {
		return ErrUserNotFound
	}
	if !slices.Contains(u.Roles, role) {
		return ErrRoleNotGranted
	}
	nu := proto.Clone(u).(*authpb.User)
	nu.Roles = slices.DeleteFunc(nu.Roles, func(r string) bool { return r == role })
	s.putUser(nu)
	s.commitRevision()
	return nil
}

func (s *Store) roleAdd(name string) error {
	if name == "" {
		return ErrRoleEmpty
	}
	if s.roles[name] != nil {
		return ErrRoleAlreadyExist
	}
	s.putRole(&authpb.Role{Name: []byte(name)})
	s.commitRevision()
	return nil
}

func (s *Store) roleDelete(name string) error {
	if s.enabled && name == RootRole {
		return ErrInvalidAuthMgmt
	}
	if s.roles[name] == nil {
		return ErrRoleNotFound
	}
	delete(s.roles, name)
	s.be.DeleteRaw(BucketRoles, []byte(name))
	for _, un := range sortedNames(s.users) {
		u := s.users[un]
		if slices.Contains(u.Roles, name) {
			nu := proto.Clone(u).(*authpb.User)
			nu.Roles = slices.DeleteFunc(nu.Roles, func(r string) bool { return r == name })
			s.putUser(nu)
		}
	}
	s.commitRevision()
	return nil
}

func (s *Store) roleGrantPermission(r *pb.AuthRoleGrantPermissionRequest) error {
	if r.Perm == nil {
		return ErrPermissionNotGiven
	}
	if !validPermissionRange(r.Perm.Key, r.Perm.RangeEnd) {
		return ErrInvalidAuthMgmt
	}
	old := s.roles[r.Name]
	if old == nil {
		return ErrRoleNotFound
	}
	role := proto.Clone(old).(*authpb.Role)
	i, found := slices.BinarySearchFunc(role.KeyPermission, r.Perm.Key, func(p *authpb.Permission, k []byte) int { return bytes.Compare(p.Key, k) })
	if found && bytes.Equal(role.KeyPermission[i].RangeEnd, r.Perm.RangeEnd) {
		role.KeyPermission[i].PermType = r.Perm.PermType
	} else {
		role.KeyPermission = append(role.KeyPermission, &authpb.Permission{Key: r.Perm.Key, RangeEnd: r.Perm.RangeEnd, PermType: r.Perm.PermType})
		slices.SortStableFunc(role.KeyPermission, func(a, b *authpb.Permission) int { return bytes.Compare(a.Key, b.Key) })
	}
	s.putRole(role)
	s.commitRevision()
	return nil
}

func (s *Store) roleRevokePermission(name string, key, rangeEnd []byte) error {
	old := s.roles[name]
	if old == nil {
		return ErrRoleNotFound
	}
	role := &authpb.Role{Name: old.Name}
	for _, p := range old.KeyPermission {
		if !bytes.Equal(p.Key, key) || !bytes.Equal(p.RangeEnd, rangeEnd) {
			role.KeyPermission = append(role.KeyPermission, proto.Clone(p).(*authpb.Permission))
		}
	}
	if len(role.KeyPermission) == len(old.KeyPermission) {
		return ErrPermissionNotGranted
	}
	s.putRole(role)
	s.commitRevision()
	return nil
}
