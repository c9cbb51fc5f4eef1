package server

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"math/big"
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	grpcpeer "google.golang.org/grpc/peer"
	"google.golang.org/protobuf/proto"

	"github.com/havoclab/havoc/store"
	"github.com/havoclab/havoc/store/auth"
)

// authServer is etcd's Auth service. Every RPC goes through raft, as in etcd;
// passwords are hashed here (bcrypt, --bcrypt-cost) before they are proposed,
// and Authenticate checks the password here, off the member's goroutine.
type authServer struct {
	pb.UnimplementedAuthServer
	m *Member
}

// identity is who sent the request in ctx: its auth token (metadata "token",
// or "authorization" with an optional "Bearer " prefix) and, when the member
// checks client certificates, the common name of the verified certificate.
func (m *Member) identity(ctx context.Context) store.Identity {
	var who store.Identity
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if ts := md.Get(rpctypes.TokenFieldNameGRPC); len(ts) > 0 {
			who.Token = ts[0]
		} else if ts := md.Get(rpctypes.TokenFieldNameSwagger); len(ts) > 0 {
			who.Token = strings.TrimPrefix(ts[0], "Bearer ")
		}
	}
	if !m.cfg.ClientTLSInfo.ClientCertAuth {
		return who
	}
	if p, ok := grpcpeer.FromContext(ctx); ok && p.AuthInfo != nil {
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok {
			for _, chain := range ti.State.VerifiedChains {
				if len(chain) > 0 {
					who.CertUser = chain[0].Subject.CommonName
					break
				}
			}
		}
	}
	return who
}

// doAuth proposes one auth request and returns its response.
func doAuth[T proto.Message](ctx context.Context, m *Member, ir *pb.InternalRaftRequest) (T, error) {
	var zero T
	resp, err := m.do(ctx, store.Request{Auth: ir})
	if err != nil {
		return zero, toGRPC(err)
	}
	out, ok := resp.Auth.(T)
	if !ok {
		return zero, toGRPC(errors.New("server: auth response of the wrong type"))
	}
	return out, nil
}

// AuthEnable turns auth on (root must exist with the root role).
func (s authServer) AuthEnable(ctx context.Context, r *pb.AuthEnableRequest) (*pb.AuthEnableResponse, error) {
	return doAuth[*pb.AuthEnableResponse](ctx, s.m, &pb.InternalRaftRequest{AuthEnable: r})
}

// AuthDisable turns auth off.
func (s authServer) AuthDisable(ctx context.Context, r *pb.AuthDisableRequest) (*pb.AuthDisableResponse, error) {
	return doAuth[*pb.AuthDisableResponse](ctx, s.m, &pb.InternalRaftRequest{AuthDisable: r})
}

// AuthStatus reports whether auth is on and the auth revision.
func (s authServer) AuthStatus(ctx context.Context, r *pb.AuthStatusRequest) (*pb.AuthStatusResponse, error) {
	return doAuth[*pb.AuthStatusResponse](ctx, s.m, &pb.InternalRaftRequest{AuthStatus: r})
}

// tokenLetters and tokenLength make a simple token's random prefix (etcd's).
const (
	tokenLetters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	tokenLength  = 16
)

func tokenPrefix() (string, error) {
	b := make([]byte, tokenLength)
	for i := range b {
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(tokenLetters))))
		if err != nil {
			return "", err
		}
		b[i] = tokenLetters[n.Int64()]
	}
	return string(b), nil
}

// Authenticate checks a password and issues a simple token through raft, so
// every member knows it. As etcd does, it retries if the auth state changed
// between the check and the token.
func (s authServer) Authenticate(ctx context.Context, r *pb.AuthenticateRequest) (*pb.AuthenticateResponse, error) {
	type hashed struct {
		hash []byte
		rev  uint64
	}
	// etcd's LinearizableReadNotify: check against the latest auth state, not
	// this member's possibly older one.
	barrier := store.Request{Range: &pb.RangeRequest{Key: []byte("auth"), CountOnly: true}, Who: store.Identity{System: true}}
	if _, err := s.m.do(ctx, barrier); err != nil {
		return nil, toGRPC(err)
	}
	for {
		h, err := callErr(ctx, s.m, func(n *store.Node) (hashed, error) {
			hash, rev, err := n.PasswordHash(r.Name)
			return hashed{hash, rev}, err
		})
		if err != nil {
			return nil, toGRPC(err)
		}
		if bcrypt.CompareHashAndPassword(h.hash, []byte(r.Password)) != nil {
			return nil, rpctypes.ErrGRPCAuthFailed
		}
		prefix, err := tokenPrefix()
		if err != nil {
			return nil, toGRPC(err)
		}
		resp, err := doAuth[*pb.AuthenticateResponse](ctx, s.m, &pb.InternalRaftRequest{
			Authenticate: &pb.InternalAuthenticateRequest{Name: r.Name, SimpleToken: prefix}})
		if err != nil {
			return nil, err
		}
		rev, err := call(ctx, s.m, func(n *store.Node) uint64 { return n.AuthRevision() })
		if err != nil {
			return nil, toGRPC(err)
		}
		if rev == h.rev {
			return resp, nil
		}
	}
}

// hashPassword is etcd's: the bcrypt hash, base64, in place of the password.
func (s authServer) hashPassword(password string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(password), s.m.cfg.BcryptCost)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(h), nil
}

// UserAdd adds a user.
func (s authServer) UserAdd(ctx context.Context, r *pb.AuthUserAddRequest) (*pb.AuthUserAddResponse, error) {
	r = proto.Clone(r).(*pb.AuthUserAddRequest)
	if r.Options == nil || !r.Options.NoPassword {
		h, err := s.hashPassword(r.Password)
		if err != nil {
			return nil, toGRPC(err)
		}
		r.HashedPassword, r.Password = h, ""
	}
	return doAuth[*pb.AuthUserAddResponse](ctx, s.m, &pb.InternalRaftRequest{AuthUserAdd: r})
}

// UserDelete deletes a user.
func (s authServer) UserDelete(ctx context.Context, r *pb.AuthUserDeleteRequest) (*pb.AuthUserDeleteResponse, error) {
	return doAuth[*pb.AuthUserDeleteResponse](ctx, s.m, &pb.InternalRaftRequest{AuthUserDelete: r})
}

// UserChangePassword changes a user's password.
func (s authServer) UserChangePassword(ctx context.Context, r *pb.AuthUserChangePasswordRequest) (*pb.AuthUserChangePasswordResponse, error) {
	r = proto.Clone(r).(*pb.AuthUserChangePasswordRequest)
	if r.Password != "" {
		h, err := s.hashPassword(r.Password)
		if err != nil {
			return nil, toGRPC(err)
		}
		r.HashedPassword, r.Password = h, ""
	}
	return doAuth[*pb.AuthUserChangePasswordResponse](ctx, s.m, &pb.InternalRaftRequest{AuthUserChangePassword: r})
}

// UserGrantRole grants a role to a user.
func (s authServer) UserGrantRole(ctx context.Context, r *pb.AuthUserGrantRoleRequest) (*pb.AuthUserGrantRoleResponse, error) {
	return doAuth[*pb.AuthUserGrantRoleResponse](ctx, s.m, &pb.InternalRaftRequest{AuthUserGrantRole: r})
}

// UserRevokeRole revokes a role from a user.
func (s authServer) UserRevokeRole(ctx context.Context, r *pb.AuthUserRevokeRoleRequest) (*pb.AuthUserRevokeRoleResponse, error) {
	return doAuth[*pb.AuthUserRevokeRoleResponse](ctx, s.m, &pb.InternalRaftRequest{AuthUserRevokeRole: r})
}

// UserGet lists a user's roles.
func (s authServer) UserGet(ctx context.Context, r *pb.AuthUserGetRequest) (*pb.AuthUserGetResponse, error) {
	return doAuth[*pb.AuthUserGetResponse](ctx, s.m, &pb.InternalRaftRequest{AuthUserGet: r})
}

// UserList lists the users.
func (s authServer) UserList(ctx context.Context, r *pb.AuthUserListRequest) (*pb.AuthUserListResponse, error) {
	return doAuth[*pb.AuthUserListResponse](ctx, s.m, &pb.InternalRaftRequest{AuthUserList: r})
}

// RoleAdd adds a role.
func (s authServer) RoleAdd(ctx context.Context, r *pb.AuthRoleAddRequest) (*pb.AuthRoleAddResponse, error) {
	return doAuth[*pb.AuthRoleAddResponse](ctx, s.m, &pb.InternalRaftRequest{AuthRoleAdd: r})
}

// RoleDelete deletes a role and revokes it from every user.
func (s authServer) RoleDelete(ctx context.Context, r *pb.AuthRoleDeleteRequest) (*pb.AuthRoleDeleteResponse, error) {
	return doAuth[*pb.AuthRoleDeleteResponse](ctx, s.m, &pb.InternalRaftRequest{AuthRoleDelete: r})
}

// RoleGet lists a role's permissions.
func (s authServer) RoleGet(ctx context.Context, r *pb.AuthRoleGetRequest) (*pb.AuthRoleGetResponse, error) {
	return doAuth[*pb.AuthRoleGetResponse](ctx, s.m, &pb.InternalRaftRequest{AuthRoleGet: r})
}

// RoleList lists the roles.
func (s authServer) RoleList(ctx context.Context, r *pb.AuthRoleListRequest) (*pb.AuthRoleListResponse, error) {
	return doAuth[*pb.AuthRoleListResponse](ctx, s.m, &pb.InternalRaftRequest{AuthRoleList: r})
}

// RoleGrantPermission grants (or changes) a key permission of a role.
func (s authServer) RoleGrantPermission(ctx context.Context, r *pb.AuthRoleGrantPermissionRequest) (*pb.AuthRoleGrantPermissionResponse, error) {
	return doAuth[*pb.AuthRoleGrantPermissionResponse](ctx, s.m, &pb.InternalRaftRequest{AuthRoleGrantPermission: r})
}

// RoleRevokePermission revokes a key permission from a role.
func (s authServer) RoleRevokePermission(ctx context.Context, r *pb.AuthRoleRevokePermissionRequest) (*pb.AuthRoleRevokePermissionResponse, error) {
	return doAuth[*pb.AuthRoleRevokePermissionResponse](ctx, s.m, &pb.InternalRaftRequest{AuthRoleRevokePermission: r})
}

// authErrors maps store/auth's errors to etcd's statuses.
var authErrors = []struct {
	err  error
	grpc error
}{
	{auth.ErrRootUserNotExist, rpctypes.ErrGRPCRootUserNotExist},
	{auth.ErrRootRoleNotExist, rpctypes.ErrGRPCRootRoleNotExist},
	{auth.ErrUserAlreadyExist, rpctypes.ErrGRPCUserAlreadyExist},
	{auth.ErrUserEmpty, rpctypes.ErrGRPCUserEmpty},
	{auth.ErrUserNotFound, rpctypes.ErrGRPCUserNotFound},
	{auth.ErrRoleAlreadyExist, rpctypes.ErrGRPCRoleAlreadyExist},
	{auth.ErrRoleNotFound, rpctypes.ErrGRPCRoleNotFound},
	{auth.ErrRoleEmpty, rpctypes.ErrGRPCRoleEmpty},
	{auth.ErrAuthFailed, rpctypes.ErrGRPCAuthFailed},
	{auth.ErrPermissionNotGiven, rpctypes.ErrGRPCPermissionNotGiven},
	{auth.ErrPermissionDenied, rpctypes.ErrGRPCPermissionDenied},
	{auth.ErrRoleNotGranted, rpctypes.ErrGRPCRoleNotGranted},
	{auth.ErrPermissionNotGranted, rpctypes.ErrGRPCPermissionNotGranted},
	{auth.ErrAuthNotEnabled, rpctypes.ErrGRPCAuthNotEnabled},
	{auth.ErrInvalidAuthToken, rpctypes.ErrGRPCInvalidAuthToken},
	{auth.ErrInvalidAuthMgmt, rpctypes.ErrGRPCInvalidAuthMgmt},
	{auth.ErrAuthOldRevision, rpctypes.ErrGRPCAuthOldRevision},
}

// checkAdmin fails unless the sender may run an administrative RPC (etcd's
// AuthAdmin.isPermitted: a user with the root role while auth is on).
func (m *Member) checkAdmin(ctx context.Context) error {
	who := m.identity(ctx)
	_, err := callErr(ctx, m, func(n *store.Node) (struct{}, error) { return struct{}{}, n.CheckAdmin(who) })
	return toGRPC(err)
}

// checkAuthenticated fails when auth is on and the sender has no identity
// (etcd's requireAuthInfo).
func (m *Member) checkAuthenticated(ctx context.Context) error {
	who := m.identity(ctx)
	_, err := callErr(ctx, m, func(n *store.Node) (struct{}, error) { return struct{}{}, n.CheckAuthenticated(who) })
	return toGRPC(err)
}

// forwardToken gives an outgoing context the auth token of the incoming one,
// so a request forwarded to the leader acts for the same user.
func forwardToken(in, out context.Context) context.Context {
	md, ok := metadata.FromIncomingContext(in)
	if !ok {
		return out
	}
	if ts := md.Get(rpctypes.TokenFieldNameGRPC); len(ts) > 0 {
		return metadata.AppendToOutgoingContext(out, rpctypes.TokenFieldNameGRPC, ts[0])
	}
	return out
}
