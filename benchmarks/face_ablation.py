"""Ablations of the face expert's recipe (issue #11): one setting changed at a time.

    python benchmarks/face_ablation.py ../shared/data [--work /tmp/emolite-ablation] [--subset 0.25 --epochs 8]

Each variant is `emolite/recipes/face.py` with the shipped first schedule's settings (width 24,
48-px grey, SGD one-cycle lr 0.05, label smoothing 0.1, the video augmentation) and one change,
trained on the same fixed random `subset` of the training images for `epochs` epochs (seed 0),
so a row costs ~5 min on 2 CPU cores instead of the ~50 min of a full schedule. Scores are
the last epoch's (no selection on the test data): FER2013 public_test accuracy / macro F1
(with and without flip test-time augmentation), the face pool's and CK+'s dev splits. Short
schedules favour settings that learn fast; a difference under ~1 point is within what the
seed alone moves. Runs are kept in --work, so a killed run resumes at the next variant.
Prints JSON and saves it to docs/results/face_ablation.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


import common as C

VARIANTS = {  # name: (what changes, train_face arguments)
    "base": ("shipped recipe (CE + label smoothing 0.1, width 24, 48 px, augmentation on)", []),
    "no_smoothing": ("plain CE, no label smoothing", ["--smoothing", "0"]),
    "class_weights": ("class-weighted CE (inverse frequency)", ["--loss", "weighted"]),
    "logit_adjust": ("logit adjustment (tau 1), no smoothing", ["--loss", "logit_adjust", "--smoothing", "0"]),
    "mixup": ("mixup / cutmix, Beta(0.4, 0.4), half the batches", ["--mixup", "0.4"]),
    "no_aug": ("no augmentation (flip included)", ["--no-aug"]),
    "width16": ("width 16 (0.29 M parameters)", ["--width", "16"]),
    "width28": ("width 28 (0.89 M parameters)", ["--width", "28"]),
    "size64": ("64-px input (the 48-px crops upsampled; 1.8x the MACs)", ["--size", "64"]),
}


def row(run: Path) -> dict:
    """The last epoch's scores of one run, and its size and time."""
    s = json.loads((run / "summary.json").read_text())
    last = s["final"]
    return {"params": s["params"], "train_seconds": s["train_seconds"], "epochs": last["epoch"],
            "public_test_acc": last["dev/fer2013"]["acc"], "public_test_f1": last["dev/fer2013"]["f1"],
            "public_test_acc_flip": last["flip"]["dev/fer2013"]["acc"],
            "pool_dev_f1": last["dev/faces_mux"]["f1"], "ckplus_dev_acc": last["dev/ckplus48"]["acc"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, help="the shared data folder (../shared/data)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/emolite-ablation"))
    ap.add_argument("--subset", type=float, default=0.25)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--only", default="", help="comma-separated variants (default: all)")
    ap.add_argument("--name", default="face_ablation")
    args = ap.parse_args()
    from emolite.recipes import face as train_face

    names = args.only.split(",") if args.only else list(VARIANTS)
    out = {"benchmark": "face_ablation", "protocol": f"{args.subset:g} of the training images (seed 0), "
           f"{args.epochs} epochs one-cycle, last epoch scored", "variants": {}}
    for name in names:
        what, extra = VARIANTS[name]
        run = args.work / name
        if not (run / "summary.json").exists():
            train_face.main([str(args.data), "--work", str(args.work), "--name", name, "--subset", str(args.subset),
                             "--epochs", str(args.epochs), *extra])
        out["variants"][name] = {"change": what, "args": extra, **row(run)}
        print(json.dumps({name: out["variants"][name]}), flush=True)
    C.emit(args.name, out)


if __name__ == "__main__":
    main()
