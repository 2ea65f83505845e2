"""EmoDB, audio only, leave-one-speaker-out (10 folds), 7 classes: our audio model vs
openSMILE eGeMAPSv02 functionals + linear SVM.

    python benchmarks/emodb.py ../shared/data [--epochs 20] [--keep last|best] [--seed 0] [--set KEY=VALUE ...]

Fold i: test = speaker i. Ours (default --keep last): trains a fixed 20 epochs on the other
9 speakers and keeps the final weights; the next speaker's validation scores are only logged
(it is also in training, nothing is selected on it). --keep best: that speaker is held out
and early-stops / picks the best checkpoint (the first release's protocol). The SVM trains on
the same 9 non-test speakers and picks C by a speaker-grouped inner 3-fold CV on them. Prints
JSON (UAR and accuracy, mean over folds and pooled over all 535 utterances) and saves it to
docs/results/<name>.json.

The shared EmoDB copy is trimmed/padded to exactly 2 s per file, so these numbers are not
comparable with published full-length EmoDB results.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common as C  # noqa: E402

CLASSES = ["anger", "boredom", "disgust", "fear", "happiness", "neutral", "sadness"]
PILOT_UNSEEN = ("13", "14", "15", "16")   # speakers outside the folds benchmarks/audio_pilot.py tuned on


def our_overrides(args) -> list[str]:
    return ['model.name="audio"', f"data.classes={CLASSES!r}".replace("'", '"'), "data.audio_seconds=2.0",
            "data.frames=1", f"data.batch_size={args.batch}", f"optim.epochs={args.epochs}",
            f"optim.patience={args.epochs + 1 if args.keep == 'last' else args.patience}", f"optim.lr={args.lr}",
            'optim.monitor="val/uar"', f'optim.keep="{args.keep}"', 'loss.name="weighted_ce"', f"trainer.seed={args.seed}",
            *args.set]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, help="the shared data folder (../shared/data)")
    C.add_training_args(ap)
    ap.add_argument("--folds", type=str, default="", help="comma-separated fold numbers (default: all 10)")
    ap.add_argument("--no-svm", action="store_true")
    ap.add_argument("--no-ours", action="store_true")
    ap.add_argument("--name", default="emodb", help="result name (docs/results/<name>.json)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    C.setup(args.threads)
    t0 = time.time()

    cdir, rows, summary = C.preprocess_cache("manifest", args.data / "emodb" / "labels.csv", "emodb")
    rows = sorted(rows, key=lambda r: r["key"])
    speakers = sorted({r["speaker"] for r in rows})
    folds = [int(f) for f in args.folds.split(",")] if args.folds else list(range(len(speakers)))
    out = {"benchmark": "emodb", "protocol": "leave-one-speaker-out, 10 folds; ours: " + (
               "fixed epochs on the 9 non-test speakers, final weights" if args.keep == "last"
               else "dev = next speaker (early stopping, best checkpoint)"),
           "classes": CLASSES, "items": len(rows), "speakers": speakers, "folds": folds,
           "environment": C.environment()}

    if not args.no_svm:
        import numpy as np
        X = C.smile_features([r["path"] for r in rows], "eGeMAPSv02", "emodb")
        y = np.array([r["label"] for r in rows])
        g = np.array([r["speaker"] for r in rows])
        out["egemaps_svm"] = {"features": "openSMILE eGeMAPSv02 functionals (88)",
                              "classifier": "StandardScaler + SVC(kernel=linear, class_weight=balanced); "
                                            f"C from {list(C.C_GRID)} by speaker-grouped inner 3-fold CV (UAR)",
                              **C.svm_folds(X, y, g, [g == speakers[i] for i in folds], CLASSES)}

    if not args.no_ours:
        ov = our_overrides(args)
        our_folds = []
        for i in folds:
            test, dev = speakers[i], speakers[(i + 1) % len(speakers)]
            # keep=last: the dev speaker trains too and is only a monitor (nothing is selected on it).
            dev_split = C.dev_split(args.keep)
            split_of = lambda r: "test" if r["speaker"] == test else dev_split if r["speaker"] == dev else "train"  # noqa: E731,B023
            view = C.make_view(rows, split_of, C.BENCH / "views" / "emodb" / f"fold{i}")
            our_folds.append(C.train_eval(view, ov, "emodb", f"fold{i}"))
        out["ours"] = {"model": "emolite audio (2-D CNN-LSTM on log-mel, Zhao et al. 2019 style)",
                       "overrides": ov, **C.runs_summary(our_folds, CLASSES)}
        from emolite.models import build_model, count_macs, count_params, example_batch
        m = build_model("audio", len(CLASSES))
        out["ours"]["params"] = count_params(m)
        out["ours"]["macs_per_2s_clip"] = count_macs(m, example_batch(1, 1, 2.0))

    if "ours" in out and "egemaps_svm" in out:
        o, s = out["ours"]["pooled"], out["egemaps_svm"]["pooled"]
        out["ours_minus_svm"] = {"uar_pooled": o["uar"] - s["uar"], "accuracy_pooled": o["accuracy"] - s["accuracy"],
                                 "uar_mean": out["ours"]["uar_mean"] - out["egemaps_svm"]["uar_mean"]}
        # benchmarks/audio_pilot.py chose the recipe on speakers 03-12 (its folds 0-2); these never informed it
        unseen = [j for j, i in enumerate(folds) if speakers[i] in PILOT_UNSEEN]
        if unseen:
            out["ours_vs_svm_on_pilot_unseen_speakers"] = {
                "speakers": [speakers[folds[j]] for j in unseen],
                "ours_uar_mean": sum(out["ours"]["per_fold"][j]["uar"] for j in unseen) / len(unseen),
                "svm_uar_mean": sum(out["egemaps_svm"]["per_fold"][j]["uar"] for j in unseen) / len(unseen)}
    out["wall_seconds"] = time.time() - t0
    C.emit(args.name, out)


if __name__ == "__main__":
    main()
