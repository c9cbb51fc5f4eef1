package store

import (
	"testing"

	"github.com/stretchr/testify/require"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// TestRequestIDsUniqueAfterClockSkewAndRestart restarts a follower with its clock
// moved back to where it was when the member first started (the clock-skew fault
// can do that). Request IDs seeded from the clock then repeat IDs still in the
// leader's log, and the leader's duplicate filter drops the fresh write.
func TestRequestIDsUniqueAfterClockSkewAndRestart(t *testing.T) {
	l := newLoop(t, 3, 31, 0)
	start := l.clock.now
	lead := l.waitLeader()
	l.tick(3) // every member publishes its attributes
	f := l.followers(lead)[0]
	l.put(f, "a", "1")
	l.crash(f)
	l.clock.now = start
	l.restart(f)
	l.tick(3)
	r := l.do(f, Request{Put: &pb.PutRequest{Key: []byte("b"), Value: []byte("2")}})
	require.NoError(t, r.Err, "a fresh write after skew and restart must apply")
	got := l.get(lead, "b", false)
	require.Len(t, got.Kvs, 1)
	require.Equal(t, "2", string(got.Kvs[0].Value))
}

// TestRequestIDEpochPersists checks the generator itself: every Open reserves a
// new epoch, so IDs of two incarnations never meet, whatever the clock says.
func TestRequestIDEpochPersists(t *testing.T) {
	l := newLoop(t, 1, 37, 0)
	l.waitLeader()
	id := l.ids()[0]
	start := l.clock.now
	seen := map[uint64]bool{}
	for range 3 {
		for range 100 {
			x, err := l.nodes[id].ids.next()
			require.NoError(t, err)
			require.False(t, seen[x], "request ID %x repeated", x)
			seen[x] = true
		}
		l.crash(id)
		l.clock.now = start
		l.restart(id)
	}
}

// TestRequestIDEpochRollsOver checks that a used-up counter reserves the next
// epoch durably before issuing another ID, and that a damaged file refuses Open.
func TestRequestIDEpochRollsOver(t *testing.T) {
	disk := newMemDisk()
	require.NoError(t, disk.MkdirAll("wal"))
	g, err := openReqIDGen(disk, "wal", 0xabcd)
	require.NoError(t, err)
	require.EqualValues(t, 1, g.epoch)
	g.count = 1<<reqIDCounterBits - 2
	a, err := g.next()
	require.NoError(t, err)
	b, err := g.next()
	require.NoError(t, err)
	require.Equal(t, uint64(0xabcd)<<48|1<<24|(1<<24-1), a)
	require.Equal(t, uint64(0xabcd)<<48|2<<24|1, b)
	disk.Crash()
	g2, err := openReqIDGen(disk, "wal", 0xabcd)
	require.NoError(t, err)
	require.EqualValues(t, 3, g2.epoch, "the rolled-over epoch survives a crash")

	f, err := disk.Create("wal/" + reqIDFile)
	require.NoError(t, err)
	_, err = f.Write([]byte("garbage"))
	require.NoError(t, err)
	require.NoError(t, f.Close())
	_, err = openReqIDGen(disk, "wal", 0xabcd)
	require.ErrorContains(t, err, "corrupt")
}

// TestRequestIDsOfLookalikeMembers: two members whose IDs share the low 16 bits
// an ID carries start their epochs apart, so their first IDs differ.
func TestRequestIDsOfLookalikeMembers(t *testing.T) {
	a, b := uint64(0x1111_2222_3333_abcd), uint64(0x9999_8888_7777_abcd)
	var first []uint64
	for _, m := range []uint64{a, b} {
		disk := newMemDisk()
		require.NoError(t, disk.MkdirAll("wal"))
		g, err := openReqIDGen(disk, "wal", m)
		require.NoError(t, err)
		id, err := g.next()
		require.NoError(t, err)
		first = append(first, id)
	}
	require.NotEqual(t, first[0], first[1])
	require.EqualValues(t, 0xabcd, first[0]>>48)
}
