package store

import (
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/havoclab/havoc/store/auth"
)

// Identity is who sends a client request, as the runtime learned it from the
// connection: the auth token in the request's metadata, the common name of the
// client's verified certificate (only when the member checks client
// certificates), or the member itself. The token wins over the certificate, as
// in etcd.
type Identity struct {
	Token    string
	CertUser string
	// System marks the runtime's own requests (its readiness probe): they act
	// as root, as etcd's internal requests do (AuthStore.WithRoot).
	System bool
}

// identify resolves who into etcd's AuthInfo (zero: nobody). While auth is
// disabled every request is nobody, and nothing is checked.
func (n *Node) identify(who Identity) (auth.Info, error) {
	if !n.auth.Enabled() {
		return auth.Info{}, nil
	}
	switch {
	case who.System:
		return auth.Info{User: auth.RootUser, Revision: n.auth.Revision()}, nil
	case who.Token != "":
		ai, ok := n.auth.Lookup(who.Token, n.cfg.Clock.Now())
		if !ok {
			return auth.Info{}, auth.ErrInvalidAuthToken
		}
		return ai, nil
	case who.CertUser != "":
		return auth.Info{User: who.CertUser, Revision: n.auth.Revision()}, nil
	}
	return auth.Info{}, nil
}

// requireUser is etcd's requireAuthInfo: with auth enabled, a request must
// carry a valid identity.
func (n *Node) requireUser(who Identity) (auth.Info, error) {
	ai, err := n.identify(who)
	if err == nil && n.auth.Enabled() && ai.User == "" {
		err = auth.ErrUserEmpty
	}
	return ai, err
}

// CheckAdmin fails unless who may run administrative RPCs (with auth enabled:
// a user with the root role), as etcd checks Snapshot, Defragment, Hash,
// HashKV, MoveLeader, alarm changes and membership changes.
func (n *Node) CheckAdmin(who Identity) error {
	ai, err := n.identify(who)
	if err != nil {
		return err
	}
	return n.auth.IsAdminPermitted(ai)
}

// CheckAuthenticated fails when auth is enabled and who is nobody (etcd's
// requireAuthInfo, for Status and alarm lists).
func (n *Node) CheckAuthenticated(who Identity) error {
	_, err := n.requireUser(who)
	return err
}

// CheckRead fails unless who may read [key, rangeEnd) (a watch's creation).
func (n *Node) CheckRead(who Identity, key, rangeEnd []byte) error {
	ai, err := n.identify(who)
	if err != nil {
		return err
	}
	return n.auth.IsRangePermitted(ai, key, rangeEnd)
}

// PasswordHash returns the bcrypt hash of a user's password and the auth
// revision it was read at, for the runtime to check a password off the member's
// goroutine (etcd's CheckPassword).
func (n *Node) PasswordHash(name string) ([]byte, uint64, error) { return n.auth.PasswordHash(name) }

// AuthRevision returns the auth revision.
func (n *Node) AuthRevision() uint64 { return n.auth.Revision() }

// AuthEnabled reports whether auth is enabled.
func (n *Node) AuthEnabled() bool { return n.auth.Enabled() }

// checkPut is etcd's checkPutAuth.
func (n *Node) checkPut(ai auth.Info, r *pb.PutRequest) error {
	if err := n.auth.IsPutPermitted(ai, r.Key); err != nil {
		return err
	}
	if err := n.checkLeasePuts(ai, r.Lease); err != nil {
		return err
	}
	if r.PrevKv {
		return n.auth.IsRangePermitted(ai, r.Key, nil)
	}
	return nil
}

// checkLeasePuts is etcd's: a user may attach to or revoke a lease only if it
// may write every key already attached to it.
func (n *Node) checkLeasePuts(ai auth.Info, id int64) error {
	l := n.lessor.Lookup(id)
	if l == nil || n.auth.IsAdminPermitted(ai) == nil {
		return nil
	}
	for _, k := range l.Keys() {
		if err := n.auth.IsPutPermitted(ai, k); err != nil {
			return err
		}
	}
	return nil
}

// checkLeaseKeysRead fails unless ai may read every key of the leases (etcd's
// checkLeaseTimeToLive and checkLeaseLeases).
func (n *Node) checkLeaseKeysRead(ai auth.Info, ids ...int64) error {
	if n.auth.IsAdminPermitted(ai) == nil {
		return nil
	}
	for _, id := range ids {
		if l := n.lessor.Lookup(id); l != nil {
			for _, k := range l.Keys() {
				if err := n.auth.IsRangePermitted(ai, k, nil); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// checkDelete is etcd's DeleteRange check.
func (n *Node) checkDelete(ai auth.Info, r *pb.DeleteRangeRequest) error {
	if err := n.auth.IsDeleteRangePermitted(ai, r.Key, r.RangeEnd); err != nil {
		return err
	}
	if r.PrevKv {
		return n.auth.IsRangePermitted(ai, r.Key, r.RangeEnd)
	}
	return nil
}

// checkTxn is etcd's checkTxnPermission: every compare and read needs read,
// every write needs write, nested transactions included.
func (n *Node) checkTxn(ai auth.Info, t *pb.TxnRequest) error {
	if !n.auth.Enabled() {
		return nil
	}
	for _, c := range t.Compare {
		if err := n.auth.IsRangePermitted(ai, c.Key, c.RangeEnd); err != nil {
			return err
		}
	}
	for _, ops := range [][]*pb.RequestOp{t.Success, t.Failure} {
		for _, op := range ops {
			var err error
			switch x := op.GetRequest().(type) {
			case *pb.RequestOp_RequestRange:
				if x.RequestRange != nil {
					err = n.auth.IsRangePermitted(ai, x.RequestRange.Key, x.RequestRange.RangeEnd)
				}
			case *pb.RequestOp_RequestPut:
				if x.RequestPut != nil {
					err = n.checkPut(ai, x.RequestPut)
				}
			case *pb.RequestOp_RequestDeleteRange:
				if x.RequestDeleteRange != nil {
					err = n.checkDelete(ai, x.RequestDeleteRange)
				}
			case *pb.RequestOp_RequestTxn:
				if x.RequestTxn != nil {
					err = n.checkTxn(ai, x.RequestTxn)
				}
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}
