package explain

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"regexp"
	"sort"
	"time"

	"github.com/havoclab/havoc/linearizability"
)

// Filter selects lines of a trace ("00005.727000 m3 restart"). Every set
// field must match; the zero Filter keeps every line.
type Filter struct {
	// Member keeps the lines of that member and the lines that name it (a
	// message to or from it, a fault on it, a leader report of it).
	Member string
	// Key keeps the lines that contain it, and, once UseHistory has read a
	// history, the lines of the clients' requests on it: the client's own
	// lines and the members' lines to and from that client while the
	// operation was outstanding (the trace names a request by type only).
	// The trace's times are in microseconds: a line in the microsecond in
	// which a client's operation on Key ended and its next began is kept.
	Key string
	// From and To bound the virtual time (To zero: no upper bound). A trace
	// is in time order, so FilterTrace stops reading past To.
	From, To time.Duration
	// Grep keeps the lines it matches.
	Grep *regexp.Regexp

	key     []byte
	member  []byte
	windows map[string][]span // client actor name -> its operations on Key, by call time
}

type span struct{ from, to time.Duration }

// UseHistory lets Key also select the trace lines of the operations on Key
// in ops (see Filter.Key).
func (f *Filter) UseHistory(ops []linearizability.Operation) {
	if f.Key == "" {
		return
	}
	f.windows = map[string][]span{}
	for i := range ops {
		op := &ops[i]
		if op.Key != f.Key && (op.Prefix == "" || !bytes.HasPrefix([]byte(f.Key), []byte(op.Prefix))) {
			continue
		}
		name := fmt.Sprintf("c%02d", op.Client)
		f.windows[name] = append(f.windows[name], span{time.Duration(op.Call), time.Duration(op.Return)})
	}
	for _, s := range f.windows {
		sort.Slice(s, func(i, j int) bool { return s[i].from < s[j].from })
	}
}

// Match reports whether f keeps line, and whether the trace is past f's
// time window (nothing after line can match).
func (f *Filter) Match(line []byte) (keep, past bool) {
	at, actor, _, rest, ok := splitLine(line)
	if !ok {
		// Not a trace event (the note that ends a truncated trace): kept
		// unless a time bound or member asks for events.
		if f.From > 0 || f.To > 0 || f.Member != "" {
			return false, false
		}
		return f.textMatch(line), false
	}
	if at < f.From {
		return false, false
	}
	if f.To > 0 && at > f.To {
		return false, true
	}
	if f.Member != "" {
		if f.member == nil {
			f.member = []byte(f.Member)
		}
		if !bytes.Equal(actor, f.member) && !hasToken(rest, f.member) {
			return false, false
		}
	}
	if f.Key != "" {
		if f.key == nil {
			f.key = []byte(f.Key)
		}
		if !bytes.Contains(line, f.key) && !f.inWindow(at, actor, rest) {
			return false, false
		}
	}
	if f.Grep != nil && !f.Grep.Match(line) {
		return false, false
	}
	return true, false
}

func (f *Filter) textMatch(line []byte) bool {
	if f.Key != "" && !bytes.Contains(line, []byte(f.Key)) {
		return false
	}
	return f.Grep == nil || f.Grep.Match(line)
}

// inWindow reports whether a line at time at belongs to a client's
// operation on Key: the client's own line, or a member's message to or from
// it ("send -> c07", "recv <- c07").
func (f *Filter) inWindow(at time.Duration, actor, rest []byte) bool {
	if len(f.windows) == 0 {
		return false
	}
	client := actor
	if len(actor) == 0 || actor[0] != 'c' {
		if len(rest) < 4 || rest[1] != '-' && rest[1] != '<' {
			return false
		}
		client, _, _ = bytes.Cut(rest[3:], []byte{' '})
	}
	spans := f.windows[string(client)]
	i := sort.Search(len(spans), func(i int) bool { return spans[i].from > at })
	// The operations of one client do not overlap: the one that may contain
	// at is the last that started at or before it.
	return i > 0 && at <= spans[i-1].to
}

// hasToken reports whether tok is one of the space-separated words of s.
func hasToken(s, tok []byte) bool {
	for off := 0; off < len(s); {
		i := bytes.Index(s[off:], tok)
		if i < 0 {
			return false
		}
		start, end := off+i, off+i+len(tok)
		if (start == 0 || s[start-1] == ' ') && (end == len(s) || s[end] == ' ') {
			return true
		}
		off = start + 1
	}
	return false
}

// FilterTrace copies the lines of the trace r (gzip-compressed or not) that
// f keeps to w, streaming, and returns how many it kept.
func FilterTrace(r io.Reader, w io.Writer, f *Filter) (int, error) {
	bw := bufio.NewWriterSize(w, 1<<16)
	n := 0
	var werr error
	err := scanTrace(r, func(line []byte) bool {
		keep, past := f.Match(line)
		if past {
			return false
		}
		if keep {
			n++
			if _, werr = bw.Write(line); werr == nil {
				werr = bw.WriteByte('\n')
			}
		}
		return werr == nil
	})
	if err == nil {
		err = werr
	}
	if ferr := bw.Flush(); err == nil {
		err = ferr
	}
	return n, err
}
