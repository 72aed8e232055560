#!/usr/bin/env bash
# The README's code stays true: its copy of examples/quickstart.c is the file itself, and its
# training-step fragment compiles against the public headers.
#   readme_code.sh SOURCE_DIR CC WORKDIR
set -euo pipefail
src=$1 cc=$2 work=$3
mkdir -p "$work"
readme="$src/README.md"
# the first ```c block holds the quickstart, the second the training step
awk '/^```c$/{n++; on=1; next} /^```$/{on=0} on{print > (dir "/block" n ".c")}' dir="$work" "$readme"
[ -f "$work/block1.c" ] && [ -f "$work/block2.c" ] || { echo "README: expected two \`\`\`c blocks" >&2; exit 1; }
if ! diff -u "$src/examples/quickstart.c" "$work/block1.c"; then
  echo "README: the quickstart block differs from examples/quickstart.c (above)" >&2
  exit 1
fi
{
  echo '#include <gradopt.h>'
  echo 'int readme_step(gopt_tensor images, const int32_t *labels, int64_t steps);'
  echo 'int readme_step(gopt_tensor images, const int32_t *labels, int64_t steps) {'
  echo '    gopt_tensor logits, dlogits; float loss;'
  cat "$work/block2.c"
  echo '    return 0;'
  echo '}'
} > "$work/step.c"
"$cc" -std=c11 -Wall -Wextra -Werror -Wno-unused-variable -Wno-unused-but-set-variable \
  -fsyntax-only -I"$src/include" "$work/step.c"
echo "README code: quickstart identical, training-step fragment compiles"
