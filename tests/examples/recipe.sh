#!/usr/bin/env bash
# train_cifar10's time-to-accuracy recipes and the airbench net (issue 18): what --recipe
# fast / 30min resolve to, options given overriding them, wrong values refused by name; an
# airbench run with flip test-time augmentation and an EMA resumed bit-exactly in a new
# process; its checkpoint refused by a ResNet.
set -uo pipefail
bin=$1
work=$2
rm -rf "$work"; mkdir -p "$work"
fail() { echo "FAIL: $*"; exit 1; }
has() { echo "$1" | grep -q -- "$2" || fail "expected '$2' in: $1"; }

out=$("$bin" --recipe fast --data /nonexistent --print-config 2>&1) || fail "--recipe fast --print-config: $out"
for kv in "recipe=fast " "arch=airbench " "width=0.5 " "tta=1 " "epochs=13 " "batch=256 " "optimizer=muon " "lr=0.02 " \
          "momentum=0.95 " "nesterov=1 " "wd=0.1 " "adamw_lr_ratio=0.1 " "schedule=onecycle " "label_smoothing=0.2 " \
          "val_split=5000"; do has "$out" "$kv"; done
out=$("$bin" --recipe 30min --data /nonexistent --print-config 2>&1) || fail "--recipe 30min: $out"
for kv in "recipe=30min " "arch=airbench " "width=1 " "epochs=13 " "optimizer=muon " "tta=1 " "batch=256 " "val_split=5000"; do has "$out" "$kv"; done
out=$("$bin" --recipe fast --arch resnet20 --epochs 3 --batch 64 --lr 0.1 --label-smoothing 0 --val-split 100 \
      --data /nonexistent --print-config 2>&1) || fail "overrides: $out"
for kv in "arch=resnet20 " "width=1 " "epochs=3 " "batch=64 " "lr=0.1 " "label_smoothing=0 " "val_split=100" "tta=1 "; do
  has "$out" "$kv"; done
out=$("$bin" --recipe=fast --optim sgd --momentum 0.8 --print-config 2>&1) || fail "--recipe with SGD: $out"
for kv in "optimizer=sgd " "lr=0.4 " "momentum=0.8 " "nesterov=1 " "wd=0.0005 " "epochs=13 "; do has "$out" "$kv"; done
out=$("$bin" --recipe 30min --ns-steps 3 --print-config 2>&1) || fail "--recipe with a Muon option: $out"
has "$out" "optimizer=muon .*ns_steps=3 "
echo "ok: --recipe fast and 30min resolve as documented, given options override them"

out=$("$bin" --recipe slow 2>&1); rc=$?
[ $rc -eq 2 ] || fail "--recipe slow: exit $rc"
has "$out" "--recipe: 'slow' is not fast or 30min"
out=$("$bin" --arch airbench --width 0.005 --synthetic-size 400 --epochs 1 2>&1); rc=$?
[ $rc -eq 2 ] || fail "airbench of width 0.005: exit $rc"
has "$out" "--width: '0.005' is not a number in \[0.05, 16\]"
out=$("$bin" --arch airbench7 2>&1); rc=$?
[ $rc -eq 2 ] || fail "--arch airbench7: exit $rc"
has "$out" "--arch: 'airbench7' is not airbench"
echo "ok: a wrong recipe, width or arch is refused by name (the trainer's own refusal: test_cifar_task)"

common=(--arch airbench --width 0.125 --tta --ema 0.9 --synthetic-size 1200 --batch 64 --epochs 2 --threads 2
        --seed 5)
"$bin" "${common[@]}" --checkpoint "$work/straight.ckpt" > "$work/straight.log" 2>&1 \
  || { cat "$work/straight.log"; fail "airbench straight run"; }
grep -q "tta=1" "$work/straight.log" || fail "no tta=1 in the run's config"
"$bin" "${common[@]}" --max-steps 9 --checkpoint "$work/half.ckpt" > /dev/null 2>&1 || fail "airbench first part"
cp "$work/half.ckpt" "$work/resumed.ckpt"
"$bin" "${common[@]}" --resume "$work/resumed.ckpt" --checkpoint "$work/resumed.ckpt" > "$work/resumed.log" 2>&1 \
  || { cat "$work/resumed.log"; fail "airbench resumed run"; }
cmp "$work/straight.ckpt" "$work/resumed.ckpt" || fail "airbench: resumed run differs from the straight run"
a=$(grep "best validation accuracy" "$work/straight.log"); b=$(grep "best validation accuracy" "$work/resumed.log")
[ -n "$a" ] && [ "$a" = "$b" ] || fail "airbench: best accuracy '$a' vs resumed '$b'"
echo "ok: airbench + tta + EMA: 2 epochs straight == 9 steps + resume (byte-identical checkpoints; $a)"

out=$("$bin" --synthetic-size 1200 --arch resnet8 --width 0.125 --ema 0.9 --batch 64 --epochs 2 --resume "$work/half.ckpt" 2>&1)
rc=$?
[ $rc -ne 0 ] && [ $rc -lt 128 ] || fail "airbench checkpoint into a ResNet: exit $rc"
has "$out" "'stem.conv.weight' in the state, 'conv1.weight' in the arena"
echo "ok: an airbench checkpoint resumed as a ResNet -> $(echo "$out" | grep error: | head -1)"
