"""Leave-one-corpus-out (LOCO) for the voice, baseline half: openSMILE ComParE_2016 functionals +
class-balanced linear SVM, each of EmoDB, RAVDESS, nEMO, ASED, TurEV-DB held out in turn,
trained on the other four, scored over the held-out corpus's classes (issue #20).

    nice -n 19 python benchmarks/voice_loco.py ../shared/data [--features /tmp/voice_loco_features]
        [--held-out emodb,ravdess,nemo,ased,turev] [--variants plain,corpus_norm] [--name voice_loco_svm]

Items: the loaders `emodb`, `nemo`, `ased`, `turev` (emolite.data.speech) and `ravdess`
(audio files), labels pooled by emolite.labels.POOLED (calm -> neutral, boredom left out), so
TurEV's calm is scored as neutral and EmoDB is scored over 6 classes. Folds:
emolite.data.splits.loco_folds; the training set is the other corpora's items of the held-out
corpus's classes (the inner dev split is not used: the SVM's C is fixed).
Features: ComParE_2016 functionals (6,373) of each whole file at 16 kHz, one process; FLAC
decoded by soundfile (as the other voice benchmarks), Ogg/Opus by emolite.media.load_audio
(PyAV, the user path: libsndfile calls some of nEMO's Opus files malformed). Cached per file as <features>/<corpus>/<key>.npy, and
per corpus as <features>/<corpus>.npz (arrays keys, labels, speakers, X; pooled labels) once
complete, so a killed run resumes and the next session reuses them. Each fold's answers are
saved under <features>/svm/, so a killed run also skips finished folds.
Classifier: StandardScaler + SVC(kernel="linear", C=0.01, class_weight="balanced"), the fixed
setting of benchmarks/emodb.py and ravdess.py (issue #12). Variants: "plain" (scaler fitted on
the four training corpora; the issue's baseline) and "corpus_norm" (each corpus, the held-out
one included, z-scored on its own features before the same pipeline: unsupervised adaptation
that needs the test corpus's statistics, as ravdess.py's compare_svm_per_corpus_norm) and
"balanced" (the plain features; per-item weights from splits.balance_weights over corpus ->
speaker -> class instead of the class weights: every training corpus, each of its speakers and
each speaker's classes count the same).
Reported per held-out corpus: UAR (macro recall over its classes), accuracy, neutral recall,
the largest class's share of the answers (issue target: at most 0.40), per-class recall and the
confusion matrix; and the mean over corpora. Prints JSON; saves docs/results/<name>.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

import common as C
import voice_common as V

CORPORA = ("emodb", "ravdess", "nemo", "ased", "turev")
VARIANTS = ("plain", "corpus_norm", "balanced")
FEATURE_SET = "ComParE_2016"
KERNEL_CACHE_MB = 1000    # libsvm's kernel cache: speed only, the fit is the same
MAX_CLASS_SHARE = 0.40    # issue #20's "no collapse" bound
BALANCED_LEVELS = ("dataset", "speaker", "label")   # the "balanced" variant's sample weights


def corpus_items(data: Path) -> list:
    """Every corpus's items with pooled labels (emolite.labels.POOLED), in a fixed order."""
    from emolite.data import load_dataset
    from emolite.data.speech import corpus_speaker
    from emolite.labels import pool_label

    items = []
    for name in CORPORA:
        if name == "ravdess":
            found, problems = load_dataset("ravdess", data / "ravdess", modality="audio")
            found = [replace(it, label=pool_label(it.label), speaker=corpus_speaker("ravdess", it.speaker))
                     for it in found if pool_label(it.label) is not None]
        else:
            found, problems = load_dataset(name, data / name, pool=True)
        if problems:
            C.log(f"{name}: {len(problems)} problems, first: {problems[0]}")
        items += sorted(found, key=lambda it: it.key)
    return items


def read_speech(path: str) -> np.ndarray:
    """16 kHz mono float32: soundfile for FLAC/WAV (V.read_audio), PyAV for everything else."""
    from emolite.media import load_audio

    return V.read_audio(path) if Path(path).suffix.lower() in (".flac", ".wav") else load_audio(path)


def corpus_features(items: list, root: Path) -> np.ndarray:
    """ComParE functionals of every item, through the per-file and per-corpus caches."""
    import opensmile

    smile = None
    X = []
    for corpus in dict.fromkeys(it.dataset for it in items):
        mine = [it for it in items if it.dataset == corpus]
        packed = root / f"{corpus}.npz"
        if packed.exists():
            with np.load(packed) as z:
                if list(z["keys"]) == [it.key for it in mine]:
                    X.append(z["X"])
                    continue
        folder = root / corpus
        folder.mkdir(parents=True, exist_ok=True)
        t, done = time.time(), 0
        rows = []
        for it in mine:
            f = folder / f"{it.key}.npy"
            if not f.exists():
                smile = smile or opensmile.Smile(feature_set=getattr(opensmile.FeatureSet, FEATURE_SET),
                                                 feature_level=opensmile.FeatureLevel.Functionals)
                x = smile.process_signal(read_speech(it.path), 16000).to_numpy()[0].astype(np.float32)
                tmp = folder / f".{it.key}.tmp.npy"
                np.save(tmp, x)
                tmp.replace(f)     # atomic: a kill leaves no half-written feature file
                done += 1
                if done % 500 == 0:
                    C.log(f"{corpus}: {done} files extracted ({time.time() - t:.0f} s)")
            rows.append(np.load(f))
        Xc = np.stack(rows)
        tmp = root / f".{corpus}.tmp.npz"
        np.savez(tmp, keys=np.array([it.key for it in mine]), labels=np.array([it.label for it in mine]),
                 speakers=np.array([it.speaker for it in mine]), X=Xc)
        tmp.replace(packed)
        C.log(f"{corpus}: {len(mine)} files, {done} extracted now ({time.time() - t:.0f} s) -> {packed}")
        X.append(Xc)
    return np.concatenate(X)


def svm_fit_predict(X_tr: np.ndarray, y_tr, X_te: np.ndarray, weights: np.ndarray | None = None) -> list[str]:
    """common.svm_fit's model (StandardScaler + linear SVC, C = C.SVM_C, balanced classes)
    with the linear kernel computed once by BLAS (SVC(kernel="precomputed") on the standardised
    features' Gram matrix: the same solution, but minutes instead of an hour on 7,000 x 6,373).
    With `weights` (per training item, mean 1) those replace the class weights."""
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    scaler = StandardScaler().fit(X_tr)
    A = scaler.transform(X_tr).astype(np.float64)
    B = scaler.transform(X_te).astype(np.float64)
    svc = SVC(kernel="precomputed", C=C.SVM_C, class_weight="balanced" if weights is None else None,
              cache_size=KERNEL_CACHE_MB)
    svc.fit(A @ A.T, list(y_tr), sample_weight=weights)
    return [str(p) for p in svc.predict(B @ A.T)]


def per_corpus_z(X: np.ndarray, corpus: np.ndarray) -> np.ndarray:
    """Each corpus standardised on its own features (C.zscore per corpus)."""
    Z = np.empty_like(X)
    for c in np.unique(corpus):
        Z[corpus == c] = C.zscore(X[corpus == c])
    return Z


def fold_answers(X: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray, memo: Path,
                 weights: np.ndarray | None = None) -> dict:
    """The SVM's answers on the test rows (memoised by the data, so a rerun skips the fit)."""
    h = hashlib.sha1()
    for part in (X[train], X[test], y[train], np.float64(C.SVM_C)) + (() if weights is None else (weights,)):
        h.update(np.ascontiguousarray(part).tobytes())
    f = memo / f"{h.hexdigest()[:16]}.json"
    if f.exists():
        return json.loads(f.read_text())
    t = time.time()
    pred = svm_fit_predict(X[train], y[train], X[test], weights)
    out = {"pred": pred, "fit_seconds": time.time() - t, "n_train": int(train.sum())}
    memo.mkdir(parents=True, exist_ok=True)
    f.write_text(json.dumps(out))
    return out


def fold_scores(y_true: list[str], y_pred: list[str], classes: tuple[str, ...]) -> dict:
    """UAR, accuracy, neutral recall, the largest class's share of the answers, recall per class."""
    recall = C.per_class_recall(y_true, y_pred)
    shares = {c: y_pred.count(c) / len(y_pred) for c in classes}
    top = max(shares, key=shares.get)
    return {**C.scores(y_true, y_pred, classes), "neutral_recall": recall.get("neutral"),
            "largest_class": top, "largest_class_share": shares[top],
            "no_collapse": shares[top] <= MAX_CLASS_SHARE, "per_class_recall": recall, "answer_share": shares,
            "confusion": {"classes": list(classes), "matrix": C.confusion(y_true, y_pred, classes)}}


def mean_row(folds: dict) -> dict:
    keys = ("uar", "accuracy", "neutral_recall", "largest_class_share")
    return {k: float(np.mean([f[k] for f in folds.values()])) for k in keys} | {"corpora": len(folds)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, help="the shared data folder (../shared/data)")
    ap.add_argument("--features", type=Path, default=Path("/tmp/voice_loco_features"),
                    help="feature cache folder (per file and per corpus; reused and resumed)")
    ap.add_argument("--held-out", default=",".join(CORPORA), help="comma-separated corpora to hold out")
    ap.add_argument("--variants", default="plain", help=f"comma-separated, of {', '.join(VARIANTS)}")
    ap.add_argument("--features-only", action="store_true", help="extract and cache the features, fit nothing")
    ap.add_argument("--name", default="voice_loco_svm", help="result name (docs/results/<name>.json)")
    args = ap.parse_args()
    from emolite.data.splits import balance_weights, loco_folds

    t0 = time.time()
    items = corpus_items(args.data)
    X = corpus_features(items, args.features)
    if args.features_only:
        C.log(f"features of {len(items)} files in {args.features} ({time.time() - t0:.0f} s)")
        return
    keys = {it.key: i for i, it in enumerate(items)}
    y = np.array([it.label for it in items])
    corpus = np.array([it.dataset for it in items])
    variants = [v for v in args.variants.split(",") if v]
    assert set(variants) <= set(VARIANTS), variants
    out = {"benchmark": "voice_leave_one_corpus_out_baseline",
           "protocol": "each corpus held out in turn; the SVM trains on the other four corpora's files of the "
                       "held-out corpus's classes; scored on every held-out file over those classes",
           "labels": "pooled: calm -> neutral, boredom left out (emolite.labels.POOLED)",
           "features": f"openSMILE {FEATURE_SET} functionals ({X.shape[1]}) of the whole file",
           "classifier": f"StandardScaler + SVC(kernel=linear, C={C.SVM_C}, class_weight=balanced), C fixed",
           "items": {c: int((corpus == c).sum()) for c in CORPORA},
           "speakers": {c: len({it.speaker for it in items if it.dataset == c}) for c in CORPORA},
           "max_class_share_target": MAX_CLASS_SHARE, "environment": C.environment()}
    feats = {"plain": X, "balanced": X, "corpus_norm": per_corpus_z(X, corpus) if "corpus_norm" in variants else None}
    held = [c for c in args.held_out.split(",") if c]
    for variant in variants:
        rows = {}
        for fold in loco_folds(items, held_out=held):
            train = np.zeros(len(items), bool)
            train[[keys[it.key] for it in fold.train + fold.dev]] = True
            test = np.zeros(len(items), bool)
            test[[keys[it.key] for it in fold.test]] = True
            w = None
            if variant == "balanced":   # the training items in row order, weighted as balance_weights says
                w = np.array(balance_weights([items[i] for i in np.flatnonzero(train)], BALANCED_LEVELS))
                w *= len(w)
            ans = fold_answers(feats[variant], y, train, test, args.features / "svm" / variant, w)
            rows[fold.held_out] = {"classes": list(fold.classes), "n_train": ans["n_train"],
                                   "fit_seconds": ans["fit_seconds"],
                                   **fold_scores(list(y[test]), ans["pred"], fold.classes)}
            C.log(f"{variant} {fold.held_out}: uar {rows[fold.held_out]['uar']:.3f}, neutral recall "
                  f"{rows[fold.held_out]['neutral_recall']:.3f}, largest share "
                  f"{rows[fold.held_out]['largest_class_share']:.2f} ({ans['fit_seconds']:.0f} s fit)")
        out[f"compare_svm_{variant}"] = {"held_out": rows, "mean": mean_row(rows)}
    out["wall_seconds"] = time.time() - t0
    C.emit(args.name, out)


if __name__ == "__main__":
    main()
