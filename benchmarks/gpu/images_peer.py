"""PyTorch + torchvision peer of dajia's GPU image path, on the same photo pool.

decode (nvJPEG through torchvision.io.decode_jpeg on the GPU, batched; PNG,
WebP and any JPEG the GPU refuses decoded on the CPU) + resize to 224
(bilinear, antialiased) + ImageNet normalisation + MobileNetV2 (torchvision,
random weights: the node has no internet, speed does not depend on them)
+ top-5 cosine against 10,000 references, batch 256, fp16 and fp32.
Also nvJPEG batch decode alone. Images/s over the whole pool, reused
round-robin up to --images.

usage: images_peer.py POOL_DIR OUT.json [OUT.md] [--images N] [--batch 256]
"""
import argparse, json, os, sys, time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("pool")
    ap.add_argument("json")
    ap.add_argument("md", nargs="?")
    ap.add_argument("--images", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--refs", type=int, default=10000)
    a = ap.parse_args()
    out = {"peer": "pytorch+torchvision", "pool": a.pool}
    try:
        import torch, torchvision
        from torchvision.io import decode_jpeg, decode_image, ImageReadMode
        import torch.nn.functional as F
    except Exception as e:  # the peer is optional; say why it did not run
        out["error"] = f"import: {e}"
        json.dump(out, open(a.json, "w"), indent=2)
        print(json.dumps(out))
        return 0
    out["torch"], out["torchvision"] = torch.__version__, torchvision.__version__
    if not torch.cuda.is_available():
        out["error"] = "no CUDA device"
        json.dump(out, open(a.json, "w"), indent=2)
        return 0
    dev = torch.device("cuda")
    names = sorted(os.listdir(a.pool))
    blobs = [open(os.path.join(a.pool, n), "rb").read() for n in names]
    datas = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in blobs]
    is_jpeg = [b[:2] == b"\xff\xd8" for b in blobs]
    seq = [i % len(blobs) for i in range(a.images)]
    out["pool_files"] = len(blobs)
    print(f"images peer: {len(blobs)} files, {a.images} images per pass", file=sys.stderr, flush=True)

    def decode_batch(idx):
        """Decoded CHW uint8 tensors on the GPU, in order."""
        res = [None] * len(idx)
        jp = [k for k, i in enumerate(idx) if is_jpeg[i]]
        if jp:
            try:
                dec = decode_jpeg([datas[idx[k]] for k in jp], mode=ImageReadMode.RGB, device=dev)
                for k, t in zip(jp, dec):
                    res[k] = t
            except RuntimeError:
                for k in jp:  # one by one, CPU for what the GPU refuses
                    try:
                        res[k] = decode_jpeg(datas[idx[k]], mode=ImageReadMode.RGB, device=dev)
                    except RuntimeError:
                        res[k] = decode_image(datas[idx[k]], mode=ImageReadMode.RGB).to(dev)
        for k, i in enumerate(idx):
            if res[k] is None:
                res[k] = decode_image(datas[i], mode=ImageReadMode.RGB).to(dev, non_blocking=True)
        return res

    mean = torch.tensor([0.485, 0.456, 0.406], device=dev).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], device=dev).view(1, 3, 1, 1)

    def prep(imgs, dtype):
        xs = [F.interpolate(t[None].float(), size=(224, 224), mode="bilinear", antialias=True, align_corners=False) for t in imgs]
        x = (torch.cat(xs) / 255.0 - mean) / std
        return x.to(dtype).contiguous(memory_format=torch.channels_last)

    # Decode alone.
    torch.cuda.synchronize()
    t = time.perf_counter()
    for s in range(0, len(seq), a.batch):
        decode_batch(seq[s:s + a.batch])
    torch.cuda.synchronize()
    out["decode_images_per_second"] = len(seq) / (time.perf_counter() - t)
    # Written after each phase: a run cut short by its time limit keeps
    # what it measured.
    json.dump(out, open(a.json, "w"), indent=2)
    print(f"images peer: nvJPEG decode alone {out['decode_images_per_second']:.0f}/s", file=sys.stderr, flush=True)

    model = torchvision.models.mobilenet_v2(weights=None).features.to(dev).eval()
    runs = []
    for name, dtype in (("fp16", torch.float16), ("fp32", torch.float32)):
        m = model.to(dtype).to(memory_format=torch.channels_last)
        refs = F.normalize(torch.randn(a.refs, 1280, device=dev, dtype=dtype), dim=1)
        with torch.inference_mode():
            for _ in range(3):  # warm-up: cuDNN picks its algorithms
                m(prep(decode_batch(seq[: a.batch]), dtype))
            torch.cuda.synchronize()
            t = time.perf_counter()
            for s in range(0, len(seq), a.batch):
                x = prep(decode_batch(seq[s:s + a.batch]), dtype)
                e = F.normalize(m(x).mean(dim=(2, 3)), dim=1)
                top = (e @ refs.T).topk(5, dim=1)
                top.indices.cpu()
            torch.cuda.synchronize()
        runs.append({"precision": name, "images_per_second": len(seq) / (time.perf_counter() - t)})
        out["end_to_end"] = runs
        json.dump(out, open(a.json, "w"), indent=2)
        print(f"images peer: {name} end to end {runs[-1]['images_per_second']:.0f}/s", file=sys.stderr, flush=True)
    out["end_to_end"] = runs
    out["images"] = len(seq)
    out["batch"] = a.batch
    json.dump(out, open(a.json, "w"), indent=2)
    lines = ["| PyTorch peer (same pool) | images/s |", "| --- | --- |",
             f"| nvJPEG batch decode alone | {out['decode_images_per_second']:.0f} |"]
    for r in runs:
        lines.append(f"| decode + resize + MobileNetV2 {r['precision']} + top-5, batch {a.batch} | {r['images_per_second']:.0f} |")
    print("\n".join(lines))
    if a.md:
        open(a.md, "w").write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
