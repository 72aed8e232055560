#!/usr/bin/env bash
# The README's main command: install what is missing, build, find the data, and run the
# stability lab (examples/compare_optimizers: scenarios resnet, sequence and depth), which
# writes results/compare/report.html, findings.md and one set of CSV files per scenario.
#   scripts/run.sh [--data DIR] [--text FILE] [compare_optimizers options: --quick,
#                  --scenario resnet|sequence|depth, --threads T, --seed S, --out DIR]
# CIFAR-10 (resnet and depth scenarios) is looked for in --data DIR, $GOPT_CIFAR10_DIR,
# ./data/cifar10, ./data/cifar-10-batches-bin, ~/.cache/gradopt/cifar10 and
# ../shared/data/cifar10 (whose .xz files are unpacked into ./data/cifar10). With none, it
# offers the download (on a terminal) and otherwise those scenarios run on the small
# built-in synthetic images, saying so. The text of the sequence scenario's language model
# is --text FILE, $GOPT_TEXT_FILE, ./data/tinyshakespeare/input.txt or
# ../shared/data/tinyshakespeare/input.txt; with none it runs on the built-in text, saying so.
set -euo pipefail
cd "$(dirname "$0")/.."

data_arg=""
text_arg=""
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --data) data_arg=${2:?--data needs a directory}; shift 2 ;;
    --data=*) data_arg=${1#--data=}; shift ;;
    --text) text_arg=${2:?--text needs a file}; shift 2 ;;
    --text=*) text_arg=${1#--text=}; shift ;;
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

text=""
if [ -n "$text_arg" ]; then
  [ -r "$text_arg" ] || { echo "run: --text $text_arg: no such readable file" >&2; exit 1; }
  text=$text_arg
else
  for t in "${GOPT_TEXT_FILE:-}" data/tinyshakespeare/input.txt ../shared/data/tinyshakespeare/input.txt; do
    if [ -n "$t" ] && [ -r "$t" ]; then text=$t; break; fi
  done
fi

cmd=(./build/examples/compare_optimizers)
if [ -n "$data" ]; then
  echo "run: CIFAR-10 in $data (scenarios resnet and depth)"
  cmd+=(--data "$data")
else
  echo "run: no CIFAR-10 found (see scripts/fetch_cifar10.sh or --data DIR): scenarios resnet and depth run on the BUILT-IN SYNTHETIC images"
fi
if [ -n "$text" ]; then
  echo "run: text $text (the sequence scenario's language model)"
  cmd+=(--text "$text")
else
  echo "run: no text found (see scripts/fetch_tinyshakespeare.sh or --text FILE): the language model runs on the BUILT-IN text"
fi
exec "${cmd[@]}" "${args[@]+"${args[@]}"}"
