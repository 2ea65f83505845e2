"""Atomic file writes: the one way emolite writes a file a reader or a resumed run may see.

Everything goes to a temp name in the target's folder and is renamed into place, so a kill
leaves either the old file or the new one, never half of one. Temp names start with
TEMP_PREFIX; `clean_temp` removes the ones a kill left behind (indexers skip them). The file
gets the permissions any new file gets (0666 less the umask), like the CSV written in place:
a shared cache or results folder stays readable to the rest of a lab.
"""

from __future__ import annotations

import errno
import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import EmoliteError

TEMP_PREFIX = ".tmp-"
# errno -> what to do: the faults of the disk or folder rather than of the data
FIXES = {errno.ENOSPC: "disk full; free some space or write elsewhere",
         errno.EDQUOT: "disk quota exceeded; free some space or write elsewhere",
         errno.EFBIG: "file too large for this file system; write elsewhere",
         errno.EROFS: "read-only file system; choose another output folder",
         errno.EACCES: "permission denied; make the folder writable or choose another output folder",
         errno.EPERM: "permission denied; make the folder writable or choose another output folder"}


def write_error(e: OSError, path: str | Path) -> EmoliteError:
    """A failed write as one line naming the file and the fix (disk full, read-only, no permission)."""
    fix = FIXES.get(e.errno or 0) or f"cannot write ({e.strerror or e})"
    return EmoliteError(f"cannot write: {fix}", path)


def check_writable(folder: str | Path) -> Path:
    """Create `folder` if needed and make sure files can be made in it: fail once, up front, with
    one line, rather than on the first of many outputs."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise write_error(e, folder) from None
    if not folder.is_dir():
        raise EmoliteError("is a file, not a folder; choose an output folder", folder)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise write_error(PermissionError(errno.EACCES, "Permission denied"), folder)
    return folder


def is_temp(path: str | Path) -> bool:
    """Whether a file is an unfinished write (never to be read as data)."""
    return Path(path).name.startswith(TEMP_PREFIX)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path next to `path`; on success it is renamed onto `path`, on error removed.

    For writers that want a file name (torch.save, onnx.save, matplotlib) rather than bytes.
    A disk or permission fault (full, read-only, quota) becomes one EmoliteError naming `path`."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _new_temp(path)
        yield Path(tmp)
        os.replace(tmp, path)
    except OSError as e:
        if e.errno in FIXES:
            raise write_error(e, path) from None
        raise
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def _new_temp(path: Path) -> str:
    """Create an empty, unique temp file next to `path`. Not mkstemp: its files are 0600
    whatever the umask; os.open with 0o666 lets the umask decide, as for any new file."""
    for _ in range(100):
        tmp = str(path.parent / f"{TEMP_PREFIX}{secrets.token_hex(8)}{path.suffix}")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temp name", str(path.parent))


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` atomically: readers never see half a file."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """UTF-8 text version of `atomic_write_bytes` (JSON reports, TOML configs)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def clean_temp(folder: str | Path, suffixes: tuple[str, ...] | None = None) -> int:
    """Remove temp files a killed run left in `folder` (only those ending in one of `suffixes`,
    when given); returns how many. Call it only when no writer is active there (e.g. at the
    start of a run, before workers start)."""
    n = 0
    for f in Path(folder).glob(f"{TEMP_PREFIX}*"):
        if f.is_file() and (suffixes is None or f.suffix.lower() in suffixes):
            f.unlink(missing_ok=True)
            n += 1
    return n
