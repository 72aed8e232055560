#!/usr/bin/env bash
# Print the first directory that holds the CIFAR-10 training batches (data_batch_1.bin),
# checking in order:
#   $1, $GOPT_CIFAR10_DIR, ./data/cifar10, ./data/cifar-10-batches-bin,
#   ~/.cache/gradopt/cifar10, ../shared/data/cifar10.
# A shared directory that only holds data_batch_*.bin.xz is unpacked into ./data/cifar10
# (with its unpack.sh, which checks SHA256SUMS, or with xz -dk, checking sizes) and that
# directory is printed. Exits 1, printing nothing on stdout, if nothing is found.
set -u

size_ok() { # every data_batch_N.bin present is a whole number of 3073-byte records
  local d=$1 f s
  [ -f "$d/data_batch_1.bin" ] || return 1
  for f in "$d"/data_batch_*.bin; do
    s=$(wc -c < "$f") || return 1
    [ "$s" -gt 0 ] && [ $((s % 3073)) -eq 0 ] || return 1
  done
  return 0
}

candidates=()
[ $# -ge 1 ] && [ -n "$1" ] && candidates+=("$1")
[ -n "${GOPT_CIFAR10_DIR:-}" ] && candidates+=("$GOPT_CIFAR10_DIR")
candidates+=("./data/cifar10" "./data/cifar-10-batches-bin")
[ -n "${HOME:-}" ] && candidates+=("$HOME/.cache/gradopt/cifar10")
candidates+=("../shared/data/cifar10")

for d in "${candidates[@]}"; do
  if size_ok "$d"; then (cd "$d" && pwd); exit 0; fi
done

# Only compressed copies: unpack the first one found into ./data/cifar10.
for d in "${candidates[@]}"; do
  [ -f "$d/data_batch_1.bin.xz" ] || continue
  out=./data/cifar10
  mkdir -p "$out" || exit 1
  if [ -x "$d/unpack.sh" ]; then
    "$d/unpack.sh" "$out" >&2 || { echo "find_cifar10: $d/unpack.sh failed" >&2; exit 1; }
  else
    command -v xz >/dev/null 2>&1 || { echo "find_cifar10: xz is not installed" >&2; exit 1; }
    for f in "$d"/data_batch_*.bin.xz; do
      b=$(basename "$f" .xz)
      [ -f "$out/$b" ] && continue
      if ! { xz -dc "$f" > "$out/$b.part" && mv -f "$out/$b.part" "$out/$b"; }; then
        echo "find_cifar10: cannot unpack $f" >&2; rm -f "$out/$b.part"; exit 1
      fi
    done
    [ -f "$d/batches.meta.txt" ] && cp "$d/batches.meta.txt" "$out/"
  fi
  if size_ok "$out"; then (cd "$out" && pwd); exit 0; fi
  echo "find_cifar10: unpacked files in $out have wrong sizes" >&2
  exit 1
done
exit 1
