#!/usr/bin/env bash
# Install the built library into a scratch prefix, then build and run a tiny consumer
# against the installed package twice: with find_package(gradopt) and with pkg-config.
set -euo pipefail
build=$1
work=$2
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$work"; mkdir -p "$work"
prefix=$work/prefix
cmake --install "$build" --prefix "$prefix" > "$work/install.log"

# Sanitizer builds leave instrumented objects in the archive: consumers link the same runtime.
san=$(grep -o 'GOPT_SANITIZE:STRING=[^ ]*' "$build/CMakeCache.txt" | cut -d= -f2 || true)
export GOPT_CONSUMER_SANITIZE="$san"

echo "== CMake consumer"
cmake -S "$here/consumer" -B "$work/cmake-build" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release > "$work/cmake.log"
cmake --build "$work/cmake-build" > "$work/cmake-build.log"
"$work/cmake-build/consumer"

echo "== pkg-config consumer"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig:$prefix/lib64/pkgconfig:$prefix/lib/x86_64-linux-gnu/pkgconfig"
flags=$(pkg-config --cflags --libs gradopt)
echo "cc consumer.c $flags"
extra=()
[ -n "$san" ] && extra=(-fsanitize="$san")
cc -std=c11 "${extra[@]}" "$here/consumer/consumer.c" $flags -o "$work/pc-consumer"
"$work/pc-consumer"
