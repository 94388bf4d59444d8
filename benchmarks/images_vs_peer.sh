#!/usr/bin/env bash
# Image benchmark: `dajia bench images` (release build) on generated 320-640 px
# JPEGs, side by side with PIL + imagehash (pHash) and onnxruntime on the same
# files: decode+embed images/s per core, matching throughput, recall@1 of
# transformed copies among the references. Prints the figures and ratios and
# writes benchmarks/results/images_vs_peer.json.
#   usage: benchmarks/images_vs_peer.sh [REFS]   (default 10000)
set -euo pipefail
cd "$(dirname "$0")/.."
REFS=${1:-10000}
MOBILENET_REFS=${MOBILENET_REFS:-2000}
WORK=${DAJIA_BENCH_DIR:-/tmp/dajia-bench-images}
# DAJIA_BENCH_PROFILE=dev uses the debug build, whose image path (kernels,
# image codecs, fast_image_resize, matrixmultiply, tract) is optimised anyway.
PROFILE=${DAJIA_BENCH_PROFILE:-release}
if [ "$PROFILE" = release ]; then cargo build --release -p dajia >&2; BIN=target/release/dajia
else cargo build -p dajia >&2; BIN=target/debug/dajia; fi
export DAJIA_MODELS=${DAJIA_MODELS:-$PWD/models}
bash scripts/setup-models.sh "$DAJIA_MODELS" >&2
python3 -c "import imagehash, onnxruntime" 2>/dev/null || pip install --quiet "imagehash==4.3.2" "onnxruntime==1.22.1" "pillow==11.3.0"
mkdir -p benchmarks/results "$WORK"

"$BIN" bench images --out "$WORK/descriptor" --refs "$REFS" --queries 700 --json "$WORK/descriptor.json"
"$BIN" bench images --embedder mobilenet --out "$WORK/mobilenet" --refs "$MOBILENET_REFS" --queries 140 \
  --throughput-images 300 --json "$WORK/mobilenet.json"
python3 benchmarks/images_peer.py "$WORK/descriptor" --model "$DAJIA_MODELS/mobilenet_v2.onnx" --json "$WORK/peer.json"

python3 - "$WORK" "$(nproc)" "$PROFILE" <<'PY'
import json, sys
w, cores, profile = sys.argv[1], int(sys.argv[2]), sys.argv[3]
d = json.load(open(f"{w}/descriptor.json")); m = json.load(open(f"{w}/mobilenet.json")); p = json.load(open(f"{w}/peer.json"))
rows = [
    ("decode+embed images/s, one core", d["images_per_second_one_core"], p["phash_images_per_second_one_core"], "dajia descriptor vs PIL+imagehash pHash"),
    ("recall@1 of copies", d["recall_at_1"], p["phash_recall_at_1"], f"among {d['refs']} references"),
    ("mobilenet images/s, one core", m["images_per_second_one_core"], p.get("onnxruntime_mobilenet_images_per_second_one_core", float("nan")), "dajia (tract) vs onnxruntime, same ONNX"),
]
print(f"\n{'':34} {'dajia':>10} {'peer':>10} {'ratio':>7}")
for name, a, b, note in rows:
    print(f"{name:34} {a:10.4g} {b:10.4g} {a / b:7.2f}x  {note}")
print(f"descriptor on {d['cores']} cores: {d['images_per_second_all_cores']:.0f} images/s; "
      f"matching {d['match_queries']}x{d['match_refs']}: {d['match_pairs_per_second']:.3g} pairs/s, {d['match_queries_per_second']:.0f} queries/s")
g = d["decode_guard"]
print(f"decode time limit (a helper thread per image, {g['timeout_ms']} ms): one core {g['one_core_without_limit']:.0f} -> "
      f"{g['one_core_with_limit']:.0f} images/s ({g['ratio_one_core']:.3f}x, {g['overhead_us_per_image_one_core']:+.1f} us/image); "
      f"{d['cores']} cores {g['all_cores_without_limit']:.0f} -> {g['all_cores_with_limit']:.0f} images/s ({g['ratio_all_cores']:.3f}x)")
print(f"descriptor goal >= 400 images/s per core: {'met' if d['images_per_second_one_core'] >= 400 else 'NOT met'}; "
      f"recall@1 goal >= 0.98 among >= 10k: {'met' if d['recall_at_1'] >= 0.98 and d['refs'] >= 10000 else 'NOT met'}")
json.dump({"descriptor": d, "mobilenet": m, "peer": p, "cores": cores, "build_profile": profile,
           "ratios": {r[0]: r[1] / r[2] for r in rows}}, open("benchmarks/results/images_vs_peer.json", "w"), indent=2)
print("wrote benchmarks/results/images_vs_peer.json")
PY
