"""FER2013 (Goodfellow et al. 2013): 48×48 grey faces, 7 classes, as laid out on disk.

Layout: `labels.csv` with columns file, usage, emotion (the file relative to the CSV), e.g.
`train/angry/Training_123.png,Training,anger`. The challenge's own `Usage` names the split:
Training -> train, PublicTest -> dev (choose settings on it), PrivateTest -> test. Identities
are unknown, so no speaker-independent split is possible.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from . import Item
from ..errors import EmoliteError
from ..labels import canonical
from ..registry import register_dataset
from .manifest import (Problems, find_columns, find_manifest, keep_splits, media_problem, read_csv, reject_options,
                       resolve_media, safe_key, unique_keys, wanted_splits)

USAGE_SPLITS = {"training": "train", "publictest": "dev", "privatetest": "test"}
COLUMNS = {"path": ("file", "path"), "usage": ("usage",), "label": ("emotion", "label")}


@register_dataset("fer2013")
def load_fer2013(root: str | os.PathLike, splits: str | Iterable[str] | None = None, check_media: bool = True,
                 **opts) -> tuple[list[Item], Problems]:
    """Items of FER2013 from its folder (or labels.csv); split from the Usage column."""
    reject_options(opts, "fer2013", ("splits", "check_media"))
    want = wanted_splits(splits)
    csv_path = find_manifest(root)
    header, rows = read_csv(csv_path, "give labels.csv the header file,usage,emotion")
    cols = find_columns(csv_path, header, COLUMNS)
    items: list[Item] = []
    problems: Problems = []
    for line, row in rows:
        where = f"{csv_path}:{line}"
        raw, usage = row.get(cols["path"], ""), row.get(cols["usage"], "").replace("_", "").lower()
        split = USAGE_SPLITS.get(usage)
        if not raw or split is None:
            problems.append((where, f"needs a file and a usage of Training, PublicTest or PrivateTest ({raw})"))
            continue
        path = resolve_media(csv_path.parent, raw)
        reason = media_problem(path) if check_media else None
        if reason:
            problems.append((str(path), f"{reason} ({where})"))
            continue
        items.append(Item(path=str(path), label=canonical(row.get(cols["label"], "")), split=split,
                          dataset="fer2013", key=safe_key("fer2013", os.path.relpath(path, csv_path.parent))))
    if not items and not problems:
        raise EmoliteError("labels.csv lists no images", csv_path)
    return keep_splits(unique_keys(items, problems), want), problems
