#!/usr/bin/env bash
# Download tiny-shakespeare (Karpathy's char-rnn corpus, 1,115,394 bytes) and check its
# SHA-256: the one in ../shared/data/tinyshakespeare/SHA256SUMS (beside the repository) when
# that file exists, else the same value recorded below.
#   scripts/fetch_tinyshakespeare.sh DEST
# Needs internet and curl or wget. Afterwards DEST/input.txt is the corpus. DEST/input.txt is
# only written once the download is complete and verified; an existing verified copy is kept.
set -euo pipefail

URL=https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt
SHA256=86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed

die() { echo "fetch_tinyshakespeare: $*" >&2; exit 1; }

sums="$(cd "$(dirname "$0")/.." && pwd)/../shared/data/tinyshakespeare/SHA256SUMS"
if [ -f "$sums" ]; then
  SHA256=$(awk '$2 == "input.txt" || $2 == "*input.txt" {print $1}' "$sums")
  [ -n "$SHA256" ] || die "$sums has no line for input.txt"
fi

[ $# -eq 1 ] || { echo "usage: $0 DEST" >&2; exit 2; }
dest=$1
command -v sha256sum >/dev/null 2>&1 || die "sha256sum is not installed"

if [ -f "$dest/input.txt" ]; then
  got=$(sha256sum "$dest/input.txt" | cut -d' ' -f1)
  if [ "$got" = "$SHA256" ]; then echo "tiny-shakespeare already present in $dest"; exit 0; fi
  die "$dest/input.txt exists but its SHA-256 is $got, expected $SHA256 (remove it to fetch again)"
fi
mkdir -p "$dest" || die "cannot create $dest"
tmp=$(mktemp "$dest/.input.txt.XXXXXX") || die "cannot create a temporary file in $dest"
trap 'rm -f "$tmp"' EXIT

echo "downloading $URL (about 1.1 MB)"
if command -v curl >/dev/null 2>&1; then
  curl -fsSL --retry 2 --connect-timeout 20 -o "$tmp" "$URL" \
    || die "download failed (no internet access?): $URL. Copy input.txt into $dest by other means."
elif command -v wget >/dev/null 2>&1; then
  wget -q --tries=2 --timeout=20 -O "$tmp" "$URL" \
    || die "download failed (no internet access?): $URL. Copy input.txt into $dest by other means."
else
  die "neither curl nor wget is installed"
fi

got=$(sha256sum "$tmp" | cut -d' ' -f1)
[ "$got" = "$SHA256" ] || die "SHA-256 mismatch: got $got, expected $SHA256 (corrupt or changed download)"
mv -f "$tmp" "$dest/input.txt"
trap - EXIT
echo "tiny-shakespeare ready in $dest/input.txt"
