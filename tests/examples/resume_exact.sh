#!/usr/bin/env bash
# Exact resume through the trainer: 2 epochs straight == 1 epoch, checkpoint, then a new
# process resuming for the 2nd epoch. The final checkpoints (parameters, BN statistics,
# optimizer, scheduler, monitor, loader, counters) must be byte-identical. Then bad
# checkpoints and bad data must fail cleanly with a message and a non-zero status.
set -uo pipefail
bin=$1
work=$2
rm -rf "$work"; mkdir -p "$work"
common=(--synthetic-size 1200 --arch resnet8 --width 0.25 --batch 64 --epochs 2 --threads 2 --seed 7
        --optimizer adam --schedule onecycle --clip-norm 1 --accum 2)
fail() { echo "FAIL: $*"; exit 1; }

"$bin" "${common[@]}" --checkpoint "$work/straight.ckpt" > "$work/straight.log" 2>&1 || fail "straight run"
"$bin" "${common[@]}" --max-steps 7 --checkpoint "$work/half.ckpt" > "$work/half.log" 2>&1 || fail "first half"
cp "$work/half.ckpt" "$work/resumed.ckpt"
"$bin" "${common[@]}" --resume "$work/resumed.ckpt" --checkpoint "$work/resumed.ckpt" > "$work/resumed.log" 2>&1 \
  || { cat "$work/resumed.log"; fail "resumed run"; }
grep -q "resumed from" "$work/resumed.log" || fail "no resume message"
cmp "$work/straight.ckpt" "$work/resumed.ckpt" || fail "resumed run differs from the straight run"
echo "ok: 2 epochs straight == 7 steps + resume in a new process (byte-identical checkpoints)"

# Warmup then ReduceLROnPlateau (two schedulers): the warmup counts steps (8), the plateau
# steps on the evaluations after it (every 3 steps; it cuts the LR at step 15 here).
# Resume inside the warmup (6) and after the cut (18).
plat=(--synthetic-size 1200 --arch resnet8 --width 0.25 --batch 64 --epochs 2 --max-steps 24 --threads 2 --seed 7
      --optimizer adam --lr 0.03 --schedule plateau --warmup 0.5 --eval-every 3)
"$bin" "${plat[@]}" --checkpoint "$work/plat.ckpt" > "$work/plat.log" 2>&1 || fail "plateau straight run"
grep -q "step 18 .*lr 0.006 " "$work/plat.log" || fail "plateau: no LR cut by step 18: $(grep '^step' "$work/plat.log")"
for half in 6 18; do
  "$bin" "${plat[@]}" --max-steps $half --checkpoint "$work/plat$half.ckpt" > /dev/null 2>&1 || fail "plateau to $half"
  "$bin" "${plat[@]}" --resume "$work/plat$half.ckpt" --checkpoint "$work/plat$half.ckpt" > "$work/plat$half.log" 2>&1 \
    || { cat "$work/plat$half.log"; fail "plateau resumed from $half"; }
  cmp "$work/plat.ckpt" "$work/plat$half.ckpt" || fail "warmup+plateau resumed at step $half differs from the straight run"
done
echo "ok: warmup (steps) + plateau: straight == resumed inside the warmup and after the LR cut"

# a truncated checkpoint
head -c 1000 "$work/half.ckpt" > "$work/truncated.ckpt"
out=$("$bin" "${common[@]}" --resume "$work/truncated.ckpt" 2>&1); rc=$?
[ $rc -ne 0 ] && [ $rc -lt 128 ] || fail "truncated checkpoint: exit $rc"
echo "$out" | grep -qi "error: .*truncated.ckpt" || fail "truncated checkpoint: no clear error: $out"
echo "ok: truncated checkpoint -> $(echo "$out" | grep -i error | head -1)"

# a corrupted byte in the middle
cp "$work/half.ckpt" "$work/corrupt.ckpt"
size=$(stat -c %s "$work/corrupt.ckpt")
printf '\xff' | dd of="$work/corrupt.ckpt" bs=1 seek=$((size / 2)) conv=notrunc status=none
out=$("$bin" "${common[@]}" --resume "$work/corrupt.ckpt" 2>&1); rc=$?
[ $rc -ne 0 ] && [ $rc -lt 128 ] || fail "corrupted checkpoint: exit $rc"
echo "$out" | grep -qi "error:" || fail "corrupted checkpoint: no error message"
echo "ok: corrupted checkpoint -> $(echo "$out" | grep -i error | head -1)"

# a checkpoint of another architecture
"$bin" --synthetic-size 1200 --arch resnet8 --width 0.5 --batch 64 --epochs 1 --max-steps 2 \
  --checkpoint "$work/other.ckpt" > /dev/null 2>&1 || fail "other run"
out=$("$bin" "${common[@]}" --resume "$work/other.ckpt" 2>&1); rc=$?
[ $rc -ne 0 ] && [ $rc -lt 128 ] || fail "mismatched checkpoint: exit $rc"
echo "ok: checkpoint of another net -> $(echo "$out" | grep -i error | head -1)"

# a wrong-version checkpoint: bump the version field (bytes 8..11 after the magic)
cp "$work/half.ckpt" "$work/version.ckpt"
printf '\x63' | dd of="$work/version.ckpt" bs=1 seek=8 conv=notrunc status=none
out=$("$bin" "${common[@]}" --resume "$work/version.ckpt" 2>&1); rc=$?
[ $rc -ne 0 ] && [ $rc -lt 128 ] || fail "wrong-version checkpoint: exit $rc"
echo "ok: wrong-version checkpoint -> $(echo "$out" | grep -i error | head -1)"

# malformed data: a batch file that is not whole 3073-byte records, then a bad label
mkdir -p "$work/data"
for i in 1 2 3 4 5; do head -c $((3073 * 10)) /dev/zero > "$work/data/data_batch_$i.bin"; done
head -c $((3073 * 10 + 5)) /dev/zero > "$work/data/data_batch_3.bin"
out=$("$bin" --data "$work/data" --epochs 1 2>&1); rc=$?
[ $rc -ne 0 ] && [ $rc -lt 128 ] || fail "malformed data: exit $rc"
echo "$out" | grep -q "data_batch_3.bin" || fail "malformed data: error does not name the file: $out"
echo "ok: malformed data -> $(echo "$out" | grep -i error | head -1)"
head -c $((3073 * 10)) /dev/zero > "$work/data/data_batch_3.bin"
printf '\x0c' | dd of="$work/data/data_batch_4.bin" bs=1 seek=$((3073 * 7)) conv=notrunc status=none
out=$("$bin" --data "$work/data" --epochs 1 2>&1); rc=$?
[ $rc -ne 0 ] && [ $rc -lt 128 ] || fail "bad label: exit $rc"
echo "$out" | grep -q "data_batch_4.bin" || fail "bad label: error does not name the file: $out"
echo "ok: bad label -> $(echo "$out" | grep -i error | head -1)"
rm -rf "$work/data"
echo "all resume and bad-input checks passed"
