#!/usr/bin/env bash
# The project's test command (what CI runs). Phases, each under its own timeout
# (scripts/phase.sh), in this order:
#
#   gofmt       gofmt -l on every tracked Go file
#   mod-tidy    go mod tidy -diff: go.mod and go.sum are tidy
#   vet         go vet ./...
#   staticcheck staticcheck ./... (checks and exceptions: staticcheck.conf)
#   go-test     the whole suite through gotestsum: one line per package, then every
#               skipped test with its skip message, every failure with its output,
#               and "tests: N passed, N failed, N skipped". Docker tests run when an
#               engine is reachable (CI starts one). Results in bin/test-results/
#               (test.json: go test -json; junit.xml).
#   bench       every benchmark once (a benchmark that fails is a bug too)
#   sweep       the fixed default configuration in the simulator (--swarm=false)
#               over a fixed seed list: a swarm sweep of seeds 1-100 still leaves
#               seeds 4 and 72 inconclusive (the checker's budget: a key under
#               puts and txns with no reads, a lease partition)
#   mutants     harness mutants, bounded: the quickly caught mutants of the zoo
#               (internal/mutant) over seeds 1-30 of the fixed default
#               configuration (--swarm=false) must each fail a seed that
#               reproduces (the full zoo, swarm: scripts/mutants.sh)
#
# The last lines are every phase's time and the test counts again.
#
#   HAVOC_SWEEP_SEEDS  seeds to sweep (default 1-100, the CI list, sized to keep
#                      .ci/run within 25 minutes on a busy 2-core machine: README,
#                      "CI"; "" skips the sweep). Larger sweeps: scripts/nightly.sh.
#   HAVOC_SWEEP_LIMIT  the sweep phase's timeout (default 15m)
#   HAVOC_SHORT=1      go test -short (skips the slow suites: etcd builds, Docker)
#   HAVOC_MUTANTS      the mutants phase's list (default: ci_mutants below; ""
#                      skips the phase)
#   HAVOC_TEST_PKGS    packages for vet, staticcheck, go-test and bench (default
#                      ./...; CI always runs all), e.g. "./sim/... ./chaos"
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/phase.sh
. scripts/phase.sh

gotestsum=gotest.tools/gotestsum@v1.13.0
staticcheck=honnef.co/go/tools/cmd/staticcheck@v0.7.0
results=bin/test-results
short=()
[ "${HAVOC_SHORT:-}" = 1 ] && short=(-short)
read -ra pkgs <<<"${HAVOC_TEST_PKGS:-./...}"

# Phase bodies that are more than one command; run as `scripts/test.sh --phase NAME`.
phase_gofmt() {
	local unformatted
	unformatted=$(gofmt -l $(git ls-files '*.go'))
	if [ -n "$unformatted" ]; then
		echo "gofmt needed: $unformatted" >&2
		exit 1
	fi
}

phase_go_test() {
	rm -rf "$results"
	mkdir -p "$results"
	# go test's own -timeout is a minute under the phase's, so that a hung test is
	# reported by name, with every goroutine's stack, before the phase is killed.
	go run "$gotestsum" --format pkgname --format-hide-empty-pkg \
		--jsonfile "$results/test.json" --junitfile "$results/junit.xml" \
		--post-run-command "scripts/test.sh --counts" \
		-- "${short[@]}" -count=1 -timeout 24m "${pkgs[@]}"
}

# counts runs as gotestsum's post-run command, which passes the totals in
# TESTS_* (a test with subtests counts once itself and once per subtest; a
# package that does not build counts as one failure).
counts() {
	local failed=$((TESTS_FAILED + TESTS_ERRORS))
	local line="tests: $((TESTS_TOTAL - TESTS_FAILED - TESTS_SKIPPED)) passed, $failed failed, $TESTS_SKIPPED skipped"
	echo "$line" | tee "$results/counts"
}

phase_bench() {
	local log=$results/bench.log
	mkdir -p "$results"
	if ! go test "${short[@]}" -count=1 -run '^$' -bench . -benchtime 1x -timeout 4m "${pkgs[@]}" >"$log" 2>&1; then
		cat "$log"
		exit 1
	fi
	grep -E '^Benchmark' "$log" || true
}

phase_sweep() {
	mkdir -p bin
	go build -o bin/harness ./cmd/harness
	./bin/harness sweep --swarm=false --seeds "$1" --parallel "$(nproc)" --quiet --out havoc-runs
}

# The mutants CI hunts: each caught by seed 1 of the fixed default run, the
# cheapest to catch of every kind of check (see README, "Mutants"), sized to
# keep the phase near a minute; the rest of the zoo: scripts/mutants.sh.
ci_mutants=stale-read-follower,apply-uncommitted,lease-expire-follower,snapshot-no-reload,dedupe-off,range-more-wrong,delete-no-tombstone,watch-drop-prev-kv,hash-skip-bucket,header-revision-stale,txn-compare-version

phase_mutants() {
	mkdir -p bin
	go build -tags havoc_mutants -o bin/harness-mutants ./cmd/harness
	./bin/harness-mutants mutants --binary bin/harness-mutants --mutants "$1" --seeds 1-30 --swarm=false \
		--parallel "$(nproc)" --out havoc-runs/mutants
}

case "${1:-}" in
--phase)
	"phase_${2//-/_}" "${@:3}"
	exit
	;;
--counts)
	counts
	exit
	;;
esac

phase gofmt 2m scripts/test.sh --phase gofmt
phase mod-tidy 2m go mod tidy -diff
phase vet 5m go vet "${pkgs[@]}"
phase staticcheck 8m go run "$staticcheck" "${pkgs[@]}"
phase go-test 25m scripts/test.sh --phase go-test
phase bench 5m scripts/test.sh --phase bench
seeds=${HAVOC_SWEEP_SEEDS-1-100}
if [ -n "$seeds" ]; then
	phase sweep "${HAVOC_SWEEP_LIMIT:-15m}" scripts/test.sh --phase sweep "$seeds"
fi
# Mutants: a bounded hunt for bugs the checks must find (the last phase).
mutants=${HAVOC_MUTANTS-$ci_mutants}
if [ -n "$mutants" ]; then
	phase mutants 5m scripts/test.sh --phase mutants "$mutants"
fi
phase_table
echo "== all green"
cat "$results/counts"
