#!/usr/bin/env bash
# Valgrind memcheck over every unit test (the cmocka tests, ctest label "unit"): a build
# without sanitizers, each test binary under memcheck; any error (invalid read or write,
# use of uninitialised memory, a definite leak) fails.
#   scripts/valgrind.sh [BUILD_DIR] [TEST_REGEX]
# Threads: 2 OpenMP threads, passive waiting (memcheck runs one thread at a time, so
# spinning threads would only burn its time). Installs valgrind when missing.
# VALGRIND_EXTRA adds options, e.g. VALGRIND_EXTRA=--track-origins=yes to trace an error.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --fuzz
b=${1:-build-valgrind}
regex=${2:-.}
cmake -S . -B "$b" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGOPT_BUILD_BENCH=OFF -DGOPT_BUILD_EXAMPLES=OFF > /dev/null
cmake --build "$b" -j"$(nproc)" > "$b/build.log" 2>&1 || { tail -40 "$b/build.log"; exit 1; }
mapfile -t tests < <(ctest --test-dir "$b" -L unit -N -R "$regex" | sed -n 's/^ *Test *#[0-9]*: *//p')
[ ${#tests[@]} -gt 0 ] || { echo "valgrind: no unit test matches '$regex'" >&2; exit 2; }
mkdir -p "$b/valgrind"
export OMP_NUM_THREADS=2 OMP_WAIT_POLICY=passive
fail=0
for t in "${tests[@]}"; do
  log="$b/valgrind/$t.log"
  start=$(date +%s)
  if valgrind --tool=memcheck --error-exitcode=99 --leak-check=full --show-leak-kinds=definite \
       --errors-for-leak-kinds=definite --num-callers=30 ${VALGRIND_EXTRA:-} \
       --log-file="$log" "$b/tests/$t" > "$b/valgrind/$t.out" 2>&1; then
    result=ok
  else
    result=FAILED
    fail=1
  fi
  errors=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' "$log" | tail -1)
  printf '%-22s %-6s %4ss  memcheck errors: %s\n' "$t" "$result" "$(( $(date +%s) - start ))" "${errors:-?}"
  [ "$result" = ok ] || { tail -40 "$log"; tail -20 "$b/valgrind/$t.out"; }
done
[ $fail -eq 0 ] && echo "valgrind: ${#tests[@]} unit tests, zero memcheck errors" || echo "valgrind: errors above (logs in $b/valgrind/)"
exit $fail
