#!/usr/bin/env python3
"""Validate the converted MobileNetV2 ONNX model against an independent numpy forward pass.

Usage: validate_mobilenet.py WEIGHTS.pth MODEL.onnx [--image PATH ...]

Checks:
  (a) onnxruntime on a synthetic image: logits finite, softmax sums to 1.
  (b) a plain-numpy float64 reference (im2col convs, BatchNorm applied un-folded
      from running stats, ReLU6, residual adds, global average pool, Linear) built
      directly from the .pth state dict, compared with the onnxruntime `embedding`
      and `logits` (max abs diff; fails if embedding diff >= 1e-3).
  (c) optional: top-5 ImageNet class indices for the given images.
Needs numpy, onnxruntime (and Pillow for --image). Reuses only the .pth *reader*
from convert_mobilenet.py; the architecture and maths below are written separately.
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from convert_mobilenet import load_legacy_state_dict  # noqa: E402

MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])


def preprocess(rgb_u8):
    """HxWx3 uint8 RGB (already 224x224) -> 1x3x224x224 float32."""
    x = rgb_u8.astype(np.float32) / 255.0
    x = (x - MEAN.astype(np.float32)) / STD.astype(np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None]).astype(np.float32)


# ---------------- numpy reference ----------------

def conv2d(x, w, stride, groups):
    """x: (C,H,W) float64, w: (O, C/groups, k, k). Zero padding (k-1)//2. im2col + matmul."""
    C, H, W = x.shape
    O, Cg, k, _ = w.shape
    p = (k - 1) // 2
    xp = np.pad(x, ((0, 0), (p, p), (p, p)))
    Ho = (H + 2 * p - k) // stride + 1
    Wo = (W + 2 * p - k) // stride + 1
    # patches: (C, Ho, Wo, k, k)
    win = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(1, 2))
    win = win[:, ::stride, ::stride][:, :Ho, :Wo]
    # cols: (groups, Cg*k*k, Ho*Wo)
    cols = win.reshape(groups, Cg, Ho * Wo, k * k).transpose(0, 1, 3, 2).reshape(groups, Cg * k * k, Ho * Wo)
    wm = w.reshape(groups, O // groups, Cg * k * k)
    out = np.matmul(wm, cols)  # (groups, O/groups, Ho*Wo)
    return out.reshape(O, Ho, Wo)


def batchnorm(x, sd, prefix, eps=1e-5):
    g = sd[prefix + ".weight"].astype(np.float64)[:, None, None]
    b = sd[prefix + ".bias"].astype(np.float64)[:, None, None]
    m = sd[prefix + ".running_mean"].astype(np.float64)[:, None, None]
    v = sd[prefix + ".running_var"].astype(np.float64)[:, None, None]
    return (x - m) / np.sqrt(v + eps) * g + b


def relu6(x):
    return np.minimum(np.maximum(x, 0.0), 6.0)


def conv_bn(x, sd, wkey, bnkey, stride, act):
    w = sd[wkey].astype(np.float64)
    groups = x.shape[0] // w.shape[1]
    y = batchnorm(conv2d(x, w, stride, groups), sd, bnkey)
    return relu6(y) if act else y


def reference_forward(sd, img_chw):
    x = img_chw.astype(np.float64)
    x = conv_bn(x, sd, "features.0.0.weight", "features.0.1", 2, True)
    strides = {2: 2, 4: 2, 7: 2, 14: 2}  # first block of each stride-2 stage
    for i in range(1, 18):
        p = f"features.{i}.conv"
        s = strides.get(i, 1)
        inp = x
        if f"{p}.0.0.weight" in sd and sd[f"{p}.0.0.weight"].shape[2] == 1:  # expansion present
            x = conv_bn(x, sd, f"{p}.0.0.weight", f"{p}.0.1", 1, True)
            x = conv_bn(x, sd, f"{p}.1.0.weight", f"{p}.1.1", s, True)
            x = conv_bn(x, sd, f"{p}.2.weight", f"{p}.3", 1, False)
        else:
            x = conv_bn(x, sd, f"{p}.0.0.weight", f"{p}.0.1", s, True)
            x = conv_bn(x, sd, f"{p}.1.weight", f"{p}.2", 1, False)
        if s == 1 and inp.shape == x.shape:
            x = x + inp
    x = conv_bn(x, sd, "features.18.0.weight", "features.18.1", 1, True)
    emb = x.mean(axis=(1, 2))
    logits = sd["classifier.1.weight"].astype(np.float64) @ emb + sd["classifier.1.bias"].astype(np.float64)
    return emb, logits


def synthetic_image(seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:224, 0:224].astype(np.float64)
    img = np.stack([xx / 223 * 255, yy / 223 * 255, (xx + yy) / 446 * 255], axis=-1)
    img += rng.normal(0, 20, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("weights")
    ap.add_argument("model")
    ap.add_argument("--image", action="append", default=[])
    args = ap.parse_args()

    import onnxruntime as ort
    sess = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    ok = True

    # (a)
    x = preprocess(synthetic_image(0))
    emb, logits = sess.run(["embedding", "logits"], {"input": x})
    sm = softmax(logits.astype(np.float64))
    print(f"(a) shapes embedding={emb.shape} logits={logits.shape}; finite={np.isfinite(logits).all()}; "
          f"softmax sum={sm.sum():.6f}; top1={int(sm.argmax())} p={sm.max():.4f}; "
          f"embedding min={emb.min():.4f} max={emb.max():.4f} L2={np.linalg.norm(emb):.4f}")
    ok &= bool(np.isfinite(logits).all() and np.isfinite(emb).all() and abs(sm.sum() - 1) < 1e-6)
    # batch of 2 (dynamic N)
    xb = np.concatenate([x, preprocess(synthetic_image(1))])
    eb, _ = sess.run(["embedding", "logits"], {"input": xb})
    print(f"    batch N=2 ok, row0 vs single max diff={np.abs(eb[0] - emb[0]).max():.2e}")

    # (b)
    sd = load_legacy_state_dict(args.weights)
    t = time.time()
    ref_emb, ref_logits = reference_forward(sd, x[0])
    d_emb = float(np.abs(ref_emb - emb[0]).max())
    d_log = float(np.abs(ref_logits - logits[0]).max())
    print(f"(b) numpy float64 reference ({time.time() - t:.1f}s): max|emb diff|={d_emb:.3e} "
          f"(emb max {np.abs(ref_emb).max():.3f}), max|logit diff|={d_log:.3e}, "
          f"ref top1={int(ref_logits.argmax())}")
    ok &= d_emb < 1e-3

    # (c)
    if args.image:
        from PIL import Image
        for path in args.image:
            im = Image.open(path).convert("RGB").resize((224, 224), Image.BILINEAR)
            lg = sess.run(["logits"], {"input": preprocess(np.asarray(im))})[0][0]
            p = softmax(lg.astype(np.float64))
            top = np.argsort(-p)[:5]
            print(f"(c) {os.path.basename(path)}: top5 " + ", ".join(f"{i}:{p[i]:.3f}" for i in top))

    print("VALIDATION", "PASSED" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
