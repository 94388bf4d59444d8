#!/usr/bin/env python3
"""Build the MobileNetV2 embedding fixture used by the Rust (tract) tests.

Usage: reference_embeddings.py MODEL.onnx OUT_DIR
  (OUT_DIR is normally jobs/tests/fixtures/mobilenet/)

Writes into OUT_DIR:
  <name>.png            224x224 RGB 8-bit PNG (no resize needed), one per image
  embeddings.json       {"model_sha256", "preprocessing", "images": [{"name", "file", "seed",
                         "embedding_first16", "embedding_norm", "embedding" (1280 floats,
                         6 decimals), "logits_top5"}]}

Images are procedural (gradients + rectangles + a disc, from a fixed numpy seed), so the
fixture is reproducible without any external data. Embeddings come from onnxruntime
(CPU) and are the raw `embedding` output (NOT L2-normalised).

Preprocessing contract (must match the Rust side exactly):
  RGB uint8 HxWx3 (224x224) -> float32 x/255 -> (x - mean) / std per channel with
  mean = [0.485, 0.456, 0.406], std = [0.229, 0.224, 0.225] -> NCHW [1,3,224,224].
Needs numpy, onnxruntime, Pillow.
"""
import hashlib
import json
import os
import sys

import numpy as np

MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]
SIZE = 224

IMAGES = [("gradient_rects", 1), ("warm_disc", 2), ("cool_stripes", 3)]


def make_image(name, seed):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64) / (SIZE - 1)
    if name == "gradient_rects":
        img = np.stack([xx * 255, yy * 255, (1 - xx) * 200 + 30], axis=-1)
    elif name == "warm_disc":
        img = np.stack([200 + 55 * yy, 120 + 80 * xx, 40 + 30 * xx * yy], axis=-1)
        cy, cx, r = rng.uniform(80, 144), rng.uniform(80, 144), rng.uniform(40, 70)
        disc = (yy * (SIZE - 1) - cy) ** 2 + (xx * (SIZE - 1) - cx) ** 2 < r ** 2
        img[disc] = rng.integers(0, 256, 3)
    else:  # cool_stripes
        stripes = 0.5 + 0.5 * np.sin(2 * np.pi * (xx * 6 + yy * 2))
        img = np.stack([30 + 60 * stripes, 80 + 120 * stripes, 150 + 100 * yy], axis=-1)
    for _ in range(4):
        y0, x0 = rng.integers(0, SIZE - 40, 2)
        h, w = rng.integers(20, 90, 2)
        img[y0:y0 + h, x0:x0 + w] = rng.integers(0, 256, 3)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def preprocess(rgb_u8):
    x = rgb_u8.astype(np.float32) / np.float32(255.0)
    x = (x - np.array(MEAN, np.float32)) / np.array(STD, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=np.float32)


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    model, out_dir = argv[1], argv[2]
    import onnxruntime as ort
    from PIL import Image

    os.makedirs(out_dir, exist_ok=True)
    with open(model, "rb") as f:
        model_sha = hashlib.sha256(f.read()).hexdigest()
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    entries = []
    for name, seed in IMAGES:
        img = make_image(name, seed)
        fname = f"{name}.png"
        Image.fromarray(img).save(os.path.join(out_dir, fname), optimize=True)
        # Re-read to make sure the PNG round-trips losslessly.
        back = np.asarray(Image.open(os.path.join(out_dir, fname)).convert("RGB"))
        assert np.array_equal(back, img), f"{fname} does not round-trip"
        emb, logits = sess.run(["embedding", "logits"], {"input": preprocess(img)})
        emb, logits = emb[0].astype(np.float64), logits[0].astype(np.float64)
        top5 = np.argsort(-logits)[:5]
        entries.append({
            "name": name,
            "file": fname,
            "seed": seed,
            "embedding_first16": [round(float(v), 6) for v in emb[:16]],
            "embedding_norm": round(float(np.linalg.norm(emb)), 6),
            "embedding": [round(float(v), 6) for v in emb],
            "logits_top5": [[int(i), round(float(logits[i]), 4)] for i in top5],
        })
        print(f"{fname}: norm={np.linalg.norm(emb):.4f} top5={top5.tolist()}")
    doc = {
        "model": os.path.basename(model),
        "model_sha256": model_sha,
        "generator": "scripts/models/reference_embeddings.py (onnxruntime %s, CPU)" % ort.__version__,
        "preprocessing": {
            "color": "RGB", "size": [SIZE, SIZE], "resize": "none (images are already 224x224)",
            "scale": "x/255", "mean": MEAN, "std": STD, "layout": "NCHW float32",
            "input": "input", "output": "embedding (raw, not L2-normalised)",
        },
        "images": entries,
    }
    with open(os.path.join(out_dir, "embeddings.json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
