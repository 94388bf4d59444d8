#!/usr/bin/env python3
"""dajia's lowered program of a model (`dajia-gpu-bench --export-programs`,
benchmarks/gpu/src/export.rs) as a PyTorch module: the same graph, fused
weights and shapes, each step one eager PyTorch op (cuDNN convolutions,
cuBLAS matmuls), in fp32 or fp16. The PyTorch peer of PP-OCRv5 det and rec,
whose Paddle weights have no PyTorch build on the GPU node.

usage: program_peer.py check DIR [--device cpu|cuda] [--dtype float32|float16]
  runs each `*.input.bin` in DIR and compares with `*.expected.bin` (dajia's
  CPU reference): max abs diff over max |expected|.
"""
import json
import math
import os
import sys


def load(stem, device, dtype):
    """The program `stem` (.json + .bin) as a callable on `device`."""
    import numpy as np
    import torch

    spec = json.load(open(stem + ".json"))
    blob = np.fromfile(stem + ".bin", dtype="<f4")
    consts = {}
    for i, v in enumerate(spec["values"]):
        if v["data"] is not None:
            n = math.prod(v["shape"])
            t = torch.from_numpy(blob[v["data"]:v["data"] + n].copy()).reshape(v["shape"])
            consts[i] = t.to(device=device, dtype=dtype)
    return Program(spec, consts, dtype)


def _bound(v, default):
    # serde_json writes an infinite f32 as null.
    return default if v is None else v


class Program:
    def __init__(self, spec, consts, dtype):
        self.spec, self.consts, self.dtype = spec, consts, dtype
        # Transposed-convolution weights in PyTorch's layout, made once.
        self.deconv_w = {}

    def __call__(self, x):
        import torch
        import torch.nn.functional as F

        spec = self.spec
        vals = dict(self.consts)
        vals[spec["input"]] = x
        for step in spec["steps"]:
            op = step["op"]
            ins = [vals[i] for i in step["inputs"]]
            shape = spec["values"][step["output"]]["shape"]
            if isinstance(op, str):
                kind, arg = op, None
            else:
                (kind, arg), = op.items()
            if kind == "Conv":
                y = self.conv(ins, arg, F)
            elif kind == "Deconv":
                y = self.deconv(step, ins, arg, F)
            elif kind == "MatMul":
                a = ins[0].reshape(-1, arg["m"], arg["k"])
                b = ins[1].reshape(-1, arg["k"], arg["n"])
                y = torch.matmul(a, b)
            elif kind == "Binary":
                a, b = ins
                y = {"Add": torch.add, "Sub": torch.sub, "Mul": torch.mul, "Div": torch.div,
                     "Max": torch.maximum, "Min": torch.minimum, "Pow": torch.pow}[arg](a, b)
            elif kind == "Map":
                y = epilogue(ins[0], arg)
            elif kind == "Reduce":
                x0, axes = ins[0], arg["axes"]
                r = arg["reducer"]
                if r == "Sum":
                    y = x0.sum(dim=axes, keepdim=True, dtype=torch.float32).to(x0.dtype)
                elif r == "Mean":
                    y = x0.mean(dim=axes, keepdim=True, dtype=torch.float32).to(x0.dtype)
                elif r == "Max":
                    y = x0.amax(dim=axes, keepdim=True)
                elif r == "Min":
                    y = x0.amin(dim=axes, keepdim=True)
                else:
                    y = (x0.float() * x0.float()).mean(dim=axes, keepdim=True).to(x0.dtype)
            elif kind == "Pool":
                y = pool(ins[0], arg, F, torch)
            elif kind == "Upsample":
                y = ins[0]
                for axis, s in enumerate(arg["scales"]):
                    if s != 1:
                        y = y.repeat_interleave(s, dim=axis)
            elif kind == "Concat":
                y = torch.cat(ins, dim=arg["axis"])
            elif kind == "Permute":
                y = ins[0].permute(arg["perm"])
            elif kind == "Reshape":
                y = ins[0].reshape(shape)
            elif kind == "Slice":
                y = ins[0].narrow(arg["axis"], arg["start"], arg["end"] - arg["start"])
            elif kind == "Softmax":
                y = softmax(ins[0], arg["axes"], torch)
            elif kind == "RmsNorm":
                x0 = ins[0]
                ms = (x0.float() * x0.float()).mean(dim=arg["axis"], keepdim=True)
                y = (x0.float() * torch.rsqrt(ms + arg["eps"])).to(x0.dtype)
            elif kind == "Broadcast":
                y = ins[0].expand(shape)
            else:
                raise ValueError(f"step kind {kind} unknown to the peer")
            vals[step["output"]] = y.reshape(shape) if list(y.shape) != shape else y
        return [vals[o] for o in spec["outputs"]]

    def conv(self, ins, c, F):
        x, w, b = ins[0], ins[1], ins[2]
        flat = x.dim() == 3  # 1-D: NCW read as H = 1
        if flat:
            x = x.unsqueeze(2)
            w = w.unsqueeze(2) if w.dim() == 3 else w
        t, l, bo, r = c["pads"]
        if t == bo and l == r:
            y = F.conv2d(x, w, b, c["stride"], (t, l), c["dilation"], c["group"])
        else:
            y = F.conv2d(F.pad(x, (l, r, t, bo)), w, b, c["stride"], 0, c["dilation"], c["group"])
        if flat:
            y = y.squeeze(2)
        if c["residual"]:
            y = y + ins[3]
        return epilogue(y, c["epilogue"])

    def deconv(self, step, ins, d, F):
        x, w, b = ins
        key = step["inputs"][1]
        if key not in self.deconv_w:
            # dajia's (tract's) [Co, Ci/g, kh, kw] to PyTorch's [Ci, Co/g, kh, kw].
            g = d["group"]
            co, cig, kh, kw = w.shape
            self.deconv_w[key] = (w.reshape(g, co // g, cig, kh, kw).permute(0, 2, 1, 3, 4)
                                  .reshape(g * cig, co // g, kh, kw).contiguous())
        return F.conv_transpose2d(x, self.deconv_w[key], b, d["stride"], groups=d["group"])


def epilogue(x, e):
    """`runtime::program::Epilogue`: chain, gate (x * chain(x)), post."""
    import torch

    z = x
    for f in e["chain"]:
        if isinstance(f, str):
            z = {"Sigmoid": torch.sigmoid, "Recip": torch.reciprocal, "Rsqrt": torch.rsqrt,
                 "Sqrt": torch.sqrt, "Square": torch.square, "Exp": torch.exp, "Tanh": torch.tanh,
                 "Abs": torch.abs, "Neg": torch.neg}[f](z)
        else:
            (kind, a), = f.items()
            if kind == "Affine":
                z = z * a["scale"] + a["shift"]
            else:  # Clip
                z = torch.clamp(z, _bound(a["lo"], -math.inf), _bound(a["hi"], math.inf))
    y = x * z if e["gate"] else z
    if e["post"] is not None:
        y = y * e["post"][0] + e["post"][1]
    return y


def pool(x, p, F, torch):
    """Sum or average over windows of the two last axes, padding not counted."""
    flat = x.dim() == 3
    if flat:
        x = x.unsqueeze(2)
    t, l, b, r = p["pads"]
    xp = F.pad(x, (l, r, t, b))
    k, s = p["kernel"], p["stride"]
    area = k[0] * k[1]
    y = F.avg_pool2d(xp, k, s) * area
    if p["average"]:
        ones = F.pad(torch.ones_like(x[:1, :1]), (l, r, t, b))
        y = y / (F.avg_pool2d(ones, k, s) * area)
    return y.squeeze(2) if flat else y


def softmax(x, axes, torch):
    if len(axes) == 1:
        return torch.softmax(x.float(), dim=axes[0]).to(x.dtype)
    rest = [a for a in range(x.dim()) if a not in axes]
    perm = rest + list(axes)
    xp = x.permute(perm)
    shape = xp.shape
    y = torch.softmax(xp.reshape(*shape[:len(rest)], -1).float(), dim=-1).to(x.dtype)
    inv = [perm.index(a) for a in range(x.dim())]
    return y.reshape(shape).permute(inv)


def check(folder, device, dtype_name):
    """Each exported smallest shape against dajia's CPU reference."""
    import numpy as np
    import torch

    dtype = getattr(torch, dtype_name)
    out = {}
    for f in sorted(os.listdir(folder)):
        if not f.endswith(".input.bin"):
            continue
        stem = os.path.join(folder, f[: -len(".input.bin")])
        spec = json.load(open(stem + ".json"))
        x = torch.from_numpy(np.fromfile(stem + ".input.bin", dtype="<f4").copy())
        x = x.reshape(spec["values"][spec["input"]]["shape"]).to(device=device, dtype=dtype)
        want = np.fromfile(stem + ".expected.bin", dtype="<f4")
        with torch.inference_mode():
            got = load(stem, device, dtype)(x)[0].float().cpu().numpy().reshape(-1)
        d = float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-6))
        out[os.path.basename(stem)] = d
        print(f"{os.path.basename(stem)} {dtype_name} on {device}: max abs diff / max |expected| = {d:.6f}",
              file=sys.stderr)
    return out


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] != "check":
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    args = sys.argv[3:]
    device = args[args.index("--device") + 1] if "--device" in args else "cpu"
    dtype = args[args.index("--dtype") + 1] if "--dtype" in args else "float32"
    diffs = check(sys.argv[2], device, dtype)
    sys.exit(0 if diffs and all(d <= 0.01 for d in diffs.values()) else 1)
