#!/usr/bin/env bash
# The README's main command: install what is missing, build, find CIFAR-10, and run the
# optimizer comparison (examples/compare_optimizers), which writes results/compare/report.html.
#   scripts/run.sh [--data DIR] [compare_optimizers options, e.g. --quick]
# CIFAR-10 is looked for in --data DIR, $GOPT_CIFAR10_DIR, ./data/cifar10,
# ./data/cifar-10-batches-bin, ~/.cache/gradopt/cifar10 and ../shared/data/cifar10 (whose
# .xz files are unpacked into ./data/cifar10). With none, it offers the download (on a
# terminal) and otherwise runs on the small built-in synthetic dataset, saying so.
set -euo pipefail
cd "$(dirname "$0")/.."

data_arg=""
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --data) data_arg=${2:?--data needs a directory}; shift 2 ;;
    --data=*) data_arg=${1#--data=}; shift ;;
    *) args+=("$1"); shift ;;
  esac
done

bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release > build.log 2>&1 || { cat build.log; exit 1; }
cmake --build build -j"$(nproc)" --target compare_optimizers >> build.log 2>&1 || { tail -50 build.log; exit 1; }

data=$(bash scripts/find_cifar10.sh "$data_arg" || true)
if [ -n "$data_arg" ] && [ -z "$data" ]; then
  echo "run: --data $data_arg holds no CIFAR-10 binary batches (data_batch_1.bin ...)" >&2
  exit 1
fi
if [ -z "$data" ] && [ -t 0 ] && [ -t 1 ]; then
  read -r -p "CIFAR-10 was not found. Download it (170 MB) into data/cifar10 now? [y/N] " answer || answer=n
  if [ "$answer" = y ] || [ "$answer" = Y ]; then
    bash scripts/fetch_cifar10.sh data/cifar10 && data=$(cd data/cifar10 && pwd)
  fi
fi
if [ -z "$data" ]; then
  echo "run: no CIFAR-10 found (see scripts/fetch_cifar10.sh or --data DIR): running on the BUILT-IN SYNTHETIC dataset"
  exec ./build/examples/compare_optimizers "${args[@]}"
fi
echo "run: CIFAR-10 in $data"
exec ./build/examples/compare_optimizers --data "$data" "${args[@]}"
