#!/usr/bin/env bash
# Issue 18 through the trainers: Schedule-Free (adamw-sf, sgd-sf), weight averaging (--ema,
# --swa-start) and --l1 in train_cifar10 and train_text.
#   - exact resume: N steps straight == k steps, checkpoint, a new process resuming to N
#     (byte-identical checkpoints, the same evaluation lines), for a Schedule-Free run, an
#     EMA run, an SWA run (resumed before and inside the SWA phase) and a Schedule-Free
#     language model;
#   - evaluation does not change the training trajectory: Schedule-Free (eval mode, BatchNorm
#     recalibrated at x) and EMA (swap, recalibration, swap back, net state restored)
#     evaluated after every step end on the same checkpoint as runs that evaluate only at
#     the end;
#   - evaluation says what it reports ("Schedule-Free x", "EMA ...", "SWA of N epochs");
#   - refusals with a clear message: --ema outside [0, 1), --ema with --swa-start, a
#     checkpoint with an average resumed without one, an unknown optimizer.
#   frontier_train.sh TRAIN_CIFAR10 TRAIN_TEXT WORKDIR
set -uo pipefail
cifar=$1
text=$2
work=$3
rm -rf "$work"; mkdir -p "$work"
fail() { echo "FAIL: $*"; exit 1; }
base=(--synthetic-size 1200 --arch resnet8 --width 0.25 --batch 64 --epochs 2 --threads 2 --seed 7 --bn-recal 4)

# resume_check NAME HALF OPTIONS...: straight == HALF steps + resume (checkpoints and lines)
resume_check() {
  local name=$1 half=$2; shift 2
  "$cifar" "${base[@]}" "$@" --checkpoint "$work/$name.ckpt" > "$work/$name.log" 2>&1 \
    || { cat "$work/$name.log"; fail "$name: straight run"; }
  "$cifar" "${base[@]}" "$@" --max-steps "$half" --checkpoint "$work/$name.half.ckpt" > /dev/null 2>&1 \
    || fail "$name: first $half steps"
  "$cifar" "${base[@]}" "$@" --resume "$work/$name.half.ckpt" --checkpoint "$work/$name.half.ckpt" \
    > "$work/$name.resumed.log" 2>&1 || { cat "$work/$name.resumed.log"; fail "$name: resumed run"; }
  grep -q "resumed from" "$work/$name.resumed.log" || fail "$name: no resume message"
  cmp "$work/$name.ckpt" "$work/$name.half.ckpt" || fail "$name: resumed at step $half differs from the straight run"
  # the evaluations after the resume point print the same figures (the rate aside)
  diff <(grep '^epoch [0-9]*:' "$work/$name.log" | tail -1 | sed 's/.*| val/val/; s/| [0-9]* img\/s.*//') \
       <(grep '^epoch [0-9]*:' "$work/$name.resumed.log" | tail -1 | sed 's/.*| val/val/; s/| [0-9]* img\/s.*//') \
    || fail "$name: the last evaluation differs after the resume"
  echo "ok: $name: straight == $half steps + resume (byte-identical checkpoints)"
}

# 1. Schedule-Free AdamW with its own warmup; the evaluation reports x
resume_check sf 7 --optimizer adamw-sf --warmup-steps 5 --wd 5e-4 --l1 1e-5
grep -q "val loss .* (Schedule-Free x)" "$work/sf.log" || fail "sf: the evaluation does not say it reports x"
grep -q "optimizer=adamw-sf .*schedule=constant" "$work/sf.log" || fail "sf: not constant by default: $(grep config "$work/sf.log")"

# 2. EMA of the weights, updated after every applied step
resume_check ema 7 --ema 0.9 --optimizer adam --lr 0.01 --schedule cosine
grep -q "(EMA 0.9 of the weights)" "$work/ema.log" || fail "ema: the evaluation does not name the average"

# 3. SWA from epoch 2 of 3 (SGD-SF underneath: the average of y), resumed in epoch 1 (before
#    the phase begins) and in epoch 3 (inside it, SWALR and the average of 1 epoch restored)
resume_check swa 7 --optimizer sgd-sf --lr 0.5 --epochs 3 --swa-start 2 --swa-lr 0.05
resume_check swa 35 --optimizer sgd-sf --lr 0.5 --epochs 3 --swa-start 2 --swa-lr 0.05
grep -q "epoch 3: .*(SWA of 2 epochs) | lr 0.05 " "$work/swa.log" \
  || fail "swa: epoch 3 does not evaluate an SWA of 2 epochs at SWALR's lr 0.05: $(grep '^epoch' "$work/swa.log")"

# 3b. Muon (its AdamW for vectors and the output layer) and Adafactor, by their registry names
#     (--optim: the issue's spelling of --optimizer)
resume_check muon 7 --optimizer muon --schedule cosine --l1 1e-5
grep -q "optimizer=muon .*adamw_lr_ratio=0.1" "$work/muon.log" || fail "muon: config line: $(grep config "$work/muon.log")"
resume_check adafactor 7 --optim adafactor --max-steps 12

# 4. evaluation leaves training alone: after every step vs only at the end, same final state
for opt in "--optimizer sgd-sf --lr 0.5" "--ema 0.95" ; do
  # shellcheck disable=SC2086
  "$cifar" "${base[@]}" $opt --max-steps 12 --checkpoint "$work/quiet.ckpt" > "$work/quiet.log" 2>&1 \
    || fail "$opt: quiet run"
  # shellcheck disable=SC2086
  "$cifar" "${base[@]}" $opt --max-steps 12 --eval-every 1 --checkpoint "$work/busy.ckpt" > "$work/busy.log" 2>&1 \
    || fail "$opt: run evaluating every step"
  [ "$(grep -c '^step' "$work/busy.log")" -ge 12 ] || fail "$opt: did not evaluate every step"
  cmp "$work/quiet.ckpt" "$work/busy.ckpt" || fail "$opt: evaluating every step changed the training run"
  q=$(grep '^step 12 ' "$work/quiet.log" | sed 's/ | lr.*//; s/.*: //')
  b=$(grep '^step 12 ' "$work/busy.log" | sed 's/ | lr.*//; s/.*: //')
  [ -n "$q" ] && [ "$q" = "$b" ] || fail "$opt: final lines differ: '$q' vs '$b'"
  echo "ok: $opt: evaluating after every step leaves the run bit-identical ($q)"
done

# 4b. the BatchNorm recalibration at x takes effect on the evaluation, and only there: the
#     training line is the same, the evaluation differs, and the checkpoint written after it
#     holds the training net's own BatchNorm statistics (its "net" section equals that of a
#     run that never recalibrates)
section() { # section FILE NAME: the bytes of a checkpoint section, hex (checkpoint.h's layout)
  python3 - "$1" "$2" <<'PY'
import struct, sys
b = open(sys.argv[1], "rb").read()
count, = struct.unpack_from("=I", b, 16)
table, = struct.unpack_from("=Q", b, 24)
for i in range(count):
    e = table + 88 * i
    name = b[e:e + 64].split(b"\0")[0].decode()
    off, size = struct.unpack_from("=QQ", b, e + 64)
    if name == sys.argv[2]:
        print(b[off:off + size].hex())
PY
}
"$cifar" "${base[@]}" --optimizer sgd-sf --lr 0.5 --max-steps 6 --bn-recal 0 --checkpoint "$work/recal0.ckpt" \
  > "$work/recal0.log" 2>&1 || fail "--bn-recal 0"
"$cifar" "${base[@]}" --optimizer sgd-sf --lr 0.5 --max-steps 6 --checkpoint "$work/recal4.ckpt" \
  > "$work/recal4.log" 2>&1 || fail "--bn-recal 4"
t0=$(grep '^step 6 ' "$work/recal0.log" | sed 's/ | val.*//; s/.*: //')
t4=$(grep '^step 6 ' "$work/recal4.log" | sed 's/ | val.*//; s/.*: //')
v0=$(grep '^step 6 ' "$work/recal0.log" | sed 's/.*| val/val/; s/ | lr.*//')
v4=$(grep '^step 6 ' "$work/recal4.log" | sed 's/.*| val/val/; s/ | lr.*//')
[ -n "$t0" ] && [ "$t0" = "$t4" ] || fail "--bn-recal changed the training: '$t0' vs '$t4'"
[ "$v0" != "$v4" ] || fail "--bn-recal 4 evaluates as --bn-recal 0: $v0"
echo "ok: BatchNorm recalibrated at x: $v0 (training statistics) -> $v4 (4 batches)"
if command -v python3 > /dev/null; then
  n0=$(section "$work/recal0.ckpt" net); n4=$(section "$work/recal4.ckpt" net)
  [ -n "$n0" ] || fail "no 'net' section read from the checkpoint"
  [ "$n0" = "$n4" ] || fail "the checkpoint after a recalibrated evaluation holds other BatchNorm statistics"
  [ "$(section "$work/recal0.ckpt" params)" = "$(section "$work/recal4.ckpt" params)" ] || fail "params differ"
  echo "ok: the checkpoint keeps the training net's own BatchNorm statistics and weights"
else
  echo "note: python3 not found: the checkpoint's net section was not compared"
fi

# 5. refusals
out=$("$cifar" "${base[@]}" --ema 1.5 2>&1); rc=$?
[ $rc -eq 2 ] || fail "--ema 1.5: exit $rc"
echo "$out" | grep -q "error: --ema: the decay '1.5' is outside \[0, 1)" || fail "--ema 1.5: unclear: $out"
out=$("$cifar" "${base[@]}" --ema -0.1 2>&1); rc=$?
[ $rc -eq 2 ] && echo "$out" | grep -q "outside \[0, 1)" || fail "--ema -0.1: exit $rc: $out"
out=$("$cifar" "${base[@]}" --ema 0.9 --swa-start 1 2>&1); rc=$?
[ $rc -eq 2 ] && echo "$out" | grep -q "choose one weight average" || fail "--ema with --swa-start: exit $rc: $out"
out=$("$cifar" "${base[@]}" --swa-start 3 2>&1); rc=$?
[ $rc -eq 2 ] && echo "$out" | grep -q "after the last epoch" || fail "--swa-start past the run: exit $rc: $out"
out=$("$cifar" "${base[@]}" --optim adamw-free 2>&1); rc=$?
[ $rc -ne 0 ] && echo "$out" | grep -q "unknown algorithm 'adamw-free'" || fail "unknown optimizer: exit $rc: $out"
cp "$work/ema.ckpt" "$work/ema.copy"
out=$("$cifar" "${base[@]}" --optimizer adam --lr 0.01 --schedule cosine --resume "$work/ema.copy" 2>&1); rc=$?
[ $rc -ne 0 ] && echo "$out" | grep -q "with a weight average" || fail "EMA checkpoint resumed without --ema: exit $rc: $out"
cmp "$work/ema.ckpt" "$work/ema.copy" || fail "the refused checkpoint was changed"
echo "ok: refusals: --ema 1.5 -> $(echo "$("$cifar" --ema 1.5 2>&1)" | head -1)"

# 6. the language model with Schedule-Free SGD and an EMA: exact resume (no BatchNorm there)
awk 'BEGIN { srand(7); split("the of and to in a is that for it as was with be by on not he this are or his", w, " ");
             for (i = 0; i < 4000; i++) { printf "%s", w[int(rand() * 22) + 1]; printf (i % 11 == 10) ? ".\n" : " " } }' \
  > "$work/corpus.txt"
small=(--data "$work/corpus.txt" --embed 16 --hidden 32 --layers 1 --seq-len 16 --batch 8 --threads 2 --seed 3
       --epochs 1 --max-steps 30 --eval-every 10 --optimizer sgd-sf --lr 0.5 --ema 0.9)
"$text" "${small[@]}" --checkpoint "$work/text.ckpt" > "$work/text.log" 2>&1 || { cat "$work/text.log"; fail "text: straight"; }
"$text" "${small[@]}" --max-steps 13 --checkpoint "$work/text.half.ckpt" > /dev/null 2>&1 || fail "text: first 13 steps"
"$text" "${small[@]}" --resume "$work/text.half.ckpt" --checkpoint "$work/text.half.ckpt" > "$work/text.resumed.log" 2>&1 \
  || { cat "$work/text.resumed.log"; fail "text: resumed"; }
cmp "$work/text.ckpt" "$work/text.half.ckpt" || fail "text: resumed differs from straight"
grep -q "(EMA 0.9 of the weights)" "$work/text.log" || fail "text: the evaluation does not name the average"
"$text" --data "$work/corpus.txt" --embed 16 --hidden 32 --layers 1 --seq-len 16 --batch 8 --threads 2 --max-steps 5 \
  --optimizer adamw-sf > "$work/text.sf.log" 2>&1 || { cat "$work/text.sf.log"; fail "text: adamw-sf"; }
"$text" --data "$work/corpus.txt" --embed 16 --hidden 32 --layers 1 --seq-len 16 --batch 8 --threads 2 --max-steps 5 \
  --optimizer muon > "$work/text.muon.log" 2>&1 || { cat "$work/text.muon.log"; fail "text: muon"; }
grep -q "(Schedule-Free x)" "$work/text.sf.log" || fail "text: adamw-sf does not evaluate x"
echo "ok: train_text: sgd-sf + EMA resumes bit-exactly; adamw-sf evaluates x"
echo "all ok"
