"""Peer for `dajia bench images`: the same JPEGs, measured with Python tools.

- PIL + imagehash (pHash, 64-bit DCT hash): decode+hash images/s on one core,
  recall@1 of the transformed copies among the references by Hamming distance.
- onnxruntime on dajia's MobileNetV2 ONNX (when --model is given): decode +
  resize 224 + normalise + run, images/s on one core (one intra-op thread).

usage: images_peer.py BENCH_DIR [--model mobilenet_v2.onnx] [--throughput N] [--json OUT]
"""
import argparse, csv, json, os, sys, time

import numpy as np
from PIL import Image
import imagehash


def phash_all(paths):
    return [imagehash.phash(Image.open(p)) for p in paths]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bench_dir")
    ap.add_argument("--model")
    ap.add_argument("--throughput", type=int, default=2000)
    ap.add_argument("--onnx-images", type=int, default=200)
    ap.add_argument("--json")
    a = ap.parse_args()
    d = a.bench_dir
    refs = sorted(os.listdir(os.path.join(d, "refs")))
    ref_paths = [os.path.join(d, "refs", r) for r in refs]
    truth = list(csv.DictReader(open(os.path.join(d, "truth.csv"))))
    out = {"peer": "PIL %s + imagehash %s (phash)" % (Image.__version__, imagehash.__version__)}

    sample = ref_paths[: a.throughput]
    t = time.perf_counter()
    phash_all(sample)  # one process, one core
    out["phash_images_per_second_one_core"] = len(sample) / (time.perf_counter() - t)

    ref_h = np.array([h.hash.flatten() for h in phash_all(ref_paths)], dtype=bool)
    index = {r: i for i, r in enumerate(refs)}
    hits, per = 0, {}
    for row in truth:
        q = imagehash.phash(Image.open(os.path.join(d, row["query"]))).hash.flatten()
        dist = (ref_h != q).sum(axis=1)
        best = int(np.argmin(dist))
        ok = best == index[os.path.basename(row["reference"])]
        hits += ok
        k = per.setdefault(row["transform"], [0, 0])
        k[0] += 1
        k[1] += ok
    out["phash_recall_at_1"] = hits / len(truth)
    out["phash_per_transform"] = {k: v[1] / v[0] for k, v in per.items()}

    if a.model:
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        sess = ort.InferenceSession(a.model, so, providers=["CPUExecutionProvider"])
        mean = np.array([0.485, 0.456, 0.406], dtype=np.float32)
        std = np.array([0.229, 0.224, 0.225], dtype=np.float32)
        paths = ref_paths[: a.onnx_images]
        t = time.perf_counter()
        for p in paths:
            img = Image.open(p).convert("RGB").resize((224, 224), Image.BILINEAR)
            x = (np.asarray(img, dtype=np.float32) / 255.0 - mean) / std
            x = x.transpose(2, 0, 1)[None]
            sess.run(["embedding"], {"input": x})
        out["onnxruntime"] = ort.__version__
        out["onnxruntime_mobilenet_images_per_second_one_core"] = len(paths) / (time.perf_counter() - t)

    print(json.dumps(out, indent=2))
    if a.json:
        json.dump(out, open(a.json, "w"), indent=2)


if __name__ == "__main__":
    sys.exit(main())
