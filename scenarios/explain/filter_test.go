package explain

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/havoclab/havoc/linearizability"
)

func TestFilterTrace(t *testing.T) {
	ms := func(n int64) int64 { return n * int64(time.Millisecond) }
	// c02's get of the key was outstanding from 2.000s to 2.100s.
	hist := []linearizability.Operation{
		{ID: 1, Client: 2, Kind: linearizability.KindGet, Key: "k/054", Call: ms(2000), Return: ms(2100), Outcome: linearizability.OutcomeOK},
		{ID: 2, Client: 3, Kind: linearizability.KindGet, Key: "k/001", Call: ms(2000), Return: ms(2100), Outcome: linearizability.OutcomeOK},
	}
	trace := sampleTrace + "00003.100000 c09 note k/054 in a line\n... trace truncated at 10 bytes: 1 more lines (9 bytes) not recorded\n"
	cases := []struct {
		name   string
		filter Filter
		want   []string // the kept lines, by their first 12 bytes + actor
	}{
		{"no filter keeps everything", Filter{}, nil},
		{"member: its lines and the lines naming it", Filter{Member: "m3"}, []string{
			"00001.900000 m3 crash torn", "00002.000000 c03 send -> m3 *cluster.ClientRequest", "00002.050000 m3 restart"}},
		{"member m1 is not m10 nor from:m1", Filter{Member: "m1"}, []string{
			"00000.000000 m1 start", "00001.000000 m1 leader is m1", "00001.000100 m2 leader is m1",
			"00001.000200 c01 send -> m1 *cluster.ClientRequest", "00001.050000 m1 recv <- c01 *cluster.ClientRequest",
			"00003.000000 m1 send -> m2 type:MsgApp to:m2 from:m1 term:2"}},
		{"time window, both ends inclusive", Filter{From: 2 * time.Second, To: 2050 * time.Millisecond}, []string{
			"00002.000000 c02 send -> m2 *cluster.ClientRequest", "00002.000000 c03 send -> m3 *cluster.ClientRequest",
			"00002.050000 m3 restart"}},
		{"key: the requests' lines from the history, and lines naming it", Filter{Key: "k/054"}, []string{
			"00002.000000 c02 send -> m2 *cluster.ClientRequest", "00002.060000 m2 recv <- c02 *cluster.ClientRequest",
			"00003.100000 c09 note k/054 in a line"}},
		{"grep", Filter{Grep: regexp.MustCompile(`pause|resume`)}, []string{
			"00001.500000 chaos start pause m2", "00001.500000 m2 pause", "00002.500000 m2 resume (3 parked)",
			"00002.500000 chaos end pause m2"}},
		{"all at once", Filter{Member: "m2", Key: "k/054", From: 2 * time.Second, To: 3 * time.Second, Grep: regexp.MustCompile("recv")},
			[]string{"00002.060000 m2 recv <- c02 *cluster.ClientRequest"}},
		{"a line that is not an event is kept by text filters only", Filter{Grep: regexp.MustCompile("truncated")},
			[]string{"... trace truncated at 10 bytes: 1 more lines (9 bytes) not recorded"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, compressed := range []bool{false, true} {
				f := tc.filter
				f.UseHistory(hist)
				in := []byte(trace)
				if compressed {
					in = gz(t, in)
				}
				var out bytes.Buffer
				n, err := FilterTrace(bytes.NewReader(in), &out, &f)
				require.NoError(t, err)
				want := tc.want
				if want == nil {
					want = strings.Split(strings.TrimSuffix(trace, "\n"), "\n")
				}
				got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
				if out.Len() == 0 {
					got = nil
				}
				assert.Equal(t, want, got)
				assert.Equal(t, len(want), n)
			}
		})
	}
}

func TestFilterStopsPastTheWindow(t *testing.T) {
	f := Filter{To: time.Second}
	keep, past := f.Match([]byte("00001.000001 m1 start"))
	assert.False(t, keep)
	assert.True(t, past)
}
