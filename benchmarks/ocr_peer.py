"""Peer for dajia's OCR benchmark: the same images through RapidOCR (PP-OCRv4 mobile, ONNX).

Needs:  pip install rapidocr-onnxruntime==1.4.4
        (pulls opencv-python, pyclipper, Shapely, PyYAML, six, tqdm; needs onnxruntime, Pillow, numpy)

usage: ocr_peer.py DIR --json OUT.json [--threads 1] [--limit N]

DIR/truth.jsonl: {"file": "images/00000.jpg", "lines": [...], "script": "cjk|latin|digits|mixed", ...}
Runs RapidOCR's default pipeline without the angle classifier (use_cls=False, like dajia),
then det and rec on their own, and scores character accuracy exactly as dajia does:
1 - sum(levenshtein(hyp, ref)) / sum(len(ref)), NFKC, whitespace removed, lines concatenated.
"""
import argparse, json, os, sys, time, unicodedata


def norm(s):
    return "".join(unicodedata.normalize("NFKC", s).split())


def levenshtein(a, b):
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--json", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--limit", type=int)
    a = ap.parse_args()
    # Before numpy/cv2/onnxruntime load, so no OpenMP/BLAS pool gets more threads than asked.
    for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[v] = str(a.threads)
    import cv2, numpy as np, onnxruntime
    from PIL import Image
    from rapidocr_onnxruntime import RapidOCR

    # cv2 resizes/warps in det pre-processing and cropping are parallel_for loops otherwise.
    cv2.setNumThreads(a.threads if a.threads > 1 else 0)  # 0 = run sequentially
    # Global intra/inter_op_num_threads are copied into the Det/Cls/Rec sessions by 1.4.4's
    # UpdateParameters; values outside 1..cpu_count are ignored (ORT default = all cores).
    engine = RapidOCR(intra_op_num_threads=a.threads, inter_op_num_threads=1, use_cls=False)

    truth = [json.loads(l) for l in open(os.path.join(a.dir, "truth.jsonl"), encoding="utf-8") if l.strip()]
    truth = truth[: a.limit] if a.limit else truth

    def load(rec):  # what rapidocr's LoadImage does for a path: PIL -> RGB array -> BGR
        im = Image.open(os.path.join(a.dir, rec["file"])).convert("RGB")
        return cv2.cvtColor(np.asarray(im), cv2.COLOR_RGB2BGR)

    engine(load(truth[0]))  # warm-up: first ORT run allocates and is not representative

    t_dec = t_e2e = t_det = t_rec = 0.0
    det_boxes = rec_lines = rec_chars_split = 0
    rows = []
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for rec in truth:
        t = time.perf_counter()
        img = load(rec)
        t_dec += time.perf_counter() - t

        # 1. end to end: default pipeline (global resize, det, sort, crop, rec, text_score filter)
        t = time.perf_counter()
        res, _ = engine(img, use_cls=False)
        t_e2e += time.perf_counter() - t
        hyp_lines = [r[1] for r in res] if res else []

        # 2. det alone, on the image as the e2e call feeds it (max_side_len/min_side_len resize,
        #    letterbox for very wide or short images), then rec alone on the sorted crops.
        dimg, _, _ = engine.preprocess(img)
        dimg, _ = engine.maybe_add_letterbox(dimg, {})
        t = time.perf_counter()
        boxes, _ = engine.text_det(dimg)
        t_det += time.perf_counter() - t
        if boxes is not None and len(boxes):
            crops = engine.get_crop_img_list(dimg, engine.sorted_boxes(boxes))  # untimed
            t = time.perf_counter()
            out, _ = engine.text_rec(crops)
            t_rec += time.perf_counter() - t
            det_boxes += len(boxes)
            rec_lines += len(crops)
            rec_chars_split += sum(len(o[0]) for o in out)

        ref, hyp = norm("".join(rec["lines"])), norm("".join(hyp_lines))
        rows.append({"file": rec["file"], "script": rec.get("script", "?"), "ref": ref, "hyp": hyp,
                     "errors": levenshtein(hyp, ref), "truth_lines": len(rec["lines"]),
                     "lines": len(hyp_lines)})
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0

    def acc(rs):
        n = sum(len(r["ref"]) for r in rs)
        return max(0.0, 1 - sum(r["errors"] for r in rs) / n) if n else None

    chars = sum(len(r["hyp"]) for r in rows)
    lines = sum(r["lines"] for r in rows)
    per = lambda x, s: x / s if s > 0 else None
    o = {
        "engine": "rapidocr-onnxruntime 1.4.4 (PP-OCRv4 mobile)",
        "onnxruntime": onnxruntime.__version__, "opencv": cv2.__version__,
        "threads": a.threads, "use_cls": False,
        "images": len(rows),
        "truth_lines": sum(r["truth_lines"] for r in rows),
        "truth_chars": sum(len(r["ref"]) for r in rows),
        "detected_lines": lines,  # e2e output lines, after rapidocr's text_score>=0.5 filter
        "det_boxes": det_boxes,  # boxes from the det-only pass (before that filter)
        "recognised_chars": chars,
        "decode_seconds": t_dec, "e2e_seconds": t_e2e, "det_seconds": t_det, "rec_seconds": t_rec,
        "det_images_per_second": per(len(rows), t_det),
        "rec_lines_per_second": per(rec_lines, t_rec),
        "rec_chars_per_second": per(rec_chars_split, t_rec),
        "e2e_lines_per_second": per(lines, t_e2e),
        "e2e_chars_per_second": per(chars, t_e2e),
        # ~1.0 when everything really ran on one thread (CPU time of all threads / wall time)
        "cpu_over_wall": per(cpu, wall),
        "char_accuracy": acc(rows),
        "char_accuracy_by_script": {s: acc([r for r in rows if r["script"] == s])
                                    for s in sorted({r["script"] for r in rows})},
        "worst": [{k: r[k] for k in ("file", "ref", "hyp", "errors")}
                  for r in sorted(rows, key=lambda r: -r["errors"])[:5]],
    }
    with open(a.json, "w", encoding="utf-8") as f:
        json.dump(o, f, ensure_ascii=False, indent=1)
    f3 = lambda x: "n/a" if x is None else "%.3f" % x
    print("rapidocr 1.4.4, %d thread(s), %d images: char accuracy %s %s" % (
        a.threads, len(rows), f3(o["char_accuracy"]),
        " ".join("%s=%s" % (s, f3(v)) for s, v in o["char_accuracy_by_script"].items())), file=sys.stderr)
    print("  e2e %s lines/s, %s chars/s | det %s images/s | rec %s lines/s | decode %.3fs | cpu/wall %s" % (
        f3(o["e2e_lines_per_second"]), f3(o["e2e_chars_per_second"]), f3(o["det_images_per_second"]),
        f3(o["rec_lines_per_second"]), t_dec, f3(o["cpu_over_wall"])), file=sys.stderr)


if __name__ == "__main__":
    main()
