package lease

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type fakeBackend struct{ puts, dels []int64 }

func (f *fakeBackend) PutLease(id, ttl int64) { f.puts = append(f.puts, id) }
func (f *fakeBackend) DeleteLease(id int64)   { f.dels = append(f.dels, id) }

var t0 = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

func TestGrantRevokeAttach(t *testing.T) {
	b := &fakeBackend{}
	le := New(2, b)
	l, err := le.Grant(7, 1, t0)
	require.NoError(t, err)
	require.EqualValues(t, 2, l.TTL, "a TTL below the minimum is raised")
	_, err = le.Grant(7, 10, t0)
	require.ErrorIs(t, err, ErrExists)
	_, err = le.Grant(8, MaxTTL+1, t0)
	require.ErrorIs(t, err, ErrTTLTooLarge)
	le.Attach(7, []byte("b"))
	le.Attach(7, []byte("a"))
	le.Attach(99, []byte("ignored"))
	le.Detach(7, []byte("b"))
	le.Attach(7, []byte("c"))
	keys, err := le.Revoke(7)
	require.NoError(t, err)
	require.Equal(t, [][]byte{[]byte("a"), []byte("c")}, keys, "keys come back sorted")
	_, err = le.Revoke(7)
	require.ErrorIs(t, err, ErrNotFound)
	require.Equal(t, []int64{7}, b.puts)
	require.Equal(t, []int64{7}, b.dels)
}

func TestOnlyThePrimaryExpiresAndRenews(t *testing.T) {
	le := New(1, nil)
	_, err := le.Grant(1, 5, t0)
	require.NoError(t, err)
	_, err = le.Grant(2, 10, t0)
	require.NoError(t, err)
	require.Empty(t, le.Expired(t0.Add(time.Hour), 10), "a follower never expires leases")
	_, err = le.Renew(1, t0)
	require.ErrorIs(t, err, ErrNotPrimary)

	le.Promote(t0, time.Second)
	require.Empty(t, le.Expired(t0.Add(5*time.Second), 10), "promotion extends by the election timeout")
	require.Equal(t, []int64{1}, le.Expired(t0.Add(6*time.Second), 10))
	ttl, err := le.Renew(1, t0.Add(5500*time.Millisecond))
	require.NoError(t, err)
	require.EqualValues(t, 5, ttl)
	require.Empty(t, le.Expired(t0.Add(10*time.Second), 10))
	rem, err := le.Remaining(1, t0.Add(9*time.Second))
	require.NoError(t, err)
	require.EqualValues(t, 2, rem)
	require.Equal(t, []int64{1}, le.Expired(t0.Add(10500*time.Millisecond), 10))
	_, err = le.Renew(1, t0.Add(11*time.Second))
	require.ErrorIs(t, err, ErrNotFound, "an expired lease cannot be renewed: its revoke may be in flight")
	require.Equal(t, []int64{1, 2}, le.Expired(t0.Add(time.Minute), 10))
	require.Equal(t, []int64{1}, le.Expired(t0.Add(time.Minute), 1), "limit applies in ID order")

	le.Demote()
	require.Empty(t, le.Expired(t0.Add(time.Hour), 10))
	rem, err = le.Remaining(2, t0.Add(time.Hour))
	require.NoError(t, err)
	require.EqualValues(t, 10, rem, "a follower reports the granted TTL")
}

func TestRecoverAndLeases(t *testing.T) {
	le := New(3, nil)
	le.Recover(5, 1)
	le.Recover(4, 10)
	ls := le.Leases()
	require.Len(t, ls, 2)
	require.EqualValues(t, 4, ls[0].ID)
	require.EqualValues(t, 3, ls[1].TTL, "recovered TTLs are raised to the minimum")
	le.Reset()
	require.Empty(t, le.Leases())
}
