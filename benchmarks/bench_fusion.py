"""Fusion ablation on a generated audio-visual set built from real unimodal data: audio-only,
face-only, context-only, concat and attention fusion, each trained with the same budget;
test accuracy / macro F1 and cost (parameters, multiply-adds, ms per clip on 1 CPU thread).

    python benchmarks/bench_fusion.py ../shared/data [--per-class 60,15,25] [--epochs 10] [--patience 4]

Why generated: the only real audio-visual clip with sound in the shared data is one RAVDESS
video (the other has no audio track), far too few to train on. So each clip here is
  video: a CK+48 face of class c (grey, upscaled to 140-220 px) pasted into a 640×480 scene
         (emolite.demo.frame_at's moving textured background), drifting slowly, 2 s at 25 fps,
         H.264 via PyAV;
  audio: a RAVDESS speech utterance of the same class c (leading/trailing silence trimmed,
         cut or zero-padded to 2 s), AAC.
Classes: anger, disgust, fear, happiness, sadness, surprise — the intersection of CK+'s
classes (no neutral) and RAVDESS's. Splits are disjoint in face subjects (CK+ subjects:
60 % train / 20 % dev / 20 % test, seeded) and in speakers (RAVDESS actors 01-18: 10 train /
4 dev / 4 test, half male); within a split, a clip's face and voice are drawn at random from
that split's pool of the same class, so the two modalities are conditionally independent
given the class. The clips go through emolite's own preprocessing (RetinaFace at 5 fps) and
the models see T=4 frames + 2 s of audio. Prints JSON and saves it to docs/results/<name>.json.
Media and caches live under the work dir (/tmp/bench), never in the repository.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import time
from fractions import Fraction
from pathlib import Path

import numpy as np


import common as C

CLASSES = ["anger", "disgust", "fear", "happiness", "sadness", "surprise"]
MODELS = ["audio", "face", "context", "concat", "attention"]
SR = 16000
FPS = 25
SECONDS = 2.0
W, H = 640, 480


def _rank(seed: int, s: str) -> str:
    return hashlib.sha1(f"{seed}:{s}".encode()).hexdigest()


def split_groups(groups: list[str], fracs: tuple[float, float, float], seed: int) -> dict[str, str]:
    order = sorted(set(groups), key=lambda g: _rank(seed, g))
    n = len(order)
    n_tr, n_dev = round(fracs[0] * n), round(fracs[1] * n)
    return {g: "train" if i < n_tr else "dev" if i < n_tr + n_dev else "test" for i, g in enumerate(order)}


def actor_splits(seed: int) -> dict[str, str]:
    """18 actors -> 10 train / 4 dev / 4 test, each half male (odd) and half female (even)."""
    out = {}
    for sex in (1, 0):
        actors = sorted((f"{a:02d}" for a in range(1, 19) if a % 2 == sex), key=lambda g: _rank(seed, g))
        for i, a in enumerate(actors):   # 9 per sex: 5 train, 2 dev, 2 test
            out[a] = "train" if i < 5 else "dev" if i < 7 else "test"
    return out


def trimmed_voice(path: str) -> np.ndarray:
    import librosa
    import soundfile as sf

    x, sr = sf.read(path, dtype="float32", always_2d=True)
    x = x.mean(1)
    if sr != SR:
        x = librosa.resample(x, orig_sr=sr, target_sr=SR)
    y, _ = librosa.effects.trim(x, top_db=35)
    n = int(SECONDS * SR)
    y = y[:n]
    return np.pad(y, (0, n - y.size)).astype(np.float32)


_BG: list = []


def background(t: float) -> np.ndarray:
    """emolite.demo.frame_at(t, 640, 480, face=False), with its static gradient computed once."""
    if not _BG:
        from emolite.demo import frame_at
        _BG.append(frame_at(0.0, W, H, face=False))
    frame = _BG[0].copy()
    frame[..., 2] = int(96 + 64 * np.sin(t))
    return frame


def write_clip(path: Path, face: np.ndarray, audio: np.ndarray, rng: np.random.Generator) -> None:
    """640×480 25-fps H.264 + AAC clip: the face drifting over the demo background."""
    import av
    import cv2

    side = int(rng.uniform(140, 220))
    face = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
    x0, y0 = rng.uniform(0, W - side), rng.uniform(0, H - side)
    vx, vy = rng.uniform(-40, 40, 2)   # px per second
    t_off = rng.uniform(0, 2 * np.pi)
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=FPS)
        vs.width, vs.height, vs.pix_fmt = W, H, "yuv420p"
        vs.options = {"preset": "ultrafast"}
        as_ = out.add_stream("aac", rate=SR)
        as_.layout = "mono"
        for i in range(int(SECONDS * FPS)):
            t = i / FPS
            frame = background(t + t_off)
            x = int(np.clip(x0 + vx * t, 0, W - side))
            y = int(np.clip(y0 + vy * t, 0, H - side))
            frame[y:y + side, x:x + side] = face
            for pkt in vs.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(pkt)
        for pkt in vs.encode():
            out.mux(pkt)
        hop = as_.codec_context.frame_size or 1024
        for i in range(0, audio.size, hop):
            af = av.AudioFrame.from_ndarray(audio[None, i:i + hop].astype(np.float32), format="fltp", layout="mono")
            af.sample_rate, af.pts, af.time_base = SR, i, Fraction(1, SR)
            for pkt in as_.encode(af):
                out.mux(pkt)
        for pkt in as_.encode():
            out.mux(pkt)


def build_set(data: Path, root: Path, per_class: dict[str, int], seed: int) -> tuple[Path, dict]:
    """Write the clips and labels.csv (file, label, split, speaker) under root; reuse if done."""
    import cv2

    manifest = root / "labels.csv"
    ck = list(csv.DictReader(open(data / "ckplus48" / "labels.csv", encoding="utf-8")))
    rav = list(csv.DictReader(open(data / "ravdess" / "labels.csv", encoding="utf-8")))
    canon = {"happy": "happiness", "sadness": "sadness", "anger": "anger", "disgust": "disgust", "fear": "fear",
             "surprise": "surprise", "angry": "anger", "fearful": "fear", "sad": "sadness", "surprised": "surprise"}
    subj_split = split_groups([r["subject"] for r in ck], (0.6, 0.2, 0.2), seed)
    act_split = actor_splits(seed)
    faces: dict = {}
    for r in ck:
        lab = canon.get(r["emotion"])
        if lab in CLASSES:
            faces.setdefault((subj_split[r["subject"]], lab), []).append(r)
    voices: dict = {}
    for r in rav:
        lab = canon.get(r["emotion"], r["emotion"])
        if r["modality"] == "audio" and lab in CLASSES:
            voices.setdefault((act_split[r["actor"]], lab), []).append(r)
    rng = np.random.default_rng(seed)
    plan = []
    for split, n in per_class.items():
        for lab in CLASSES:
            fpool, vpool = faces[(split, lab)], voices[(split, lab)]
            fi = np.concatenate([rng.permutation(len(fpool)) for _ in range(n // len(fpool) + 1)])[:n]
            vi = np.concatenate([rng.permutation(len(vpool)) for _ in range(n // len(vpool) + 1)])[:n]
            for j in range(n):
                plan.append((split, lab, fpool[fi[j]], vpool[vi[j]], int(rng.integers(2 ** 31))))
    info = {"clips": len(plan), "per_class": per_class,
            "face_subjects": {s: len({r['subject'] for (sp, _), v in faces.items() if sp == s for r in v})
                              for s in ("train", "dev", "test")},
            "face_images_in_pool": {s: sum(len(v) for (sp, _), v in faces.items() if sp == s)
                                    for s in ("train", "dev", "test")},
            "speakers": {s: sorted(a for a, sp in act_split.items() if sp == s) for s in ("train", "dev", "test")}}
    if manifest.exists() and sum(1 for _ in open(manifest)) == len(plan) + 1:
        return manifest, info
    (root / "clips").mkdir(parents=True, exist_ok=True)
    t = time.time()
    lines = ["file,label,split,speaker,face,voice"]
    for k, (split, lab, fr, vr, s) in enumerate(plan):
        name = f"clips/{split}_{lab}_{k:04d}.mp4"
        face = cv2.imread(str(data / "ckplus48" / fr["file"]), cv2.IMREAD_COLOR)[..., ::-1]
        audio = trimmed_voice(str(data / "ravdess" / vr["file"]))
        if not (root / name).exists():
            write_clip(root / name, np.ascontiguousarray(face), audio, np.random.default_rng(s))
        lines.append(f"{name},{lab},{split},{fr['subject']}+{vr['actor']},{fr['file']},{vr['file']}")
    manifest.write_text("\n".join(lines) + "\n")
    C.log(f"fusion set: {len(plan)} clips written in {time.time() - t:.0f} s")
    return manifest, info


def cost(name: str, n_classes: int, T: int, seconds: float) -> dict:
    """params, MACs and ms per clip (batch 1, eval, no grad, 1 thread; C.median_ms)."""
    import torch

    from emolite.models import build_model, count_macs, count_params, example_batch

    m = build_model(name, n_classes).eval()
    ex = example_batch(1, T, seconds)
    with torch.no_grad():
        ms = C.median_ms(lambda: m(ex))
    return {"params": count_params(m), "macs": count_macs(m, ex), "ms_per_clip_median": ms,
            "timing": f"median of {C.REPEATS}"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, help="the shared data folder (../shared/data)")
    ap.add_argument("--per-class", default="60,15,25", help="clips per class in train,dev,test")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--patience", type=int, default=4)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--name", default="fusion")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--workers", type=int, default=1, help="preprocessing processes")
    args = ap.parse_args()
    C.setup(args.threads)
    t0 = time.time()
    per_class = dict(zip(("train", "dev", "test"), (int(x) for x in args.per_class.split(","))))
    root = C.BENCH / "fusion_set" / f"seed{args.seed}_{'-'.join(map(str, per_class.values()))}"
    manifest, info = build_set(args.data, root, per_class, args.seed)
    t_pre = time.time()
    cdir, rows, summary = C.preprocess_cache("manifest", manifest, "fusion", workers=args.workers)
    pre_seconds = time.time() - t_pre
    out = {"benchmark": "fusion", "classes": CLASSES, "set": info,
           "preprocess": {**{k: summary[k] for k in ("items", "done", "reused", "failed", "no_face")},
                          "seconds": pre_seconds,
                          "frames_with_face": None},
           "train": {"frames": args.frames, "audio_seconds": SECONDS, "epochs": args.epochs,
                     "patience": args.patience, "lr": args.lr, "batch": args.batch,
                     "monitor": "val/loss", "loss": "ce"},
           "results": {}, "environment": C.environment()}
    from emolite import cache
    masks = [cache.load_entry(r["file"])["face_mask"] for r in rows]
    out["preprocess"]["frames_with_face"] = float(np.mean(np.concatenate(masks)))
    for name in args.models.split(","):
        ov = [f'model.name="{name}"', f"data.classes={str(CLASSES).replace(chr(39), chr(34))}",
              f"data.frames={args.frames}", f"data.audio_seconds={SECONDS}", f"data.batch_size={args.batch}",
              f"optim.epochs={args.epochs}", f"optim.patience={args.patience}", f"optim.lr={args.lr}",
              'optim.monitor="val/loss"', 'optim.mode="min"', f"trainer.seed={args.seed}", *args.set]
        run = C.train_eval(cdir, ov, "fusion", name)
        out["results"][name] = {**C.scores(run["y_true"], run["y_pred"], CLASSES),
                                "per_class_recall": C.per_class_recall(run["y_true"], run["y_pred"]),
                                "epochs_run": run["result"].get("epochs"), "train_seconds": run["seconds"],
                                "cost_T4_2s": cost(name, len(CLASSES), args.frames, SECONDS),
                                "cost_default_T8_4s": cost(name, len(CLASSES), 8, 4.0)}
    r = out["results"]
    if "attention" in r and "concat" in r:
        a, c = r["attention"], r["concat"]
        out["attention_minus_concat"] = {
            "accuracy": a["accuracy"] - c["accuracy"], "f1_macro": a["f1_macro"] - c["f1_macro"],
            "params": a["cost_T4_2s"]["params"] - c["cost_T4_2s"]["params"],
            "macs": a["cost_T4_2s"]["macs"] - c["cost_T4_2s"]["macs"],
            "ms_per_clip_median": a["cost_T4_2s"]["ms_per_clip_median"] - c["cost_T4_2s"]["ms_per_clip_median"]}
    out["wall_seconds"] = time.time() - t0
    C.emit(args.name, out)


if __name__ == "__main__":
    main()
