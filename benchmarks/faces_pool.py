"""The face pool (faces_mux), face only, 8 very imbalanced classes: stratified held-out
accuracy and macro F1 of our face model.

    python benchmarks/faces_pool.py ../shared/data [--epochs 10] [--patience 3] [--test 0.2] [--seed 0]

Split by image, stratified by label (sklearn train_test_split, seed 0): 20 % test, then 10 %
of the rest as dev (early stopping). The same person often appears several times and the
labels are noisy (see the data README), so this measures fit to this pool, not identity-
independent generalisation. Preprocessed by emolite's pipeline (RetinaFace with the
whole-image fallback for small already-cropped stills). Prints JSON and saves it to
docs/results/<name>.json.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path


import common as C

CLASSES = ["anger", "contempt", "disgust", "fear", "happiness", "neutral", "sadness", "surprise"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, help="the shared data folder (../shared/data)")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--patience", type=int, default=3)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--test", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--name", default="faces_pool")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    C.setup(args.threads)
    from sklearn.model_selection import train_test_split

    from emolite.models import build_model, count_params

    t0 = time.time()
    _, rows, summary = C.preprocess_cache("manifest", args.data / "faces_mux" / "labels.csv", "faces_mux")
    rows = sorted(rows, key=lambda r: r["key"])
    keys = [r["key"] for r in rows]
    labels = [r["label"] for r in rows]
    rest, test = train_test_split(keys, test_size=args.test, stratify=labels, random_state=args.seed)
    lab = dict(zip(keys, labels))
    train, dev = train_test_split(rest, test_size=0.1, stratify=[lab[k] for k in rest], random_state=args.seed)
    where = {**{k: "train" for k in train}, **{k: "dev" for k in dev}, **{k: "test" for k in test}}
    view = C.make_view(rows, lambda r: where[r["key"]], C.BENCH / "views" / "faces_pool" / f"seed{args.seed}")
    ov = ['model.name="face"', f"data.classes={str(CLASSES).replace(chr(39), chr(34))}", "data.frames=1",
          "data.audio_seconds=0.2", f"data.batch_size={args.batch}", f"optim.epochs={args.epochs}",
          f"optim.patience={args.patience}", f"optim.lr={args.lr}", 'optim.monitor="val/loss"', 'optim.mode="min"',
          'loss.name="weighted_ce"', f"trainer.seed={args.seed}", *args.set]
    run = C.train_eval(view, ov, "faces_pool", f"seed{args.seed}")
    yt, yp = run["y_true"], run["y_pred"]
    majority = Counter(labels).most_common(1)[0][0]
    out = {"benchmark": "faces_pool", "protocol": f"stratified held-out by image ({1 - args.test:.0%}/{args.test:.0%}, "
                                                  f"seed {args.seed}); dev = 10 % of train, stratified",
           "classes": CLASSES, "items": len(rows), "class_counts": dict(sorted(Counter(labels).items())),
           "split_counts": dict(Counter(where.values())),
           "test_counts": dict(sorted(Counter(yt).items())),
           "preprocess": {k: summary[k] for k in ("items", "done", "reused", "failed", "no_face")},
           "model": "emolite face encoder + GRU (T=1) + head", "params": count_params(build_model("face", len(CLASSES))),
           "overrides": ov, "epochs_run": run["result"].get("epochs"), "train_seconds": run["seconds"],
           "test": {**C.scores(yt, yp, CLASSES),
                    "f1_weighted": run["result"].get("test/f1_weighted")},
           "per_class_recall": C.per_class_recall(yt, yp),
           "confusion": {"classes": CLASSES, "matrix": C.confusion(yt, yp, CLASSES)},
           "majority_baseline": {"class": majority, **C.scores(yt, [majority] * len(yt), CLASSES)},
           "environment": C.environment(), "wall_seconds": time.time() - t0}
    C.emit(args.name, out)


if __name__ == "__main__":
    main()
