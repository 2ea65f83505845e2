"""The preprocessed cache: what the model needs per clip and no more, one small file each.

Layout: `<root>/<config_key>/entries/<key>.npz` plus `index.jsonl` (one line per entry).
An entry holds face crops and context frames as JPEG bytes (one uint8 blob + offsets),
audio as int16 at 16 kHz, masks and boxes, and the item's metadata as JSON bytes. It is a
plain `.npz` read with `allow_pickle=False` and decoded with OpenCV alone, so training runs
where PyAV is absent (the GPU machine). Entries are written to a temp name and renamed into
place, so a killed run leaves no half-written entry and the next run skips what exists.
"""

from __future__ import annotations

import hashlib
import json
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from .errors import EmoliteError
from .fsio import atomic_write_bytes, check_writable, clean_temp, is_temp, write_error
from .faces import CONTEXT_SIZE, FACE_SIZE
from .media import FPS, SAMPLE_RATE

CACHE_VERSION = 1
ENTRIES = "entries"
INDEX = "index.jsonl"
CONFIG = "config.json"
LOCK = ".lock"            # every run holds it shared; the one that gets it alone cleans temp files
CLAIMS = "claims"         # claims/<key>: locked by the run making that entry (kept out of entries/)


def config_key(cfg: dict) -> str:
    """Stable short hash of the preprocessing config: change the config, get a new cache dir."""
    blob = json.dumps({"version": CACHE_VERSION, **cfg}, sort_keys=True).encode()
    return hashlib.sha1(blob).hexdigest()[:12]


def cache_dir(root: str | Path, cfg: dict) -> Path:
    """The folder for this config under root, created with its config.json."""
    d = Path(root) / config_key(cfg)
    check_writable(d / ENTRIES)
    if not (d / CONFIG).exists():
        atomic_write_bytes(d / CONFIG, json.dumps({"version": CACHE_VERSION, **cfg}, indent=1).encode())
    return d


def read_config(cdir: str | Path) -> dict:
    """The config a cache folder was made with (the InputSpec + storage settings); {} when it
    has none (caches written directly, e.g. synthetic ones)."""
    f = resolve_cache_dir(cdir) / CONFIG
    return json.loads(f.read_text()) if f.exists() else {}


def clean_cache_temp(cdir: str | Path) -> int:
    """Remove temp files a killed run left (a complete `.tmp-*.npz` is not an entry)."""
    return clean_temp(cdir) + clean_temp(Path(cdir) / ENTRIES)


def _flock(f, exclusive: bool, wait: bool) -> bool:
    """flock on an open file; False when `wait` is off and another process holds it. Where
    there is no flock (Windows), every lock is granted: runs are then not coordinated."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover
        return True
    flags = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | (0 if wait else fcntl.LOCK_NB)
    try:
        fcntl.flock(f.fileno(), flags)
        return True
    except BlockingIOError:
        return False


@contextmanager
def run_lock(cdir: str | Path) -> Iterator[bool]:
    """Held (shared) for a whole preprocess run; yields whether the run is alone on the cache.
    Only a run that is alone removes temp files a killed run left: another live run's writes
    in progress look the same. Released by the OS when a run is killed."""
    try:
        f = open(Path(cdir) / LOCK, "a+")
    except OSError as e:
        raise write_error(e, Path(cdir) / LOCK) from None
    with f:
        alone = _flock(f, exclusive=True, wait=False)
        if alone:   # what a killed run left: temp files, and claims nobody holds
            clean_cache_temp(cdir)
            for c in (Path(cdir) / CLAIMS).glob("*"):
                c.unlink(missing_ok=True)
        _flock(f, exclusive=False, wait=True)   # from exclusive to shared: other runs may join
        yield alone


@contextmanager
def claim(cdir: str | Path, key: str) -> Iterator[bool]:
    """Yields whether this process may make entry `key` now (False: another run is making it).
    Check for the finished entry only inside the claim: the run holding it writes it first."""
    path = Path(cdir) / CLAIMS / key
    try:
        path.parent.mkdir(exist_ok=True)
        f = open(path, "a+")
    except OSError as e:
        raise write_error(e, path) from None
    with f:
        mine = _flock(f, exclusive=True, wait=False)
        try:
            yield mine
        finally:
            if mine:
                path.unlink(missing_ok=True)


def encode_images(images: np.ndarray, quality: int = 90) -> tuple[np.ndarray, np.ndarray]:
    """JPEG-code N×H×W×3 RGB uint8 images into one byte blob + N+1 offsets."""
    import cv2

    chunks = []
    for img in images:
        ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(img[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:  # pragma: no cover - OpenCV never fails on valid uint8 images
            raise RuntimeError("JPEG encoding failed")
        chunks.append(buf.ravel())
    offsets = np.cumsum([0] + [len(c) for c in chunks]).astype(np.int64)
    blob = np.concatenate(chunks) if chunks else np.zeros(0, np.uint8)
    return blob, offsets


def decode_images(blob: np.ndarray, offsets: np.ndarray, size: int) -> np.ndarray:
    """Inverse of encode_images: N×size×size×3 RGB uint8."""
    import cv2

    n = len(offsets) - 1
    out = np.zeros((n, size, size, 3), np.uint8)
    for i in range(n):
        img = cv2.imdecode(blob[offsets[i]:offsets[i + 1]], cv2.IMREAD_COLOR)
        out[i] = img[..., ::-1]
    return out


def entry_path(cdir: str | Path, key: str) -> Path:
    """Where the entry named `key` lives in a config folder."""
    return Path(cdir) / ENTRIES / f"{key}.npz"


def write_entry(cdir: str | Path, key: str, arrays: dict, meta: dict, quality: int = 90) -> Path:
    """Store one clip. arrays: face, context (N×S×S×3 uint8), face_mask (N bool),
    audio (float32 16 kHz), optional boxes (N×4 float32). Atomic."""
    face = np.asarray(arrays.get("face", np.zeros((0, FACE_SIZE, FACE_SIZE, 3), np.uint8)), np.uint8)
    context = np.asarray(arrays.get("context", np.zeros((0, CONTEXT_SIZE, CONTEXT_SIZE, 3), np.uint8)), np.uint8)
    audio = np.asarray(arrays.get("audio", np.zeros(0, np.float32)), np.float32)
    n = len(context)
    face_mask = np.asarray(arrays.get("face_mask", np.zeros(n, bool)), bool)
    boxes = np.asarray(arrays.get("boxes", np.full((n, 4), np.nan)), np.float32).reshape(n, 4)
    # Only frames with a face are coded; others decode to zeros. Saves bytes on faceless clips.
    face_blob, face_off = encode_images(face[face_mask], quality)
    ctx_blob, ctx_off = encode_images(context, quality)
    meta = {**meta, "n_frames": int(n),
            "has_video": bool(meta.get("has_video", n > 0)),
            "has_audio": bool(meta.get("has_audio", audio.size > 0))}
    payload = dict(
        face_jpeg=face_blob, face_offsets=face_off, face_mask=face_mask,
        context_jpeg=ctx_blob, context_offsets=ctx_off, boxes=boxes,
        audio=np.clip(np.round(audio * 32767), -32768, 32767).astype(np.int16),
        face_size=np.int32(face.shape[1] if face.ndim == 4 else FACE_SIZE),
        context_size=np.int32(context.shape[1] if context.ndim == 4 else CONTEXT_SIZE),
        meta=np.frombuffer(json.dumps(meta).encode(), np.uint8),
    )
    import io

    buf = io.BytesIO()
    np.savez(buf, **payload)  # JPEG bytes don't compress further: plain savez is faster
    path = entry_path(cdir, key)
    atomic_write_bytes(path, buf.getvalue())
    return path


def load_entry(file: str | Path) -> dict:
    """Read one entry back into arrays (see module docstring). Needs numpy + OpenCV only."""
    with np.load(file, allow_pickle=False) as z:
        meta = json.loads(z["meta"].tobytes().decode())
        fsize, csize = int(z["face_size"]), int(z["context_size"])
        mask = z["face_mask"].astype(bool)
        context = decode_images(z["context_jpeg"], z["context_offsets"], csize)
        face = np.zeros((len(mask), fsize, fsize, 3), np.uint8)
        if mask.any():
            face[mask] = decode_images(z["face_jpeg"], z["face_offsets"], fsize)
        audio = z["audio"].astype(np.float32) / 32767.0
        boxes = z["boxes"]
    return {"face": face, "face_mask": mask, "context": context, "audio": audio, "boxes": boxes,
            "has_video": bool(meta.get("has_video", len(context) > 0)),
            "has_audio": bool(meta.get("has_audio", audio.size > 0)),
            "fps": float(meta.get("fps", FPS)), "sample_rate": SAMPLE_RATE, "meta": meta}


def index_row(key: str, file: Path, meta: dict) -> dict:
    """The index line for an entry: what training needs to pick and split entries."""
    return {"key": key, "file": str(Path(file).resolve()), "path": meta.get("path", ""), "label": meta.get("label", ""),
            "speaker": meta.get("speaker", ""), "split": meta.get("split", ""),
            "dataset": meta.get("dataset", ""), "duration": float(meta.get("duration", 0.0)),
            "n_frames": int(meta.get("n_frames", 0)), "fps": float(meta.get("fps", FPS)),
            "has_video": bool(meta.get("has_video", False)), "has_audio": bool(meta.get("has_audio", False))}


def rebuild_index(cdir: str | Path) -> list[dict]:
    """Scan the entries and rewrite index.jsonl atomically (cheap: reads only the meta)."""
    cdir = Path(cdir)
    rows = []
    for f in sorted((cdir / ENTRIES).glob("*.npz")):
        if is_temp(f):  # a write a kill interrupted before its rename: not an entry
            continue
        try:
            with np.load(f, allow_pickle=False) as z:
                meta = json.loads(z["meta"].tobytes().decode())
        except Exception:  # a foreign or damaged file: leave it out of the index
            continue
        rows.append(index_row(f.stem, f, meta))
    atomic_write_bytes(cdir / INDEX, "".join(json.dumps(r) + "\n" for r in rows).encode())
    return rows


def read_index(cdir: str | Path) -> list[dict]:
    """All entries of a cache dir (a config folder, or a root holding exactly one)."""
    cdir = resolve_cache_dir(cdir)
    index = cdir / INDEX
    if not index.exists():
        return rebuild_index(cdir)
    rows = [json.loads(line) for line in index.read_text().splitlines() if line.strip()]
    base = cdir / ENTRIES
    for r in rows:  # the cache may have been moved (e.g. copied to a GPU machine)
        if not Path(r["file"]).exists():
            r["file"] = str(base / f"{r['key']}.npz")
    if not rows:
        raise EmoliteError("the cache is empty; run `emolite preprocess` first", cdir)
    return rows


def resolve_cache_dir(path: str | Path) -> Path:
    """Accept either a config folder or the root above it (when it holds one config)."""
    p = Path(path)
    if (p / ENTRIES).is_dir():
        return p
    subs = [d for d in p.glob("*") if (d / ENTRIES).is_dir()] if p.is_dir() else []
    if len(subs) == 1:
        return subs[0]
    if not subs:
        raise EmoliteError("no preprocessed cache here; run `emolite preprocess ... -o DIR` first", p)
    raise EmoliteError(f"several caches here ({', '.join(d.name for d in subs)}); pass one of them", p)
