#!/usr/bin/env bash
# The whole mutant zoo (internal/mutant) against the default simulated run:
# each mutant is hunted over seeds 1-200 until its first failing seed, which
# must reproduce (see README, "Mutants"). Hours on a busy 2-core machine when
# mutants are missed; CI runs a bounded list (scripts/test.sh, phase mutants).
#
#   scripts/mutants.sh                   every mutant, seeds 1-200, 2 workers
#   scripts/mutants.sh --mutants a,b --seeds 1-50 --parallel 4   (any flags of harness mutants)
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bin
go build -tags havoc_mutants -o bin/harness-mutants ./cmd/harness
exec ./bin/harness-mutants mutants --binary bin/harness-mutants --seeds 1-200 --parallel 2 --out havoc-runs/mutants "$@"
