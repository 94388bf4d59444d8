#!/usr/bin/env bash
# Fetch NVIDIA's NVRTC (the CUDA run-time compiler, CUDA 13.0) from PyPI, so
# that a machine without a GPU or CUDA toolkit can check that every kernel in
# kernels/**/*.cu compiles (kernels/tests/nvrtc.rs). NVRTC needs no GPU and no
# driver. Nothing here goes into git.
#
# usage: scripts/setup-nvrtc.sh [DIR]      (default <repo>/models/nvrtc)
# then:  LD_LIBRARY_PATH=DIR/lib cargo test -p dajia-kernels --features cuda --test nvrtc
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${1:-$REPO/models/nvrtc}"
PYTHON="${PYTHON:-python3}"
PKG="nvidia-cuda-nvrtc==13.0.88"
# The wheel's sha256 is the trust anchor: the libraries come out of it.
WHL_SHA="ad9b6d2ead2435f11cbb6868809d2adeeee302e9bb94bcf0539c7a40d80e8575"
mkdir -p "$DIR/lib"
if [ -f "$DIR/lib/.ok-$WHL_SHA" ]; then
  echo "nvrtc $DIR/lib (already fetched)"
  exit 0
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: \
  -d "$tmp" "$PKG"
whl="$(ls "$tmp"/nvidia_cuda_nvrtc-*.whl)"
echo "$WHL_SHA  $whl" | sha256sum -c --quiet - || { echo "setup-nvrtc: $whl sha256 mismatch" >&2; exit 1; }
"$PYTHON" - "$whl" "$DIR/lib" <<'PY'
import sys, zipfile, os
whl, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(whl) as z:
    for n in z.namelist():
        base = os.path.basename(n)
        if n.startswith("nvidia/cu13/lib/") and base.startswith("libnvrtc") and ".alt." not in base:
            with z.open(n) as src, open(os.path.join(dest, base), "wb") as dst:
                dst.write(src.read())
PY
touch "$DIR/lib/.ok-$WHL_SHA"
echo "nvrtc $DIR/lib ($(ls "$DIR/lib" | grep -c so) libraries)"
