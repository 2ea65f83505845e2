"""A tiny learnable training cache made without any media decoding: the fixture of the
training/evaluation tests, and the data of configs/smoke.toml:

    python tests/synthetic.py cache/smoke            # then: emolite train --config configs/smoke.toml

(a test fixture, so it lives with the tests, not in the package).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from emolite.media import FPS, SAMPLE_RATE


def make_synthetic_cache(out_dir: str | Path, classes: tuple[str, ...] = ("anger", "happiness", "neutral"),
                         n_per_class: dict | None = None, seconds: float = 2.0, fps: float = FPS,
                         dataset: str = "synthetic", seed: int = 0) -> Path:
    """A tiny learnable cache without any media decoding (tests, smoke runs): class k has a
    tinted face/context and a tone at 220·(k+1) Hz. Mixes full clips, audio-only clips,
    video-only clips, still images and clips where the face is found in only some frames.
    n_per_class: {split: count}, default {"train": 8, "dev": 3, "test": 3}."""
    from emolite import cache
    from emolite.faces import FACE_SIZE

    rng = np.random.default_rng(seed)
    out = Path(out_dir)
    (out / cache.ENTRIES).mkdir(parents=True, exist_ok=True)
    n_per_class = n_per_class or {"train": 8, "dev": 3, "test": 3}
    i = 0
    for split, n in n_per_class.items():
        for k, label in enumerate(classes):
            for j in range(n):
                kind = ["full", "full", "audio", "video", "image", "partial"][(j + k) % 6]
                nf = 1 if kind == "image" else (0 if kind == "audio" else int(seconds * fps))
                tint = np.zeros(3)
                tint[k % 3] = 90.0
                base = rng.integers(0, 120, (nf, FACE_SIZE, FACE_SIZE, 3)).astype(np.float32)
                face = np.clip(base + tint + 40, 0, 255).astype(np.uint8)
                context = np.clip(base[:, ::-1] + tint / 2, 0, 255).astype(np.uint8)
                face_mask = np.ones(nf, bool)
                if kind == "partial":
                    face_mask[::2] = False
                    face[~face_mask] = 0
                has_audio = kind not in ("video", "image")
                tt = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
                f0 = 220.0 * (k + 1) * rng.uniform(0.95, 1.05)
                audio = (0.3 * np.sin(2 * np.pi * f0 * tt) + 0.02 * rng.normal(size=tt.size)).astype(np.float32) \
                    if has_audio else np.zeros(0, np.float32)
                key = f"{dataset}_{split}_{label}_{j:03d}"
                meta = {"label": label, "speaker": f"spk{j % 4 if split == 'train' else 10 + j % 2}", "split": split,
                        "dataset": dataset, "duration": 0.0 if kind == "image" else seconds, "fps": fps,
                        "has_video": nf > 0, "has_audio": has_audio,
                        "valence": float(k) / max(1, len(classes) - 1), "arousal": float(j % 2)}
                cache.write_entry(out, key, {"face": face, "context": context, "face_mask": face_mask,
                                             "audio": audio}, meta)
                i += 1
    cache.rebuild_index(out)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path, help="cache folder to write (e.g. cache/smoke)")
    ap.add_argument("--classes", default="anger,happiness,neutral", help="comma-separated labels")
    ap.add_argument("--seconds", type=float, default=2.0)
    args = ap.parse_args(argv)
    out = make_synthetic_cache(args.out, tuple(args.classes.split(",")), seconds=args.seconds)
    print(f"synthetic cache: {out}")


if __name__ == "__main__":
    main()
