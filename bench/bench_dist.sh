#!/usr/bin/env bash
# bench/bench_dist.sh: ResNet-20 training img/s of 2 MPI ranks x 1 thread (batch 64 each)
# against 1 process x 2 threads (batch 128), both from build/bench/bench_dist, run back to
# back and alternated (which one goes first flips every round) so both see the same load;
# prints every run, the medians and the ratio ranks/threads.
#
#   bench/bench_dist.sh [--repeat 3] [--bin build/bench/bench_dist] [ARGS...]
#
# ARGS go to both runs (e.g. --quick, --steps 8, --zero 1: --zero only matters to ranks).
# Under root mpirun needs --allow-run-as-root, added here when running as root. Open MPI
# binds each of the 2 ranks to its own core by default (--bind-to core for np <= 2).
# The environment passes through: on a loaded machine the 2-thread run depends on
# OMP_WAIT_POLICY (libgomp's spinning threads lose their time slices to other processes:
# measured under load 13, 29.7 s/step unset against 2.5 s/step with PASSIVE), so run it
# both ways there, e.g. OMP_WAIT_POLICY=PASSIVE bench/bench_dist.sh.
set -euo pipefail

repeat=3
bin=build/bench/bench_dist
args=()
while [ $# -gt 0 ]; do
  case $1 in
    --repeat) repeat=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
[ -x "$bin" ] || { echo "bench_dist.sh: $bin not found (build with MPI: libopenmpi-dev)" >&2; exit 2; }
root=()
[ "$(id -u)" = 0 ] && root=(--allow-run-as-root)
log=$(mktemp "${TMPDIR:-/tmp}/bench_dist.XXXXXX")
trap 'rm -f "$log"' EXIT

run() { # run MODE: prints bench_dist's output and appends its result line to $log
  local out
  if [ "$1" = ranks ]; then
    out=$(mpirun "${root[@]}" -np 2 "$bin" --mode ranks "${args[@]}")
  else
    out=$("$bin" --mode threads "${args[@]}")
  fi
  printf '%s\n' "$out"
  printf '%s\n' "$out" | grep '^result ' >>"$log" || { echo "bench_dist.sh: no result line from --mode $1" >&2; exit 1; }
}

for ((i = 1; i <= repeat; i++)); do
  echo "=== round $i of $repeat"
  if ((i % 2)); then run ranks; run threads; else run threads; run ranks; fi
done

# median of the FIELD= values of the result lines of MODE
med() {
  grep "mode=$1 " "$log" | sed -n "s/.* $2=\([0-9.]*\).*/\1/p" | sort -g |
    awk '{v[NR] = $1} END {if (NR == 0) exit 1; print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
r=$(med ranks img_s); t=$(med threads img_s)
echo "=== medians over $repeat rounds (load average now: $(cut -d' ' -f1-3 /proc/loadavg))"
echo "2 ranks x 1 thread:   $r img/s  (step $(med ranks step_ms) ms: compute $(med ranks compute_ms) ms, comm $(med ranks comm_ms) ms, rank 0)"
echo "1 process x 2 threads: $t img/s  (step $(med threads step_ms) ms)"
awk -v r="$r" -v t="$t" 'BEGIN {printf "ratio ranks/threads img/s: %.2fx\n", r / t}'
