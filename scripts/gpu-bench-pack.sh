#!/usr/bin/env bash
# Prepares what scripts/gpu-bench.sh needs on a GPU node, on a build machine
# (the node has no Rust toolchain and no internet):
#   gpu-bundle/dajia-gpu-bench.xz   release build with --features cuda, stripped
#   gpu-bundle/models/              mobilenet_v2.onnx, ppocrv5/ (det, rec, keys)
#   gpu-bundle/ocr-set/             `dajia bench ocr` images + truth.jsonl
#   gpu-bundle/photos/              the set-up script's photographs (photo pool)
# and checks that it fits the 64 MiB a device run may carry.
# Usage: scripts/gpu-bench-pack.sh [OCR_IMAGES=100]
#   GPU_BENCH_PROFILE=dev packs a debug build instead (a quick dry run of the
#   scripts; its figures mean nothing).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100}
out=gpu-bundle
models=${DAJIA_MODELS:-models}
[ -f "$models/mobilenet_v2.onnx" ] || bash scripts/setup-models.sh "$models"
rm -rf "$out" && mkdir -p "$out/models/ppocrv5" "$out/ocr-set"

if [ "${GPU_BENCH_PROFILE:-release}" = dev ]; then
  cargo build --locked -p dajia-gpu-bench --features cuda
  bin=target/debug/dajia-gpu-bench
else
  cargo build --release --locked -p dajia-gpu-bench --features cuda
  bin=target/release/dajia-gpu-bench
fi
strip -o "$out/dajia-gpu-bench" "$bin"
xz -T0 -6 "$out/dajia-gpu-bench"

cp "$models/mobilenet_v2.onnx" "$out/models/"
cp "$models"/ppocrv5/ppocrv5_det.onnx "$models"/ppocrv5/ppocrv5_rec.onnx "$models"/ppocrv5/ppocr_keys_v5.txt "$out/models/ppocrv5/"
cp benchmarks/gpu/models_peer.py benchmarks/gpu/program_peer.py benchmarks/gpu/images_peer.py "$out/"
# Real photographs the image benchmark makes its photo pool from.
cp -r "$models/photos" "$out/photos"

# The OCR set: rendered by the (debug is fine) dajia binary.
cargo build --locked -p dajia
target/debug/dajia bench ocr --render-only --out "$out/ocr-set" --count "$n" --models "$models"

size=$(du -sm "$out" | cut -f1)
echo "gpu-bench-pack: $out is ${size} MiB"
[ "$size" -le 62 ] || { echo "gpu-bench-pack: over the 64 MiB a device run carries; lower OCR_IMAGES" >&2; exit 1; }
