#!/usr/bin/env bash
# The project's test command (what CI runs): formatting, vet, staticcheck, the
# full test suite (Docker tests run when an engine is reachable; CI starts one),
# every benchmark once, then a seed sweep of the default scenario in the simulator.
#
#   HAVOC_SWEEP_SEEDS  seeds to sweep (default 1-800; "" skips the sweep)
#   HAVOC_SHORT=1      go test -short (skips the slow suites: etcd builds, Docker)
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$unformatted" ]; then echo "gofmt needed: $unformatted" >&2; exit 1; fi

echo "== go vet"
go vet ./...

echo "== staticcheck"
go run honnef.co/go/tools/cmd/staticcheck@v0.7.0 ./...

echo "== go test"
short=()
[ "${HAVOC_SHORT:-}" = 1 ] && short=(-short)
go test "${short[@]}" -count=1 -timeout 45m ./...

echo "== benchmarks (one iteration each: a benchmark that fails is a bug too)"
bench_log=$(mktemp)
if ! go test "${short[@]}" -count=1 -run '^$' -bench . -benchtime 1x -timeout 15m ./... >"$bench_log" 2>&1; then
  cat "$bench_log"; exit 1
fi
grep -E '^Benchmark' "$bench_log" || true

seeds=${HAVOC_SWEEP_SEEDS-1-800}
if [ -n "$seeds" ]; then
  echo "== seed sweep $seeds (simulator, default scenario)"
  mkdir -p bin
  go build -o bin/harness ./cmd/harness
  ./bin/harness sweep --seeds "$seeds" --parallel "$(nproc)" --quiet --out havoc-runs
fi
echo "== all green"
