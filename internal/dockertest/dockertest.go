// Package dockertest decides, in one place, whether a test that needs a Docker
// engine runs, skips or fails.
package dockertest

import (
	"context"
	"os"
	"testing"
	"time"
)

// Forced reports whether HAVOC_REQUIRE_DOCKER=1 (CI sets it after
// scripts/start-docker.sh): Docker tests then never skip.
func Forced() bool { return os.Getenv("HAVOC_REQUIRE_DOCKER") == "1" }

// Require skips t when no engine answers available, unless Forced, where a missing
// engine fails the test. Slow tests also skip under -short unless Forced.
func Require(t testing.TB, slow bool, available func(context.Context) error) {
	t.Helper()
	forced := Forced()
	if slow && testing.Short() && !forced {
		t.Skip("docker: slow test skipped under -short (set HAVOC_REQUIRE_DOCKER=1 to run)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := available(ctx); err != nil {
		if forced {
			t.Fatalf("HAVOC_REQUIRE_DOCKER=1 but %v", err)
		}
		t.Skipf("docker tests skipped: %v", err)
	}
}
