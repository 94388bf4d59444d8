#!/usr/bin/env python3
"""The PyTorch peer of dajia's model runtime, run beside `dajia-gpu-bench` by
scripts/gpu-bench.sh on the same GPU: MobileNetV2 (torchvision, the same
architecture as models/mobilenet_v2.onnx; random weights do not change its
speed) at batch 1, 64 and 256, fp32 and fp16, channels-last with
cudnn.benchmark, timed as dajia-gpu-bench times its runs (two warm-up runs,
then at least three and at least a second; the clock stops after the GPU
finishes). PP-OCRv5 has no PyTorch build on the node (its weights are
Paddle's, and no ONNX-to-PyTorch converter is installed there): the peer says
so rather than timing something else.

usage: models_peer.py OUT.json [OUT.md]
"""
import json
import sys
import time


def timed(fn, items):
    import torch
    fn()
    fn()
    torch.cuda.synchronize()
    t = time.perf_counter()
    runs = 0
    while runs < 3 or time.perf_counter() - t < 1.0:
        fn()
        runs += 1
        torch.cuda.synchronize()
    s = time.perf_counter() - t
    return runs, s, runs * items / s


def main():
    out = {"peer": "pytorch", "runs": [], "missing": []}
    try:
        import torch
        import torchvision
    except Exception as e:  # the node's Python is expected to have both
        out["error"] = f"PyTorch not importable: {e}"
        json.dump(out, open(sys.argv[1], "w"), indent=2)
        print(out["error"], file=sys.stderr)
        return 1
    out["torch"] = torch.__version__
    out["device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    if not torch.cuda.is_available():
        out["error"] = "no CUDA device visible to PyTorch"
    else:
        torch.backends.cudnn.benchmark = True
        model = torchvision.models.mobilenet_v2().cuda().eval()
        for dtype in (torch.float32, torch.float16):
            m = model.to(dtype=dtype, memory_format=torch.channels_last)
            for batch in (1, 64, 256):
                x = torch.randn(batch, 3, 224, 224, device="cuda", dtype=dtype).to(memory_format=torch.channels_last)
                with torch.inference_mode():
                    runs, s, rate = timed(lambda: m(x), batch)
                out["runs"].append({"model": "mobilenet_v2", "dtype": str(dtype).replace("torch.", ""),
                                    "shape": [batch, 3, 224, 224], "runs": runs, "seconds": s,
                                    "items_per_second": rate})
                print(f"pytorch mobilenet_v2 b{batch} {dtype}: {rate:.0f}/s", file=sys.stderr)
        out["missing"] = ["ppocrv5_det", "ppocrv5_rec"]
    json.dump(out, open(sys.argv[1], "w"), indent=2)
    if len(sys.argv) > 2:
        with open(sys.argv[2], "w") as f:
            f.write("# PyTorch peer\n\n| model | dtype | input | items/s |\n|---|---|---|---|\n")
            for r in out["runs"]:
                f.write(f"| {r['model']} | {r['dtype']} | {r['shape']} | {r['items_per_second']:.1f} |\n")
            for m in out["missing"]:
                f.write(f"| {m} | — | — | no PyTorch build of this model on the node |\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
