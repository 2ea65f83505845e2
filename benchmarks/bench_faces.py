"""Face detection speed and detection rate on real faces.

    python benchmarks/bench_faces.py ../shared/data [--pool 400] [--ck 200]

RAVDESS clips: every frame sampled at 5 fps; face pool and CK+48: a seeded sample of images
(CK+ crops are 48×48 already-cropped faces: the rate with and without the whole-image
fallback that `emolite.features` applies to small stills is reported). ms: common.median_ms.
Prints JSON and saves docs/results/<name>.json.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import random
from pathlib import Path

import numpy as np

import common
from emolite import faces, media
from emolite.features import still_features


def timed(det, frames):
    """(ms per frame by common.median_ms over the frames in turn, detection rate over them all)."""
    found = [len(det(f)) > 0 for f in frames]
    it = itertools.cycle(frames)
    return common.median_ms(lambda: det(next(it)), calls=max(1, len(frames) // common.REPEATS)), float(np.mean(found))


def sample_rows(folder: Path, n: int, seed: int = 0) -> list[dict]:
    rows = list(csv.DictReader(open(folder / "labels.csv", encoding="utf-8")))
    random.Random(seed).shuffle(rows)
    return rows[:n]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data", type=Path)
    ap.add_argument("--pool", type=int, default=400)
    ap.add_argument("--ck", type=int, default=200)
    ap.add_argument("--name", default="faces", help="docs/results/<name>.json")
    args = ap.parse_args()
    det = faces.get_detector(threads=1)
    out = {"detector": "retinaface", "detect_side": faces.DETECT_SIDE, "threads": 1,
           "timing": f"median of {common.REPEATS} repeats"}
    for clip in sorted((args.data / "ravdess").glob("*.mp4")):
        frames = np.concatenate([w.frames for w in media.iter_windows(clip, window=1e9, use_audio=False)])
        ms, rate = timed(det, frames)
        out[f"ravdess/{clip.name}"] = {"frames": len(frames), "size": list(frames.shape[1:3]),
                                       "ms_per_frame": round(ms, 2), "detection_rate": round(rate, 4)}
    imgs = [media.read_image(args.data / "faces_mux" / r["file"]) for r in sample_rows(args.data / "faces_mux", args.pool)]
    ms, rate = timed(det, imgs)
    out["faces_mux"] = {"images": len(imgs), "ms_per_image": round(ms, 2), "detection_rate": round(rate, 4)}
    imgs = [media.read_image(args.data / "ckplus48" / r["file"]) for r in sample_rows(args.data / "ckplus48", args.ck)]
    raw = np.mean([len(det(im)) > 0 for im in imgs])
    with_fallback = np.mean([still_features(im, det).face_mask[0] for im in imgs])
    out["ckplus48"] = {"images": len(imgs), "detection_rate": round(float(raw), 4),
                       "with_whole_image_fallback": round(float(with_fallback), 4)}
    # Cost at full VGA resolution, for comparison with detecting at DETECT_SIDE.
    frame = np.concatenate([w.frames for w in media.iter_windows(args.data / "ravdess" / "01-01-07-02-02-01-01.mp4",
                                                                window=1e9, use_audio=False, max_side=None)])[:20]
    full = faces.get_detector(side=10_000, threads=1)
    ms_full, rate_full = timed(full, frame)
    out["ravdess_full_resolution_640x480"] = {"ms_per_frame": round(ms_full, 2), "detection_rate": rate_full}
    common.emit(args.name, out)


if __name__ == "__main__":
    main()
