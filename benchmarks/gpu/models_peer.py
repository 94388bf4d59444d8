#!/usr/bin/env python3
"""The PyTorch peer of dajia's model runtime, run beside `dajia-gpu-bench` by
scripts/gpu-bench.sh on the same GPU: MobileNetV2 (torchvision, the same
architecture as models/mobilenet_v2.onnx; random weights do not change its
speed) at batch 1, 64 and 256, fp32 and fp16, channels-last with
cudnn.benchmark, timed as dajia-gpu-bench times its runs (two warm-up runs,
then at least three and at least a second; the clock stops after the GPU
finishes). PP-OCRv5 has no PyTorch build on the node (its weights are
Paddle's, and no ONNX-to-PyTorch converter is installed there); with
`--programs DIR` (`dajia-gpu-bench --export-programs DIR`) each model also
runs as dajia's lowered program on PyTorch's eager ops (program_peer.py: the
same graph and fused weights, cuDNN convolutions, cuBLAS matmuls), first
checked against dajia's CPU reference: that is the detector's and the
recogniser's peer, and MobileNetV2's second one.

usage: models_peer.py OUT.json [OUT.md] [--programs DIR]
"""
import json
import os
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


def programs(folder, out):
    """Every exported program, fp32 and fp16, after its parity check."""
    import torch

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import program_peer

    for dtype in (torch.float32, torch.float16):
        name = str(dtype).replace("torch.", "")
        try:
            out["program_parity"][name] = program_peer.check(folder, "cuda", name)
        except Exception as e:  # the timings still run; the parity says why
            out["program_parity"][name] = {"error": str(e)}
    for f in sorted(os.listdir(folder)):
        if not f.endswith(".json"):
            continue
        stem = os.path.join(folder, f[:-5])
        spec = json.load(open(stem + ".json"))
        shape = spec["values"][spec["input"]]["shape"]
        for dtype in (torch.float32, torch.float16):
            try:
                prog = program_peer.load(stem, "cuda", dtype)
                x = torch.randn(*shape, device="cuda", dtype=dtype)
                with torch.inference_mode():
                    runs, s, rate = timed(lambda: prog(x), shape[0])
            except Exception as e:
                out["errors"].append(f"{f[:-5]} {dtype}: {e}")
                continue
            out["runs"].append({"model": spec["model"], "impl": "dajia program",
                                "dtype": str(dtype).replace("torch.", ""), "shape": shape,
                                "runs": runs, "seconds": s, "items_per_second": rate})
            print(f"pytorch program {spec['model']} b{shape[0]} {dtype}: {rate:.0f}/s", file=sys.stderr)


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    folder = sys.argv[sys.argv.index("--programs") + 1] if "--programs" in sys.argv else None
    if folder in args:
        args.remove(folder)
    out = {"peer": "pytorch", "runs": [], "missing": [], "errors": [], "program_parity": {}}
    try:
        import torch
    except Exception as e:  # the node's Python is expected to have it
        out["error"] = f"PyTorch not importable: {e}"
        json.dump(out, open(args[0], "w"), indent=2)
        print(out["error"], file=sys.stderr)
        return 1
    try:
        import torchvision
    except Exception as e:  # the program peer runs without it
        torchvision = None
        out["errors"].append(f"torchvision not importable: {e}")
    out["torch"] = torch.__version__
    out["device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    if not torch.cuda.is_available():
        out["error"] = "no CUDA device visible to PyTorch"
    else:
        torch.backends.cudnn.benchmark = True
        model = torchvision.models.mobilenet_v2().cuda().eval() if torchvision else None
        for dtype in (torch.float32, torch.float16) if model is not None else ():
            m = model.to(dtype=dtype, memory_format=torch.channels_last)
            for batch in (1, 64, 256):
                x = torch.randn(batch, 3, 224, 224, device="cuda", dtype=dtype).to(memory_format=torch.channels_last)
                with torch.inference_mode():
                    runs, s, rate = timed(lambda: m(x), batch)
                out["runs"].append({"model": "mobilenet_v2", "impl": "torchvision",
                                    "dtype": str(dtype).replace("torch.", ""),
                                    "shape": [batch, 3, 224, 224], "runs": runs, "seconds": s,
                                    "items_per_second": rate})
                print(f"pytorch mobilenet_v2 b{batch} {dtype}: {rate:.0f}/s", file=sys.stderr)
        if folder and os.path.isdir(folder):
            programs(folder, out)
        else:
            out["missing"] = ["ppocrv5_det", "ppocrv5_rec"]
    json.dump(out, open(args[0], "w"), indent=2)
    if len(args) > 1:
        with open(args[1], "w") as f:
            f.write("# PyTorch peer\n\n| model | implementation | dtype | input | items/s |\n|---|---|---|---|---|\n")
            for r in out["runs"]:
                f.write(f"| {r['model']} | {r['impl']} | {r['dtype']} | {r['shape']} | {r['items_per_second']:.1f} |\n")
            for m in out["missing"]:
                f.write(f"| {m} | — | — | — | no PyTorch build of this model on the node |\n")
            for dtype, diffs in out["program_parity"].items():
                f.write(f"\nProgram peer against dajia's CPU reference ({dtype}, max abs diff / max |expected|): {diffs}\n")
            for e in out["errors"]:
                f.write(f"\n- error: {e}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
