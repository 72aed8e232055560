#!/usr/bin/env bash
# Valgrind memcheck over every unit test (the cmocka tests, ctest label "unit"): a build
# without sanitizers, each test binary under memcheck; any error (invalid read or write,
# use of uninitialised memory, a definite leak) fails.
#   scripts/valgrind.sh [BUILD_DIR] [TEST_REGEX]
# One OpenMP thread per test (see below), as many tests at once as there are cores.
# Installs valgrind when missing.
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
# One thread: memcheck runs the threads of a process one at a time, and OpenMP teams (nested
# inside test_bn_sync's two rank threads) then crawl: test_bn_sync takes a minute with one
# thread and did not finish in ten with two. The tests run one per core instead.
cores=$(nproc) # before OMP_NUM_THREADS, which nproc obeys
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive
run_one() {
  local t=$1 log="$b/valgrind/$1.log" start result
  start=$(date +%s)
  if valgrind --tool=memcheck --error-exitcode=99 --leak-check=full --show-leak-kinds=definite \
       --errors-for-leak-kinds=definite --num-callers=30 ${VALGRIND_EXTRA:-} \
       --log-file="$log" "$b/tests/$t" > "$b/valgrind/$t.out" 2>&1; then
    result=ok
  else
    result=FAILED
  fi
  local errors
  errors=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' "$log" | sort -n | tail -1)
  printf '%-22s %-6s %4ss  memcheck errors: %s\n' "$t" "$result" "$(( $(date +%s) - start ))" "${errors:-?}" \
    > "$b/valgrind/$t.result"
}
rm -f "$b"/valgrind/*.result
for t in "${tests[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$cores" ]; do sleep 1; done
  run_one "$t" &
done
wait
fail=0
for t in "${tests[@]}"; do
  cat "$b/valgrind/$t.result"
  if ! grep -q " ok " "$b/valgrind/$t.result"; then
    fail=1
    tail -40 "$b/valgrind/$t.log"
    tail -20 "$b/valgrind/$t.out"
  fi
done
[ $fail -eq 0 ] && echo "valgrind: ${#tests[@]} unit tests, zero memcheck errors" || echo "valgrind: errors above (logs in $b/valgrind/)"
exit $fail
