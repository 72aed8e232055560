#!/usr/bin/env bash
# The README's "Your own model" tutorial, run as the README prints it: make_data.py writes the
# NumPy arrays, the tutorial program (built from the README's block by CMake) trains 3 epochs,
# is started again for epochs 4-6 from its checkpoint, and must end with the same weights,
# bit for bit, as a run of 6 epochs in one go; then check_torch.py loads the exported weights
# into the same model in PyTorch and compares the logits. Exit 77 (skipped) without numpy; the
# PyTorch step is skipped, saying so, without torch.
#   run.sh PYTHON TUTORIAL_BIN BLOCKS_DIR WORKDIR
set -euo pipefail
py=$1 bin=$2 blocks=$3 work=$4
"$py" -c "import numpy" 2>/dev/null || { echo "skipped: $py has no numpy (scripts/setup.sh --torch)"; exit 77; }
rm -rf "$work"; mkdir -p "$work/resumed" "$work/straight"
(cd "$work/resumed" && "$py" "$blocks/make_data.py")
cp "$work/resumed/x.npy" "$work/resumed/y.npy" "$work/straight/"
(cd "$work/resumed" && "$bin" . 3 > log1 && "$bin" . 6 > log2)
(cd "$work/straight" && "$bin" . 6 > log)
cat "$work/resumed/log1" "$work/resumed/log2"
grep -q "resumed after epoch 3" "$work/resumed/log2" || { echo "FAIL: the second run did not resume"; exit 1; }
for want in fc1 act1 prelu fc2 "Total params"; do
  grep -q "$want" "$work/resumed/log1" || { echo "FAIL: the summary lacks '$want'"; exit 1; }
done
first=$(grep "epoch 1:" "$work/resumed/log1" | awk '{print $4}')
last=$(grep "epoch 6:" "$work/resumed/log2" | awk '{print $4}')
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < 0.5 * a) }' || { echo "FAIL: loss $first -> $last did not fall"; exit 1; }
cmp "$work/resumed/model.safetensors" "$work/straight/model.safetensors" ||
  { echo "FAIL: 3 + 3 epochs through the checkpoint differ from 6 in one go"; exit 1; }
echo "ok: resumed run bit-identical to the uninterrupted one (loss $first -> $last)"
if "$py" -c "import torch" 2>/dev/null; then
  (cd "$work/resumed" && "$py" "$blocks/check_torch.py")
else
  echo "PyTorch step skipped: $py has no torch (scripts/setup.sh --torch)"
fi
