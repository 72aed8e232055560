#!/usr/bin/env bash
# Install what libgradopt needs to build, test and benchmark, on Debian/Ubuntu.
# Does nothing when everything is already present. Needs root or sudo only to install.
#   scripts/setup.sh          build + test dependencies
#   scripts/setup.sh --torch  also python3-torch, the peer the benchmarks compare against
#   scripts/setup.sh --mpi    also Open MPI (libopenmpi-dev, openmpi-bin): gradopt/dist.h and its tests
#   scripts/setup.sh --fuzz   also clang with libFuzzer and its OpenMP (scripts/fuzz.sh), and valgrind
set -euo pipefail
pkgs=(cmake gcc make libopenblas-openmp-dev libcmocka-dev pkg-config xz-utils python3)
for arg in "$@"; do
  case "$arg" in
    --torch) pkgs+=(python3-torch python3-numpy) ;;           # the benchmarks' peer
    --mpi) pkgs+=(libopenmpi-dev openmpi-bin) ;;              # data-parallel training and its tests
    --fuzz) pkgs+=(clang libclang-rt-dev libomp-dev valgrind) ;; # scripts/fuzz.sh, scripts/valgrind.sh
    *) echo "setup: unknown option '$arg' (expected --torch, --mpi, --fuzz)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "setup: installing ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1; then
  sudo=(sudo)
else
  echo "setup: need root or sudo to install: ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
