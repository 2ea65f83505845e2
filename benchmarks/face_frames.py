"""How a window's frames become one face answer: aggregation rules measured on FER2013 public_test.

    python benchmarks/face_frames.py ../shared/data --model /tmp/emolite-default/face/best.pt

No labelled video exists here, so each public_test face (a person the face expert never saw)
becomes an 8-frame "clip": video-like jitter of the detector crop (scale, shift, rotation,
blur, JPEG, light) on every frame, and on 2 of the 8 frames a heavy fault (strong motion
blur or a tiny face upscaled from 12 px). Rules compared: mean of logits, mean of
log-probabilities, mean of probabilities, majority vote, and mean of logits over the frames
whose sharpness (variance of the Laplacian) is at least a fraction of the clip's sharpest.
Prints JSON (docs/results/face_frames.json).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import torch

import common

from emolite.recipes import face as train_face

FRAMES = 8
FAULTY = 2


def sharpness(x: np.ndarray) -> float:
    return float(cv2.Laplacian(x, cv2.CV_32F).var())


def fault(x: np.ndarray, rng) -> np.ndarray:
    if rng.random() < 0.5:
        k = int(rng.integers(7, 15))
        kern = np.zeros((k, k), np.float32)
        kern[k // 2] = 1.0 / k          # horizontal motion blur
        m = cv2.getRotationMatrix2D((k / 2, k / 2), float(rng.uniform(0, 180)), 1.0)
        kern = cv2.warpAffine(kern, m, (k, k))
        return cv2.filter2D(x, -1, kern / max(kern.sum(), 1e-6))
    return cv2.resize(cv2.resize(x, (12, 12), interpolation=cv2.INTER_AREA), x.shape[::-1], interpolation=cv2.INTER_LINEAR)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data", type=Path)
    ap.add_argument("--model", required=True, help="a face_cnn checkpoint (emolite/recipes/face.py)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/emolite-face"))
    ap.add_argument("--name", default="face_frames", help="docs/results/<name>.json")
    args = ap.parse_args()
    common.setup(threads=2)
    from emolite.models import load_checkpoint

    net = load_checkpoint(args.model)[0].net.eval()
    x, y, src = train_face.load_data(args.data, args.work, 0.0)["dev"]
    keep = src == "fer2013"
    x, y = x[keep], y[keep]
    rng = np.random.default_rng(0)
    clips, sharp = [], []
    for img in x:
        frames = [train_face.augment(img, rng) for _ in range(FRAMES)]
        for i in rng.choice(FRAMES, FAULTY, replace=False):
            frames[i] = fault(frames[i], rng)
        clips.append(frames)
        sharp.append([sharpness(f) for f in frames])
    flat = np.array([f for c in clips for f in c])
    z = train_face.logits_of(net, flat).reshape(len(x), FRAMES, -1)
    lp = torch.log_softmax(torch.from_numpy(z), -1).numpy()
    sharp = np.array(sharp)
    rules = {"one clean frame (no aggregation)": train_face.logits_of(net, x),
             "mean of logits": z.mean(1), "mean of log-probabilities": lp.mean(1),
             "mean of probabilities": np.exp(lp).mean(1),
             "majority vote": np.stack([np.bincount(r, minlength=z.shape[-1]) for r in z.argmax(-1)]) + 1e-3 * z.mean(1)}
    for frac in (0.1, 0.25, 0.5):
        w = (sharp >= frac * sharp.max(1, keepdims=True)).astype(np.float32)[..., None]
        rules[f"mean of logits, frames with sharpness >= {frac} x clip max"] = (z * w).sum(1) / w.sum(1)
    model = load_checkpoint(args.model)[0].eval()     # the rule as the shipped model applies it
    with torch.no_grad():
        t = torch.from_numpy(np.stack([np.stack(c) for c in clips]).astype(np.float32) / 255.0)[:, :, None]
        zs = [model({"face": t[i:i + 256], "face_mask": torch.ones(len(t[i:i + 256]), FRAMES, dtype=torch.bool)})
              for i in range(0, len(t), 256)]
    rules[f"the model's own rule (FrameFaceModel, sharp_frac={model.sharp_frac})"] = torch.cat(zs).numpy()
    out = {"what": __doc__.split("\n")[0], "faces": int(len(y)), "frames": FRAMES, "faulty_frames": FAULTY,
           "rules": {k: train_face.scores(v, y) for k, v in rules.items()}}
    common.emit(args.name, out)


if __name__ == "__main__":
    main()
