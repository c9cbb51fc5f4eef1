package shrink

// Minimize is delta debugging's ddmin (Zeller and Hildebrandt, 2002): it
// returns a 1-minimal sublist of items (order kept) on which fails holds,
// assuming it holds on items. fails judges a batch of candidates at once (so
// that a caller may run them in parallel) and returns one answer each; the
// candidates of one round are judged in batches of batch, and the first
// failing candidate in the round's order is taken, so the result does not
// depend on how the batch was scheduled. The empty list is tried first.
//
// If fails returns an error (a bound reached, an interrupt), Minimize returns
// the smallest failing list found so far with that error.
func Minimize[T any](items []T, batch int, fails func(cands [][]T) ([]bool, error)) ([]T, error) {
	if len(items) == 0 {
		return items, nil
	}
	if i, err := First([][]T{{}}, batch, fails); err != nil || i == 0 {
		if i == 0 {
			return []T{}, err
		}
		return items, err
	}
	n := 2
	for len(items) >= 2 {
		n = min(n, len(items))
		chunks := split(items, n)
		cands := append([][]T(nil), chunks...)
		if n > 2 {
			for i := range chunks {
				cands = append(cands, complement(chunks, i))
			}
		}
		i, err := First(cands, batch, fails)
		if err != nil {
			return items, err
		}
		switch {
		case i >= 0 && i < n:
			items, n = cands[i], 2
		case i >= n:
			items, n = cands[i], max(n-1, 2)
		case n >= len(items):
			return items, nil
		default:
			n = min(2*n, len(items))
		}
	}
	return items, nil
}

// First judges cands in order, batch at a time, and returns the index of the
// first failing one (-1 if none does): the batch that holds a failing
// candidate is the last judged.
func First[T any](cands []T, batch int, fails func([]T) ([]bool, error)) (int, error) {
	batch = max(batch, 1)
	for lo := 0; lo < len(cands); lo += batch {
		hi := min(lo+batch, len(cands))
		got, err := fails(cands[lo:hi])
		for i, f := range got {
			if f {
				return lo + i, nil
			}
		}
		if err != nil {
			return -1, err
		}
	}
	return -1, nil
}

// split cuts items into n nearly equal consecutive chunks (1 <= n <= len).
func split[T any](items []T, n int) [][]T {
	out := make([][]T, 0, n)
	start := 0
	for i := range n {
		end := start + (len(items)-start)/(n-i)
		out = append(out, items[start:end:end])
		start = end
	}
	return out
}

// complement is every chunk but chunks[skip], concatenated.
func complement[T any](chunks [][]T, skip int) []T {
	var out []T
	for i, c := range chunks {
		if i != skip {
			out = append(out, c...)
		}
	}
	return out
}
