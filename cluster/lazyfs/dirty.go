package lazyfs

import (
	"math"
	"slices"
	"sort"
)

// extent is a run of unsynced bytes at off.
type extent struct {
	off  int64
	data []byte
}

func (e extent) end() int64 { return e.off + int64(len(e.data)) }

// dirty is one file's unsynced data: the bytes written since its last fsync,
// as extents sorted by offset, neither overlapping nor touching (a write next
// to an extent grows it). It is this file system's page cache; it holds no lock
// of its own (file does).
type dirty struct {
	extents []extent
}

// empty reports whether nothing is unsynced.
func (d *dirty) empty() bool { return len(d.extents) == 0 }

// bytes is the number of unsynced bytes.
func (d *dirty) bytes() int64 {
	var n int64
	for _, e := range d.extents {
		n += int64(len(e.data))
	}
	return n
}

// end is the end of the last unsynced byte (0 when none): the file is at
// least this long.
func (d *dirty) end() int64 {
	if len(d.extents) == 0 {
		return 0
	}
	return d.extents[len(d.extents)-1].end()
}

// write records data at off, replacing what the range held.
func (d *dirty) write(off int64, data []byte) {
	if len(data) == 0 {
		return
	}
	end := off + int64(len(data))
	ext := d.extents
	// Extents i..j-1 overlap or touch [off, end]; any gap between two of them
	// lies inside [off, end], so the merged extent [lo, hi) is fully covered.
	i := sort.Search(len(ext), func(k int) bool { return ext[k].end() >= off })
	j := sort.Search(len(ext), func(k int) bool { return ext[k].off > end })
	lo, hi := off, end
	if i < j {
		lo, hi = min(lo, ext[i].off), max(hi, ext[j-1].end())
	}
	var buf []byte
	k := i
	if i < j && ext[i].off == lo {
		// Grow the first extent in place (appends, the common case, are
		// amortized O(1)).
		buf = ext[i].data
		if int64(cap(buf)) >= hi-lo {
			buf = buf[:hi-lo]
		} else {
			nb := make([]byte, hi-lo, max(hi-lo, 2*int64(cap(buf))))
			copy(nb, buf)
			buf = nb
		}
		k = i + 1
	} else {
		buf = make([]byte, hi-lo)
	}
	for _, e := range ext[k:j] {
		copy(buf[e.off-lo:], e.data)
	}
	copy(buf[off-lo:], data)
	d.extents = slices.Replace(ext, i, j, extent{off: lo, data: buf})
}

// overlay copies the unsynced bytes inside [off, off+len(buf)) over buf.
func (d *dirty) overlay(buf []byte, off int64) {
	end := off + int64(len(buf))
	i := sort.Search(len(d.extents), func(k int) bool { return d.extents[k].end() > off })
	for _, e := range d.extents[i:] {
		if e.off >= end {
			break
		}
		lo, hi := max(e.off, off), min(e.end(), end)
		copy(buf[lo-off:hi-off], e.data[lo-e.off:hi-e.off])
	}
}

// drop forgets the unsynced bytes inside [lo, hi) (a truncate or a punched
// hole made them moot).
func (d *dirty) drop(lo, hi int64) {
	if lo >= hi {
		return
	}
	var out []extent
	for _, e := range d.extents {
		if e.end() <= lo || e.off >= hi {
			out = append(out, e)
			continue
		}
		if e.off < lo {
			// Capped: growing the head in place must not overwrite the tail.
			out = append(out, extent{off: e.off, data: e.data[: lo-e.off : lo-e.off]})
		}
		if e.end() > hi {
			out = append(out, extent{off: hi, data: e.data[hi-e.off:]})
		}
	}
	d.extents = out
}

// truncate forgets every unsynced byte at or past size.
func (d *dirty) truncate(size int64) { d.drop(size, math.MaxInt64) }

// take returns the extents and forgets them.
func (d *dirty) take() []extent {
	ext := d.extents
	d.extents = nil
	return ext
}
