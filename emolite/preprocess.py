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
from .features import DEFAULTS, window_features
from .registry import DATASETS, lookup, register_dataset

JPEG_QUALITY = 90
MAX_CLIP = 12.0  # s: longer items are split into media.WINDOW windows, one entry each


def preprocess_config(**overrides) -> dict:
    """The settings that change what is stored; their hash names the cache folder."""
    cfg = {**DEFAULTS, "jpeg_quality": JPEG_QUALITY, "max_clip": MAX_CLIP}
    unknown = set(overrides) - set(cfg)
    if unknown:
        raise EmoliteError(f"unknown preprocessing option(s) {sorted(unknown)}; valid: {sorted(cfg)}")
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    return cfg


@register_dataset("files")
def load_files(root: str | Path, **_) -> tuple[list[Item], list[tuple[str, str]]]:
    """Every media file under a folder (or one file), unlabelled: for caching your own videos."""
    root = Path(root)
    if root.is_file():
        paths = [root]
    elif root.is_dir():
        try:
            paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in media.MEDIA_EXTS)
        except OSError as e:
            raise EmoliteError(f"cannot read folder ({e.strerror}); check its permissions", root) from None
    else:
        raise EmoliteError("no such file or folder", root)
    items = [Item(str(p.resolve()), "", key=safe_key(str(p.relative_to(root) if root.is_dir() else p.name)),
                  dataset="files") for p in paths]
    return items, []


_DETECTOR = None


def _init_worker(cfg: dict, threads: int) -> None:
    """Per-process setup: one detector, one thread each (the processes give the parallelism)."""
    global _DETECTOR
    import cv2

    cv2.setNumThreads(threads)
    from .faces import get_detector

    _DETECTOR = get_detector(cfg["detector"], side=cfg["detect_side"], threads=threads)


def process_item(item: Item, cdir: str, cfg: dict) -> list[tuple[str, str, str]]:
    """Decode, detect, crop and store one item. Returns (key, status, reason) per entry;
    status is done | reused | failed. Never raises for a bad file."""
    key = item.key or safe_key(item.path)
    # A windowed item is reused only once all its windows are written (the marker comes last):
    # a run killed half-way through a long file redoes that file.
    marker = cache.entry_path(cdir, key).with_suffix(".windows")
    if cache.entry_path(cdir, key).exists() or marker.exists():
        return [(key, "reused", "")]
    try:
        short = _short(item, cfg)
        wins = media.iter_windows(item.path, fps=cfg["fps"], start=item.start, end=item.end,
                                  window=None if short else media.WINDOW, hop=None if short else media.WINDOW)
        out = []
        for i, w in enumerate(wins):
            feats = window_features(w, _DETECTOR, cfg["face_size"], cfg["context_size"], cfg["margin"], cfg["align"])
            duration = w.end - w.start if w.end > w.start else feats.audio.size / media.SAMPLE_RATE
            meta = {**item.to_dict(), "key": key, "window_start": w.start, "window_end": w.end,
                    "duration": float(duration), "fps": cfg["fps"], "has_video": feats.has_video,
                    "has_audio": feats.has_audio, "faces_found": int(feats.face_mask.sum()),
                    "frame_size": list(feats.frame_size)}
            k = key if short else f"{key}-w{i:04d}"
            cache.write_entry(cdir, k, feats.arrays(), meta, cfg["jpeg_quality"])
            out.append((k, "done", "" if feats.face_mask.any() or not feats.has_video else "no face found"))
        if not short:
            cache.atomic_write_bytes(marker, str(len(out)).encode())
        return out
    except EmoliteError as e:
        return [(key, "failed", str(e))]
    except Exception as e:  # an unforeseen decoder/codec problem in one file must not stop the batch
        return [(key, "failed", f"{item.path}: unexpected {type(e).__name__}: {e}")]


def _short(item: Item, cfg: dict) -> bool:
    """Whether an item is stored whole (utterance-level) rather than windowed."""
    if item.start is not None and item.end is not None:
        return item.end - item.start <= cfg["max_clip"]
    try:
        return media.probe(item.path).get("duration", 0.0) <= cfg["max_clip"]
    except EmoliteError:
        return True  # let process_item report the problem


def _run_one(args):
    return process_item(*args)


def run(dataset: str, root: str | Path, out: str | Path, workers: int | None = None, limit: int | None = None,
        progress: bool = True, dataset_opts: dict | None = None, **cfg_overrides) -> dict:
    """Preprocess a dataset into `out/<config hash>/`. Returns (and writes) a summary."""
    from tqdm import tqdm

    cfg = preprocess_config(**cfg_overrides)
    loader = lookup(DATASETS, dataset, "dataset")
    items, problems = loader(root, **(dataset_opts or {}))
    if limit:
        items = items[:limit]
    if not items and not problems:
        raise EmoliteError(f"no {dataset} items found; check the folder layout (see README)", root)
    cdir = cache.cache_dir(out, cfg)
    workers = max(1, min(workers or os.cpu_count() or 1, len(items) or 1))
    t0 = time.time()
    counts = {"done": 0, "reused": 0, "failed": 0, "skipped": len(problems), "no_face": 0}
    failures = [{"path": p, "status": "skipped", "reason": r} for p, r in problems]
    jobs = [(it, str(cdir), cfg) for it in items]
    bar = tqdm(total=len(jobs), desc=f"preprocess {dataset}", unit="clip", disable=not progress, dynamic_ncols=True)
    if workers == 1:
        _init_worker(cfg, 1)
        results = map(_run_one, jobs)
        pool = None
    else:
        import multiprocessing as mp

        pool = mp.get_context("spawn").Pool(workers, initializer=_init_worker, initargs=(cfg, 1))
        results = pool.imap_unordered(_run_one, jobs, chunksize=1)
    try:
        for res in results:
            for key, status, reason in res:
                counts[status] += 1
                if status == "failed":
                    failures.append({"path": key, "status": "failed", "reason": reason})
                    bar.write(f"failed: {reason}")
                elif reason == "no face found":
                    counts["no_face"] += 1
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
    cache.atomic_write_bytes(Path(cdir) / "summary.json", json.dumps(summary, indent=1).encode())
    return summary


def format_summary(s: dict) -> str:
    """The end-of-run report a user reads: counts, then each skipped/failed file with its reason."""
    lines = [f"cache: {s['cache']}",
             f"items {s['items']}: done {s['done']}, reused {s['reused']}, failed {s['failed']}, "
             f"skipped {s['skipped']} (no face in {s['no_face']} clips)",
             f"entries {s['entries']}, {s['seconds_of_media']} s of media, {s['cache_bytes'] / 1e6:.2f} MB "
             f"({s['kb_per_second']} KB per second), {s['wall_seconds']} s"]
    for p in s["problems"][:20]:
        lines.append(f"  {p['status']}: {p['reason'] if p['status'] == 'failed' else p['path'] + ': ' + p['reason']}")
    if len(s["problems"]) > 20:
        lines.append(f"  ... {len(s['problems']) - 20} more in {s['cache']}/summary.json")
    return "\n".join(lines)


