package store

import (
	"google.golang.org/protobuf/proto"

	"github.com/havoclab/havoc/store/membership"
	"github.com/havoclab/havoc/vfs"
)

func protoMarshal(m proto.Message) ([]byte, error) { return proto.Marshal(m) }

func newMemDisk() *vfs.Mem { return vfs.NewMem() }

func memberOf(id uint64, name, peer string) membership.Member {
	return membership.Member{ID: id, Name: name, PeerURLs: []string{peer}}
}
