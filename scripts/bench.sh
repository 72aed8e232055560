#!/usr/bin/env bash
# The benchmark suite as one command: configure and build Release in build/ (reused when it
# exists), run every benchmark, each ours against its floor and (with --torch) against
# PyTorch 1.13 in the same run, and write
#   bench/results/<YYYY-MM-DD>-<host>.md    the machine, the table, notes (also printed)
#   bench/results/<YYYY-MM-DD>-<host>.csv   name,unit,ours,floor,peer,ours_over_floor,ours_over_peer
#   bench/results/<YYYY-MM-DD>-<host>.svg   a bar chart of ours/floor and ours/peer per row
#
#   scripts/bench.sh [--quick] [--torch] [--out DIR] [--python PATH] [--build DIR] [--only NAMES]
#
#   --quick        fewer reps, iterations and sizes (every benchmark still runs): a few minutes
#   --torch        the PyTorch peer of every benchmark (scripts/setup.sh --torch installs it);
#                  without it the peer columns stay empty
#   --out DIR      where the report goes (default bench/results)
#   --python PATH  the python3 that imports torch (default: the first of python3 and
#                  /usr/bin/python3 that does)
#   --build DIR    the build directory (default build)
#   --only NAMES   run only these benchmarks (comma-separated: bench_optim, bench_clip,
#                  bench_train.resnet8, bench_train.resnet20, bench_train.airbench, bench_rnn,
#                  bench_data, bench_ckpt,
#                  bench_dist, torch_dist); the report then holds only their rows
#
# The benchmarks (build/bench/*, bench/torch_*.py) print one machine-readable line per figure,
#   ROW<TAB>name<TAB>unit<TAB>ours<TAB>floor<TAB>peer   (higher is better for every unit)
# which this script collects; bench/bench_report.py turns them into the report. A benchmark
# that fails (non-zero exit, or killed after its time limit) is reported as failed with the
# tail of its stderr in the notes, one that prints no row as missing; the report is written
# anyway and the script then exits 1. The full logs stay in <build>/bench-logs/.
# Allreduce (bench_dist, under mpirun -np 2) runs when the build found MPI (scripts/setup.sh
# --mpi); otherwise it is reported as skipped. Nothing else should run meanwhile: the
# machine's load average before and after is in the report.
set -uo pipefail
{ # the whole script is one compound command, read before it runs: editing the file while a
  # run is in progress cannot change what that run does

usage() { sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

quick=0 torch=0 out= python= build= only=
while [ $# -gt 0 ]; do
  case $1 in
    --quick) quick=1; shift ;;
    --torch) torch=1; shift ;;
    --out) [ $# -ge 2 ] || { echo "bench.sh: --out needs a directory" >&2; exit 2; }; out=$2; shift 2 ;;
    --python) [ $# -ge 2 ] || { echo "bench.sh: --python needs a path" >&2; exit 2; }; python=$2; shift 2 ;;
    --build) [ $# -ge 2 ] || { echo "bench.sh: --build needs a directory" >&2; exit 2; }; build=$2; shift 2 ;;
    --only) [ $# -ge 2 ] || { echo "bench.sh: --only needs names" >&2; exit 2; }; only=",$2,"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "bench.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done

# paths given relative to where the script was started from, before it moves to the source tree
abs() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
[ -n "$out" ] && out=$(abs "$out")
[ -n "$build" ] && build=$(abs "$build")
[[ -n "$python" && $python == */* ]] && python=$(abs "$python")
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 2
out=${out:-bench/results}
build=${build:-build}
mkdir -p "$out" || { echo "bench.sh: cannot create $out" >&2; exit 2; }

# python for the report (standard library only) and, with --torch, the one that imports torch
report_py=
for p in python3 /usr/bin/python3; do
  command -v "$p" >/dev/null 2>&1 && { report_py=$p; break; }
done
[ -n "$report_py" ] || { echo "bench.sh: python3 is needed for the report (scripts/setup.sh)" >&2; exit 2; }
torch_version=
if [ "$torch" = 1 ]; then
  if [ -n "$python" ]; then
    torch_version=$("$python" -c 'import torch; print(torch.__version__)' 2>/dev/null) ||
      { echo "bench.sh: $python cannot import torch" >&2; exit 2; }
  else
    for p in python3 /usr/bin/python3; do
      if v=$("$p" -c 'import torch; print(torch.__version__)' 2>/dev/null); then python=$(command -v "$p"); torch_version=$v; break; fi
    done
    [ -n "$python" ] || { echo "bench.sh: --torch: no python3 imports torch (scripts/setup.sh --torch)" >&2; exit 2; }
  fi
fi

date_tag=$(date -u +%Y-%m-%d)
host=$(hostname -s 2>/dev/null || hostname)
prefix="$out/$date_tag-$host"
threads=$(nproc)
logs="$build/bench-logs/$date_tag-$host"
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
load_before=$(loadavg)
t_start=$(date +%s)
mkdir -p "$logs" || { echo "bench.sh: cannot create $logs" >&2; exit 2; }
rows="$logs/rows.tsv" notes="$logs/notes.md" timings="$logs/timings.tsv"
: >"$rows"; : >"$notes"; : >"$timings"
status=0

# ---- build ---------------------------------------------------------------------------------
echo "bench.sh: configuring and building Release in $build (log: $logs/build.log)" >&2
built=1
{
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DGOPT_BUILD_BENCH=ON &&
  targets=$(for f in bench/bench_*.c; do basename "$f" .c; done | grep -vx bench_dist) &&
  # bench_dist is a target only when the build found MPI
  # (grep reads all of it: with pipefail, grep -q's early exit would fail the pipeline by SIGPIPE)
  if cmake --build "$build" --target help | grep -w bench_dist >/dev/null; then targets="$targets bench_dist"; fi &&
  cmake --build "$build" -j "$threads" --target $targets
} >"$logs/build.log" 2>&1 || built=0
bin="$build/bench"

# the last lines of a file for the notes, as a fenced block
tail_note() { echo '```text'; tail -n "${2:-6}" "$1" 2>/dev/null | tr '\t' ' '; echo '```'; }

# run_bench NAME LIMIT_SECONDS CMD...: runs CMD, collects its ROW/PEER lines, records failure.
run_bench() {
  local name=$1 limit=$2; shift 2
  local o="$logs/$name.out" e="$logs/$name.err" t0 t1 rc n
  [ -z "$only" ] || [[ $only == *",$name,"* ]] || return 0
  echo "bench.sh: $name: $*" >&2
  t0=$(date +%s.%N)
  timeout --kill-after=10 "$limit" "$@" >"$o" 2>"$e"
  rc=$?
  t1=$(date +%s.%N)
  awk -v n="$name" -v a="$t0" -v b="$t1" 'BEGIN {printf "%s\t%.1f\n", n, b - a}' >>"$timings"
  n=$(grep -cE $'^(ROW|PEER)\t' "$o")
  grep -E $'^(ROW|PEER)\t' "$o" >>"$rows"
  if [ "$rc" -ne 0 ]; then
    local why="exit status $rc"
    [ "$rc" -eq 124 ] && why="killed after its limit of ${limit} s"
    printf 'FAIL\t%s\t%s (`%s`); the tail of its stderr is below\n' "$name" "$why" "$*" >>"$rows"
    {
      printf -- '%s: %d rows printed before it failed; the end of %s:\n\n' "$name" "$n" "$e"
      tail_note "$e" 8; echo
    } >>"$notes"
    status=1
  elif [ "$n" -eq 0 ]; then
    printf 'MISSING\t%s\t%s exited 0 but printed no ROW line (`%s`)\n' "$name" "$name" "$*" >>"$rows"
    status=1
  fi
  return 0
}

torch_args=()
[ "$torch" = 1 ] && torch_args=(--torch --python "$python")
if [ "$quick" = 1 ]; then
  L=300  # seconds each benchmark may take before it is killed
  optim=(--reps 3) clip=(--reps 5) train=(--iters 3 --warmup 1) rnn=(--iters 2 --warmup 1 --rounds 1)
  data=(--quick --batches 50) ckpt=(--quick) dist=(--quick) tdist=(--quick)
else
  L=900
  optim=(--reps 7) clip=(--reps 15) train=(--iters 10 --warmup 2) rnn=(--iters 10 --warmup 2 --rounds 3)
  data=() ckpt=() dist=() tdist=()
fi

if [ "$built" = 0 ]; then
  printf 'FAIL\tbuild\tconfiguring or building %s failed (log %s)\n' "$build" "$logs/build.log" >>"$rows"
  { echo "The build failed; its log ends with:"; echo; tail_note "$logs/build.log" 12; echo; } >>"$notes"
  status=1
else
  run_bench bench_optim "$L" "$bin/bench_optim" --threads "$threads" "${optim[@]}" "${torch_args[@]}"
  run_bench bench_clip "$L" "$bin/bench_clip" --threads "$threads" "${clip[@]}" "${torch_args[@]}"
  for arch in resnet8 resnet20 airbench; do
    run_bench "bench_train.$arch" "$L" "$bin/bench_train" --arch "$arch" --threads "$threads" "${train[@]}" \
      "${torch_args[@]}"
  done
  run_bench bench_rnn "$L" "$bin/bench_rnn" --threads "$threads" "${rnn[@]}" "${torch_args[@]}"
  run_bench bench_data "$L" "$bin/bench_data" --threads "$threads" "${data[@]}" "${torch_args[@]}"
  # the checkpoint files go to the build directory's file system (a /tmp on tmpfs would time RAM)
  run_bench bench_ckpt "$L" "$bin/bench_ckpt" --dir "$build" "${ckpt[@]}" "${torch_args[@]}"
  if [ -x "$bin/bench_dist" ] && command -v mpirun >/dev/null 2>&1; then
    root_flag=()
    [ "$(id -u)" = 0 ] && root_flag=(--allow-run-as-root)
    run_bench bench_dist "$L" mpirun "${root_flag[@]}" -np 2 "$bin/bench_dist" "${dist[@]}"
    [ "$torch" = 1 ] && run_bench torch_dist "$L" "$python" bench/torch_dist.py "${tdist[@]}"
  elif [ -z "$only" ] || [[ $only == *",bench_dist,"* ]]; then
    printf 'SKIP\tbench_dist\tnot built: the build found no MPI (scripts/setup.sh --mpi, then rerun)\n' >>"$rows"
  fi
fi

# ---- the machine ---------------------------------------------------------------------------
load_after=$(loadavg)
wall=$(( $(date +%s) - t_start ))
cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)
flags=$(lscpu 2>/dev/null | sed -n 's/^Flags: *//p' | tr ' ' '\n' |
  grep -xE 'sse4_2|avx|avx2|fma|f16c|avx512[a-z0-9_]*|amx[a-z0-9_]*|avx_vnni' | paste -sd' ')
mem=$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
openblas=$(dpkg-query -W -f='${db:Status-Abbrev} ${Package} ${Version}\n' 'libopenblas0*' 2>/dev/null |
  awk '$1 == "ii" {printf "%s%s %s", sep, $2, $3; sep = ", "}')
cc=$(sed -n 's/^CMAKE_C_COMPILER:[A-Z]*=//p' "$build/CMakeCache.txt" 2>/dev/null)
ccv=$("${cc:-gcc}" --version 2>/dev/null | head -1)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] && commit="$commit (with uncommitted changes)"
mpi=$(mpirun --version 2>/dev/null | head -1)
{
  printf 'CPU\t%s\n' "${cpu:-unknown}"
  printf 'SIMD flags\t%s\n' "${flags:-none found}"
  printf 'cores\t%s (nproc), %s\n' "$threads" "$(lscpu 2>/dev/null | sed -n 's/^Thread(s) per core: */threads per core /p')"
  printf 'memory\t%s\n' "$mem"
  printf 'OpenBLAS\t%s\n' "${openblas:-not found by dpkg-query}"
  printf 'OPENBLAS_CORETYPE\t%s\n' "${OPENBLAS_CORETYPE:-unset}"
  printf 'threads\t%s per benchmark (OMP_NUM_THREADS %s, OMP_WAIT_POLICY %s); bench_data loader, bench_ckpt and torch_dist 1\n' \
    "$threads" "${OMP_NUM_THREADS:-unset}" "${OMP_WAIT_POLICY:-unset}"
  printf 'compiler\t%s\n' "${ccv:-unknown}"
  printf 'torch\t%s\n' "${torch_version:-not used (no --torch)}${torch_version:+ ($python)}"
  [ -n "$mpi" ] && printf 'MPI\t%s\n' "$mpi"
  printf 'date\t%s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
  printf 'commit\t%s\n' "$commit"
  printf 'mode\t%s, %d s wall (build included)\n' "$([ "$quick" = 1 ] && echo "--quick" || echo full)" "$wall"
  printf 'load average\tbefore %s, after %s (1, 5, 15 min)\n' "$load_before" "$load_after"
} >"$logs/machine.tsv"

{
  [ -s "$notes" ] && { cat "$notes"; echo; }
  busy=$(awk -v a="${load_before%% *}" -v b="${load_after%% *}" -v n="$threads" 'BEGIN {print (a > n / 2 || b > n / 2) ? 1 : 0}')
  if [ "$busy" = 1 ]; then
    echo "**The machine was busy**: load average $load_before before and $load_after after the run on $threads cores, so other processes shared the cores and every figure here (ours, floors and peers alike) is lower and noisier than on an idle machine; compare ratios from the same run only."
    echo
  fi
  echo "Floors and peers (all in the same run; peer = PyTorch 1.13 on the same sizes and threads):"
  echo
  echo "- optim.<algo>: one optimizer step over 10M parameters in GB/s of the streams it must read and write; floor: a pass over the same streams with trivial math (bench_optim); peer: torch.optim (foreach) step."
  echo "- clip.*: clip_grad_norm over 10M parameters in GB/s (active: read + scale, inactive: read); floor: a plain read (+ scale) pass; peer: torch.nn.utils.clip_grad_norm_ on one flat tensor, and on ~300 ResNet-like tensors (torch_tensors)."
  echo "- resnet8/20.step, airbench.step: bench_train's training step (forward, cross-entropy, backward, SGD momentum; batch 128, random data; airbench at width 0.5, train_cifar10 --recipe fast's net), img/s, no floor; peer: the same net and step in torch. resnet8/20.conv, airbench.conv: the convolutions' effective GFLOP/s (direct FLOP count over their time); floor: the SGEMM peak (2048^3) measured in the same run, so ours/floor above 1 is faster than any direct convolution at that peak."
  echo "- rnn.lstm: train_text's default model (embedding 64, 2-layer LSTM 256, linear head; batch 32 x 128 tokens, clipping, Adam), training tokens/s, no floor; peer: the same model and step in torch on the same batches."
  echo "- data.loader: the CIFAR-10 training pipeline (shuffle, crop, flip, normalise; batch 128, one thread), img/s; floor: memcpy of the batch's float bytes; peer: the same in vectorised torch on one thread (a DataLoader worker's). data.loader_vs_resnet20_step: its \"floor\" column is what a ResNet-20 training step consumes, so ours/floor is how many times faster than training needs the pipeline is."
  echo "- ckpt.save / ckpt.load: a checkpoint of 10M parameters + SGD momentum (80 MB; --quick 2.5M, 20 MB) through gradopt/checkpoint.h (fsync, rename, CRCs), MB/s; floor: write + fsync, and read, of the same bytes; peer: torch.save (+ fsync) / torch.load + load_state_dict. Loads read from the page cache."
  echo "- dist.allreduce.<size>: gradient all-reduce of 2 MPI ranks, algorithm bandwidth GB/s; floor: plain MPI_Allreduce; peer: torch.distributed all_reduce over gloo, 2 processes (bench/torch_dist.py, run after bench_dist)."
  echo
  echo "Seconds per benchmark: $(awk -F'\t' '{printf "%s%s %s", sep, $1, $2; sep = ", "}' "$timings")."
  echo "Logs: \`$logs\`."
} >"$logs/notes-all.md"

"$report_py" bench/bench_report.py --rows "$rows" --machine "$logs/machine.tsv" --notes "$logs/notes-all.md" \
  --title "libgradopt benchmarks, $host, $date_tag$([ "$quick" = 1 ] && echo ' (--quick)')" --out "$prefix" || {
  echo "bench.sh: the report could not be written (rows in $rows)" >&2
  exit 1
}
echo >&2
echo "bench.sh: wrote $prefix.md, $prefix.csv, $prefix.svg ($wall s)" >&2
[ "$status" = 0 ] || echo "bench.sh: some benchmarks failed or printed no rows: see the notes" >&2
exit "$status"
}
