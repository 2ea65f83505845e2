"""FER2013 public test (3,589 48×48 grey faces, 7 classes): our model through the user path and
the `fer` package's mini-Xception on the same images, in one script.

    python benchmarks/bench_fer2013.py ../shared/data --model emolite/assets/default.pt [--limit 500] [--out]
    # the reference, once, in its own virtualenv (our environment stays untouched):
    python -m venv /tmp/fer-venv && /tmp/fer-venv/bin/pip install tensorflow-cpu opencv-python-headless \
        && /tmp/fer-venv/bin/pip install --no-deps fer

Ours: `m.analyze(image)` per image, i.e. what `emolite analyze photo.png` answers (the model's
detector, margin and the small-still whole-image fallback). Reported: accuracy, UAR, macro F1,
recall per class, confusion matrix, the fraction of images where the detector found a face (the
rest used the whole-image fallback: box = the whole image), seconds per image; and the face
expert's parameters and ms per face (one crop of the model's face size, batch 1, 1 torch thread, median of 20 rounds of 10
(common.median_ms);
a model without a face expert is timed whole on a face-only input).
Reference: fer's own weights (data/emotion_model.hdf5, mini-Xception, Arriaga et al. 2017) fed the
48×48 images directly (its face detector bypassed: they are face crops already), preprocessed as
fer does (cv2.resize to the classifier's 64×64, /255, -0.5, ×2); labels mapped onto ours. Run by
`--fer-python` in a subprocess, predictions cached in /tmp; ms per face: batch 1, TF intra/inter
op threads 1, median of 20 rounds of 10 faces (graph mode; `ms_per_face_eager` is the eager call fer itself makes).
`--limit N`: a fixed random subset (seed 0) of N images, the same for both. Prints JSON; `--out`
also writes docs/results/fer2013.json (or the path given).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np


import common as C

FER_CACHE = Path("/tmp/fer2013_fer_cache_v2.json")   # v2: median timing
# fer's output order (FER._get_labels) -> our canonical names
FER_LABELS = ["anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral"]

# Runs inside fer's virtualenv: stdin {"files": [...]} -> stdout {"pred": [index...], ...}.
FER_CHILD = r'''
import importlib.util, json, os, sys, time
import numpy as np
import tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)
import cv2, keras
from importlib.metadata import version
cv2.setNumThreads(1)
weights = os.path.join(os.path.dirname(importlib.util.find_spec("fer").origin), "data", "emotion_model.hdf5")
model = keras.models.load_model(weights, compile=False)
size = tuple(model.input_shape[1:3])
def prep(f):
    g = cv2.imread(f, cv2.IMREAD_GRAYSCALE)
    g = cv2.resize(g, size).astype("float32") / 255.0   # as fer.FER.detect_emotions
    return ((g - 0.5) * 2.0)[..., None]
files = json.load(sys.stdin)["files"]
x = np.stack([prep(f) for f in files]) if files else np.zeros((0, *size, 1), "float32")
pred = [int(i) for b in range(0, len(x), 256) for i in np.argmax(model.predict_on_batch(x[b:b + 256]), 1)]
one = tf.function(lambda t: model(t, training=False))
faces = x[:200] if len(x) else np.zeros((200, *size, 1), "float32")
def ms(fn, rounds=20):   # median of 20 rounds over the faces (as benchmarks/common.median_ms)
    for f in faces[:20]:
        np.asarray(fn(tf.constant(f[None])))
    times = []
    for part in np.array_split(faces, rounds):
        t = time.perf_counter()
        for f in part:
            np.asarray(fn(tf.constant(f[None])))
        times.append((time.perf_counter() - t) / len(part) * 1000)
    return float(np.median(times))
out = {"pred": pred, "params": int(model.count_params()), "input": list(model.input_shape[1:]),
       "ms_per_face": ms(one), "ms_per_face_eager": ms(lambda t: model(t, training=False)),
       "timed_faces": len(faces), "versions": {k: version(k) for k in ("fer", "tensorflow-cpu", "keras")}}
print(json.dumps(out))
'''


def read_rows(data: Path, limit: int | None) -> list[dict]:
    root = data / "fer2013"
    with open(root / "labels.csv", newline="") as f:
        rows = [{"path": str(root / r["file"]), "label": r["emotion"]} for r in csv.DictReader(f)
                if r["usage"] == "PublicTest"]
    rows.sort(key=lambda r: r["path"])
    if limit:
        rows = [rows[i] for i in sorted(np.random.default_rng(0).permutation(len(rows))[:limit])]
    return rows


def summary(y_true: list[str], y_pred: list[str], classes: list[str]) -> dict:
    return {**C.scores(y_true, y_pred, classes), "per_class_recall": C.per_class_recall(y_true, y_pred),
            "confusion": {"classes": classes, "rows": "true", "matrix": C.confusion(y_true, y_pred, classes)}}


# ----------------------------------------------------------------------------- the reference

def run_fer(fer_python: str, rows: list[dict], classes: list[str]) -> dict:
    """fer's predictions (cached in FER_CACHE by file) and its timing, or a note why not."""
    if not Path(fer_python).exists():
        return {"note": f"fer reference skipped: {fer_python} not found (see the docstring to install it)"}
    cache = json.loads(FER_CACHE.read_text()) if FER_CACHE.exists() else {"pred": {}}
    todo = [r["path"] for r in rows if r["path"] not in cache["pred"]]
    if todo or "ms_per_face" not in cache:
        C.log(f"fer: classifying {len(todo)} images in {fer_python}")
        t = time.time()
        proc = subprocess.run([fer_python, "-c", FER_CHILD], input=json.dumps({"files": todo}), text=True,
                              capture_output=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
                                                        "CUDA_VISIBLE_DEVICES": ""})
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            return {"note": f"fer reference failed (exit {proc.returncode}): {tail}"}
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        cache["pred"].update({f: FER_LABELS[i] for f, i in zip(todo, res.pop("pred"))})
        if res["timed_faces"] >= cache.get("timed_faces", 0):   # keep the timing over the most faces
            cache.update(res)
        C.log(f"fer: done in {time.time() - t:.0f} s")
        FER_CACHE.write_text(json.dumps(cache))
    yt, yp = [r["label"] for r in rows], [cache["pred"][r["path"]] for r in rows]
    return {"model": "fer mini-Xception (emotion_model.hdf5), input 64×64 grey in [-1, 1]",
            **{k: cache[k] for k in ("params", "input", "ms_per_face", "ms_per_face_eager", "timed_faces", "versions")},
            "test": summary(yt, yp, classes), "cache": str(FER_CACHE)}


# ----------------------------------------------------------------------------- ours

def time_face(m, n: int = 200) -> dict:
    """Parameters and ms per face (batch 1, current torch threads) of the face expert."""
    import torch

    from emolite import inputs as I
    from emolite.models import count_params

    spec = m.spec
    s = spec.face_size
    if "face" not in m.modalities:
        return {"note": "the model has no face input"}
    experts = getattr(m.net, "experts", {}) if m.backend == "torch" else {}
    expert = experts["face"] if "face" in experts else None
    if expert is not None:
        x = {"face": torch.rand(1, 1, 3, s, s), "face_mask": torch.ones(1, 1, dtype=torch.bool)}
        what, params = "face expert (net.experts['face'])", count_params(expert)

        def call():
            with torch.inference_mode():
                expert(x)
    else:   # the whole model on a face-only input (one face frame; no context, no audio)
        crop = np.random.default_rng(0).integers(0, 256, (1, s, s, 3), dtype=np.uint8)
        x = I.clip_inputs(spec.replace(face_size=s), crop, np.ones(1, bool),
                          np.zeros((1, spec.context_size, spec.context_size, 3), np.uint8), None)
        x["context_mask"][:] = False
        batch = I.stack([x])
        what = f"whole model ({m.backend}) on a face-only input"
        params = count_params(m.net) if m.backend == "torch" else None

        def call():
            m.predict_inputs(batch)
    def face_ms(fn, per_call: int = 1) -> float:   # per face: a window of 8 is 8 faces
        return C.median_ms(fn, calls=max(1, n // C.REPEATS), warmup=20) / per_call
    out = {"timed": what, "timing": f"median of {C.REPEATS} rounds of {max(1, n // C.REPEATS)} faces", "params": params, "face_size": s, "ms_per_face": face_ms(call), "timed_faces": n,
           "torch_threads": torch.get_num_threads()}
    if expert is not None:   # analyze hands the expert a window's frames at once
        x8 = {"face": torch.rand(1, 8, 3, s, s), "face_mask": torch.ones(1, 8, dtype=torch.bool)}

        def call8():
            with torch.inference_mode():
                expert(x8)
        out["ms_per_face_in_window_of_8"] = face_ms(call8, 8)
    return out


def run_ours(model_path: str, rows: list[dict], classes: list[str]) -> dict:
    from PIL import Image

    import emolite

    m = emolite.load_model(model_path)
    y_pred, found, detected = [], 0, 0
    t = time.time()
    for i, r in enumerate(rows):
        res = m.analyze(r["path"])
        y_pred.append(res.label)
        w = res.windows[0]
        found += w.face_found
        whole = [0.0, 0.0, *map(float, Image.open(r["path"]).size)]
        detected += w.face_found and w.face_box is not None and [round(v, 3) for v in w.face_box] != whole
        if (i + 1) % 250 == 0:
            C.log(f"ours: {i + 1}/{len(rows)} ({(time.time() - t) / (i + 1) * 1000:.0f} ms/image)")
    secs = time.time() - t
    yt = [r["label"] for r in rows]
    unknown = sorted(set(y_pred) - set(classes))
    return {"model": str(model_path), "model_classes": m.classes, "spec": dataclasses.asdict(m.spec),
            "path": "emolite.load_model(model).analyze(image) per image (= `emolite analyze photo.png`)",
            "face_found": found / len(rows), "face_detected": detected / len(rows),
            "whole_image_fallback": (found - detected) / len(rows),
            **({"predicted_outside_fer_classes": unknown} if unknown else {}),
            "seconds": secs, "seconds_per_image": secs / len(rows),
            "test": summary(yt, y_pred, classes), "speed": time_face(m)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, help="the shared data folder (../shared/data)")
    ap.add_argument("--model", default=None, help="our checkpoint or ONNX export (default: the packaged model)")
    ap.add_argument("--fer-python", default="/tmp/fer-venv/bin/python", help="python of the venv with fer")
    ap.add_argument("--limit", type=int, default=None, help="a fixed random subset (seed 0) for quick checks")
    ap.add_argument("--skip-ours", action="store_true")
    ap.add_argument("--skip-fer", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--speed-only", action="store_true",
                    help="time our face expert only; with --out, replace `ours.speed` in that JSON (same weights)")
    ap.add_argument("--out", nargs="?", const=str(C.RESULTS / "fer2013.json"), default=None,
                    help="also write the JSON here (default docs/results/fer2013.json)")
    args = ap.parse_args()
    C.setup(args.threads)
    from emolite.labels import EMOTIONS

    classes = list(EMOTIONS)
    if args.speed_only:
        import emolite

        speed = {**time_face(emolite.load_model(args.model or "default")), "load_average_1min": os.getloadavg()[0]}
        C.emit("fer2013_speed", speed, save=False)
        if args.out:
            res = json.loads(Path(args.out).read_text())
            res["ours"]["speed"] = C.rounded(speed)
            Path(args.out).write_text(json.dumps(res, indent=1) + "\n")
        return
    t0 = time.time()
    rows = read_rows(args.data, args.limit)
    yt = [r["label"] for r in rows]
    out = {"benchmark": "fer2013", "split": "PublicTest", "items": len(rows),
           "subset": f"random {args.limit} (seed 0)" if args.limit else "all",
           "files_sha1": hashlib.sha1("\n".join(r["path"].rsplit("/", 1)[-1] for r in rows).encode()).hexdigest()[:12],
           "classes": classes, "class_counts": {c: yt.count(c) for c in classes}}
    if not args.skip_fer:
        out["fer"] = run_fer(args.fer_python, rows, classes)
    if not args.skip_ours:
        with C.quiet():
            out["ours"] = run_ours(args.model or "default", rows, classes)
        out["ours"]["full_run_minutes_estimate"] = out["ours"]["seconds_per_image"] * 3589 / 60
    majority = max(classes, key=yt.count)
    out["majority_baseline"] = {"class": majority, **C.scores(yt, [majority] * len(yt), classes)}
    out["environment"] = {**C.environment(), "load_average_1min": os.getloadavg()[0]}
    out["wall_seconds"] = time.time() - t0
    C.emit("fer2013", out, save=False)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(C.rounded(out), indent=1) + "\n")


if __name__ == "__main__":
    main()
