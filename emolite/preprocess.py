"""`emolite preprocess`: dataset items -> the compact cache that training reads.

Parallel over processes; each finished clip is one atomic file, so a killed run resumes
where it stopped and entries made with the same config are reused. One bad file is logged
and counted, never fatal.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from . import cache, media
from .data import Item
from .data.manifest import safe_key
from .errors import EmoliteError
from .features import Features, window_features
from .fsio import atomic_write_bytes
from .options import choice, number, optional
from .registry import DATASETS, DETECTORS, lookup
from .spec import CACHE_FIELDS, CROP_SIZES, DETECT_SIDES, MAX_MARGIN, InputSpec

JPEG_QUALITY = 90
MAX_WORKERS = 256


def check_options(cfg: dict) -> dict:
    """Every setting in range and every name known, before any file is decoded (one line each:
    a runaway `--fps 1e6` or a `--detector` typo must not reach the workers)."""
    number("--fps", cfg["fps"], 0, media.MAX_FPS, lo_open=True)
    for name in ("face_size", "context_size"):
        number(f"--{name.replace('_', '-')}", cfg[name], *CROP_SIZES, integer=True)
    number("detect_side", cfg["detect_side"], *DETECT_SIDES, integer=True)
    number("--margin", cfg["margin"], 0, MAX_MARGIN)
    number("jpeg_quality", cfg["jpeg_quality"], 1, 100, integer=True)
    choice("--detector", cfg["detector"], DETECTORS, "face detector (--detector)")
    return cfg


def preprocess_config(**overrides) -> dict:
    """The cache's config: the input record (`InputSpec`) plus storage settings. Its hash names
    the cache folder; train copies the record from it into the checkpoint."""
    allowed = set(CACHE_FIELDS) | {"jpeg_quality"}
    unknown = set(overrides) - allowed
    if unknown:
        raise EmoliteError(f"unknown preprocessing option(s) {sorted(unknown)}; valid: {sorted(allowed)}")
    given = {k: v for k, v in overrides.items() if v is not None}
    for k, v in given.items():   # a value InputSpec cannot even convert (e.g. fps="abc") is an option error
        if k != "detector" and not isinstance(v, bool):
            optional(f"--{k.replace('_', '-')}", v)
    spec = InputSpec.from_dict({k: v for k, v in given.items() if k != "jpeg_quality"})
    return check_options({**spec.to_dict(), "jpeg_quality": given.get("jpeg_quality", JPEG_QUALITY)})


_DETECTOR = None
_INIT_ERROR: str | None = None   # why this worker could not start; every item then reports it once
_MAX_PIXELS = media.MAX_PIXELS   # this worker's pixel limit (media.decode_limits per item)


def _init_worker(cfg: dict, threads: int, max_pixels: int | None = None, watch_parent: bool = False) -> None:
    """Per-process setup: one detector, one thread each (the processes give the parallelism),
    the pixel limit, and (in a pool) an exit as soon as the parent dies. Never raises: a Pool
    restarts a worker whose initializer fails, forever."""
    global _DETECTOR, _INIT_ERROR, _MAX_PIXELS
    _INIT_ERROR = None
    _MAX_PIXELS = max_pixels or media.MAX_PIXELS
    if watch_parent:
        _exit_with_parent()
    try:
        import cv2

        cv2.setNumThreads(threads)
        from .faces import get_detector

        _DETECTOR = get_detector(cfg["detector"], side=cfg["detect_side"], threads=threads)
    except Exception as e:
        _INIT_ERROR = str(e) if isinstance(e, EmoliteError) else \
            f"cannot start the face detector {cfg['detector']!r} ({type(e).__name__}: {e})"


def _write(cdir: str, key: str, item: Item, w: media.Window, feats: Features, spec: InputSpec, quality: int) -> bool:
    """Store one window's features as the entry `key`; returns whether it lacks a face it should have."""
    duration = w.end - w.start if w.end > w.start else feats.audio.size / spec.sample_rate
    meta = {**item.to_dict(), "key": key, "window_start": w.start, "window_end": w.end,
            "duration": float(duration), "fps": spec.fps, "has_video": feats.has_video,
            "has_audio": feats.has_audio, "faces_found": int(feats.face_mask.sum()),
            "frame_size": list(feats.frame_size)}
    cache.write_entry(cdir, key, feats.arrays(), meta, quality)
    return feats.has_video and not feats.face_mask.any()


def process_item(item: Item, cdir: str, cfg: dict) -> dict:
    """Decode, detect, crop and store one item; never raises for a bad file.

    Returns {"key", "status" (done | reused | claimed (another run is on it) | failed), "reason", "windows" (entries written),
    "no_face" (of those, entries whose video had no face)}. media decides from what it decodes
    whether an item is one window or many (never from the container's duration field): one
    window is stored as `key`, several as `key-w0000`, `key-w0001`, ... plus a `key.windows`
    marker written last, so a run killed inside a long file redoes that file."""
    key = item.key or safe_key(item.path)
    res = {"key": key, "status": "done", "reason": "", "windows": 0, "no_face": 0}
    if _INIT_ERROR is not None:
        return {**res, "status": "failed", "reason": _INIT_ERROR, "fatal": True}
    with cache.claim(cdir, key) as mine:
        if not mine:   # another preprocess run on this cache is making it now
            return {**res, "status": "claimed"}
        return _process(item, key, res, cdir, cfg)


def _process(item: Item, key: str, res: dict, cdir: str, cfg: dict) -> dict:
    """process_item's work, once this run holds the item's claim."""
    marker = cache.entry_path(cdir, key).with_suffix(".windows")
    if cache.entry_path(cdir, key).exists() or marker.exists():
        return {**res, "status": "reused"}
    spec = InputSpec.from_dict(cfg)
    quality = int(cfg.get("jpeg_quality", JPEG_QUALITY))
    try:
        wins = media.iter_windows(item.path, fps=spec.fps, start=item.start, end=item.end,
                                  window=None, hop=spec.window_seconds)
        held = None   # one window held back: its key depends on whether another follows
        for w in wins:
            feats = window_features(w, _DETECTOR, spec.face_size, spec.context_size, spec.margin, spec.align)
            if held is not None:
                res["no_face"] += _write(cdir, f"{key}-w{res['windows']:04d}", item, *held, spec, quality)
                res["windows"] += 1
            held = (w, feats)
        if held is not None:
            k = key if res["windows"] == 0 else f"{key}-w{res['windows']:04d}"
            res["no_face"] += _write(cdir, k, item, *held, spec, quality)
            res["windows"] += 1
        if res["windows"] > 1:
            atomic_write_bytes(marker, str(res["windows"]).encode())
        if res["no_face"]:
            res["reason"] = "no face found"
        return res
    except EmoliteError as e:
        return {**res, "status": "failed", "reason": str(e)}
    except Exception as e:  # an unforeseen decoder/codec problem in one file must not stop the batch
        return {**res, "status": "failed", "reason": f"{item.path}: unexpected {type(e).__name__}: {e}"}


def _run_one(args):
    with media.decode_limits(pixels=_MAX_PIXELS):
        return process_item(*args)


def _exit_with_parent() -> None:
    """A pool worker whose parent was killed (kill -9) exits at once and quietly: otherwise it
    finishes its item and prints a BrokenPipeError traceback sending the result to nobody."""
    import multiprocessing as mp
    import threading
    from multiprocessing.connection import wait

    parent = mp.parent_process()
    sentinel = getattr(parent, "sentinel", None)
    if sentinel is None:
        return

    def watch() -> None:
        wait([sentinel])
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def run(dataset: str, root: str | Path, out: str | Path, workers: int | None = None, limit: int | None = None,
        progress: bool = True, dataset_opts: dict | None = None, max_pixels: int | None = None,
        **cfg_overrides) -> dict:
    """Preprocess a dataset into `out/<config hash>/`. Returns (and writes) a summary.
    `max_pixels`: the largest image or video frame decoded (default media.MAX_PIXELS)."""
    cfg = preprocess_config(**cfg_overrides)
    limit = optional("--limit", limit, 1, integer=True)
    workers = optional("--workers", workers, 1, MAX_WORKERS, integer=True)
    loader = lookup(DATASETS, dataset, "dataset")
    items, problems = loader(root, **(dataset_opts or {}))
    if limit:
        items = items[:limit]
    if not items and not problems:
        raise EmoliteError(f"no {dataset} items found; check the folder layout (see README)", root)
    cdir = cache.cache_dir(out, cfg)
    with cache.run_lock(cdir):   # alone on the cache: temp files a killed run left are cleaned
        return _run(dataset, root, items, problems, cdir, cfg, workers, progress, max_pixels)


def _run(dataset: str, root: str | Path, items: list[Item], problems: list, cdir: Path, cfg: dict,
         workers: int | None, progress: bool, max_pixels: int | None = None) -> dict:
    """run's work, under the cache's run lock."""
    from tqdm import tqdm

    workers = max(1, min(workers or os.cpu_count() or 1, len(items) or 1))
    t0 = time.time()
    # Items and windows are counted apart: one long item is many windows (entries).
    counts = {"done": 0, "reused": 0, "claimed": 0, "failed": 0, "skipped": len(problems), "no_face": 0, "windows": 0}
    failures = [{"path": p, "status": "skipped", "reason": r} for p, r in problems]
    jobs = [(it, str(cdir), cfg) for it in items]
    bar = tqdm(total=len(jobs), desc=f"preprocess {dataset}", unit="clip", disable=not progress, dynamic_ncols=True)
    if workers == 1:
        _init_worker(cfg, 1, max_pixels)
        results = map(_run_one, jobs)
        pool = None
    else:
        import multiprocessing as mp

        pool = mp.get_context("spawn").Pool(workers, initializer=_init_worker,
                                            initargs=(cfg, 1, max_pixels, True))
        results = pool.imap_unordered(_run_one, jobs, chunksize=1)
    try:
        for res in results:
            if res.get("fatal"):   # the workers cannot start (e.g. the detector): once, not per item
                raise EmoliteError(res["reason"])
            counts[res["status"]] += 1
            counts["windows"] += res["windows"]
            counts["no_face"] += res["no_face"] > 0
            if res["status"] == "failed":
                failures.append({"path": res["key"], "status": "failed", "reason": res["reason"]})
                bar.write(f"failed: {res['reason']}")
            bar.update(1)
    finally:
        bar.close()
        if pool is not None:
            if bar.n < len(jobs):  # interrupted: don't wait for the queued items
                pool.terminate()
            else:
                pool.close()
            pool.join()
    rows = cache.rebuild_index(cdir)
    seconds = sum(r["duration"] for r in rows)
    size = sum(Path(r["file"]).stat().st_size for r in rows)
    summary = {"dataset": dataset, "root": str(root), "cache": str(cdir), "config": cfg, "items": len(items),
               **counts, "entries": len(rows), "seconds_of_media": round(seconds, 2),
               "cache_bytes": size, "kb_per_second": round(size / 1024 / seconds, 2) if seconds else None,
               "wall_seconds": round(time.time() - t0, 2), "problems": failures}
    atomic_write_bytes(Path(cdir) / "summary.json", json.dumps(summary, indent=1).encode())
    return summary


def format_summary(s: dict) -> str:
    """The end-of-run report a user reads: counts, then each skipped/failed file with its reason."""
    lines = [f"cache: {s['cache']}",
             f"items {s['items']}: done {s['done']}, reused {s['reused']}, failed {s['failed']}, "
             f"skipped {s['skipped']} (no face in {s['no_face']} of them)"
             + (f"; {s['claimed']} being made by another run on this cache" if s.get("claimed") else ""),
             f"windows written {s['windows']}; entries in the cache {s['entries']}, {s['seconds_of_media']} s of media, {s['cache_bytes'] / 1e6:.2f} MB "
             f"({s['kb_per_second']} KB per second), {s['wall_seconds']} s"]
    for p in s["problems"][:20]:
        lines.append(f"  {p['status']}: {p['reason'] if p['status'] == 'failed' else p['path'] + ': ' + p['reason']}")
    if len(s["problems"]) > 20:
        lines.append(f"  ... {len(s['problems']) - 20} more in {s['cache']}/summary.json")
    return "\n".join(lines)


