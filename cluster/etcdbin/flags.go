package etcdbin

import "strings"

// graduated are the member flags etcd v3.5 names with an "experimental-"
// prefix and v3.6 gives plain names (v3.6 accepts both, deprecating the old
// one; v3.7 knows only the plain name). Read from each release's
// etcdmain/config.go and checked by running each release (release_test.go).
// Not here: experimental-enable-lease-checkpoint and
// experimental-stop-grpc-service-on-defrag, which v3.6 turned into feature gates
// (--feature-gates=LeaseCheckpoint=true,StopGRPCServiceOnDefrag=true) rather than flags.
var graduated = map[string]bool{
	"compaction-batch-limit":         true,
	"compaction-sleep-interval":      true,
	"corrupt-check-time":             true,
	"snapshot-catchup-entries":       true,
	"warning-apply-duration":         true,
	"watch-progress-notify-interval": true,
}

// FlagName is the name release v gives the member flag name (written with or
// without "experimental-"): the experimental name before v3.6 for a flag that
// graduated in v3.6, the plain name from v3.6 on; other flags are unchanged.
func FlagName(v Version, name string) string {
	base := strings.TrimPrefix(name, "experimental-")
	if !graduated[base] {
		return name
	}
	if v.AtLeast(3, 6) {
		return base
	}
	return "experimental-" + base
}

// MemberArgs rewrites the flag names of a member command line (--name,
// --name=value, -name) for release v with FlagName; values are unchanged.
func MemberArgs(v Version, args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = a
		dashes := len(a) - len(strings.TrimLeft(a, "-"))
		if dashes == 0 || dashes > 2 {
			continue
		}
		name, value, hasValue := strings.Cut(a[dashes:], "=")
		out[i] = a[:dashes] + FlagName(v, name)
		if hasValue {
			out[i] += "=" + value
		}
	}
	return out
}
