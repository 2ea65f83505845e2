"""EmoDB (full-length utterances, 1.2-9.0 s), audio only, leave-one-speaker-out (10 folds),
7 classes (boredom kept): the shipped voice recipe vs openSMILE ComParE_2016 + linear SVM.

    python benchmarks/emodb.py ../shared/data [--epochs 30] [--jobs 2] [--folds 0,1] [--name voice_emodb]

Fold i: test = speaker i; both systems train on the other 9 speakers.
Ours: emolite/recipes/default.py's voice recipe (`audio` model, band-normalised log-mel CNN-LSTM,
3-s input, weighted sampler, batch 32, fixed epochs with the final weights kept (`optim.keep
= "last"`), noise 5-30 dB SNR and gain ±20 dB augmentation), with EmoDB's 7 classes. The
next speaker is only a logged validation monitor (it trains too; nothing is selected on it).
Preprocessing stores each utterance whole (files up to 12 s are one cache entry); training
takes a random 3-s window of it (shorter utterances are zero-padded and the band
normalisation ignores the padding). Scored through the user path, `predict(audio=)` on the
whole file: voice activity, 3-s windows at a 1-s hop (last one ending with the file), mean
probabilities ("ours"); the one centred 3-s window that `emolite evaluate` scores is reported
too ("ours_centre_window").
Baseline: ComParE_2016 functionals (6,373) of the whole utterance -> StandardScaler ->
SVC(kernel="linear", C=0.01, class_weight="balanced"), the setting of issue #12 (fixed, not
tuned per fold), on the same 9 speakers.
Prints JSON (UAR / accuracy / macro F1, mean over the 10 speakers and pooled over all 535
utterances) and saves it to docs/results/<name>.json. The first releases' figures on the old
2-s trimmed copy (eGeMAPS baseline) are in docs/results/emodb.json, emodb_seed1.json,
emodb_v1.json and are not comparable.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


import common as C
import voice_common as V

CLASSES = ["anger", "boredom", "disgust", "fear", "happiness", "neutral", "sadness"]


def utterance_rows(data: Path) -> list[dict]:
    """EmoDB's utterances through emolite's preprocessing cache, in a fixed order."""
    _, rows, _ = C.preprocess_cache("manifest", data / "emodb" / "labels.csv", "emodb")
    return sorted(rows, key=lambda r: r["key"])


def main() -> None:
    _, shipped_epochs = V.shipped_settings()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, help="the shared data folder (../shared/data)")
    ap.add_argument("--epochs", type=int, default=shipped_epochs, help="default: the shipped recipe's")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], help="extra emolite config override (repeatable)")
    ap.add_argument("--folds", type=str, default="", help="comma-separated fold numbers (default: all 10)")
    ap.add_argument("--jobs", type=int, default=2, help="folds trained / files scored at once (1 thread each)")
    ap.add_argument("--name", default="voice_emodb", help="result name (docs/results/<name>.json)")
    args = ap.parse_args()
    C.setup(1)
    t0 = time.time()

    rows = utterance_rows(args.data)
    speakers = sorted({r["speaker"] for r in rows})
    folds = [int(f) for f in args.folds.split(",")] if args.folds else list(range(len(speakers)))
    ov = V.recipe(CLASSES, args.epochs, args.seed, args.set)
    out = {"benchmark": "emodb_full_length_loso",
           "data": "EmoDB original full-length recordings (1.2-9.0 s, 16 kHz), 535 utterances",
           "protocol": "leave-one-speaker-out, 10 folds; both systems train on the 9 non-test speakers",
           "classes": CLASSES, "items": len(rows), "speakers": speakers, "folds": folds,
           "epochs": args.epochs, "shipped_epochs": shipped_epochs, "environment": C.environment()}

    jobs = []
    for i in folds:
        test, dev = speakers[i], speakers[(i + 1) % len(speakers)]
        split_of = lambda r: "test" if r["speaker"] == test else ("train", "dev") if r["speaker"] == dev else "train"  # noqa: E731,B023
        jobs.append((str(C.make_view(rows, split_of, C.BENCH / "views" / "emodb" / f"fold{i}")), ov, "emodb", f"fold{i}"))
    t = time.time()
    runs = V.train_all(jobs, args.jobs)
    train_wall = time.time() - t

    # every test utterance once, scored by its fold's model; ComParE of every utterance (same call)
    ck = {speakers[i]: str(Path(run["run_dir"]) / "best.pt") for i, run in zip(folds, runs)}
    res = V.score_files([r["path"] for r in rows], "clean", [ck.get(r["speaker"]) for r in rows],
                        procs=args.jobs, tag="emodb")
    import numpy as np

    X_all = res["X"]
    y = np.array([r["label"] for r in rows])
    g = np.array([r["speaker"] for r in rows])
    ours, svm = [], []
    for i in folds:
        te = g == speakers[i]
        ours.append({"y_true": list(y[te]), "y_pred": [V.label_of(res["probs"][j]) for j in np.flatnonzero(te)]})
        model = C.svm_fit(X_all[~te], y[~te])
        svm.append({"y_true": list(y[te]), "y_pred": C.svm_labels(model, X_all[te])})
    out["ours"] = {"model": "emolite audio, the shipped voice recipe (emolite/recipes/default.py train_voice)",
                   "overrides": ov, "scoring": "predict(audio=) on the whole file: VAD, 3-s windows, 1-s hop, mean",
                   **V.summary(ours, CLASSES), "epochs_run": [r["result"].get("epochs") for r in runs],
                   "train_seconds_sum": sum(r["seconds"] for r in runs), "train_wall_seconds": train_wall,
                   "parallel_folds": args.jobs}
    out["ours_centre_window"] = {"scoring": "emolite evaluate at the end of training: one centred 3-s window",
                                 **C.fold_summary(runs, CLASSES)}
    out["compare_svm"] = {"features": f"openSMILE ComParE_2016 functionals ({X_all.shape[1]}) of the whole utterance",
                          "classifier": f"StandardScaler + SVC(kernel=linear, C={C.SVM_C}, class_weight=balanced), "
                                        "C fixed (issue #12's setting)", **V.summary(svm, CLASSES)}
    o, s = out["ours"], out["compare_svm"]
    out["ours_minus_svm"] = {"uar_pooled": o["pooled"]["uar"] - s["pooled"]["uar"], "uar_mean": o["uar_mean"] - s["uar_mean"],
                             "accuracy_pooled": o["pooled"]["accuracy"] - s["pooled"]["accuracy"]}
    out["target"] = {"uar": 0.86, "met_pooled": o["pooled"]["uar"] >= 0.86, "met_mean": o["uar_mean"] >= 0.86}
    out["wall_seconds"] = time.time() - t0
    C.emit(args.name, out)


if __name__ == "__main__":
    main()
