"""Real talking faces (../shared/data/video_dev, weak labels): what `emolite analyze` says per clip.

    python benchmarks/video_dev.py ../shared/data --model emolite/assets/default.pt

A sanity check, not a benchmark (19 clips, labels from file names, never used for training or
choosing settings): per clip the weak label, the overall label and its confidence, how often a
face was found, the share of windows per label; overall the number right and the spread of
predictions (no class should take more than half of the clips). Prints JSON; saves it to
docs/results/video_dev.json (or `--name`).
"""

from __future__ import annotations

import argparse
import csv
import time
from collections import Counter
from pathlib import Path

import common


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data", type=Path)
    ap.add_argument("--model", default=None, help="checkpoint or ONNX (default: the packaged model)")
    ap.add_argument("--name", default="video_dev")
    args = ap.parse_args()
    common.setup(threads=2)
    import emolite

    model = emolite.load_model(args.model)
    root = args.data / "video_dev"
    rows = list(csv.DictReader(open(root / "labels.csv")))
    clips, t0 = [], time.time()
    for r in rows:
        res = model.analyze(root / r["file"])
        counts = Counter(w.label for w in res.windows if w.label)
        clips.append({"file": r["file"], "weak_label": r["emotion"], "predicted": res.label,
                      "confidence": res.confidence, "faces_found": res.faces_found, "windows": len(res.windows),
                      "window_labels": dict(counts.most_common()), "right": res.label == r["emotion"]})
        common.log(f"{r['file']:<45} {r['emotion']:<10} -> {res.label} ({res.confidence:.2f})")
    spread = Counter(c["predicted"] for c in clips)
    out = {"what": "emolite analyze on 19 real talking-face clips with weak labels (sanity check only)",
           "model": args.model or "default", "clips": clips, "right": sum(c["right"] for c in clips), "of": len(clips),
           "predicted_spread": dict(spread.most_common()),
           "largest_class_share": max(spread.values()) / len(clips),
           "seconds": time.time() - t0, "environment": common.environment()}
    common.emit(args.name, out)


if __name__ == "__main__":
    main()
