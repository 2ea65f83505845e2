"""What the voice benchmarks of issue #12 share (benchmarks/emodb.py, benchmarks/bench_ravdess.py).

- `recipe`: the shipped voice expert's training settings (emolite/recipes/default.py
  `train_voice`), with the benchmark's class list, so a row describes what ships.
- `train_all`: several folds trained at once in worker processes of one thread each (the
  machine has 2 cores; one process per core trains faster than one process on both).
- `score_files`: per file, the test audio (clean, or with white noise / a gain change, same
  samples for both systems) -> our checkpoint through the user path
  (`emolite.load_model(ckpt).predict(audio=)`: voice activity, the model's 3-s windows at a
  1-s hop over the whole utterance, mean of the window probabilities) and openSMILE
  ComParE_2016 functionals of the whole utterance for the SVM; cached in the work dir.
- `score_many` / `window_probs`: several checkpoints on the same clean files (cross-corpus),
  the windows and voice-activity decisions made once; identical to `predict(audio=)`.
- the SVM baseline at a fixed C is `common.svm_fit` / `common.svm_labels`.
- `label_of`, `summary`: file-level answers (optionally restricted to some classes, e.g.
  RAVDESS 7 classes from the 8-class models) and fold summaries with a no-voice column.

A file whose every window voice activity rejects gets no label from `predict`; it counts as
wrong here ("(no voice)"), as it would for a user.
"""

from __future__ import annotations

import hashlib
import json
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np


import common as C

NO_VOICE = "(no voice)"
CONDITIONS = ("clean", "snr20", "snr10", "snr5", "gain+20", "gain-20")
ROBUST_ORDER = ("clean", "snr10", "snr20", "snr5", "gain+20", "gain-20")   # the target row first


def shipped_settings() -> tuple[float, int]:
    """(audio seconds, epochs) of the shipped voice expert (emolite.recipes.default)."""
    from emolite.recipes import default

    return float(default.AUDIO_SECONDS), int(default.VOICE_EPOCHS)


def recipe(classes: Sequence[str], epochs: int, seed: int = 0, extra: Sequence[str] = ()) -> list[str]:
    """The shipped voice expert's emolite.train overrides (`default.voice_overrides`: model,
    window, sampler, batch, schedule, augmentation) with this benchmark's classes, epochs and
    seed. Loss, lr, weight decay and the rest are emolite's defaults, as there."""
    from emolite.recipes import default

    return [*default.voice_overrides(classes, epochs), f"trainer.seed={seed}", *extra]


# ----------------------------------------------------------------------------- training

def _init_worker(threads: int) -> None:
    C.setup(threads)


def _train_one(job: tuple) -> dict:
    view, overrides, group, name = job
    return C.train_eval(view, list(overrides), group, name)


def train_all(jobs: list[tuple], procs: int = 2) -> list[dict]:
    """C.train_eval on each (view, overrides, group, name), `procs` at a time, one thread each."""
    if procs <= 1:
        return [_train_one(j) for j in jobs]
    import multiprocessing as mp

    with ProcessPoolExecutor(procs, mp.get_context("spawn"), initializer=_init_worker, initargs=(1,)) as ex:
        return list(ex.map(_train_one, jobs))


# ----------------------------------------------------------------------------- test audio

def read_audio(path: str) -> np.ndarray:
    import soundfile as sf

    x, sr = sf.read(path, dtype="float32", always_2d=True)
    if sr != 16000:
        raise ValueError(f"{path}: {sr} Hz, expected 16 kHz")
    return x.mean(1).astype(np.float32)


def corrupt(x: np.ndarray, how: str, seed: int) -> np.ndarray:
    """White Gaussian noise at an SNR relative to the whole file's power ("snr10"), a gain
    change clipped at full scale ("gain-20"), a synthetic room ("reverb") or the telephone band
    ("phone"); the same seed gives the same noise and room."""
    if how.startswith("snr"):
        rng = np.random.default_rng([seed, zlib.crc32(how.encode())])
        p = float(np.mean(x.astype(np.float64) ** 2))
        return (x + rng.normal(0, np.sqrt(p / 10 ** (float(how[3:]) / 10)), x.shape)).astype(np.float32)
    if how.startswith("gain"):
        return np.clip(x * 10 ** (float(how[4:]) / 20), -1, 1).astype(np.float32)
    if how == "reverb":    # a synthetic room (emolite.augment.reverb), RT60 0.15-0.9 s
        from emolite.augment import reverb
        return reverb(x, np.random.default_rng([seed, zlib.crc32(how.encode())]), 0.9)
    if how == "phone":     # telephone band, 300-3400 Hz (as augment.codec's first kind)
        from emolite.augment import telephone
        return telephone(x)
    assert how == "clean", how
    return x


def _score_chunk(args: tuple) -> tuple[list, list]:
    """Worker: (paths, seeds, checkpoints or None per file, how, want_features) -> (probabilities
    per file or None, ComParE vectors or None)."""
    paths, seeds, ckpts, how, want_feats = args
    import emolite

    models, probs, feats = {}, [], []
    smile = None
    if want_feats:
        import opensmile
        smile = opensmile.Smile(feature_set=opensmile.FeatureSet.ComParE_2016,
                                feature_level=opensmile.FeatureLevel.Functionals)
    for path, seed, ck in zip(paths, seeds, ckpts):
        x = corrupt(read_audio(path), how, seed)
        if ck is not None:
            if ck not in models:
                models[ck] = emolite.load_model(ck, threads=1)
            p = models[ck].predict(audio=x)
            probs.append(None if p.label is None else p.probs)
        else:
            probs.append(None)   # not asked for this file
        if smile is not None:
            feats.append(smile.process_signal(x, 16000).to_numpy()[0].astype(np.float32))
    return probs, feats


def _key(*parts) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def score_files(paths: Sequence[str], how: str = "clean", ckpts: Sequence[str] | None = None,
                features: bool = True, procs: int = 2, tag: str = "") -> dict:
    """Our probabilities (user path, `ckpts[i]` for file i) and/or ComParE functionals of every
    file under condition `how`. Cached in BENCH/voice/ per (files, condition[, checkpoints]).
    Returns {"probs": list of dict|None, "X": array or None, "seconds"}."""
    root = C.BENCH / "voice"
    root.mkdir(parents=True, exist_ok=True)
    seeds = list(range(len(paths)))   # the noise of file i depends on its position only
    fx = root / f"compare_{tag}_{how}_{_key(list(paths), how)}.npy"
    fp = root / f"probs_{tag}_{how}_{_key(list(paths), how, list(ckpts or []))}.json"
    need_x = features and not fx.exists()
    need_p = ckpts is not None and not fp.exists()
    t = time.time()
    if need_x or need_p:
        n = len(paths)
        bounds = np.linspace(0, n, procs * 4 + 1).astype(int)   # small chunks keep both workers busy
        chunks = [(list(paths[a:b]), seeds[a:b], list(ckpts[a:b]) if need_p else [None] * (b - a), how, need_x)
                  for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
        if procs <= 1:
            parts = [_score_chunk(c) for c in chunks]
        else:
            import multiprocessing as mp
            with ProcessPoolExecutor(procs, mp.get_context("spawn"), initializer=_init_worker, initargs=(1,)) as ex:
                parts = list(ex.map(_score_chunk, chunks))
        if need_x:
            np.save(fx, np.stack([f for _, fs in parts for f in fs]))
        if need_p:
            fp.write_text(json.dumps([p for ps, _ in parts for p in ps]))
        C.log(f"scored {len(paths)} files ({tag}, {how}; ours {need_p}, ComParE {need_x}): {time.time() - t:.0f} s")
    return {"probs": json.loads(fp.read_text()) if ckpts is not None else None,
            "X": np.load(fx) if features else None, "seconds": time.time() - t}


def run_dir_of(overrides: Sequence[str], group: str, name: str) -> Path:
    """The run dir C.train_eval uses for these settings (a finished run there is reused)."""
    from emolite.config import load_config

    model_cfg = json.dumps(load_config(None, list(overrides))["model"], sort_keys=True)
    return C.BENCH / "runs" / group / f"{name}-{C._tag(list(overrides) + [model_cfg])}"


def finished_checkpoint(overrides: Sequence[str], group: str, name: str, hint: str) -> str:
    """best.pt of the finished C.train_eval run with these settings; exits saying `hint` if none."""
    d = run_dir_of(overrides, group, name)
    if not (d / "done.json").exists():
        raise SystemExit(f"{hint}: {d} missing")
    return str(d / "best.pt")


def window_probs(models: list, audio: np.ndarray) -> list:
    """`EmotionModel.predict(audio=)` for several audio models of one InputSpec at once: the
    windows and the voice-activity decisions are made once (they do not depend on the model),
    then each model's mean window probabilities. None: no voiced window."""
    from emolite import inputs as I
    from emolite.inference import audio_windows
    from emolite.vad import clean_audio, voice_activity

    p = models[0].spec
    assert all(m.spec.audio_seconds == p.audio_seconds and m.spec.hop_seconds == p.hop_seconds for m in models)
    chunks = [w for w in audio_windows(clean_audio(audio), p) if voice_activity(w).voiced]
    if not chunks:
        return [None] * len(models)
    fs, cs = p.face_size, p.context_size
    xs = []
    for w in chunks:
        xs.append(I.clip_inputs(p, np.zeros((0, fs, fs, 3), np.uint8), np.zeros(0, bool),
                                np.zeros((0, cs, cs, 3), np.uint8), w))
    batch = I.stack(xs)
    return [{c: float(v) for c, v in zip(m.classes, m.predict_inputs(batch).mean(0))} for m in models]


def _multi_chunk(args: tuple) -> list:
    paths, ckpts = args
    import emolite

    models = [emolite.load_model(c, threads=1) for c in ckpts]
    return [window_probs(models, read_audio(p)) for p in paths]


def score_many(paths: Sequence[str], ckpts: Sequence[str], procs: int = 2, tag: str = "") -> list[list]:
    """Every checkpoint on every (clean) file through the user path: result[i][k] = probabilities of
    model k on file i (None: no voice). Cached in BENCH/voice/."""
    fp = C.BENCH / "voice" / f"multi_{tag}_{_key(list(paths), list(ckpts))}.json"
    if fp.exists():
        return json.loads(fp.read_text())
    t = time.time()
    n = len(paths)
    bounds = np.linspace(0, n, procs * 4 + 1).astype(int)
    chunks = [(list(paths[a:b]), list(ckpts)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
    if procs <= 1:
        parts = [_multi_chunk(c) for c in chunks]
    else:
        import multiprocessing as mp
        with ProcessPoolExecutor(procs, mp.get_context("spawn"), initializer=_init_worker, initargs=(1,)) as ex:
            parts = list(ex.map(_multi_chunk, chunks))
    res = [r for part in parts for r in part]
    fp.parent.mkdir(parents=True, exist_ok=True)
    fp.write_text(json.dumps(res))
    C.log(f"scored {n} files x {len(ckpts)} models ({tag}): {time.time() - t:.0f} s")
    return res


# ----------------------------------------------------------------------------- answers and scores

def label_of(probs: dict | None, allowed: Sequence[str] | None = None) -> str:
    """Top class of one file's probabilities among `allowed` (None: all); no voice -> NO_VOICE."""
    if probs is None:
        return NO_VOICE
    keys = [k for k in probs if allowed is None or k in allowed]
    return max(keys, key=lambda k: probs[k])


def summary(folds: list[dict], classes: Sequence[str]) -> dict:
    """C.fold_summary + pooled per-class recall and confusion (with the no-voice column)."""
    yt = [v for f in folds for v in f["y_true"]]
    yp = [v for f in folds for v in f["y_pred"]]
    return {**C.fold_summary(folds, classes), "per_class_recall_pooled": C.per_class_recall(yt, yp),
            "no_voice": sum(p == NO_VOICE for p in yp),
            "confusion_pooled": {"classes": list(classes) + [NO_VOICE],
                                 "matrix": C.confusion(yt, yp, list(classes) + [NO_VOICE])}}
