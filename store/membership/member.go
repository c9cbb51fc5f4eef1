// Package membership describes cluster members the way etcd does: member and cluster
// IDs derived from peer URLs and the cluster token, and the JSON stored in the bbolt
// "members" bucket (so that snapshots interoperate with etcd).
package membership

import (
	"crypto/sha1"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// ErrBadInitialCluster reports a malformed --initial-cluster value.
var ErrBadInitialCluster = errors.New("membership: invalid initial cluster")

// Member is one cluster member.
type Member struct {
	ID         uint64
	Name       string // empty while the member has not started ("unstarted")
	PeerURLs   []string
	ClientURLs []string
	IsLearner  bool
}

// memberJSON is etcd's flattened membership.Member encoding.
type memberJSON struct {
	ID         uint64   `json:"id"`
	PeerURLs   []string `json:"peerURLs"`
	IsLearner  bool     `json:"isLearner,omitempty"`
	Name       string   `json:"name,omitempty"`
	ClientURLs []string `json:"clientURLs,omitempty"`
}

// MarshalJSON encodes the member as etcd does.
func (m Member) MarshalJSON() ([]byte, error) {
	return json.Marshal(memberJSON{ID: m.ID, PeerURLs: m.PeerURLs, IsLearner: m.IsLearner, Name: m.Name, ClientURLs: m.ClientURLs})
}

// UnmarshalJSON decodes etcd's member encoding.
func (m *Member) UnmarshalJSON(b []byte) error {
	var j memberJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return fmt.Errorf("membership: decode member: %w", err)
	}
	*m = Member{ID: j.ID, Name: j.Name, PeerURLs: j.PeerURLs, ClientURLs: j.ClientURLs, IsLearner: j.IsLearner}
	return nil
}

// Key returns the members-bucket key: the ID in lowercase hex without padding.
func (m Member) Key() []byte { return []byte(strconv.FormatUint(m.ID, 16)) }

// ComputeID returns etcd's member ID: the first 8 bytes (big-endian) of SHA-1 over
// the sorted peer URLs concatenated, then the cluster token.
func ComputeID(peerURLs []string, token string) uint64 {
	urls := slices.Clone(peerURLs)
	slices.Sort(urls)
	b := []byte(strings.Join(urls, ""))
	b = append(b, token...)
	h := sha1.Sum(b)
	return binary.BigEndian.Uint64(h[:8])
}

// ClusterID returns etcd's cluster ID: the first 8 bytes of SHA-1 over the sorted
// member IDs, each as 8 bytes big-endian.
func ClusterID(ids []uint64) uint64 {
	s := slices.Clone(ids)
	slices.Sort(s)
	b := make([]byte, 8*len(s))
	for i, id := range s {
		binary.BigEndian.PutUint64(b[8*i:], id)
	}
	h := sha1.Sum(b)
	return binary.BigEndian.Uint64(h[:8])
}

// ParseInitialCluster parses "name1=url1,name2=url2" into members with IDs computed
// from token, sorted by ID. A name may appear several times (several peer URLs).
func ParseInitialCluster(s, token string) ([]Member, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("%w: empty", ErrBadInitialCluster)
	}
	byName := map[string][]string{}
	var names []string
	for part := range strings.SplitSeq(s, ",") {
		name, u, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || name == "" || u == "" {
			return nil, fmt.Errorf("%w: %q is not name=url", ErrBadInitialCluster, part)
		}
		if err := ValidateURL(u); err != nil {
			return nil, fmt.Errorf("%w: member %s: %w", ErrBadInitialCluster, name, err)
		}
		if _, seen := byName[name]; !seen {
			names = append(names, name)
		}
		byName[name] = append(byName[name], u)
	}
	ms := make([]Member, 0, len(names))
	seenIDs := map[uint64]string{}
	for _, name := range names {
		m := Member{Name: name, PeerURLs: byName[name]}
		slices.Sort(m.PeerURLs)
		m.ID = ComputeID(m.PeerURLs, token)
		if other, dup := seenIDs[m.ID]; dup {
			return nil, fmt.Errorf("%w: members %s and %s have the same peer URLs", ErrBadInitialCluster, other, name)
		}
		seenIDs[m.ID] = name
		ms = append(ms, m)
	}
	slices.SortFunc(ms, func(a, b Member) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return ms, nil
}

// ValidateURL accepts http(s) or unix URLs with a host.
func ValidateURL(u string) error {
	p, err := url.Parse(u)
	if err != nil {
		return fmt.Errorf("bad URL %q: %w", u, err)
	}
	switch p.Scheme {
	case "http", "https", "unix", "unixs":
	default:
		return fmt.Errorf("URL %q: scheme must be http or https", u)
	}
	if p.Host == "" {
		return fmt.Errorf("URL %q has no host", u)
	}
	return nil
}
