package membership

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseInitialClusterComputesEtcdIDs(t *testing.T) {
	ms, err := ParseInitialCluster("b=http://127.0.0.1:2382,a=http://127.0.0.1:2380", "tok")
	require.NoError(t, err)
	require.Len(t, ms, 2)
	require.Less(t, ms[0].ID, ms[1].ID)
	for _, m := range ms {
		require.Equal(t, ComputeID(m.PeerURLs, "tok"), m.ID)
		require.NotEqual(t, ComputeID(m.PeerURLs, "other"), m.ID, "the token must change the ID")
	}
}

func TestParseInitialClusterRejectsBadInput(t *testing.T) {
	for _, s := range []string{"", "a", "a=", "=http://x:1", "a=ftp://x:1", "a=http://x:1,b=http://x:1"} {
		_, err := ParseInitialCluster(s, "t")
		require.ErrorIs(t, err, ErrBadInitialCluster, s)
	}
}

func TestMemberJSONMatchesEtcd(t *testing.T) {
	m := Member{ID: 10, PeerURLs: []string{"http://a:2380"}}
	b, err := json.Marshal(m)
	require.NoError(t, err)
	require.JSONEq(t, `{"id":10,"peerURLs":["http://a:2380"]}`, string(b))
	m2 := Member{ID: 11, Name: "n", PeerURLs: []string{"http://a:2380"}, ClientURLs: []string{"http://a:2379"}, IsLearner: true}
	b, err = json.Marshal(m2)
	require.NoError(t, err)
	require.Equal(t, `{"id":11,"peerURLs":["http://a:2380"],"isLearner":true,"name":"n","clientURLs":["http://a:2379"]}`, string(b))
	var back Member
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, m2, back)
	require.Equal(t, "b", string(Member{ID: 11}.Key()))
}

func TestClusterIDIndependentOfOrder(t *testing.T) {
	require.Equal(t, ClusterID([]uint64{3, 1, 2}), ClusterID([]uint64{1, 2, 3}))
	require.NotEqual(t, ClusterID([]uint64{1, 2}), ClusterID([]uint64{1, 2, 3}))
}
