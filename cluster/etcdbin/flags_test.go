package etcdbin

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestFlagNamesFollowTheRelease(t *testing.T) {
	v35, v36, v37 := Version{3, 5, 21, ""}, Version{3, 6, 5, ""}, Version{3, 7, 3, ""}
	assert.Equal(t, "experimental-snapshot-catchup-entries", FlagName(v35, "snapshot-catchup-entries"))
	assert.Equal(t, "experimental-watch-progress-notify-interval", FlagName(v35, "experimental-watch-progress-notify-interval"))
	assert.Equal(t, "snapshot-catchup-entries", FlagName(v36, "experimental-snapshot-catchup-entries"))
	assert.Equal(t, "compaction-batch-limit", FlagName(v37, "compaction-batch-limit"))
	assert.Equal(t, "snapshot-count", FlagName(v35, "snapshot-count"), "a flag that never was experimental")
	assert.Equal(t, "experimental-distributed-tracing-address", FlagName(v37, "experimental-distributed-tracing-address"),
		"an experimental flag that did not graduate keeps its name")

	args := []string{"--snapshot-count", "100", "--snapshot-catchup-entries=50", "-experimental-compaction-batch-limit", "7", "value-like", "---odd"}
	assert.Equal(t, []string{"--snapshot-count", "100", "--experimental-snapshot-catchup-entries=50", "-experimental-compaction-batch-limit", "7", "value-like", "---odd"},
		MemberArgs(v35, args))
	assert.Equal(t, []string{"--snapshot-count", "100", "--snapshot-catchup-entries=50", "-compaction-batch-limit", "7", "value-like", "---odd"},
		MemberArgs(v37, args))
}
