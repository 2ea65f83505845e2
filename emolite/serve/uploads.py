"""Uploaded files for `POST /classify` and `/analyze`: type, size, duration and pixel checks,
bounded saving, the two answers, and removal of the temp folders a killed server left behind."""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
from pathlib import Path

from fastapi import HTTPException, UploadFile

from .. import analyze, media
from ..errors import EmoliteError
from . import protocol as P
from .protocol import Limits

UPLOAD_IMAGE_EXTS = {".jpg", ".jpeg", ".png"}   # image uploads whose header `protocol.image_size` reads
UPLOAD_PREFIX = "emolite-upload-"  # + the server's pid: folders of a dead server are cleaned at start


def check_upload(path: Path, limits: Limits) -> None:
    """Refuse uploads that are small on disk but huge to decode: pixel bombs, hours of video."""
    if path.suffix.lower() in UPLOAD_IMAGE_EXTS:
        size = P.image_size(path.read_bytes())
        if size is None:
            raise EmoliteError("not a JPEG/PNG image (unreadable header)")
        if size[0] * size[1] > limits.max_upload_pixels:
            raise EmoliteError(f"image of {size[0]}x{size[1]} pixels is over the limit of {limits.max_upload_pixels}")
        return
    info = media.probe(path)
    if info["duration"] > limits.max_upload_seconds:
        raise EmoliteError(f"media of {info['duration']:.0f} s is over the limit of {limits.max_upload_seconds:.0f} s")
    for st in info["streams"]:
        if st.get("type") == "video" and (st.get("width") or 0) * (st.get("height") or 0) > limits.max_upload_pixels:
            raise EmoliteError(f"video of {st['width']}x{st['height']} pixels is over the limit")
    if info["kind"] == "unknown":
        raise EmoliteError("no audio or video stream this FFmpeg can decode")


def upload_ext(name: str) -> str:
    """The upload's extension if it is one we analyse (images only those whose header we check)."""
    ext = Path(name).suffix.lower()
    if ext not in media.MEDIA_EXTS or ext in media.IMAGE_EXTS - UPLOAD_IMAGE_EXTS:
        raise HTTPException(415, f"unsupported file type {ext or '(none)'!r}: send a video, an audio "
                                 "file, or a JPEG/PNG image")
    return ext


async def save_upload(upload: UploadFile, path: Path, max_bytes: int) -> None:
    """Stream the upload to `path`, refusing it past `max_bytes` (the header may lie)."""
    size = 0
    with open(path, "wb") as f:
        while chunk := await upload.read(1 << 20):
            size += len(chunk)
            if size > max_bytes:
                raise HTTPException(413, f"upload over the limit of {max_bytes} bytes")
            f.write(chunk)
    if size == 0:
        raise HTTPException(400, "the uploaded file is empty")


def analyze_upload(model, limits: Limits, path: Path, name: str) -> analyze.Result:
    """`analyze` on a saved upload, its limits enforced on the header and on what decodes (a
    live-written file may claim no duration); the result names the upload, not the temp file."""
    check_upload(path, limits)
    with media.decode_limits(seconds=limits.max_upload_seconds, pixels=limits.max_upload_pixels):
        r = analyze.analyze_file(model, path)
    r.path = name
    return r


def classify_response(model, limits: Limits, path: Path, name: str) -> dict:
    """POST /classify: the overall label, the first face box and one row per window."""
    r = analyze_upload(model, limits, path, name)
    box = next((w.face_box for w in r.windows if w.face_box), None)
    return {"file": name, "label": r.label, "confidence": r.confidence, "probs": r.probs,
            "face_box": box, "modalities": r.modalities, "faces_found": r.faces_found,
            "warnings": r.warnings, "windows": [analyze.window_row(name, w) for w in r.windows]}


def analyze_response(model, limits: Limits, path: Path, name: str) -> dict:
    """POST /analyze: the same rows and the timeline plot as a PNG data URL, for the page."""
    r = analyze_upload(model, limits, path, name)
    png = analyze.plot_timeline(r, path.with_name("plot.png")).read_bytes()
    return {"file": name, "label": r.label, "confidence": r.confidence, "probs": r.probs,
            "modalities": r.modalities, "warnings": r.warnings,
            "windows": [analyze.window_row(name, w) for w in r.windows],
            "plot_png": "data:image/png;base64," + base64.b64encode(png).decode()}


def clean_stale_uploads(folder: str | None = None) -> int:
    """Remove upload folders a killed server left (their pid is gone); returns how many."""
    n = 0
    for d in Path(folder or tempfile.gettempdir()).glob(f"{UPLOAD_PREFIX}*"):
        pid = d.name[len(UPLOAD_PREFIX):].split("-", 1)[0]
        if not d.is_dir() or (pid.isdigit() and _alive(int(pid))):
            continue
        shutil.rmtree(d, ignore_errors=True)
        n += 1
    return n


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:   # exists, owned by someone else
        return True
    return True
