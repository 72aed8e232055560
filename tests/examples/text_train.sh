#!/usr/bin/env bash
# train_text end to end on a small generated text:
#   - a few seconds of training ends with `val loss X` as the last line, X finite and below
#     the loss of a uniform guess;
#   - exact resume, for random windows and for contiguous streams (the carried state): N
#     steps straight == k steps, checkpoint, a new process resuming to N (byte-identical
#     checkpoints, the same final line and sample). Without dropout: the recurrent layers'
#     dropout RNG is not part of gopt_net_state yet;
#   - --test FILE reports test figures;
#   - bad input (missing, empty, binary, too short, a test file with a byte outside the
#     vocabulary) and checkpoints of another vocabulary or model fail cleanly: a message
#     naming the problem, a non-zero exit, and the checkpoint on disk unchanged.
#   text_train.sh BIN WORKDIR
set -uo pipefail
bin=$1
work=$2
rm -rf "$work"; mkdir -p "$work"
fail() { echo "FAIL: $*"; exit 1; }

# ~40 KB of deterministic text over a small alphabet
awk 'BEGIN { srand(7); split("the of and to in a is that for it as was with be by on not he this are or his from at which but have an they you were", w, " ");
             for (i = 0; i < 6000; i++) { printf "%s", w[int(rand() * 33) + 1]; printf (i % 11 == 10) ? ".\n" : " " } }' \
  > "$work/corpus.txt"
[ "$(wc -c < "$work/corpus.txt")" -gt 20000 ] || fail "corpus not built"
small=(--data "$work/corpus.txt" --embed 16 --hidden 32 --layers 2 --seq-len 32 --batch 8 --threads 2 --seed 3
       --sample 40)

# 1. a short timed run
out=$("$bin" "${small[@]}" --max-seconds 3 --eval-seconds 1 2>&1); rc=$?
[ $rc -eq 0 ] || { echo "$out"; fail "timed run: exit $rc"; }
last=$(echo "$out" | tail -n 1)
echo "$last" | grep -Eq '^val loss [0-9]+\.[0-9]+$' || fail "last line is not 'val loss X': '$last'"
vocab=$(echo "$out" | sed -n 's/.*vocabulary of \([0-9]*\);.*/\1/p' | head -1)
awk -v l="$(echo "$last" | cut -d' ' -f3)" -v v="$vocab" 'BEGIN { exit !(l > 0 && l < log(v)) }' \
  || fail "val loss $(echo "$last" | cut -d' ' -f3) is not below ln($vocab)"
echo "$out" | grep -q "^sample (40 characters" || fail "no sample printed"
echo "ok: 3 s run -> $last (uniform guess: ln $vocab), sample printed"

# 2. exact resume, random windows and streams
for order in random streams; do
  # dropout between the LSTM layers: its random stream is part of the net's saved state
  common=("${small[@]}" --order "$order" --epochs 3 --schedule cosine --warmup 0.2 --dropout 0.25
          --log "$work/$order.csv")
  "$bin" "${common[@]}" --max-steps 24 --checkpoint "$work/$order-straight.ckpt" > "$work/$order-straight.log" 2>&1 \
    || { cat "$work/$order-straight.log"; fail "$order: straight run"; }
  "$bin" "${common[@]}" --max-steps 11 --checkpoint "$work/$order-half.ckpt" > "$work/$order-half.log" 2>&1 \
    || fail "$order: first part"
  cp "$work/$order-half.ckpt" "$work/$order-resumed.ckpt"
  "$bin" "${common[@]}" --max-steps 24 --resume "$work/$order-resumed.ckpt" --checkpoint "$work/$order-resumed.ckpt" \
    > "$work/$order-resumed.log" 2>&1 || { cat "$work/$order-resumed.log"; fail "$order: resumed run"; }
  grep -q "resumed from" "$work/$order-resumed.log" || fail "$order: no resume message"
  cmp "$work/$order-straight.ckpt" "$work/$order-resumed.ckpt" || fail "$order: resumed checkpoint differs"
  a=$(grep -v '^  [0-9]* optimizer steps' "$work/$order-straight.log" | grep -E '^(val loss|  best)')
  b=$(grep -v '^  [0-9]* optimizer steps' "$work/$order-resumed.log" | grep -E '^(val loss|  best)')
  [ "$a" = "$b" ] || fail "$order: final lines differ: '$a' vs '$b'"
  sa=$(sed -n '/^sample/,/^summary/p' "$work/$order-straight.log"); sb=$(sed -n '/^sample/,/^summary/p' "$work/$order-resumed.log")
  [ "$sa" = "$sb" ] || fail "$order: samples differ"
  echo "ok: $order: 24 steps straight == 11 steps + resume (byte-identical checkpoints, $(tail -n 1 "$work/$order-resumed.log"))"
done

# 3. --test FILE: test figures
head -c 5000 "$work/corpus.txt" > "$work/heldout.txt"
out=$("$bin" "${small[@]}" --max-steps 3 --test "$work/heldout.txt" 2>&1); rc=$?
[ $rc -eq 0 ] || { echo "$out"; fail "--test run: exit $rc"; }
echo "$out" | tail -n 1 | grep -Eq '^test loss [0-9.]+$' || fail "--test: last line is not 'test loss X'"
echo "$out" | grep -q "| test loss" || fail "--test: evaluation lines do not say test"
echo "$out" | grep -q "val loss" && fail "--test: a held-out file's figures are called validation"
echo "ok: --test -> $(echo "$out" | tail -n 1)"

# 4. bad input: clear error, non-zero exit
expect_error() { # name, pattern, args...
  local name=$1 pat=$2; shift 2
  local o rc
  o=$("$bin" "$@" 2>&1); rc=$?
  [ $rc -ne 0 ] && [ $rc -lt 128 ] || fail "$name: exit $rc"
  echo "$o" | grep -q "error: .*$pat" || fail "$name: no clear error ('$pat'): $o"
  echo "ok: $name -> $(echo "$o" | grep error: | head -1)"
}
rest=(--embed 16 --hidden 32 --layers 1 --seq-len 32 --batch 8 --max-steps 2)
expect_error "missing file" "cannot open '$work/nope.txt'" --data "$work/nope.txt" "${rest[@]}"
: > "$work/empty.txt"
expect_error "empty file" "empty.txt' is empty" --data "$work/empty.txt" "${rest[@]}"
printf 'hello world, this is text\000and this is not\n' > "$work/binary.txt"
expect_error "binary file" "not text: a NUL byte at offset 25" --data "$work/binary.txt" "${rest[@]}"
head -c 30 "$work/corpus.txt" > "$work/short.txt"
expect_error "too short" "fewer than one sequence of 32 + 1" --data "$work/short.txt" "${rest[@]}"
printf 'the ~ of\n' > "$work/badtest.txt"
expect_error "test byte outside the vocabulary" "byte 0x7e ('~') at offset 4 is not in the vocabulary" \
  --data "$work/corpus.txt" --test "$work/badtest.txt" "${rest[@]}"
expect_error "no --data" "--data FILE is required" "${rest[@]}"

# 5. checkpoints of another vocabulary or model are refused and stay intact
tr 'e' 'E' < "$work/corpus.txt" > "$work/other.txt" # same size of vocabulary, another symbol
cp "$work/random-half.ckpt" "$work/keep.ckpt"
expect_error "checkpoint of another vocabulary" "another vocabulary.*expected" \
  --data "$work/other.txt" "${small[@]:2}" --order random --epochs 3 --schedule cosine --warmup 0.2 \
  --resume "$work/keep.ckpt" --checkpoint "$work/keep.ckpt"
cmp "$work/keep.ckpt" "$work/random-half.ckpt" || fail "a refused checkpoint was changed"
expect_error "checkpoint of another model" "does not fit" \
  "${small[@]}" --hidden 48 --order random --epochs 3 --schedule cosine --warmup 0.2 \
  --resume "$work/keep.ckpt" --checkpoint "$work/keep.ckpt"
cmp "$work/keep.ckpt" "$work/random-half.ckpt" || fail "a refused checkpoint was changed"
expect_error "checkpoint of another batch order" "does not fit this run: .*order" \
  "${small[@]}" --order random --epochs 3 --schedule cosine --warmup 0.2 \
  --resume "$work/streams-half.ckpt"
echo "all train_text checks passed"
