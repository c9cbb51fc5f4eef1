package shrink

import (
	"errors"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// containsAll is a synthetic predicate: a list fails when it holds every one
// of want; it counts the candidates judged.
func containsAll(want []int, judged *int) func([][]int) ([]bool, error) {
	return func(cands [][]int) ([]bool, error) {
		out := make([]bool, len(cands))
		for i, c := range cands {
			*judged++
			out[i] = true
			for _, w := range want {
				if !slices.Contains(c, w) {
					out[i] = false
				}
			}
		}
		return out, nil
	}
}

func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

// TestMinimizeFindsMinimalCause: ddmin over 100 items whose failure needs
// three of them returns exactly those three, in order, whatever the batch.
func TestMinimizeFindsMinimalCause(t *testing.T) {
	for _, batch := range []int{1, 2, 4} {
		var judged int
		got, err := Minimize(seq(100), batch, containsAll([]int{7, 42, 93}, &judged))
		require.NoError(t, err)
		require.Equal(t, []int{7, 42, 93}, got, "batch %d", batch)
		require.Less(t, judged, 400, "batch %d: ddmin judges O(k log n) candidates here", batch)
	}
}

// TestMinimizeDeterministic: the same predicate gives the same result and the
// same candidates, run after run.
func TestMinimizeDeterministic(t *testing.T) {
	var seen [2][][]int
	for i := range seen {
		_, err := Minimize(seq(40), 3, func(cands [][]int) ([]bool, error) {
			out := make([]bool, len(cands))
			for j, c := range cands {
				seen[i] = append(seen[i], slices.Clone(c))
				// fails on any list with two items whose sum is 30
				for _, a := range c {
					if a < 15 && slices.Contains(c, 30-a) {
						out[j] = true
					}
				}
			}
			return out, nil
		})
		require.NoError(t, err)
	}
	require.Equal(t, seen[0], seen[1])
}

// TestMinimizeEmptyAndSingle: a failure that needs nothing shrinks to the
// empty list; one that needs one item to that item.
func TestMinimizeEmptyAndSingle(t *testing.T) {
	var n int
	got, err := Minimize(seq(10), 2, containsAll(nil, &n))
	require.NoError(t, err)
	require.Empty(t, got)
	got, err = Minimize(seq(10), 2, containsAll([]int{9}, &n))
	require.NoError(t, err)
	require.Equal(t, []int{9}, got)
}

// TestMinimizeStopsWithBest: an error from the predicate (a spent budget)
// stops ddmin with the smallest failing list found so far.
func TestMinimizeStopsWithBest(t *testing.T) {
	stop := errors.New("budget")
	calls := 0
	var judged int
	inner := containsAll([]int{3, 60}, &judged)
	got, err := Minimize(seq(64), 1, func(c [][]int) ([]bool, error) {
		calls++
		out, _ := inner(c)
		if calls > 12 {
			return nil, stop
		}
		return out, nil
	})
	require.ErrorIs(t, err, stop)
	require.Contains(t, got, 3)
	require.Contains(t, got, 60)
	require.Less(t, len(got), 64)
}

// TestSplit: chunks are nearly equal, consecutive and cover the list.
func TestSplit(t *testing.T) {
	require.Equal(t, [][]int{{0, 1}, {2, 3}, {4, 5, 6}}, split(seq(7), 3))
	require.Equal(t, []int{0, 1, 4, 5, 6}, complement(split(seq(7), 3), 1))
}
