#!/usr/bin/env bash
# Every global symbol defined in libgradopt.a must start with gopt_ (style rule 1).
set -euo pipefail
lib=$1
bad=$(nm -g --defined-only "$lib" | awk 'NF==3 {print $3}' | grep -v '^gopt_' || true)
if [ -n "$bad" ]; then
  echo "symbols without the gopt_ prefix in $lib:"; echo "$bad"; exit 1
fi
echo "all $(nm -g --defined-only "$lib" | awk 'NF==3' | wc -l) global symbols are gopt_-prefixed"
