"""Speaker-level normalisation for the voice benchmarks of issue #12: what it adds, both systems.

    python benchmarks/emodb.py ../shared/data && python benchmarks/bench_ravdess.py ../shared/data   # first
    python benchmarks/voice_speaker_norm.py ../shared/data

Speaker-level normalisation uses several recordings of the test speaker at once, so it is an
option for a user who has a batch of clips per speaker (a corpus, a panel, one person's
recordings), not for one clip of an unknown voice; the shipped model normalises per utterance
(band normalisation of the log-mel). Two forms, on the same folds and the same cached answers
as benchmarks/emodb.py (leave-one-speaker-out, 7 classes) and benchmarks/bench_ravdess.py (6 folds by
actor, 8 classes):
- ours: per test speaker, the speaker's mean log-probability over their clips is subtracted
  from each clip's before the argmax (no retraining; it removes a speaker's bias towards some
  classes and assumes their clips are not all one emotion);
- ComParE + SVM: every speaker's functionals z-scored by that speaker's own mean and standard
  deviation (train and test speakers alike), then the same scaler + linear SVM (C = 0.01).
Nothing is trained here: the fold models and ComParE features are read from the benchmarks'
caches (BENCH/runs, BENCH/voice), so run those two first. Prints JSON and saves
docs/results/voice_speaker_norm.json.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


import common as C
import voice_common as V


def speaker_normalised(probs: list, groups: np.ndarray, classes: list[str]) -> list[dict | None]:
    """Each clip's log-probabilities minus its speaker's mean over their voiced clips."""
    out: list[dict | None] = [None] * len(probs)
    for s in sorted(set(groups)):
        idx = [i for i in np.flatnonzero(groups == s) if probs[i] is not None]
        if not idx:
            continue
        lp = np.log(np.array([[probs[i][c] for c in classes] for i in idx]) + 1e-9)
        lp -= lp.mean(0, keepdims=True)
        for i, row in zip(idx, lp):
            out[i] = dict(zip(classes, row.tolist()))
    return out


def speaker_z(X: np.ndarray, groups: np.ndarray) -> np.ndarray:
    Z = np.empty_like(X, dtype=np.float64)
    for s in set(groups):
        k = groups == s
        Z[k] = (X[k] - X[k].mean(0)) / (X[k].std(0) + 1e-6)
    return Z


def compare(rows: list[dict], test_sets: list[np.ndarray], probs: list, X: np.ndarray, classes: list[str]) -> dict:
    y = np.array([r["label"] for r in rows])
    g = np.array([r["speaker"] for r in rows])
    normed = speaker_normalised(probs, g, classes)
    Z = speaker_z(X, g)
    got = {k: [] for k in ("ours", "ours_speaker_norm", "svm", "svm_speaker_norm")}
    for te in test_sets:
        idx = np.flatnonzero(te)
        truth = list(y[idx])
        got["ours"].append({"y_true": truth, "y_pred": [V.label_of(probs[j]) for j in idx]})
        got["ours_speaker_norm"].append({"y_true": truth, "y_pred": [V.label_of(normed[j]) for j in idx]})
        got["svm"].append({"y_true": truth, "y_pred": C.svm_labels(C.svm_fit(X[~te], y[~te]), X[te])})
        got["svm_speaker_norm"].append({"y_true": truth, "y_pred": C.svm_labels(C.svm_fit(Z[~te], y[~te]), Z[te])})
    return {k: {kk: v for kk, v in V.summary(f, classes).items() if kk != "confusion_pooled"} for k, f in got.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, help="the shared data folder (../shared/data)")
    ap.add_argument("--name", default="voice_speaker_norm")
    args = ap.parse_args()
    C.setup(1)
    import emodb
    import bench_ravdess as ravdess

    t0 = time.time()
    _, epochs = V.shipped_settings()
    out = {"benchmark": "voice_speaker_norm", "what": "speaker-level normalisation of our answers / of the "
           "ComParE features, on the folds and cached answers of voice_emodb and voice_ravdess"}

    rows = emodb.utterance_rows(args.data)
    speakers = sorted({r["speaker"] for r in rows})
    ov = V.recipe(emodb.CLASSES, epochs, 0)
    ck = {s: V.finished_checkpoint(ov, "emodb", f"fold{i}", "run benchmarks/emodb.py first") for i, s in enumerate(speakers)}
    res = V.score_files([r["path"] for r in rows], "clean", [ck[r["speaker"]] for r in rows], tag="emodb")
    g = np.array([r["speaker"] for r in rows])
    out["emodb_loso_7"] = compare(rows, [g == s for s in speakers], res["probs"], res["X"], emodb.CLASSES)

    rows = ravdess.speech_rows(args.data)
    folds = ravdess.actor_folds(rows)
    ov = V.recipe(ravdess.CLASSES, epochs, 0)
    fold_ck = [V.finished_checkpoint(ov, "ravdess", f"fold{i}", "run benchmarks/bench_ravdess.py first") for i in range(len(folds))]
    ck = {a: fold_ck[i] for i, f in enumerate(folds) for a in f}
    res = V.score_files([r["path"] for r in rows], "clean", [ck.get(r["speaker"]) for r in rows], tag="ravdess")
    g = np.array([r["speaker"] for r in rows])
    out["ravdess_6fold_8"] = compare(rows, [np.isin(g, f) for f in folds], res["probs"], res["X"], ravdess.CLASSES)
    out["wall_seconds"] = time.time() - t0
    C.emit(args.name, out)


if __name__ == "__main__":
    main()
