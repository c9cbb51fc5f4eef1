package mvcc

import (
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// DefaultMaxTxnOps is etcd's --max-txn-ops default.
const DefaultMaxTxnOps = 128

// ValidateRange is etcd's checkRangeRequest (go.etcd.io/etcd/server/v3/etcdserver/api/v3rpc, key.go).
func ValidateRange(r *pb.RangeRequest) error {
	if len(r.GetKey()) == 0 {
		return ErrEmptyKey
	}
	if _, ok := pb.RangeRequest_SortOrder_name[int32(r.GetSortOrder())]; !ok {
		return ErrInvalidSortOption
	}
	if _, ok := pb.RangeRequest_SortTarget_name[int32(r.GetSortTarget())]; !ok {
		return ErrInvalidSortOption
	}
	return nil
}

// ValidatePut is etcd's checkPutRequest.
func ValidatePut(r *pb.PutRequest) error {
	if len(r.GetKey()) == 0 {
		return ErrEmptyKey
	}
	if r.GetIgnoreValue() && len(r.GetValue()) != 0 {
		return ErrValueProvided
	}
	if r.GetIgnoreLease() && r.GetLease() != 0 {
		return ErrLeaseProvided
	}
	return nil
}

// ValidateDeleteRange is etcd's checkDeleteRequest.
func ValidateDeleteRange(r *pb.DeleteRangeRequest) error {
	if len(r.GetKey()) == 0 {
		return ErrEmptyKey
	}
	return nil
}

// ValidateTxn is etcd's checkTxnRequest followed by its duplicate-key check
// (checkIntervals), as v3rpc's Txn handler runs them. maxOps <= 0 means
// DefaultMaxTxnOps.
func ValidateTxn(r *pb.TxnRequest, maxOps int) error {
	if maxOps <= 0 {
		maxOps = DefaultMaxTxnOps
	}
	if err := checkTxnRequest(r, maxOps); err != nil {
		return err
	}
	if _, _, err := checkIntervals(r.GetSuccess()); err != nil {
		return err
	}
	_, _, err := checkIntervals(r.GetFailure())
	return err
}

func checkTxnRequest(r *pb.TxnRequest, maxOps int) error {
	opc := max(len(r.GetCompare()), len(r.GetSuccess()), len(r.GetFailure()))
	if opc > maxOps {
		return ErrTooManyOps
	}
	for _, c := range r.GetCompare() {
		if len(c.GetKey()) == 0 {
			return ErrEmptyKey
		}
	}
	for _, u := range r.GetSuccess() {
		if err := checkRequestOp(u, maxOps-opc); err != nil {
			return err
		}
	}
	for _, u := range r.GetFailure() {
		if err := checkRequestOp(u, maxOps-opc); err != nil {
			return err
		}
	}
	return nil
}

func checkRequestOp(u *pb.RequestOp, maxOps int) error {
	switch uv := u.GetRequest().(type) {
	case *pb.RequestOp_RequestRange:
		return ValidateRange(uv.RequestRange)
	case *pb.RequestOp_RequestPut:
		return ValidatePut(uv.RequestPut)
	case *pb.RequestOp_RequestDeleteRange:
		return ValidateDeleteRange(uv.RequestDeleteRange)
	case *pb.RequestOp_RequestTxn:
		return checkTxnRequest(uv.RequestTxn, maxOps)
	default:
		return ErrKeyNotFound
	}
}

// interval is a half-open key interval with etcd's StringAffine ordering, where the
// empty string is above every other string (adt.StringAffineComparable).
type interval struct{ begin, end string }

func affineCmp(a, b string) int {
	switch {
	case a == b:
		return 0
	case a == "":
		return 1
	case b == "":
		return -1
	case a < b:
		return -1
	}
	return 1
}

// intersects is adt's Interval.Compare(...) == 0 for the point k against iv.
func (iv interval) intersects(k string) bool {
	p := interval{k, k + "\x00"}
	if affineCmp(p.begin, iv.begin) < 0 && affineCmp(p.end, iv.begin) <= 0 {
		return false
	}
	return affineCmp(p.begin, iv.end) < 0
}

type intervals []interval

func (ivs intervals) intersects(k string) bool {
	for _, iv := range ivs {
		if iv.intersects(k) {
			return true
		}
	}
	return false
}

// checkIntervals is etcd's duplicate-key check: no key may be put twice, or put and
// deleted, across a txn and its nested txns (a key may be put in both branches of one
// nested txn).
func checkIntervals(reqs []*pb.RequestOp) (map[string]struct{}, intervals, error) {
	var dels intervals
	for _, req := range reqs {
		tv, ok := req.GetRequest().(*pb.RequestOp_RequestDeleteRange)
		if !ok || tv.RequestDeleteRange == nil {
			continue
		}
		d := tv.RequestDeleteRange
		switch {
		case len(d.RangeEnd) == 1 && d.RangeEnd[0] == 0:
			// Deliberate deviation: etcd builds the interval [key, "\x00"), which is
			// empty, so it accepts a from-key delete plus a put of a covered key in
			// one txn, and then crashes on ignore_value or on compacting that
			// revision (the key is tombstoned and recreated at one revision). havoc
			// rejects it as the duplicate it is: [key, +inf).
			dels = append(dels, interval{string(d.Key), ""})
		case len(d.RangeEnd) != 0:
			dels = append(dels, interval{string(d.Key), string(d.RangeEnd)})
		default:
			dels = append(dels, interval{string(d.Key), string(d.Key) + "\x00"})
		}
	}
	puts := make(map[string]struct{})
	for _, req := range reqs {
		tv, ok := req.GetRequest().(*pb.RequestOp_RequestTxn)
		if !ok {
			continue
		}
		putsThen, delsThen, err := checkIntervals(tv.RequestTxn.GetSuccess())
		if err != nil {
			return nil, dels, err
		}
		putsElse, delsElse, err := checkIntervals(tv.RequestTxn.GetFailure())
		if err != nil {
			return nil, dels, err
		}
		for k := range putsThen {
			if _, ok := puts[k]; ok || dels.intersects(k) {
				return nil, dels, ErrDuplicateKey
			}
			puts[k] = struct{}{}
		}
		for k := range putsElse {
			if _, ok := puts[k]; ok {
				if _, safe := putsThen[k]; !safe {
					return nil, dels, ErrDuplicateKey
				}
			}
			if dels.intersects(k) {
				return nil, dels, ErrDuplicateKey
			}
			puts[k] = struct{}{}
		}
		dels = append(dels, delsThen...)
		dels = append(dels, delsElse...)
	}
	for _, req := range reqs {
		tv, ok := req.GetRequest().(*pb.RequestOp_RequestPut)
		if !ok || tv.RequestPut == nil {
			continue
		}
		k := string(tv.RequestPut.Key)
		if _, ok := puts[k]; ok || dels.intersects(k) {
			return nil, dels, ErrDuplicateKey
		}
		puts[k] = struct{}{}
	}
	return puts, dels, nil
}
