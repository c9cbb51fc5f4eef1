package main

import (
	"context"
	"errors"
	"os"

	"github.com/havoclab/havoc/cluster/etcdbin"
)

// etcdVersionUsage is the help of every --etcd-version flag.
const etcdVersionUsage = "etcd release for --target etcd, e.g. v3.5.21: built once from the Go module proxy " +
	"(about a CPU-minute) into the user's cache dir, with its etcdctl and etcdutl (v3.5 and later)"

// etcdRelease builds (or finds cached) the release --etcd-version names. Both
// --etcd-bin and --etcd-version is an error: the binary would not be the release.
func etcdRelease(bin, version string) (etcdbin.Release, error) {
	if bin != "" {
		return etcdbin.Release{}, errors.New("--etcd-bin and --etcd-version both given: pass one")
	}
	return etcdbin.Get(context.Background(), os.Stderr, version)
}

// resolveEtcd turns --etcd-version into the release's etcd binary in etcdBin,
// and names the member flags (a scenario's cluster settings) as that release
// does (experimental-* before v3.6).
func (b *backendFlags) resolveEtcd() error {
	if b.etcdVersion == "" || b.target != "etcd" {
		return nil
	}
	rel, err := etcdRelease(b.etcdBin, b.etcdVersion)
	if err != nil {
		return err
	}
	v, err := etcdbin.ParseVersion(rel.Version)
	if err != nil {
		return err
	}
	b.etcdBin, b.etcdVersion = rel.Etcd(), ""
	b.memberArgs = etcdbin.MemberArgs(v, b.memberArgs)
	return nil
}

// resolveEtcd turns --etcd-version into the release's etcd, and its etcdutl
// unless --etcdutl-bin is given.
func (f *realDrillFlags) resolveEtcd() error {
	if f.etcdVersion == "" || f.target != "etcd" {
		return nil
	}
	rel, err := etcdRelease(f.etcdBin, f.etcdVersion)
	if err != nil {
		return err
	}
	f.etcdBin, f.etcdVersion = rel.Etcd(), ""
	if f.etcdutlBin == "" {
		f.etcdutlBin = rel.Etcdutl()
	}
	return nil
}
