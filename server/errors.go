package server

import (
	"context"
	"errors"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/havoclab/havoc/store"
	"github.com/havoclab/havoc/store/lease"
	"github.com/havoclab/havoc/store/mvcc"
)

// grpcErrors maps the store's sentinel errors to the statuses etcd sends
// (clientv3 recognises them by message).
var grpcErrors = []struct {
	err  error
	grpc error
}{
	{mvcc.ErrCompacted, rpctypes.ErrGRPCCompacted},
	{mvcc.ErrFutureRev, rpctypes.ErrGRPCFutureRev},
	{mvcc.ErrKeyNotFound, rpctypes.ErrGRPCKeyNotFound},
	{mvcc.ErrLeaseNotFound, rpctypes.ErrGRPCLeaseNotFound},
	{mvcc.ErrValueProvided, rpctypes.ErrGRPCValueProvided},
	{mvcc.ErrLeaseProvided, rpctypes.ErrGRPCLeaseProvided},
	{mvcc.ErrEmptyKey, rpctypes.ErrGRPCEmptyKey},
	{mvcc.ErrTooManyOps, rpctypes.ErrGRPCTooManyOps},
	{mvcc.ErrDuplicateKey, rpctypes.ErrGRPCDuplicateKey},
	{mvcc.ErrInvalidSortOption, rpctypes.ErrGRPCInvalidSortOption},
	{mvcc.ErrClosed, rpctypes.ErrGRPCStopped},
	{lease.ErrNotFound, rpctypes.ErrGRPCLeaseNotFound},
	{lease.ErrExists, rpctypes.ErrGRPCLeaseExist},
	{lease.ErrTTLTooLarge, rpctypes.ErrGRPCLeaseTTLTooLarge},
	{lease.ErrNotPrimary, rpctypes.ErrGRPCNotLeader},
	{store.ErrNotLeader, rpctypes.ErrGRPCNotLeader},
	{store.ErrNoLeader, rpctypes.ErrGRPCNoLeader},
	{store.ErrTimeout, rpctypes.ErrGRPCTimeout},
	{store.ErrStopped, rpctypes.ErrGRPCStopped},
	{store.ErrRemoved, rpctypes.ErrGRPCStopped},
	{store.ErrRequestTooLarge, rpctypes.ErrGRPCRequestTooLarge},
	{store.ErrTooManyRequests, rpctypes.ErrGRPCRequestTooManyRequests},
	{store.ErrNoSpace, rpctypes.ErrGRPCNoSpace},
	{store.ErrMemberNotFound, rpctypes.ErrGRPCMemberNotFound},
	{store.ErrIDExists, rpctypes.ErrGRPCMemberExist},
	{store.ErrPeerURLExists, rpctypes.ErrGRPCPeerURLExist},
	{store.ErrNotEnoughStarted, rpctypes.ErrGRPCMemberNotEnoughStarted},
	{store.ErrMemberNotLearner, rpctypes.ErrGRPCMemberNotLearner},
	{store.ErrLearnerNotReady, rpctypes.ErrGRPCLearnerNotReady},
	{store.ErrTooManyLearners, rpctypes.ErrGRPCTooManyLearners},
	{store.ErrBadMemberURLs, rpctypes.ErrGRPCMemberBadURLs},
	{context.Canceled, rpctypes.ErrGRPCCanceled},
	{context.DeadlineExceeded, rpctypes.ErrGRPCDeadlineExceeded},
}

// toGRPC converts an error for a client: nil stays nil, a gRPC status passes
// through, a known sentinel becomes etcd's status, anything else is Unknown
// (ErrUnsupported: Unimplemented).
func toGRPC(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	for _, e := range grpcErrors {
		if errors.Is(err, e.err) {
			return e.grpc
		}
	}
	for _, e := range authErrors {
		if errors.Is(err, e.err) {
			return e.grpc
		}
	}
	if errors.Is(err, store.ErrUnsupported) {
		return status.Error(codes.Unimplemented, err.Error())
	}
	return status.Error(codes.Unknown, err.Error())
}

// unimplemented is the status of an RPC havoc does not offer.
func unimplemented(what string) error {
	return status.Errorf(codes.Unimplemented, "havoc: %s is not implemented", what)
}
