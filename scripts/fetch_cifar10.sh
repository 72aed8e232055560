#!/usr/bin/env bash
# Download the official CIFAR-10 binary archive, check its MD5 and extract the .bin files.
#   scripts/fetch_cifar10.sh DEST
# Needs internet and curl or wget. Afterwards DEST holds data_batch_1..5.bin, test_batch.bin
# and batches.meta.txt. Exits non-zero with a message if anything fails; DEST is only
# written once the archive is complete and verified.
set -euo pipefail

URL=https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz
MD5=c32a1d4ab5d03f1284b67883e8d87530

die() { echo "fetch_cifar10: $*" >&2; exit 1; }

[ $# -eq 1 ] || { echo "usage: $0 DEST" >&2; exit 2; }
dest=$1

if [ -f "$dest/data_batch_1.bin" ] && [ -f "$dest/test_batch.bin" ]; then
  echo "CIFAR-10 already present in $dest"; exit 0
fi
mkdir -p "$dest" || die "cannot create $dest"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/cifar10.XXXXXX") || die "cannot create a temporary directory"
trap 'rm -rf "$tmp"' EXIT
archive=$tmp/cifar-10-binary.tar.gz

echo "downloading $URL (about 170 MB)"
if command -v curl >/dev/null 2>&1; then
  curl -fsSL --retry 2 --connect-timeout 20 -o "$archive" "$URL" \
    || die "download failed (no internet access?): $URL. Download it elsewhere and unpack it into $dest, or use the library's synthetic dataset."
elif command -v wget >/dev/null 2>&1; then
  wget -q --tries=2 --timeout=20 -O "$archive" "$URL" \
    || die "download failed (no internet access?): $URL. Download it elsewhere and unpack it into $dest, or use the library's synthetic dataset."
else
  die "neither curl nor wget is installed"
fi

got=$(md5sum "$archive" | cut -d' ' -f1)
[ "$got" = "$MD5" ] || die "MD5 mismatch: got $got, expected $MD5 (corrupt or changed download)"

tar -xzf "$archive" -C "$tmp" || die "cannot extract $archive"
src=$tmp/cifar-10-batches-bin
for f in data_batch_1.bin data_batch_2.bin data_batch_3.bin data_batch_4.bin data_batch_5.bin test_batch.bin; do
  [ -f "$src/$f" ] || die "the archive has no $f"
  size=$(wc -c < "$src/$f")
  [ "$size" -eq 30730000 ] || die "$f is $size bytes, expected 30730000"
done
for f in "$src"/*.bin "$src"/batches.meta.txt; do
  [ -e "$f" ] && mv -f "$f" "$dest/"
done
echo "CIFAR-10 ready in $dest"
