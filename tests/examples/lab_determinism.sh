#!/usr/bin/env bash
# Same seed, same thread count: the stability lab's numbers are identical run to run. Runs
# one small scenario end to end twice (compare_optimizers --quick --scenario SCENARIO) and
# compares every CSV file byte for byte (timing.csv, the wall times, excepted) and the
# report with its wall times (<span class="time">) taken out; then a third run with another
# seed must differ, so the comparison can fail.
#   lab_determinism.sh BINARY WORKDIR [SCENARIO]
set -euo pipefail
bin=$1 work=$2 scenario=${3:-depth}
rm -rf "$work"
mkdir -p "$work"
cd "$work" # no ./data here: the built-in data
unset GOPT_CIFAR10_DIR GOPT_TEXT_FILE
for run in a b c; do
  seed=7
  [ "$run" = c ] && seed=8
  "$bin" --quick --scenario "$scenario" --threads 2 --seed "$seed" --out "$run" > "$run.log"
done
strip() { sed -e 's|<span class="time">[^<]*</span>|<span class="time"></span>|g' "$1"; }
n=0
for f in a/*.csv; do
  name=$(basename "$f")
  [ "$name" = timing.csv ] && continue
  cmp "a/$name" "b/$name" || { echo "FAIL: $name differs between two runs with the same seed"; exit 1; }
  n=$((n + 1))
done
[ "$n" -ge 1 ] || { echo "FAIL: no CSV files written"; exit 1; }
diff <(strip a/report.html) <(strip b/report.html) > /dev/null ||
  { echo "FAIL: report.html differs between two runs with the same seed:"; diff <(strip a/report.html) <(strip b/report.html) | head -20; exit 1; }
nowall() { sed -e 's/Wall time [0-9]* s/Wall time/' "$1"; }
diff <(nowall a/findings.md) <(nowall b/findings.md) > /dev/null ||
  { echo "FAIL: findings.md differs between two runs with the same seed"; exit 1; }
differs=0
for f in a/*.csv; do
  name=$(basename "$f")
  [ "$name" = timing.csv ] && continue
  cmp -s "a/$name" "c/$name" || differs=1
done
[ "$differs" = 1 ] || { echo "FAIL: seed 8 gave the same CSV files as seed 7"; exit 1; }
echo "ok: scenario $scenario: $n CSV files and the report identical across two runs (seed 7, 2 threads); seed 8 differs"
