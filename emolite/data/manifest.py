"""Generic datasets: a CSV manifest (`manifest`), one folder per class (`folder`) and every
media file under a folder, unlabelled (`files`).

Also holds the helpers every loader shares (root checks, CSV reading, media checks,
keys), so MELD, CREMA-D and RAVDESS report errors and skipped rows the same way.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import stat
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from . import Item
from ..errors import EmoliteError
from ..labels import canonical
from ..media import MEDIA_EXTS, scan
from ..registry import register_dataset
from .splits import assign_splits

# Split spellings seen in manifests and folder layouts -> train/dev/test.
SPLIT_ALIASES: dict[str, str] = {
    "train": "train", "training": "train", "dev": "dev", "val": "dev", "valid": "dev",
    "validation": "dev", "test": "test", "testing": "test",
}
# Manifest columns: canonical name -> accepted header spellings (the shared labels.csv
# files use file/emotion/subject).
MANIFEST_REQUIRED: dict[str, tuple[str, ...]] = {
    "path": ("path", "file", "filename", "filepath"),
    "label": ("label", "emotion"),
}
MANIFEST_OPTIONAL: dict[str, tuple[str, ...]] = {
    "split": ("split",), "start": ("start",), "end": ("end",),
    "speaker": ("speaker", "subject", "actor"),
}
MANIFEST_HEADER_HINT = "path,label[,split,start,end,speaker]"
MANIFEST_NAMES: tuple[str, ...] = ("manifest.csv", "labels.csv")
CSV_ENCODINGS: tuple[str, ...] = ("utf-8-sig", "cp1252", "latin-1")
LFS_MAGIC = b"version https://git-lfs"
LFS_POINTER_MAX_BYTES = 512
WAV_HEADER_BYTES = 44
KEY_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
KEY_MAX_CHARS = 96
TIME_HMS = re.compile(r"^(?:(\d+):)?(\d+):(\d+(?:[.,]\d*)?)$")

Problems = list[tuple[str, str]]
Rows = list[tuple[int, dict[str, str]]]


# ----------------------------------------------------------------------------- shared helpers

def check_root(root: str | os.PathLike, fix: str) -> Path:
    """Absolute dataset folder, or EmoliteError saying what to pass instead."""
    path = Path(os.path.abspath(os.path.expanduser(os.fspath(root))))
    if not path.exists():
        raise EmoliteError(f"dataset folder not found; {fix}", path)
    if not path.is_dir():
        raise EmoliteError(f"not a folder; {fix}", path)
    try:
        os.listdir(path)
    except OSError as exc:
        raise EmoliteError(f"cannot read the folder ({exc.strerror or exc}); check its permissions", path) from exc
    return path


def reject_options(opts: Mapping[str, object], dataset: str, accepted: Iterable[str]) -> None:
    """Fail on unknown options, so a typo does not silently change a split."""
    if opts:
        raise EmoliteError(f"unknown option(s) {', '.join(sorted(opts))} for dataset '{dataset}'; "
                           f"accepted: {', '.join(accepted)}")


def wanted_splits(splits: str | Iterable[str] | None) -> set[str] | None:
    """The `splits=` filter as a set of train/dev/test (None = all)."""
    if splits is None:
        return None
    names = [splits] if isinstance(splits, str) else list(splits)
    out = set()
    for name in names:
        norm = SPLIT_ALIASES.get(str(name).strip().lower())
        if norm is None:
            raise EmoliteError(f"unknown split '{name}'; use train, dev or test")
        out.add(norm)
    return out


def keep_splits(items: list[Item], splits: set[str] | None) -> list[Item]:
    """Only the items of the wanted splits (all when `splits` is None)."""
    return items if splits is None else [it for it in items if it.split in splits]


def read_text(path: Path, fix: str) -> str:
    """A CSV's text: UTF-8 (with or without BOM), else the Windows code page."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise EmoliteError(f"cannot read the file ({exc.strerror or exc}); {fix}", path) from exc
    for encoding in CSV_ENCODINGS:
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise AssertionError("latin-1 decodes any bytes")


def read_csv(path: Path, fix: str) -> tuple[list[str], Rows]:
    """Header and (line number, {column: value}) rows; a CSV without a header is an error.

    Uses the csv module (quoted commas, doubled quotes, CRLF); a tab or semicolon
    delimiter is picked up when the header has no comma.
    """
    text = read_text(path, fix)
    first = text.split("\n", 1)[0]
    delimiter = "," if "," in first else "\t" if "\t" in first else ";" if ";" in first else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = next(reader, None)
    if not header or not any(h.strip() for h in header):
        raise EmoliteError(f"CSV is empty or has no header row; {fix}", path)
    header = [h.strip() for h in header]
    rows: Rows = []
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        cells = row + [""] * (len(header) - len(row))
        rows.append((reader.line_num, dict(zip(header, (c.strip() for c in cells)))))
    return header, rows


def find_columns(path: Path, header: Sequence[str], required: Mapping[str, tuple[str, ...]],
                 optional: Mapping[str, tuple[str, ...]] | None = None) -> dict[str, str]:
    """Canonical column name -> header name (case-insensitive); names every missing column."""
    lower = {h.lower(): h for h in header}
    found: dict[str, str] = {}
    for name, spellings in {**(optional or {}), **required}.items():
        hit = next((lower[s.lower()] for s in spellings if s.lower() in lower), None)
        if hit is not None:
            found[name] = hit
    missing = [sp[0] if len(sp) == 1 else f"{sp[0]} (or {'/'.join(sp[1:])})"
               for name, sp in required.items() if name not in found]
    if missing:
        raise EmoliteError(f"CSV is missing required column(s): {', '.join(missing)} "
                           f"(found: {', '.join(header)}); add them to the header row", path)
    return found


def media_problem(path: Path) -> str | None:
    """Why a media file cannot be used (missing, empty, Git LFS pointer), or None."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return "missing file"
    except OSError as exc:
        return f"cannot read the file ({exc.strerror or exc})"
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    if info.st_size == 0:
        return "empty file (0 bytes)"
    if path.suffix.lower() == ".wav" and info.st_size <= WAV_HEADER_BYTES:
        return "WAV header only, no samples"
    if info.st_size <= LFS_POINTER_MAX_BYTES:
        try:
            with open(path, "rb") as fh:
                if fh.read(len(LFS_MAGIC)) == LFS_MAGIC:
                    return "Git LFS pointer, not media; run `git lfs pull` in the dataset repository"
        except OSError as exc:
            return f"cannot read the file ({exc.strerror or exc})"
    return None


def safe_key(*parts: str) -> str:
    """Filesystem-safe key; a hash of the original is appended when the slug lost information."""
    text = "_".join(p for p in parts if p)
    slug = KEY_UNSAFE.sub("_", text.replace(os.sep, "/")).strip("._") or "item"
    if slug != text.replace("/", "_") or len(slug) > KEY_MAX_CHARS:
        slug = f"{slug[:KEY_MAX_CHARS]}_{hashlib.sha1(text.encode('utf-8')).hexdigest()[:8]}"
    return slug


def unique_keys(items: Iterable[Item], problems: Problems) -> list[Item]:
    """Drop exact duplicates (recorded as problems) and disambiguate colliding keys."""
    seen: dict[str, Item] = {}
    out: list[Item] = []
    for item in items:
        prev = seen.get(item.key)
        if prev is not None and (prev.path, prev.start, prev.end) == (item.path, item.start, item.end):
            problems.append((item.path, f"duplicate of an earlier entry (key {item.key}); skipped"))
            continue
        if prev is not None:
            digest = hashlib.sha1(f"{item.path}|{item.start}|{item.end}".encode("utf-8")).hexdigest()[:8]
            item = replace(item, key=f"{item.key}_{digest}")
            if item.key in seen:
                problems.append((item.path, f"key {item.key} collides with an earlier entry; skipped"))
                continue
        seen[item.key] = item
        out.append(item)
    return out


def parse_time(text: str) -> float | None:
    """Seconds from '12.5', '1:02.5' or '00:01:02,500' (SRT style); '' -> None."""
    text = text.strip()
    if not text:
        return None
    match = TIME_HMS.match(text)
    if match:
        hours, minutes, seconds = match.groups()
        return int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds.replace(",", "."))
    value = float(text)  # ValueError for junk, as the caller expects
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(text)
    return value


# ----------------------------------------------------------------------------- manifest

def find_manifest(root: str | os.PathLike) -> Path:
    """The manifest CSV: `root` itself, or manifest.csv / labels.csv / the only CSV in it."""
    path = Path(os.path.abspath(os.path.expanduser(os.fspath(root))))
    if path.is_file():
        return path
    if path.suffix.lower() == ".csv" and not path.exists():
        raise EmoliteError("manifest CSV not found; check the path", path)
    folder = check_root(path, "pass a manifest CSV (header path,label) or the folder holding it")
    for name in MANIFEST_NAMES:
        if (folder / name).is_file():
            return folder / name
    csvs = sorted(p for p in folder.glob("*.csv") if p.is_file())
    if len(csvs) == 1:
        return csvs[0]
    what = "no CSV" if not csvs else f"{len(csvs)} CSVs ({', '.join(p.name for p in csvs[:5])})"
    raise EmoliteError(f"{what} found; pass the manifest CSV itself or name it manifest.csv", folder)


def resolve_media(base: Path, raw: str) -> Path:
    """A manifest path, relative ones against the CSV's folder; Windows separators tolerated."""
    path = Path(os.path.expanduser(raw))
    path = path if path.is_absolute() else base / path
    if "\\" in raw and os.sep == "/" and not path.exists():
        alt = Path(raw.replace("\\", "/"))
        path = alt if alt.is_absolute() else base / alt
    return Path(os.path.abspath(path))


def manifest_row(row: dict[str, str], cols: dict[str, str], base: Path, name: str,
                 classes: set[str] | None, check_media: bool, where: str) -> Item | tuple[str, str]:
    """One manifest row as an Item, or the (path, reason) it was skipped for."""
    get = lambda col: row.get(cols[col], "") if col in cols else ""  # noqa: E731
    raw_path, raw_label = get("path"), get("label")
    if not raw_path:
        return where, "empty path"
    if not raw_label:
        return where, f"empty label ({raw_path})"
    label = canonical(raw_label)
    if classes is not None and label not in classes:
        return where, f"label '{raw_label}' is not one of classes {sorted(classes)} ({raw_path})"
    split = SPLIT_ALIASES.get(get("split").lower()) if get("split") else ""
    if split is None:
        return where, f"split '{get('split')}' is not train, dev or test ({raw_path})"
    try:
        start, end = parse_time(get("start")), parse_time(get("end"))
    except ValueError:
        return where, f"start/end '{get('start')}'/'{get('end')}' are not times in seconds ({raw_path})"
    if start is not None and start < 0:
        return where, f"start {start} is negative ({raw_path})"
    if start is not None and end is not None and end <= start:
        return where, f"end {end} is not after start {start} ({raw_path})"
    path = resolve_media(base, raw_path)
    if check_media:
        reason = media_problem(path)
        if reason:
            return str(path), f"{reason} ({where})"
    rel = os.path.relpath(path, base) if path.is_relative_to(base) else str(path)
    segment = "" if start is None and end is None else f"{start or 0:g}-{'' if end is None else f'{end:g}'}"
    return Item(path=str(path), label=label, speaker=get("speaker"), split=split, start=start, end=end,
                dataset="manifest", key=safe_key("manifest", name, rel, segment))


def csv_items(root: str | os.PathLike, required: Mapping[str, tuple[str, ...]],
              optional: Mapping[str, tuple[str, ...]], hint: str,
              make: Callable[[dict[str, str], dict[str, str], Path, str], Item | tuple[str, str]],
              ) -> tuple[Path, list[Item], Problems]:
    """(CSV path, items, problems) of a manifest-like CSV: `make(row, columns, csv_path, where)`
    turns each row into an Item or the (path, reason) it was skipped for."""
    csv_path = find_manifest(root)
    header, rows = read_csv(csv_path, f"give the CSV a header row {hint}")
    cols = find_columns(csv_path, header, required, optional)
    items: list[Item] = []
    problems: Problems = []
    for line, row in rows:
        result = make(row, cols, csv_path, f"{csv_path}:{line}")
        if isinstance(result, Item):
            items.append(result)
        else:
            problems.append(result)
    return csv_path, items, problems


@register_dataset("manifest")
def load_manifest(root: str | os.PathLike, splits: str | Iterable[str] | None = None,
                  check_media: bool = True, seed: int = 0, fractions: Sequence[float] | None = None,
                  folds: int | None = None, fold: int = 0, classes: Iterable[str] | None = None,
                  **opts) -> tuple[list[Item], Problems]:
    """Items from a CSV manifest (header path,label[,split,start,end,speaker]).

    `root` is the CSV or its folder. Relative paths resolve against the CSV's folder;
    labels fold through labels.canonical(). With `fractions` or `folds` the CSV's split
    column is replaced by a seeded split by speaker (by item, stratified by label, when
    there is no speaker). `classes` restricts the labels kept (others are problems).
    """
    reject_options(opts, "manifest", ("splits", "check_media", "seed", "fractions", "folds", "fold", "classes"))
    want = wanted_splits(splits)
    keep = None if classes is None else {canonical(c) for c in classes}
    make = lambda row, cols, csv_path, where: manifest_row(  # noqa: E731
        row, cols, csv_path.parent, KEY_UNSAFE.sub("_", csv_path.stem), keep, check_media, where)
    _, items, problems = csv_items(root, MANIFEST_REQUIRED, MANIFEST_OPTIONAL, MANIFEST_HEADER_HINT, make)
    items = unique_keys(items, problems)
    if fractions is not None or folds is not None:
        strata = {it.key: it.label for it in items if not it.speaker}
        items = assign_splits(items, seed, fractions, folds, fold, strata)
    return keep_splits(items, want), problems


# ----------------------------------------------------------------------------- folder per class

def class_folders(root: Path) -> list[tuple[str, Path]]:
    """(split, class folder) pairs: root/<class>/ or root/<train|dev|val|test>/<class>/."""
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if subdirs and all(p.name.lower() in SPLIT_ALIASES for p in subdirs):
        return [(SPLIT_ALIASES[s.name.lower()], c) for s in subdirs
                for c in sorted(s.iterdir()) if c.is_dir() and not c.name.startswith(".")]
    return [("", c) for c in subdirs]


@register_dataset("folder")
def load_folder(root: str | os.PathLike, splits: str | Iterable[str] | None = None,
                check_media: bool = True, seed: int = 0, fractions: Sequence[float] | None = None,
                folds: int | None = None, fold: int = 0, classes: Iterable[str] | None = None,
                **opts) -> tuple[list[Item], Problems]:
    """Items from root/<class>/<files> (any depth below the class folder).

    Class names fold through labels.canonical() ('happy' -> happiness). A top level of
    only train/dev(val)/test folders gives the split. Otherwise items are unsplit unless
    `fractions` or `folds` ask for a seeded split stratified by label.
    """
    reject_options(opts, "folder", ("splits", "check_media", "seed", "fractions", "folds", "fold", "classes"))
    want = wanted_splits(splits)
    folder = check_root(root, "pass a folder laid out as <root>/<emotion>/<media files>")
    pairs = class_folders(folder)
    if not pairs:
        raise EmoliteError("no class folders found; lay files out as <root>/<emotion>/<file>", folder)
    keep = None if classes is None else {canonical(c) for c in classes}
    name = KEY_UNSAFE.sub("_", folder.name)
    items: list[Item] = []
    problems: Problems = []
    for split, class_dir in pairs:
        label = canonical(class_dir.name)
        if keep is not None and label not in keep:
            continue
        paths, unreadable = scan(class_dir)
        problems += unreadable
        for path in paths:
            reason = media_problem(path) if check_media else None
            if reason:
                problems.append((str(path), reason))
                continue
            rel = os.path.relpath(path, folder)
            items.append(Item(path=str(path), label=label, split=split, dataset="folder",
                              key=safe_key("folder", name, rel)))
    if not items and not problems:
        raise EmoliteError(f"no media files ({' '.join(sorted(MEDIA_EXTS))}) in the class folders; "
                           "lay files out as <root>/<emotion>/<file>", folder)
    items = unique_keys(items, problems)
    if fractions is not None or folds is not None:
        items = assign_splits(items, seed, fractions, folds, fold, {it.key: it.label for it in items})
    return keep_splits(items, want), problems


@register_dataset("files")
def load_files(root: str | os.PathLike, **_) -> tuple[list[Item], Problems]:
    """Every media file under a folder (or one file), unlabelled: for caching your own videos."""
    root = Path(root)
    if root.is_file():
        paths = [root]
    elif root.is_dir():
        try:
            paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in MEDIA_EXTS)
        except OSError as e:
            raise EmoliteError(f"cannot read folder ({e.strerror}); check its permissions", root) from None
    else:
        raise EmoliteError("no such file or folder", root)
    items = [Item(str(p.resolve()), "", key=safe_key(str(p.relative_to(root) if root.is_dir() else p.name)),
                  dataset="files") for p in paths]
    return items, []
