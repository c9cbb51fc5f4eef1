package store

import "errors"

// Sentinel errors of the member core. Their messages are etcd's, so that the gRPC
// layer can map each to the status clientv3 expects (rpctypes).
var (
	ErrNotLeader        = errors.New("etcdserver: not leader")
	ErrNoLeader         = errors.New("etcdserver: no leader")
	ErrTimeout          = errors.New("etcdserver: request timed out")
	ErrStopped          = errors.New("etcdserver: server stopped")
	ErrRequestTooLarge  = errors.New("etcdserver: request is too large")
	ErrTooManyRequests  = errors.New("etcdserver: too many requests")
	ErrNoSpace          = errors.New("etcdserver: mvcc: database space exceeded")
	ErrMemberNotFound   = errors.New("etcdserver: member not found")
	ErrIDExists         = errors.New("etcdserver: member ID already exist")
	ErrPeerURLExists    = errors.New("etcdserver: Peer URLs already exists")
	ErrNotEnoughStarted = errors.New("etcdserver: re-configuration failed due to not enough started members")
	ErrMemberNotLearner = errors.New("etcdserver: can only promote a learner member")
	ErrLearnerNotReady  = errors.New("etcdserver: can only promote a learner member which is in sync with leader")
	ErrTooManyLearners  = errors.New("etcdserver: too many learner members in cluster")
	ErrBadMemberURLs    = errors.New("etcdserver: given member URLs are invalid")
	ErrUnsupported      = errors.New("store: unsupported request")
	ErrBadEntry         = errors.New("store: undecodable log entry")
	ErrForeignDataDir   = errors.New("store: data dir belongs to another member or cluster")
	ErrRemoved          = errors.New("store: member was removed from the cluster")
)
