#!/usr/bin/env bash
# Issue 19, command lines: every example program and benchmark parses its options from one
# table with getopt_long (examples/common/cli.c). For each program built from examples/*.c
# and bench/*.c (quickstart aside: it takes no options and is the README's verbatim copy):
#   - --help exits 0 and lists every option of its table (the tables are read from the
#     sources: the program's own, plus run.c's and cli.c's for the trainers);
#   - --opt=value and --opt value are the same (--print-config shows the value either way);
#   - a bad value names the option and the accepted range;
#   - an unknown option, a missing argument, a value given to a flag and an abbreviation
#     exit nonzero (2) naming the option;
#   - train_cifar10 trains for a few steps with --lr=0.1 on the built-in synthetic data.
#   cli_options.sh SOURCE_DIR EXAMPLES_BIN_DIR BENCH_BIN_DIR WORKDIR
set -uo pipefail
src=$1
ex=$2
be=$3
work=$4
rm -rf "$work"; mkdir -p "$work"
fail() { echo "FAIL: $*"; exit 1; }

# The option names in a table: entries open with CLI_O("--name", {"--name" or another
# upper-case entry macro's ("--name" (cli.c's OPT_X).
table_names() { grep -ohE '(\<[A-Z_]+\(|\{)"--[a-z0-9-]+"' "$@" | grep -oE -- '--[a-z0-9-]+' | sort -u; }

# expect_fail NAME WHAT PATTERN ARGS...: exit 2, stderr "error: ..." matching PATTERN
expect_fail() {
  local name=$1 what=$2 pat=$3; shift 3
  local err rc
  err=$("$@" 2>&1 >/dev/null); rc=$?
  [ $rc -eq 2 ] || fail "$name $what: exit $rc (expected 2): $err"
  grep -q "^error: " <<<"$err" || fail "$name $what: no 'error:' line: $err"
  grep -qF -- "$pat" <<<"$err" || fail "$name $what: the message does not say '$pat': $err"
  echo "ok: $name $what -> $err"
}

# check NAME BIN "TABLE SOURCES" OPT VALUE EXPECT FLAG BADVALUE RANGE [ARGS...]
#   OPT VALUE: a valued option; EXPECT: what --print-config then prints; FLAG: a flag;
#   BADVALUE: a value of OPT out of range or not a number; RANGE: in the message
check() {
  local name=$1 bin=$2 srcs=$3 opt=$4 val=$5 expect=$6 flag=$7 bad=$8 range=$9; shift 9
  local extra=("$@") help rc names n=0
  [ -x "$bin" ] || fail "$name: no binary $bin"
  # --help: exit 0, every option of the table on a line of its own
  help=$("$bin" --help); rc=$?
  [ $rc -eq 0 ] || fail "$name --help: exit $rc"
  # shellcheck disable=SC2086
  names=$(table_names $srcs)
  [ -n "$names" ] || fail "$name: no option table found in $srcs"
  for o in $names; do
    grep -qE -- "^  $o( |$)" <<<"$help" || fail "$name --help does not list $o"
    n=$((n + 1))
  done
  for o in --help --print-config; do grep -qE -- "(^  |, )$o( |$)" <<<"$help" || fail "$name --help lacks $o"; done
  [ "$("$bin" -h)" = "$help" ] || fail "$name: -h differs from --help"
  echo "ok: $name --help lists the $n options of its table"
  # --opt=value == --opt value
  local a b
  a=$("$bin" "${extra[@]}" "$opt=$val" --print-config 2>&1) || fail "$name $opt=$val --print-config: $a"
  b=$("$bin" "${extra[@]}" "$opt" "$val" --print-config 2>&1) || fail "$name $opt $val --print-config: $b"
  [ "$a" = "$b" ] || fail "$name: '$opt=$val' and '$opt $val' differ: '$a' vs '$b'"
  grep -qF -- "$expect" <<<"$a" || fail "$name $opt=$val: --print-config does not show '$expect': $a"
  local d
  d=$("$bin" "${extra[@]}" --print-config 2>&1) || fail "$name --print-config: $d"
  [ "$a" != "$d" ] || fail "$name $opt=$val: --print-config shows the same as without it"
  echo "ok: $name $opt=$val and $opt $val -> '$expect'"
  # errors, each naming the option
  expect_fail "$name" "$opt=$bad" "$opt: '$bad' is not $range" "$bin" "${extra[@]}" "$opt=$bad"
  expect_fail "$name" "$opt $bad" "$opt: '$bad' is not $range" "$bin" "${extra[@]}" "$opt" "$bad"
  expect_fail "$name" "unknown option" "unknown option '--no-such-option'" "$bin" "${extra[@]}" --no-such-option 1
  expect_fail "$name" "unknown option=value" "unknown option '--no-such-option'" "$bin" "${extra[@]}" --no-such-option=1
  expect_fail "$name" "missing argument" "$opt needs a value" "$bin" "${extra[@]}" "$opt"
  expect_fail "$name" "value to a flag" "$flag takes no value" "$bin" "${extra[@]}" "$flag=1"
  expect_fail "$name" "abbreviation" "did you mean $flag?" "$bin" "${extra[@]}" "${flag%?}"
  expect_fail "$name" "positional argument" "unexpected argument 'stray'" "$bin" "${extra[@]}" stray
  expect_fail "$name" "short option" "unknown option '-q'" "$bin" "${extra[@]}" -q
}

common="$src/examples/common/run.c $src/examples/common/cli.c"
covered=" quickstart "
check train_cifar10 "$ex/train_cifar10" "$src/examples/train_cifar10.c $common" \
  --lr 0.05 " lr=0.05 " --no-augment x "a number in [-1e+30, 1e+30]"
covered+="train_cifar10 "
check train_text "$ex/train_text" "$src/examples/train_text.c $common" \
  --hidden 48 " hidden=48 " --zero 0 "an integer in [1, 65536]" --data "$work/none.txt"
covered+="train_text "
check compare_optimizers "$ex/compare_optimizers" "$src/examples/compare_optimizers.c" \
  --seed 7 "seed: 7" --quick -1 "an integer in [0, 2147483647]"
covered+="compare_optimizers "
check bench_optim "$be/bench_optim" "$src/bench/bench_optim.c" --reps 3 "--reps 3" --torch 0 "an integer in [1, 1000000]"
check bench_clip "$be/bench_clip" "$src/bench/bench_clip.c" --params 4096 "--params 4096" --torch 0 "an integer in [1, 4000000000]"
check bench_ckpt "$be/bench_ckpt" "$src/bench/bench_ckpt.c" --reps 2 "--reps 2" --quick 0 "an integer in [1, 1000000]"
check bench_data "$be/bench_data" "$src/bench/bench_data.c" --batches 9 "--batches 9" --quick 0.5 "an integer in [1, 1000000000]"
check bench_rnn "$be/bench_rnn" "$src/bench/bench_rnn.c" --iters 4 "--iters 4" --torch 1e3 "an integer in [1, 1000000]"
check bench_train "$be/bench_train" "$src/bench/bench_train.c" --iters 4 "--iters 4" --conv-paths -2 "an integer in [1, 1000000]"
covered+="bench_optim bench_clip bench_ckpt bench_data bench_rnn bench_train "
if [ -x "$be/bench_dist" ]; then
  check bench_dist "$be/bench_dist" "$src/bench/bench_dist.c" --repeat 5 "--repeat 5" --quick 2x "an integer in [0, 1000000]" \
    --mode threads
else
  echo "note: bench_dist not built (no MPI): not checked"
fi
covered+="bench_dist "

# every program built from examples/*.c and bench/*.c is covered above
for f in "$src"/examples/*.c "$src"/bench/*.c; do
  p=$(basename "$f" .c)
  case "$covered" in *" $p "*) ;; *) fail "$p ($f) is not checked here: add it" ;; esac
done

# a tiny real run with --lr=0.1 on the built-in synthetic data: the value reaches training
out=$("$ex/train_cifar10" --lr=0.1 --synthetic-size=200 --val-split=100 --batch=20 --epochs=1 --max-steps=2 \
      --width=0.25 --threads=1 --schedule=constant 2>&1); rc=$?
[ $rc -eq 0 ] || { echo "$out"; fail "train_cifar10 --lr=0.1 tiny run: exit $rc"; }
grep -q "^config: .* lr=0.1 " <<<"$out" || fail "train_cifar10 --lr=0.1: the config line does not say lr=0.1: $out"
grep -q "^summary:" <<<"$out" || fail "train_cifar10 --lr=0.1: no summary: $out"
echo "ok: train_cifar10 --lr=0.1 (=-form options only) trained: $(grep -m1 'optimizer steps' <<<"$out")"
echo "all command-line checks passed"
