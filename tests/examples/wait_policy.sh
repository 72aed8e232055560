#!/usr/bin/env bash
# The example programs default OpenMP's wait policy to passive (examples/common/wait_policy.h)
# and leave a policy the user chose alone. libgomp prints its settings with
# OMP_DISPLAY_ENV=verbose each time it starts: a re-executed program prints them twice, the
# second time with the passive policy's spin count of 0.
#   wait_policy.sh TRAIN_CIFAR10
set -euo pipefail
prog=$1
out=$(env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT OMP_DISPLAY_ENV=verbose "$prog" --print-config 2>&1)
last=$(grep "GOMP_SPINCOUNT" <<<"$out" | tail -1)
grep -q "GOMP_SPINCOUNT = '0'" <<<"$last" || { echo "FAIL: no policy set: want spin count 0, got: $last"; exit 1; }
grep -q "^config:" <<<"$out" || { echo "FAIL: the re-executed program did not run: $out"; exit 1; }
out=$(env -u GOMP_SPINCOUNT OMP_WAIT_POLICY=active OMP_DISPLAY_ENV=verbose "$prog" --print-config 2>&1)
n=$(grep -c "GOMP_SPINCOUNT" <<<"$out")
[ "$n" = 1 ] || { echo "FAIL: OMP_WAIT_POLICY=active: want one start, saw $n"; exit 1; }
grep -q "OMP_WAIT_POLICY = 'ACTIVE'" <<<"$out" || { echo "FAIL: the user's policy was replaced: $out"; exit 1; }
echo "ok: passive by default (re-executed once), the user's OMP_WAIT_POLICY kept"
