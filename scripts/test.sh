#!/usr/bin/env bash
# The README's test command: install dependencies, build everything, run every test.
#   scripts/test.sh [BUILD_DIR] [extra cmake args...]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --mpi
build=${1:-build}
shift || true
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release "$@"
cmake --build "$build" -j"$(nproc)"
# Tests run side by side, each with its own OpenMP threads: spinning idle workers would take
# the cores the other tests need (a 4-minute test took 18 beside another), so they wait
# passively unless the caller chose a policy (gopt_set_threads in include/gradopt/common.h).
if [ -z "${OMP_WAIT_POLICY:-}" ] && [ -z "${GOMP_SPINCOUNT:-}" ]; then export OMP_WAIT_POLICY=passive; fi
ctest --test-dir "$build" --output-on-failure -j"$(nproc)"
