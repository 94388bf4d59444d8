#!/usr/bin/env bash
# The one prepared benchmark for a GPU node (under 8 minutes on one H200):
# parity of every CUDA kernel and GPU model with the CPU reference, then
# images/s (decode + embed + match) and OCR lines/s and characters/s on the
# CPU and the GPU (descriptor and mobilenet, on a photo pool made from real
# photographs: 320-1600 px, baseline/progressive JPEG, PNG, WebP), the three
# models on dajia's runtime per batch in f32 and f16, and the PyTorch peers
# (benchmarks/gpu/models_peer.py: torchvision's MobileNetV2 and every model as
# dajia's exported program on PyTorch, program_peer.py; images_peer.py on the
# same pool), with the ratios and the goals. Writes $OUT/gpu-bench.{json,md}, $OUT/models-peer.{json,md} and
# $OUT/images-peer.{json,md}.
#
# Usage: scripts/gpu-bench.sh [BUNDLE=gpu-bundle] [OUT=${OUT:-gpu-bench-out}]
# BUNDLE comes from scripts/gpu-bench-pack.sh (release binary built with
# --features cuda elsewhere, stripped; models; OCR set).
set -euo pipefail
bundle=${1:-gpu-bundle}
out=${2:-${OUT:-gpu-bench-out}}
mkdir -p "$out"
log() { echo "gpu-bench: $*" >&2; }

bin="$out/dajia-gpu-bench"
if [ -f "$bundle/dajia-gpu-bench.xz" ]; then
  xz -dc "$bundle/dajia-gpu-bench.xz" > "$bin"
else
  cp "$bundle/dajia-gpu-bench" "$bin"
fi
chmod +x "$bin"

# The CUDA libraries: the driver's libcuda from the system, and NVRTC,
# cuBLAS, cuDNN, cudart from wherever they are installed (PyTorch's pip
# wheels carry them under site-packages/nvidia/*/lib).
dirs=()
for py in python3 python; do
  command -v "$py" >/dev/null || continue
  while IFS= read -r d; do dirs+=("$d"); done < <("$py" - <<'PY' 2>/dev/null || true
import glob, os, site, sys
roots = set(site.getsitepackages() + [site.getusersitepackages()])
for r in roots:
    for d in glob.glob(os.path.join(r, "nvidia", "**", "lib"), recursive=True) + glob.glob(os.path.join(r, "torch", "lib")):
        print(d)
PY
)
  break
done
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/lib/x86_64-linux-gnu; do
  [ -d "$d" ] && dirs+=("$d")
done
ld=$(IFS=:; echo "${dirs[*]:-}")
export LD_LIBRARY_PATH="${ld}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
for lib in libcuda.so libnvrtc.so.13 libcublas.so.13 libcudnn.so.9 libcudart.so.13 libnvjpeg.so.13; do
  found=$( { ldconfig -p 2>/dev/null | grep -o "/[^ ]*/$lib[^ ]*" | head -1; } || true)
  if [ -z "$found" ]; then
    for d in "${dirs[@]:-}"; do [ -n "$d" ] && ls "$d"/$lib* >/dev/null 2>&1 && found=$(ls "$d"/$lib* | head -1) && break; done
  fi
  log "$lib: ${found:-NOT FOUND}"
done
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv,noheader >&2 || log "nvidia-smi not found"

# Cubins compiled on the first run are reused by the rerun.
export DAJIA_CUDA_CACHE="$out/cubin-cache"
export RUST_LOG=${RUST_LOG:-dajia_kernels=info}
set +e
pool="${TMPDIR:-/tmp}/dajia-photo-pool"
rm -rf "$pool"
timeout "${BENCH_TIMEOUT:-300}" "$bin" \
  --models "$bundle/models" \
  --photos "$bundle/photos" --pool-dir "$pool" \
  --ocr-set "$bundle/ocr-set" \
  --device "${DAJIA_DEVICE:-auto}" \
  --json "$out/gpu-bench.json" --markdown "$out/gpu-bench.md" \
  "${@:3}" 2> >(tee "$out/gpu-bench.log" >&2)
rc=$?
# The PyTorch peer of the model runtime, on the same GPU (the node's Python
# has torch and torchvision); its own files, named beside ours.
peer="$(dirname "$0")/../benchmarks/gpu/models_peer.py"
[ -f "$peer" ] || peer="$bundle/models_peer.py"
ipeer="$(dirname "$0")/../benchmarks/gpu/images_peer.py"
[ -f "$ipeer" ] || ipeer="$bundle/images_peer.py"
# dajia's lowered programs, for the peer to run on PyTorch's eager ops (the
# detector's and recogniser's only PyTorch build; benchmarks/gpu/program_peer.py).
progs="${TMPDIR:-/tmp}/dajia-programs"
rm -rf "$progs"
"$bin" --models "$bundle/models" --export-programs "$progs" 2> >(tee -a "$out/gpu-bench.log" >&2) || log "program export failed"
for py in python3 python; do
  command -v "$py" >/dev/null || continue
  timeout 150 "$py" "$peer" "$out/models-peer.json" "$out/models-peer.md" --programs "$progs" 2> >(tee -a "$out/gpu-bench.log" >&2)
  # The image path's peer on the same photo pool the benchmark wrote.
  [ -d "$pool" ] && timeout 100 "$py" "$ipeer" "$pool" "$out/images-peer.json" "$out/images-peer.md" --images 6000 2> >(tee -a "$out/gpu-bench.log" >&2)
  # Ratios side by side, appended to the report.
  "$py" - "$out" <<'PY' 2>&1 | tee -a "$out/gpu-bench.md"
import json, os, sys
out = sys.argv[1]
def load(n):
    try: return json.load(open(os.path.join(out, n)))
    except Exception: return {}
b, p = load("gpu-bench.json"), load("images-peer.json")
rate = {(("cuda" if r["device"].startswith("cuda") else "cpu"), r["embedder"]): r["images_per_second"] for r in b.get("images", [])}
peer = {r["precision"]: r["images_per_second"] for r in p.get("end_to_end", [])}
print("\n## Ratios\n")
if ("cuda", "descriptor") in rate and ("cpu", "descriptor") in rate:
    print(f"- descriptor, GPU over all CPU cores: {rate['cuda','descriptor'] / rate['cpu','descriptor']:.2f}x")
for prec, v in peer.items():
    if ("cuda", "mobilenet") in rate:
        print(f"- mobilenet, dajia GPU over PyTorch {prec}: {rate['cuda','mobilenet'] / v:.2f}x (goal 1.5x)")
    if ("cuda", "descriptor") in rate:
        print(f"- descriptor, dajia GPU over PyTorch mobilenet {prec}: {rate['cuda','descriptor'] / v:.2f}x")
if p.get("error"):
    print(f"- PyTorch images peer did not run: {p['error']}")
# The model runtime per model and batch: dajia (f32, f16) against the
# PyTorch peer (fp32, fp16) and the issue's goals.
m = load("models-peer.json")
goals = {("mobilenet_v2", 256): 30000, ("ppocrv5_det", 16): 1500, ("ppocrv5_rec", 128): 20000}
# torchvision's own MobileNetV2 where there is one, else dajia's program on PyTorch.
torch = {}
for r in sorted(m.get("runs", []), key=lambda r: r.get("impl") == "torchvision"):
    if r.get("items_per_second"):
        torch[(r["model"], r["shape"][0], r["dtype"])] = r["items_per_second"]
rows = [r for r in b.get("models", []) if r["runtime"].startswith("dajia-cuda")]
if rows:
    print("\n| model | batch | runtime | items/s | PyTorch fp32 | PyTorch fp16 | over fp16 | goal |\n|---|---|---|---|---|---|---|---|")
for r in rows:
    n, bs = r["model"], r["shape"][0]
    f32, f16 = torch.get((n, bs, "float32")), torch.get((n, bs, "float16"))
    g = goals.get((n, bs))
    cell = lambda v: f"{v:.0f}" if v else "-"
    ratio = f"{r['items_per_second'] / f16:.2f}x" if f16 else "-"
    goal = (f"{g} ({'met' if r['items_per_second'] >= g else 'not met'})" if g else "")
    print(f"| {n} | {bs} | {r['runtime']} | {r['items_per_second']:.0f} | {cell(f32)} | {cell(f16)} | {ratio} | {goal} |")
PY
  break
done
set -e
log "exit $rc; results in $out/gpu-bench.json, $out/gpu-bench.md and $out/models-peer.{json,md}"
exit $rc
