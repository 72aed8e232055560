#!/usr/bin/env bash
# train_cifar10 and train_text under mpirun (issue 14), on the built-in synthetic images and
# a generated text:
#   (a) rank 0 alone prints: one config line, one progress line per epoch end, one summary;
#   (b) 2 ranks: k steps, checkpoint, a new 2-rank job resuming to n == n steps straight
#       (byte-identical final checkpoints), with DDP, with ZeRO-1 + SyncBatchNorm, and for
#       the text model with carried streams (each rank's streams gathered into the file);
#   (c) a 2-rank checkpoint resumed by 1 process fails naming both world sizes;
#   (d) --batch 32 over 3 processes fails naming both numbers;
#   (e) ranks started with different options (MPMD) are refused at start;
#   (f) 2 ranks x 16 with SyncBatchNorm take the first steps of 1 process x 32, and 2 text
#       ranks x 4 streams those of 1 x 8: the same losses, gradient norms and validation
#       figures to 1e-4 (the same samples, crops and statistics; sums in another order).
#   dist_train.sh MPIEXEC TRAIN_CIFAR10 TRAIN_TEXT WORKDIR
set -uo pipefail
mpiexec=$1
cifar=$2
text=$3
work=$4
rm -rf "$work"; mkdir -p "$work"
fail() { echo "FAIL: $*"; exit 1; }
# as root Open MPI needs --allow-run-as-root; --oversubscribe: 3 ranks on 2 cores
# plug-ins stay loaded so that LeakSanitizer can name what Open MPI keeps until exit
mpi=("$mpiexec" --allow-run-as-root --oversubscribe --mca mca_base_component_disable_dlclose 1)

common=(--synthetic-size 600 --val-split 100 --arch resnet8 --width 0.25 --batch 32 --epochs 2 --threads 1
        --seed 5 --optimizer adam --lr 0.01 --clip-norm 1 --schedule onecycle)

# (a) + (b): DDP, then ZeRO-1 with SyncBatchNorm (SGD with momentum: its state is sharded)
for mode in ddp zero; do
  extra=()
  [ $mode = zero ] && extra=(--zero --sync-bn --optimizer sgd --momentum 0.9 --lr 0.05)
  run=("${mpi[@]}" -np 2 "$cifar" "${common[@]}" "${extra[@]}")
  "${run[@]}" --max-steps 20 --checkpoint "$work/$mode-straight.ckpt" > "$work/$mode-straight.log" 2>&1 \
    || { cat "$work/$mode-straight.log"; fail "$mode: straight 2-rank run"; }
  "${run[@]}" --max-steps 8 --checkpoint "$work/$mode-half.ckpt" > "$work/$mode-half.log" 2>&1 \
    || { cat "$work/$mode-half.log"; fail "$mode: first part"; }
  cp "$work/$mode-half.ckpt" "$work/$mode-resumed.ckpt"
  "${run[@]}" --max-steps 20 --resume "$work/$mode-resumed.ckpt" --checkpoint "$work/$mode-resumed.ckpt" \
    > "$work/$mode-resumed.log" 2>&1 || { cat "$work/$mode-resumed.log"; fail "$mode: resumed run"; }
  cmp "$work/$mode-straight.ckpt" "$work/$mode-resumed.ckpt" \
    || fail "$mode: 8 steps + resume to 20 differs from 20 steps straight"
  log=$work/$mode-straight.log
  [ "$(grep -c '^config: ' "$log")" = 1 ] || fail "$mode: the config line is not printed once: $(cat "$log")"
  [ "$(grep -c '^epoch 1/2 15/15 ' "$log")" = 1 ] || fail "$mode: the epoch-end progress line is not printed once"
  [ "$(grep -c '^summary: ' "$log")" = 1 ] || fail "$mode: the summary is not printed once"
  grep -q '^data parallel: 2 processes x 16 images per step' "$log" || fail "$mode: no data-parallel line"
  grep -q "^resumed from .* step 8" "$work/$mode-resumed.log" || fail "$mode: no resume message"
  echo "ok: $mode: rank 0 alone prints; 8 steps + resume == 20 steps straight on 2 ranks (byte-identical checkpoints)"
done

# (c) a 2-rank checkpoint and one process
out=$("${mpi[@]}" -np 1 "$cifar" "${common[@]}" --max-steps 20 --resume "$work/ddp-half.ckpt" 2>&1); rc=$?
[ $rc -ne 0 ] || fail "a 2-rank checkpoint resumed by 1 process: exit 0"
echo "$out" | grep -q "error: checkpoint '.*ddp-half.ckpt' was written by a run of 2 processes and this run has 1" \
  || fail "2-rank checkpoint on 1 process: no clear error: $out"
echo "ok: 2-rank checkpoint on 1 process -> $(echo "$out" | grep error: | head -1)"

# (d) a batch that does not divide over the ranks: every rank says so
out=$("${mpi[@]}" -np 3 "$cifar" "${common[@]}" --max-steps 2 2>&1); rc=$?
[ $rc -ne 0 ] || fail "--batch 32 on 3 processes: exit 0"
# (every rank refuses with exit 2 and prints it, but mpirun may end the others as soon as
# one exits non-zero, before their lines are forwarded: rank 0's line is required)
echo "$out" | grep -q "^rank 0: error: --batch 32 does not divide over the 3 processes" \
  || fail "--batch 32 on 3 processes: no clear error from rank 0: $out"
echo "ok: --batch 32 on 3 processes -> $(echo "$out" | grep '^rank 0: error:' | head -1)"

# (e) ranks with different options
out=$("${mpi[@]}" -np 1 "$cifar" "${common[@]}" --max-steps 2 : -np 1 "$cifar" "${common[@]}" --max-steps 2 \
      --label-smoothing 0.2 2>&1); rc=$?
[ $rc -ne 0 ] || fail "ranks with different options: exit 0"
echo "$out" | grep -q "error: .*rank 1" || fail "ranks with different options: no error naming rank 1: $out"
echo "ok: ranks with different options -> $(echo "$out" | grep 'error:' | head -1)"

# (f) 2 x 16 with SyncBatchNorm == 1 x 32, step by step (the per-step CSV of rank 0): loss,
# gradient norm, and the validation loss and accuracy at the end (sharded, then reduced)
same_steps() { # ONE.csv TWO.csv: columns 3 loss, 6 grad_norm, 9 val_loss, 10 val_acc within 1e-4
  paste -d, "$1" "$2" | awk -F, 'NR > 1 { split("3 6 9 10", cols, " "); for (k = 1; k <= 4; k++) { c = cols[k];
      a = $c; b = $(c + 11); d = a - b; if (d < 0) d = -d; m = a < 0 ? -a : a;
      if (a != b && d > 1e-4 * m) { printf "step %s column %d: %s (1 process) vs %s (2 ranks)\n", $1, c, a, b; bad = 1 } } }
      END { exit bad }'
}
"${mpi[@]}" -np 2 "$cifar" "${common[@]}" --sync-bn --max-steps 4 --log "$work/two.csv" > /dev/null 2>&1 \
  || fail "2-rank SyncBatchNorm run"
"$cifar" "${common[@]}" --max-steps 4 --log "$work/one.csv" > /dev/null 2>&1 || fail "1-process run"
same_steps "$work/one.csv" "$work/two.csv" || fail "2 ranks x 16 with SyncBatchNorm differ from 1 process x 32"
echo "ok: 2 ranks x 16 (SyncBatchNorm) == 1 process x 32 over 4 steps: losses $(cut -d, -f3 "$work/two.csv" | tail -n +2 | tr '\n' ' ')"

# (b) for the text model with carried state: the file holds every rank's streams
corpus=$work/corpus.txt
awk 'BEGIN { srand(7); split("the of and to in a is that for it as was with be by on not he this are or", w, " ");
             for (i = 0; i < 3000; i++) { printf "%s", w[int(rand() * 21) + 1]; printf (i % 11 == 10) ? ".\n" : " " } }' \
  > "$corpus"
small=(--data "$corpus" --embed 16 --hidden 32 --layers 1 --seq-len 16 --batch 8 --threads 1 --seed 3 --sample 0
       --order streams --epochs 2)
trun=("${mpi[@]}" -np 2 "$text" "${small[@]}")
"${trun[@]}" --max-steps 16 --checkpoint "$work/text-straight.ckpt" > "$work/text-straight.log" 2>&1 \
  || { cat "$work/text-straight.log"; fail "text: straight 2-rank run"; }
"${trun[@]}" --max-steps 7 --checkpoint "$work/text-resumed.ckpt" > /dev/null 2>&1 || fail "text: first part"
"${trun[@]}" --max-steps 16 --resume "$work/text-resumed.ckpt" --checkpoint "$work/text-resumed.ckpt" \
  > "$work/text-resumed.log" 2>&1 || { cat "$work/text-resumed.log"; fail "text: resumed run"; }
cmp "$work/text-straight.ckpt" "$work/text-resumed.ckpt" || fail "text: 7 steps + resume differs from 16 straight"
[ "$(tail -n 1 "$work/text-straight.log")" = "$(tail -n 1 "$work/text-resumed.log")" ] || fail "text: last lines differ"
echo "ok: text, carried streams: 7 steps + resume == 16 steps straight on 2 ranks ($(tail -n 1 "$work/text-resumed.log"))"
# and 2 ranks x 4 streams == 1 process x 8 streams, validation included
"${mpi[@]}" -np 2 "$text" "${small[@]}" --max-steps 4 --log "$work/text-two.csv" > /dev/null 2>&1 || fail "text: 2 ranks"
"$text" "${small[@]}" --max-steps 4 --log "$work/text-one.csv" > /dev/null 2>&1 || fail "text: 1 process"
same_steps "$work/text-one.csv" "$work/text-two.csv" || fail "text: 2 ranks x 4 differ from 1 process x 8"
echo "ok: text: 2 ranks x 4 streams == 1 process x 8 over 4 steps (val loss $(tail -n 1 "$work/text-two.csv" | cut -d, -f9))"
echo "all data-parallel example checks passed"
