#!/usr/bin/env bash
# The large seed sweep that CI's budget leaves out: the default scenario in the
# simulator over 800 seeds (about 45 minutes on a 2-core machine beside another
# CPU-heavy process; CI sweeps seeds 1-100).
# Failing seeds leave a directory each under havoc-runs/ with the line that
# reproduces them (see README, "Running the simulator").
#
#   scripts/nightly.sh              seeds 1-800
#   scripts/nightly.sh 801-5000     any --seeds list
#   HAVOC_SWEEP_LIMIT=3h            the phase's timeout (default 2h)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/phase.sh
. scripts/phase.sh

seeds=${1:-1-800}
phase sweep "${HAVOC_SWEEP_LIMIT:-2h}" scripts/test.sh --phase sweep "$seeds"
phase_table
