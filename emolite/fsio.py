"""Atomic file writes: the one way emolite writes a file a reader or a resumed run may see.

Everything goes to a temp name in the target's folder and is renamed into place, so a kill
leaves either the old file or the new one, never half of one. Temp names start with
TEMP_PREFIX; `clean_temp` removes the ones a kill left behind (indexers skip them).
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

TEMP_PREFIX = ".tmp-"


def is_temp(path: str | Path) -> bool:
    """Whether a file is an unfinished write (never to be read as data)."""
    return Path(path).name.startswith(TEMP_PREFIX)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path next to `path`; on success it is renamed onto `path`, on error removed.

    For writers that want a file name (torch.save, onnx.save, matplotlib) rather than bytes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TEMP_PREFIX, suffix=path.suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` atomically: readers never see half a file."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """UTF-8 text version of `atomic_write_bytes` (JSON reports, TOML configs)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def clean_temp(folder: str | Path) -> int:
    """Remove temp files a killed run left in `folder`; returns how many. Call it only when no
    writer is active there (e.g. at the start of a run, before workers start)."""
    n = 0
    for f in Path(folder).glob(f"{TEMP_PREFIX}*"):
        if f.is_file():
            f.unlink(missing_ok=True)
            n += 1
    return n
