"""CK+48, face only, 10-fold subject-independent: accuracy and macro F1 of our face model.

    python benchmarks/ckplus.py ../shared/data [--epochs 12] [--patience 4] [--folds 0,1]

981 48×48 crops (327 sequences × 3 peak frames, 118 subjects, 7 classes; no neutral).
Preprocessed by emolite's own pipeline (RetinaFace, with its whole-image fallback for small
already-cropped stills), then the `face` model on stills (data.frames=1). Folds:
emolite.data.splits.speaker_folds(k=10, seed 0) over the `subject` column, so no subject is
in two splits; fold i is test, fold i+1 is dev (early stopping), the other 8 train.
Prints JSON and saves it to docs/results/<name>.json.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


import common as C

CLASSES = ["anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, help="the shared data folder (../shared/data)")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--patience", type=int, default=4)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--folds", type=str, default="")
    ap.add_argument("--name", default="ckplus")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    C.setup(args.threads)
    from emolite.data import Item
    from emolite.data.splits import speaker_folds
    from emolite.models import build_model, count_macs, count_params, example_batch

    t0 = time.time()
    _, rows, summary = C.preprocess_cache("manifest", args.data / "ckplus48" / "labels.csv", "ckplus48")
    rows = sorted(rows, key=lambda r: r["key"])
    items = [Item(r["path"], r["label"], speaker=r["speaker"], key=r["key"]) for r in rows]
    folds = speaker_folds(items, 10, args.seed)
    which = [int(f) for f in args.folds.split(",")] if args.folds else list(range(10))
    ov = ['model.name="face"', f"data.classes={C_list(CLASSES)}", "data.frames=1", "data.audio_seconds=0.2",
          f"data.batch_size={args.batch}", f"optim.epochs={args.epochs}", f"optim.patience={args.patience}",
          f"optim.lr={args.lr}", 'optim.monitor="val/loss"', 'optim.mode="min"', 'loss.name="weighted_ce"',
          f"trainer.seed={args.seed}", *args.set]
    runs = []
    for i in which:
        test, dev = set(folds[i]), set(folds[(i + 1) % 10])
        split_of = lambda r: "test" if r["speaker"] in test else "dev" if r["speaker"] in dev else "train"  # noqa: E731
        view = C.make_view(rows, split_of, C.BENCH / "views" / "ckplus" / f"fold{i}")
        runs.append(C.train_eval(view, ov, "ckplus", f"fold{i}"))
    m = build_model("face", len(CLASSES))
    out = {"benchmark": "ckplus48", "protocol": "10-fold subject-independent (speaker_folds over `subject`, seed 0); "
                                                "dev = next fold",
           "classes": CLASSES, "items": len(rows), "subjects": len({r["speaker"] for r in rows}), "folds": which,
           "preprocess": {k: summary[k] for k in ("items", "done", "reused", "failed", "no_face")},
           "model": "emolite face encoder + GRU (T=1) + head", "params": count_params(m),
           "macs_per_image": count_macs(m, example_batch(1, 1, 0.2)), "overrides": ov,
           **C.runs_summary(runs, CLASSES),
           "anchor": {"accuracy": 0.946, "what": "VGG19, 10-fold, per WuJie1010/Facial-Expression-Recognition.Pytorch "
                                                 "(~20 M parameters; its folds are not stated to be by subject)"},
           "environment": C.environment(), "wall_seconds": time.time() - t0}
    C.emit(args.name, out)


def C_list(xs: list[str]) -> str:
    return str(list(xs)).replace("'", '"')


if __name__ == "__main__":
    main()
