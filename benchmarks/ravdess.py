"""RAVDESS speech (actors 01-18), audio only, 8 classes, 6-fold by actor: our audio model vs
openSMILE ComParE_2016 functionals + linear SVM; plus EmoDB <-> RAVDESS cross-corpus on the
six shared classes (anger, disgust, fear, happiness, neutral, sadness).

    python benchmarks/ravdess.py ../shared/data [--epochs 20] [--seconds 3.0] [--keep last|best] [--skip-cross]

Folds: emolite.data.splits.speaker_folds(k=6, seed 0, balanced by sex): 3 actors per fold.
Fold i: test = fold i. Ours (default --keep last): a fixed number of epochs on the 15 other
actors, final weights; fold i+1's validation scores are only logged (those actors also train).
--keep best: fold i+1 is held out for early stopping / best checkpoint. The SVM trains on
the 15 non-test actors and picks C by an actor-grouped inner
3-fold CV. Cross-corpus: train on all of one corpus (ours: as above, by --keep), test on all of the other, restricted to the shared classes; the SVM there uses
eGeMAPSv02 (88), standardised on the training corpus ("egemaps_svm") or each corpus on
itself ("egemaps_svm_per_corpus_norm", the usual cross-corpus normalisation; it uses the
test corpus's unlabelled feature statistics). Prints JSON and saves it to
docs/results/<name>.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common as C  # noqa: E402

CLASSES = ["anger", "calm", "disgust", "fear", "happiness", "neutral", "sadness", "surprise"]
SHARED = ["anger", "disgust", "fear", "happiness", "neutral", "sadness"]


def js(x) -> str:
    return str(x).replace("'", '"')


def overrides(args, classes: list[str], seconds: float) -> list[str]:
    return ['model.name="audio"', f"data.classes={js(classes)}", f"data.audio_seconds={seconds}", "data.frames=1",
            f"data.batch_size={args.batch}", f"optim.epochs={args.epochs}",
            f"optim.patience={args.epochs + 1 if args.keep == 'last' else args.patience}", f"optim.lr={args.lr}",
            'optim.monitor="val/loss"', 'optim.mode="min"', f'optim.keep="{args.keep}"', 'loss.name="weighted_ce"',
            f"trainer.seed={args.seed}", *args.set]


def actor_folds(rows: list[dict], k: int = 6, seed: int = 0) -> list[list[str]]:
    from emolite.data import Item
    from emolite.data.splits import speaker_folds

    items = [Item(r["path"], r["label"], speaker=r["speaker"], key=r["key"]) for r in rows]
    strata = {r["speaker"]: "male" if int(r["speaker"]) % 2 else "female" for r in rows}
    return speaker_folds(items, k, seed, strata)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, help="the shared data folder (../shared/data)")
    C.add_training_args(ap)
    ap.add_argument("--seconds", type=float, default=3.0, help="audio window of our model (files are 2.9-5.0 s)")
    ap.add_argument("--folds", type=str, default="", help="comma-separated fold numbers (default: all 6)")
    ap.add_argument("--no-svm", action="store_true")
    ap.add_argument("--no-ours", action="store_true")
    ap.add_argument("--skip-cross", action="store_true")
    ap.add_argument("--name", default="ravdess")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    C.setup(args.threads)
    import numpy as np

    t0 = time.time()
    _, rows, _ = C.preprocess_cache("ravdess", args.data / "ravdess" / "speech", "ravdess_speech",
                                    {"modality": "audio"})
    rows = sorted(rows, key=lambda r: r["key"])
    folds_actors = actor_folds(rows)
    which = [int(f) for f in args.folds.split(",")] if args.folds else list(range(len(folds_actors)))
    out = {"benchmark": "ravdess", "protocol": "6-fold by actor (3 actors per fold); ours: " + (
               "fixed epochs on the 15 non-test actors, final weights" if args.keep == "last"
               else "dev = next fold (early stopping, best checkpoint)"),
           "classes": CLASSES, "items": len(rows), "actor_folds": folds_actors, "folds": which,
           "environment": C.environment()}
    y = np.array([r["label"] for r in rows])
    g = np.array([r["speaker"] for r in rows])

    if not args.no_svm:
        X = C.smile_features([r["path"] for r in rows], "ComParE_2016", "ravdess")
        out["compare_svm"] = {"features": f"openSMILE ComParE_2016 functionals ({X.shape[1]})",
                              "classifier": "StandardScaler + SVC(kernel=linear, class_weight=balanced); "
                                            f"C from {list(C.C_GRID)} by actor-grouped inner 3-fold CV (UAR)",
                              **C.svm_folds(X, y, g, [np.isin(g, folds_actors[i]) for i in which], CLASSES)}

    if not args.no_ours:
        ov = overrides(args, CLASSES, args.seconds)
        our_folds = []
        for i in which:
            test, dev = set(folds_actors[i]), set(folds_actors[(i + 1) % len(folds_actors)])
            # keep=last: the dev actors train too and are only a monitor (nothing is selected on them).
            dev_split = C.dev_split(args.keep)
            split_of = lambda r: "test" if r["speaker"] in test else dev_split if r["speaker"] in dev else "train"  # noqa: E731,B023
            view = C.make_view(rows, split_of, C.BENCH / "views" / "ravdess" / f"fold{i}")
            our_folds.append(C.train_eval(view, ov, "ravdess", f"fold{i}"))
        out["ours"] = {"model": "emolite audio (2-D CNN-LSTM on log-mel)", "overrides": ov,
                       **C.runs_summary(our_folds, CLASSES)}
        if "compare_svm" in out:
            o, s = out["ours"]["pooled"], out["compare_svm"]["pooled"]
            out["ours_minus_svm"] = {"uar_pooled": o["uar"] - s["uar"], "accuracy_pooled": o["accuracy"] - s["accuracy"]}

    if not args.skip_cross:
        out["cross_corpus"] = cross_corpus(args, rows)
    out["wall_seconds"] = time.time() - t0
    C.emit(args.name, out)


def cross_corpus(args, rav_rows: list[dict]) -> dict:
    """Train on EmoDB, test on RAVDESS and the reverse, on the shared classes."""
    _, emo_rows, _ = C.preprocess_cache("manifest", args.data / "emodb" / "labels.csv", "emodb")
    emo = sorted([{**r, "speaker": f"emodb_{r['speaker']}"} for r in emo_rows if r["label"] in SHARED],
                 key=lambda r: r["key"])
    rav = [{**r, "speaker": f"ravdess_{r['speaker']}"} for r in rav_rows if r["label"] in SHARED]
    res = {"classes": SHARED, "emodb_items": len(emo), "ravdess_items": len(rav),
           "our_audio_seconds": 2.0,
           "note": "ours: all of the training corpus trains for fixed epochs (--keep last; with --keep best "
                   "its dev speakers, EmoDB 03 + 08 / RAVDESS fold-0 actors, are held out and early-stop); "
                   "SVM: eGeMAPSv02 on all of the training corpus, C by speaker-grouped inner CV"}
    emo_spk = sorted({r["speaker"] for r in emo})
    rav_dev = {f"ravdess_{a}" for a in actor_folds(rav_rows)[0]}
    plans = {"emodb_to_ravdess": (emo, rav, set(emo_spk[:2])), "ravdess_to_emodb": (rav, emo, rav_dev)}
    if not args.no_svm:
        Xe = C.smile_features([r["path"] for r in emo], "eGeMAPSv02", "emodb6")
        Xr = C.smile_features([r["path"] for r in rav], "eGeMAPSv02", "ravdess6")
        feats = {"emodb_to_ravdess": (Xe, Xr), "ravdess_to_emodb": (Xr, Xe)}
    for name, (tr, te, dev) in plans.items():
        entry = {}
        if not args.no_ours:
            train_keys = {r["key"] for r in tr}
            dev_split = C.dev_split(args.keep)
            split_of = lambda r: (dev_split if r["speaker"] in dev else "train") if r["key"] in train_keys else "test"  # noqa: E731,B023
            view = C.make_view(tr + te, split_of, C.BENCH / "views" / "cross" / name)
            run = C.train_eval(view, overrides(args, SHARED, 2.0), "cross", name)
            entry["ours"] = {**C.scores(run["y_true"], run["y_pred"], SHARED),
                             "per_class_recall": C.per_class_recall(run["y_true"], run["y_pred"]),
                             "epochs_run": run["result"].get("epochs"), "train_seconds": run["seconds"]}
        if not args.no_svm:
            Xtr, Xte = feats[name]
            yt = [r["label"] for r in te]
            for key, (a, b) in {"egemaps_svm": (Xtr, Xte),
                                "egemaps_svm_per_corpus_norm": (C.zscore(Xtr), C.zscore(Xte))}.items():
                pred, c = C.svm_fit_predict(a, [r["label"] for r in tr], [r["speaker"] for r in tr], b)
                entry[key] = {**C.scores(yt, pred, SHARED), "C": c, "per_class_recall": C.per_class_recall(yt, pred)}
        entry["chance_uar"] = 1 / len(SHARED)
        res[name] = entry
    return res


if __name__ == "__main__":
    main()
