#!/usr/bin/env bash
# Run every libFuzzer target of tests/fuzz (or those named) under AddressSanitizer and
# UndefinedBehaviorSanitizer, each until SECONDS have passed or RUNS inputs were executed,
# whichever comes first, JOBS targets at a time.
#   scripts/fuzz.sh [--jobs N] [--runs N] [SECONDS] [TARGET...]
#     SECONDS  per target, default 60; TARGET: cifar10 checkpoint state text golden trajectory trainer
#              safetensors npy
#     --runs   default 10000000;  --jobs: default 1 (the machine's cores are shared)
# Installs clang, libFuzzer and OpenMP for clang when missing (scripts/setup.sh --fuzz).
# New coverage goes to build-fuzz/corpus/<target>/ (kept between runs; the committed seeds
# in tests/fuzz/corpus/<target>/ are read, never written). A crash, leak, hang (10 s per
# input) or sanitizer report fails the run and leaves the input in build-fuzz/artifacts/:
# fix the bug, then commit the input to tests/fuzz/corpus/<target>/ as a regression input
# (ctest replays that corpus on every build: fuzz_replay_<target>). The table of executions,
# coverage (edges) and corpus sizes is printed and written to build-fuzz/fuzz-summary.md.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=1
runs=10000000
while [ $# -gt 0 ]; do
  case "$1" in
    --jobs) jobs=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) break ;;
  esac
done
seconds=${1:-60}
shift || true
all=(cifar10 checkpoint state text golden trajectory trainer safetensors npy)
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all[@]}")
for t in "${targets[@]}"; do
  [[ " ${all[*]} " == *" $t "* ]] || { echo "fuzz: unknown target '$t' (have: ${all[*]})" >&2; exit 2; }
done
[[ "$seconds" =~ ^[0-9]+$ && "$seconds" -ge 1 ]] || { echo "fuzz: SECONDS must be a positive integer, got '$seconds'" >&2; exit 2; }
[[ "$jobs" =~ ^[0-9]+$ && "$jobs" -ge 1 ]] || { echo "fuzz: --jobs must be a positive integer, got '$jobs'" >&2; exit 2; }

bash scripts/setup.sh --fuzz
b=build-fuzz
mkdir -p "$b"
CC=clang cmake -S . -B "$b" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGOPT_BUILD_FUZZ=ON \
  -DGOPT_SANITIZE=address,undefined -DGOPT_BUILD_TESTS=OFF -DGOPT_BUILD_EXAMPLES=OFF \
  -DGOPT_BUILD_BENCH=OFF -DGOPT_WITH_MPI=OFF > "$b/configure.log" 2>&1 || { cat "$b/configure.log"; exit 1; }
cmake --build "$b" -j"$(nproc)" --target $(printf 'fuzz_%s ' "${targets[@]}") > "$b/build.log" 2>&1 ||
  { tail -50 "$b/build.log"; exit 1; }
mkdir -p "$b/artifacts" "$b/logs"

cores=$(nproc)
# OpenBLAS and the OpenMP runtime keep their thread pools until exit: not ours (.ci/lsan.supp).
export LSAN_OPTIONS="suppressions=$PWD/.ci/lsan.supp:print_suppressions=0"
export ASAN_OPTIONS="abort_on_error=1:detect_leaks=1:allocator_may_return_null=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export OMP_NUM_THREADS=1

declare -A max_len=([cifar10]=16384 [checkpoint]=262144 [state]=65536 [text]=8192 [golden]=32768 [trajectory]=32768 [trainer]=131072 [safetensors]=16384 [npy]=16384)
run_one() {
  local t=$1
  mkdir -p "$b/corpus/$t"
  "$b/tests/fuzz/fuzz_$t" -max_total_time="$seconds" -runs="$runs" -timeout=10 -rss_limit_mb=3072 \
    -max_len="${max_len[$t]}" -print_final_stats=1 -artifact_prefix="$b/artifacts/$t-" \
    "$b/corpus/$t" "tests/fuzz/corpus/$t" > "$b/logs/$t.log" 2>&1
}

declare -A status
pids=()
names=()
for t in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do sleep 1; done
  echo "fuzz: $t for up to ${seconds}s or $runs runs"
  run_one "$t" &
  pids+=($!)
  names+=("$t")
done
fail=0
for i in "${!pids[@]}"; do
  if wait "${pids[$i]}"; then status[${names[$i]}]=ok; else status[${names[$i]}]=FAILED; fail=1; fi
done

cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
{
  echo "| target | result | executions | seconds | exec/s | coverage (edges) | features | corpus |"
  echo "|---|---|---|---|---|---|---|---|"
  for t in "${targets[@]}"; do
    log="$b/logs/$t.log"
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<< "$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<< "$last")
    corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9a-zA-Z]*\).*/\1/p' <<< "$last")
    echo "| $t | ${status[$t]} | ${execs:-?} | ${secs:-?} | ${rate:-?} | ${cov:-?} | ${ft:-?} | ${corp:-?} |"
  done
  echo
  echo "CPU: $cpu, $cores cores; clang $(clang --version | sed -n 's/.*version \([0-9.]*\).*/\1/p' | head -1); per target at most ${seconds}s or $runs runs, $jobs at a time."
} | tee "$b/fuzz-summary.md"
if [ $fail -ne 0 ]; then
  for t in "${targets[@]}"; do
    [ "${status[$t]}" = ok ] && continue
    echo "== $t failed; the end of $b/logs/$t.log:"
    tail -40 "$b/logs/$t.log"
  done
  echo "fuzz: findings are in $b/artifacts/ (reproduce: $b/tests/fuzz/fuzz_TARGET FILE)" >&2
  exit 1
fi
