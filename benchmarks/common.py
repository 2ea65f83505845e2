"""Shared helpers for the real-data benchmarks (emodb, ravdess, ckplus, faces_pool, fusion).

- `setup`: thread caps and quiet logs (the benchmarks run on a small shared CPU).
- `preprocess_cache`: emolite's own preprocessing into a work dir (never the repository).
- `make_view`: a tiny "view" cache dir (an empty entries/ + index.jsonl whose rows point at
  the shared entries, with `split` rewritten), so k folds need one preprocessing pass.
- `train_eval`: emolite.train.run on a view + the test predictions; a finished run with the
  same settings is reused, so a killed benchmark resumes where it stopped.
- `smile_features` / `svm_fit_predict` / `svm_fit` + `svm_labels`: the SVM baselines:
  openSMILE functionals (cached under the work dir) and a standardised linear SVM whose C is
  chosen by inner speaker-grouped CV, or fixed (SVM_C); answers optionally restricted to some
  classes (one-vs-rest decision values).
- `scores`, `fold_summary`: emolite.metrics' scores (the package's one rule for classes absent
  from the truth), mean/pooled fold summaries.
- `median_ms`: the one timing method (median of REPEATS timed repeats after a warm-up).
- `peak_rss`: the one peak-memory method (getrusage(RUSAGE_CHILDREN) in a fresh helper).
- `emit`: the one result writer (JSON on stdout + docs/results/<name>.json).

Scripts import this module as `import common` (run as `python benchmarks/X.py`, the folder is
on sys.path); they import emolite, never scripts or each other's sys.path tricks.

Work dir: $EMOLITE_BENCH_DIR or /tmp/bench (caches, views, runs, feature caches).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

BENCH = Path(os.environ.get("EMOLITE_BENCH_DIR", "/tmp/bench"))
REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "docs" / "results"


# ----------------------------------------------------------------------------- setup / output

def setup(threads: int = 1) -> None:
    """One thread for torch/OpenCV (the machine is small and shared), quiet Lightning."""
    import torch

    torch.set_num_threads(threads)
    try:
        import cv2
        cv2.setNumThreads(threads)
    except ImportError:  # pragma: no cover
        pass
    warnings.filterwarnings("ignore")
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)


@contextlib.contextmanager
def quiet():
    """Send the library's progress prints to stderr, so stdout carries only the JSON."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def rounded(obj, nd: int = 4):
    if isinstance(obj, float):
        return round(obj, nd)
    if isinstance(obj, dict):
        return {k: rounded(v, nd) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [rounded(v, nd) for v in obj]
    if isinstance(obj, np.generic):
        return rounded(obj.item(), nd)
    return obj


def emit(name: str, result: dict, save: bool = True) -> None:
    """Print the JSON to stdout and save it to docs/results/<name>.json."""
    text = json.dumps(rounded(result), indent=1)
    print(text)
    if save:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"{name}.json").write_text(text + "\n")


def environment() -> dict:
    import platform

    import torch

    return {"python": platform.python_version(), "torch": torch.__version__, "cpu_threads": torch.get_num_threads(),
            "cpus": os.cpu_count(), "gpu": torch.cuda.is_available()}


# ----------------------------------------------------------------------------- timing and memory

REPEATS = 20   # timed repeats behind every median_ms figure


def median_ms(fn: Callable[[], object], repeats: int = REPEATS, calls: int = 1, warmup: int = 3) -> float:
    """Milliseconds per call of fn: the median over `repeats` timings of `calls` calls each,
    after `warmup` untimed calls. The median, not the best (which flatters) nor the mean
    (which one busy moment of the shared machine pulls up)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - t) * 1000 / calls)
    times.sort()
    mid = len(times) // 2
    return times[mid] if len(times) % 2 else (times[mid - 1] + times[mid]) / 2


_RSS_HELPER = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[2:]).returncode; "
               "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)); "
               "sys.exit(r)")


def peak_rss(cmd: Sequence[str], timeout: float | None = None) -> dict:
    """Run cmd; {"peak_rss_mb" (its largest process's peak), "exit", "stdout", "stderr", "wall_s",
    "timed_out"}.

    The one memory method of benchmarks/: ru_maxrss of getrusage(RUSAGE_CHILDREN), read by a
    fresh bare interpreter that only starts cmd and waits. Why this and not /proc VmHWM: it
    works for any command (VmHWM has to be read by the process itself before it exits, or
    polled), it counts the peak of every process cmd starts (workers included: the largest
    one), and nothing is missed between samples. The helper matters: ru_maxrss keeps the peak
    of the process a child was forked from across fork+exec, so read in the benchmark itself
    (torch loaded) it would report the benchmark; the bare helper is ~10 MB."""
    with tempfile.TemporaryDirectory(prefix="emolite-rss-") as d:
        out = Path(d) / "maxrss_kb"
        t = time.time()
        p = subprocess.Popen([sys.executable, "-c", _RSS_HELPER, str(out), *map(str, cmd)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            stdout, stderr = p.communicate(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:   # the whole group: the helper and what it started
            os.killpg(p.pid, signal.SIGKILL)
            stdout, stderr = p.communicate()
            timed_out = True
        kb = out.read_text() if out.exists() else ""
        return {"peak_rss_mb": round(int(kb) / 1024, 1) if kb else None, "exit": p.returncode, "stdout": stdout,
                "stderr": stderr, "wall_s": round(time.time() - t, 2), "timed_out": timed_out}


# ----------------------------------------------------------------------------- caches and views

def preprocess_cache(loader: str, root: str | Path, name: str, dataset_opts: dict | None = None,
                     workers: int = 1, **cfg) -> tuple[Path, list[dict], dict]:
    """emolite.preprocess.run into BENCH/cache/<name>; entries that exist are reused."""
    from emolite import cache, preprocess

    t = time.time()
    with quiet():
        summary = preprocess.run(loader, root, BENCH / "cache" / name, workers=workers, progress=False,
                                 dataset_opts=dataset_opts or {}, **cfg)
    log(f"preprocess {name}: {summary['items']} items, done {summary['done']}, reused {summary['reused']}, "
        f"failed {summary['failed']}, no face {summary['no_face']} ({time.time() - t:.0f} s)")
    rows = cache.read_index(summary["cache"])
    return Path(summary["cache"]), rows, summary


def make_view(rows: Sequence[dict], split_of: Callable[[dict], str | tuple | None], view_dir: str | Path) -> Path:
    """A cache dir over the same entry files with `split` from split_of(row) (None: left out).

    split_of may return several splits (e.g. ("train", "dev")): the row is then listed once per
    split, under the keys `key`, `key#dev`, ... (same entry file)."""
    from emolite import cache

    view_dir = Path(view_dir)
    (view_dir / cache.ENTRIES).mkdir(parents=True, exist_ok=True)
    lines = []
    for r in rows:
        s = split_of(r)
        for j, split in enumerate((s,) if isinstance(s, str) else s or ()):
            key = r["key"] if j == 0 else f"{r['key']}#{split}"
            lines.append(json.dumps({**r, "key": key, "split": split}))
    cache.atomic_write_bytes(view_dir / cache.INDEX, ("\n".join(lines) + "\n").encode())
    return view_dir


# ----------------------------------------------------------------------------- training

def _tag(overrides: Iterable[str]) -> str:
    return hashlib.sha1("\n".join(overrides).encode()).hexdigest()[:8]


def train_eval(view: str | Path, overrides: list[str], group: str, name: str, reuse: bool = True) -> dict:
    """Train on a view with emolite.train.run (CPU, 1 process) and read back the test predictions.

    Returns {"result": train.run's dict, "keys", "y_true", "y_pred", "seconds"}. The run dir is
    BENCH/runs/<group>/<name>-<hash of the overrides and the resolved model config>; a finished
    one is reused."""
    from emolite import train
    from emolite.config import load_config

    out_root = BENCH / "runs" / group
    # The resolved model config is part of the run's identity: a changed library default
    # (e.g. a new model option) must not reuse a run trained with the old one.
    model_cfg = json.dumps(load_config(None, list(overrides))["model"], sort_keys=True)
    run_name = f"{name}-{_tag(list(overrides) + [model_cfg])}"
    run_dir = out_root / run_name
    base = [f'data.cache_dir="{view}"', f'trainer.out_dir="{out_root}"', f'trainer.name="{run_name}"',
            "trainer.progress_bar=false", "data.num_workers=0", 'trainer.accelerator="cpu"', "trainer.devices=1",
            "trainer.ckpt_every_n_steps=100000"]
    cfg = load_config(None, base + list(overrides))
    done = run_dir / "metrics.json"
    if reuse and done.exists() and (run_dir / "done.json").exists():
        res = json.loads(done.read_text())
        seconds = json.loads((run_dir / "done.json").read_text())["seconds"]
        log(f"train {group}/{run_name}: reused")
    else:
        if run_dir.exists():
            shutil.rmtree(run_dir)
        t = time.time()
        with quiet():
            res = train.run(cfg)
        seconds = time.time() - t
        (run_dir / "done.json").write_text(json.dumps({"seconds": seconds}))
        log(f"train {group}/{run_name}: {res.get('epochs')} epochs, {seconds:.0f} s, "
            f"val uar {res.get('val/uar', float('nan')):.3f}, test acc {res.get('test/accuracy', float('nan')):.3f}")
    keys, y_true, y_pred = [], [], []
    pred_file = run_dir / f"eval_{cfg['data']['test_split']}" / "predictions.csv"
    if pred_file.exists():
        with open(pred_file, newline="") as f:
            for row in csv.DictReader(f):
                keys.append(row["key"])
                y_true.append(row["label"])
                y_pred.append(row["pred"])
    return {"result": res, "keys": keys, "y_true": y_true, "y_pred": y_pred, "seconds": seconds,
            "run_dir": str(run_dir)}


# ----------------------------------------------------------------------------- metrics

def scores(y_true: Sequence[str], y_pred: Sequence[str], classes: Sequence[str] | None = None) -> dict:
    """n, accuracy, UAR and macro F1 by `emolite.metrics` (macro averages over the classes
    present in y_true; an answer outside `classes`, e.g. "(no voice)", is simply wrong)."""
    from emolite.metrics import scores as metric_scores

    s = metric_scores(list(y_true), list(y_pred), classes)
    return {k: s[k] for k in ("n", "accuracy", "uar", "f1_macro")}


def per_class_recall(y_true: Sequence[str], y_pred: Sequence[str]) -> dict:
    from emolite.metrics import per_class_recall as recall

    return recall(y_true, y_pred)


def confusion(y_true: Sequence[str], y_pred: Sequence[str], classes: Sequence[str]) -> list[list[int]]:
    from emolite.metrics import confusion_of

    return confusion_of(y_true, y_pred, classes)


def fold_summary(folds: list[dict], classes: Sequence[str] | None = None) -> dict:
    """folds: [{"y_true", "y_pred", ...}] -> mean ± std over folds of each metric, and pooled."""
    per = [scores(f["y_true"], f["y_pred"], classes) for f in folds]
    out = {}
    for k in ("accuracy", "uar", "f1_macro"):
        vals = np.array([p[k] for p in per])
        out[f"{k}_mean"] = float(vals.mean())
        out[f"{k}_std"] = float(vals.std())
    yt = [y for f in folds for y in f["y_true"]]
    yp = [y for f in folds for y in f["y_pred"]]
    out["pooled"] = scores(yt, yp, classes)
    out["per_fold"] = [{k: p[k] for k in ("n", "accuracy", "uar", "f1_macro")} for p in per]
    return out


def runs_summary(runs: list[dict], classes: Sequence[str]) -> dict:
    """Summary of our trained folds (`train_eval` results): epochs, time, scores, pooled recall
    per class and pooled confusion matrix."""
    yt = [v for f in runs for v in f["y_true"]]
    yp = [v for f in runs for v in f["y_pred"]]
    return {"epochs_run": [f["result"].get("epochs") for f in runs], "train_seconds": sum(f["seconds"] for f in runs),
            **fold_summary(runs, classes), "per_class_recall_pooled": per_class_recall(yt, yp),
            "confusion_pooled": {"classes": list(classes), "matrix": confusion(yt, yp, classes)}}


# ----------------------------------------------------------------------------- openSMILE + SVM

def smile_features(paths: Sequence[str], feature_set: str = "eGeMAPSv02", tag: str = "") -> np.ndarray:
    """openSMILE functionals for each file (16 kHz as stored), cached in BENCH/smile/."""
    import opensmile
    import soundfile as sf

    key = hashlib.sha1(("\n".join(paths) + feature_set).encode()).hexdigest()[:10]
    f = BENCH / "smile" / f"{tag or 'feat'}_{feature_set}_{key}.npy"
    if f.exists():
        return np.load(f)
    smile = opensmile.Smile(feature_set=getattr(opensmile.FeatureSet, feature_set),
                            feature_level=opensmile.FeatureLevel.Functionals)
    t = time.time()
    feats = []
    for p in paths:
        x, sr = sf.read(p, dtype="float32", always_2d=True)
        feats.append(smile.process_signal(x.mean(1), sr).to_numpy()[0])
    X = np.stack(feats).astype(np.float32)
    log(f"openSMILE {feature_set}: {len(paths)} files, {X.shape[1]} features, {time.time() - t:.0f} s")
    f.parent.mkdir(parents=True, exist_ok=True)
    np.save(f, X)
    return X


C_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)


def svm_fit_predict(X_tr: np.ndarray, y_tr: Sequence[str], groups_tr: Sequence[str], X_te: np.ndarray,
                    c_grid: Sequence[float] = C_GRID, inner_folds: int = 3) -> tuple[list[str], float]:
    """StandardScaler + linear SVM (sklearn SVC(kernel="linear"), balanced class weights); C from
    an inner GroupKFold over the training speakers, maximising UAR. Returns (predictions, C)."""
    from sklearn.model_selection import GridSearchCV, GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    h = hashlib.sha1()
    for part in (X_tr, X_te, np.asarray(y_tr), np.asarray(groups_tr), np.asarray(c_grid), np.int64(inner_folds)):
        h.update(np.ascontiguousarray(part).tobytes())
    memo = BENCH / "svm" / f"{h.hexdigest()[:16]}.json"
    if memo.exists():   # same data, same grid: the same deterministic fit
        saved = json.loads(memo.read_text())
        return saved["pred"], saved["C"]
    pipe = make_pipeline(StandardScaler(), SVC(kernel="linear", class_weight="balanced"))
    n_groups = len(set(groups_tr))
    search = GridSearchCV(pipe, {"svc__C": list(c_grid)}, scoring="balanced_accuracy",
                          cv=GroupKFold(n_splits=min(inner_folds, n_groups)), n_jobs=1)
    search.fit(X_tr, list(y_tr), groups=list(groups_tr))
    pred, c = [str(p) for p in search.predict(X_te)], float(search.best_params_["svc__C"])
    memo.parent.mkdir(parents=True, exist_ok=True)
    memo.write_text(json.dumps({"pred": pred, "C": c}))
    return pred, c

SVM_C = 0.01   # issue #12's fixed C for the ComParE baseline


def svm_fit(X: np.ndarray, y: Sequence[str], c: float = SVM_C):
    """StandardScaler + SVC(kernel="linear", class_weight="balanced") at a fixed C = c (the voice
    benchmarks of issue #12; `svm_fit_predict` chooses C by inner CV instead)."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    return make_pipeline(StandardScaler(), SVC(kernel="linear", C=c, class_weight="balanced")).fit(X, list(y))


def svm_labels(model, X: np.ndarray, allowed: Sequence[str] | None = None) -> list[str]:
    """The SVM's answers; with `allowed`, the best-scoring class among those only (one-vs-rest
    decision values), i.e. the excluded classes cannot be answered."""
    if allowed is None:
        return [str(p) for p in model.predict(X)]
    classes = list(model.classes_)
    d = model.decision_function(X)
    cols = [classes.index(c) for c in allowed if c in classes]
    return [classes[cols[j]] for j in np.argmax(d[:, cols], axis=1)]


def zscore(X: np.ndarray) -> np.ndarray:
    """Standardise features on the set itself (per-corpus normalisation for cross-corpus tests)."""
    return (X - X.mean(0)) / np.maximum(X.std(0), 1e-8)
