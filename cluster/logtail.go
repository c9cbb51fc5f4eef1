package cluster

import (
	"fmt"
	"io"
	"os"
	"strings"
)

// logExcerpt quotes what a member's log says about its end: the first line of
// a Go panic or fatal error in the log's last 64 KiB if there is one (the
// stack below it is in the log), else its last three non-empty lines. Only
// the member's last life counts (the process backend starts each with a
// "=== havoc: " line). Each
// quoted line is cut to 200 bytes. It returns "" when the log is unreadable or
// empty.
func logExcerpt(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	const window = 64 << 10
	if st, err := f.Stat(); err == nil && st.Size() > window {
		if _, err := f.Seek(st.Size()-window, io.SeekStart); err != nil {
			return ""
		}
	}
	b, err := io.ReadAll(io.LimitReader(f, window))
	if err != nil {
		return ""
	}
	var lines []string
	for l := range strings.SplitSeq(string(b), "\n") {
		switch l = strings.TrimSpace(l); {
		case strings.HasPrefix(l, "=== havoc: "):
			lines = lines[:0] // a new life of the member: only the last one counts
		case l != "":
			lines = append(lines, l)
		}
	}
	quote := func(ls []string) string {
		q := make([]string, len(ls))
		for i, l := range ls {
			if len(l) > 200 {
				l = l[:200] + "..."
			}
			q[i] = fmt.Sprintf("%q", l)
		}
		return strings.Join(q, " | ")
	}
	for _, l := range lines {
		if strings.Contains(l, "panic: ") || strings.Contains(l, "fatal error: ") {
			return "log: " + quote([]string{l})
		}
	}
	if len(lines) == 0 {
		return ""
	}
	return "last log lines: " + quote(lines[max(0, len(lines)-3):])
}
