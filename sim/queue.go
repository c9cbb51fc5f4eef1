package sim

// eventKind says what a queued event does when it falls due. Events are typed
// records rather than closures so that the hot paths (message delivery and
// timers) allocate nothing per event.
type eventKind uint8

const (
	evWorld   eventKind = iota + 1 // world-level function (fault injection, test hooks)
	evStart                        // first boot of a host added with AddHost
	evTimer                        // host timer; id is the TimerID
	evDeliver                      // a message reaches the far end of its link
	evLocal                        // a message already past the network (parked while paused)
)

// event is the body of a queued event. Which fields matter depends on kind.
type event struct {
	kind    eventKind
	host    *Host // timer owner, booting host, or message destination
	from    *Host // message source
	link    *link // message link
	payload any   // message payload; for evWorld the event name (string)
	fn      func()
	id      uint64 // TimerID, boot epoch, or the link's cut generation at send time
}

// qent is one heap entry. The heap holds only these small keys; bodies live
// in a slab so that sifting moves 24 bytes, not a whole event.
type qent struct {
	at   int64  // virtual nanoseconds since the epoch
	seq  uint64 // push order: makes ties deterministic (FIFO among equal times)
	slot uint32 // index into queue.slab
}

// queue is a binary min-heap ordered by (at, seq) over a slab of event bodies
// with a free list, so a steady-state run does no allocation in the queue.
type queue struct {
	heap []qent
	slab []event
	free []uint32
	seq  uint64
}

func (a qent) before(b qent) bool {
	return a.at < b.at || (a.at == b.at && a.seq < b.seq)
}

// push queues ev to fall due at virtual time at.
func (q *queue) push(at int64, ev event) {
	var slot uint32
	if n := len(q.free); n > 0 {
		slot = q.free[n-1]
		q.free = q.free[:n-1]
		q.slab[slot] = ev
	} else {
		slot = uint32(len(q.slab))
		q.slab = append(q.slab, ev)
	}
	q.seq++
	q.heap = append(q.heap, qent{at: at, seq: q.seq, slot: slot})
	// Sift up.
	h := q.heap
	i := len(h) - 1
	e := h[i]
	for i > 0 {
		p := (i - 1) / 2
		if !e.before(h[p]) {
			break
		}
		h[i] = h[p]
		i = p
	}
	h[i] = e
}

// len returns the number of queued events.
func (q *queue) len() int { return len(q.heap) }

// next returns the due time of the earliest event; ok is false when empty.
func (q *queue) next() (at int64, ok bool) {
	if len(q.heap) == 0 {
		return 0, false
	}
	return q.heap[0].at, true
}

// pop removes the earliest event and returns its due time and body.
func (q *queue) pop() (int64, event) {
	h := q.heap
	top := h[0]
	last := len(h) - 1
	e := h[last]
	h = h[:last]
	q.heap = h
	if last > 0 {
		h[0] = e
		q.down(0)
	}
	ev := q.slab[top.slot]
	q.slab[top.slot] = event{} // drop references for the GC
	q.free = append(q.free, top.slot)
	return top.at, ev
}

// compact removes every queued event for which dead returns true and
// restores the heap. Removing entries never changes the (at, seq) order of
// the others, so compaction is invisible to the run: it only bounds memory
// and heap depth when many timers are cancelled long before they fall due.
func (q *queue) compact(dead func(*event) bool) {
	h := q.heap[:0]
	for _, e := range q.heap {
		if dead(&q.slab[e.slot]) {
			q.slab[e.slot] = event{}
			q.free = append(q.free, e.slot)
			continue
		}
		h = append(h, e)
	}
	q.heap = h
	for i := len(h)/2 - 1; i >= 0; i-- {
		q.down(i)
	}
}

// down sifts the entry at i down to its place.
func (q *queue) down(i int) {
	h := q.heap
	n := len(h)
	e := h[i]
	for {
		c := 2*i + 1
		if c >= n {
			break
		}
		if r := c + 1; r < n && h[r].before(h[c]) {
			c = r
		}
		if !h[c].before(e) {
			break
		}
		h[i] = h[c]
		i = c
	}
	h[i] = e
}
