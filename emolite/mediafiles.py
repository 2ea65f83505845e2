"""Which files are media: the extensions emolite reads, the early checks users hit most, and the
folder walk that reports unreadable subfolders instead of skipping them (media re-exports all)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from .errors import EmoliteError, shown

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
AUDIO_EXTS = {".wav", ".flac", ".mp3", ".ogg", ".m4a", ".aac", ".opus", ".wma"}
VIDEO_EXTS = {".mp4", ".avi", ".mkv", ".webm", ".flv", ".mov", ".m4v", ".mpg", ".mpeg", ".wmv", ".3gp", ".ts",
              ".gif"}   # an animated GIF decodes as a video without audio
MEDIA_EXTS = IMAGE_EXTS | AUDIO_EXTS | VIDEO_EXTS


def check_file(path: str | Path) -> Path:
    """Fail early, with the fix, on the errors users hit most: missing, empty, unreadable."""
    p = Path(path)
    if not p.exists():
        raise EmoliteError("no such file; check the path", p)
    if p.is_dir():
        raise EmoliteError("is a folder, not a media file", p)
    if not os.access(p, os.R_OK):
        raise EmoliteError("permission denied; make the file readable", p)
    if p.stat().st_size == 0:
        raise EmoliteError("file is empty (0 bytes); re-export or re-download it", p)
    return p


def scan(folder: str | Path, exts: Iterable[str] = MEDIA_EXTS) -> tuple[list[Path], list[tuple[str, str]]]:
    """Files with one of `exts` under `folder` (recursively, sorted; hidden files and folders
    skipped) and a problem for each subfolder that cannot be read, so that none is skipped silently."""
    exts = {e.lower() for e in exts}
    problems: list[tuple[str, str]] = []

    def unreadable(e: OSError) -> None:
        problems.append((shown(e.filename or folder), f"cannot read folder ({e.strerror}); check its permissions"))

    files = []
    for root, dirs, names in os.walk(folder, onerror=unreadable):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        files += [Path(root) / n for n in names if not n.startswith(".") and Path(n).suffix.lower() in exts]
    return sorted(files), problems
