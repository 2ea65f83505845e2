"""MELD (Friends TV dialogue): official CSV tables plus pre-cut `dia{D}_utt{U}.mp4` clips.

The official train/dev/test split is kept as published (the main cast speaks in every
split, by design of the corpus). A row whose clip is missing or empty is a problem, never
fatal: the public archive itself lacks a few clips.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from . import Item
from ..errors import EmoliteError
from ..labels import DATASET_LABELS
from ..registry import register_dataset
from .manifest import (Problems, check_root, find_columns, keep_splits, media_problem, read_csv,
                       reject_options, unique_keys, wanted_splits)

# split -> CSV name, and the clip folders the official archives unpack to (first is canonical).
MELD_CSVS: dict[str, str] = {
    "train": "train_sent_emo.csv", "dev": "dev_sent_emo.csv", "test": "test_sent_emo.csv",
}
MELD_MEDIA_DIRS: dict[str, tuple[str, ...]] = {
    "train": ("train_splits",),
    "dev": ("dev_splits_complete", "dev_splits"),
    "test": ("output_repeated_splits_test", "test_splits_complete", "test_splits"),
}
# Places the CSVs and clip folders are found, relative to root (archive layouts vary).
MELD_BASES: tuple[str, ...] = (".", "MELD.Raw", "MELD", "data/MELD")
MELD_REQUIRED: dict[str, tuple[str, ...]] = {
    "speaker": ("Speaker",), "emotion": ("Emotion",),
    "dialogue": ("Dialogue_ID",), "utterance": ("Utterance_ID",),
}
MELD_FIX = ("pass the MELD folder that holds train_sent_emo.csv, dev_sent_emo.csv, test_sent_emo.csv "
            "and the clip folders train_splits/, dev_splits_complete/, output_repeated_splits_test/")


def find_split_file(root: Path, split: str, names: Iterable[str], want_dir: bool) -> Path | None:
    """First existing root/<base>/[<split>/]<name> for a split's CSV or clip folder."""
    for base in MELD_BASES:
        for sub in ("", split):
            for name in names:
                path = root / base / sub / name
                if (path.is_dir() if want_dir else path.is_file()):
                    return Path(os.path.abspath(path))
    return None


def meld_row(row: dict[str, str], cols: dict[str, str], split: str, media: Path | None,
             root: Path, check_media: bool, where: str) -> Item | tuple[str, str]:
    """One CSV row as an Item, or the (path, reason) it was skipped for."""
    raw = row.get(cols["emotion"], "")
    label = DATASET_LABELS["meld"].get(raw.lower())
    if label is None:
        return where, f"unknown emotion '{raw}'; expected one of {', '.join(DATASET_LABELS['meld'])}"
    try:
        dia, utt = int(row.get(cols["dialogue"], "")), int(row.get(cols["utterance"], ""))
    except ValueError:
        return where, (f"Dialogue_ID/Utterance_ID '{row.get(cols['dialogue'])}'/'{row.get(cols['utterance'])}' "
                "are not integers")
    folder = media if media is not None else root / MELD_MEDIA_DIRS[split][0]
    path = folder / f"dia{dia}_utt{utt}.mp4"
    if check_media:
        reason = media_problem(path)
        if reason:
            if media is None:
                reason = f"{reason} (no clip folder {' or '.join(MELD_MEDIA_DIRS[split])}/ under {root})"
            return str(path), f"{reason} ({where})"
    return Item(path=str(path), label=label, speaker=row.get(cols["speaker"], ""), split=split,
                dataset="meld", key=f"meld_{split}_dia{dia}_utt{utt}")


def load_meld_split(root: Path, split: str, csv_path: Path, check_media: bool,
                    problems: Problems) -> list[Item]:
    """Items of one split's CSV; skipped rows are appended to `problems`."""
    header, rows = read_csv(csv_path, MELD_FIX)
    cols = find_columns(csv_path, header, MELD_REQUIRED)
    media = find_split_file(root, split, MELD_MEDIA_DIRS[split], want_dir=True)
    items: list[Item] = []
    for line, row in rows:
        result = meld_row(row, cols, split, media, root, check_media, f"{csv_path}:{line}")
        if isinstance(result, Item):
            items.append(result)
        else:
            problems.append(result)
    return items


@register_dataset("meld")
def load_meld(root: str | os.PathLike, splits: str | Iterable[str] | None = None,
              check_media: bool = True, **opts) -> tuple[list[Item], Problems]:
    """MELD items of the official splits (all found, or `splits`), labels mapped to canonical.

    With check_media=False clips are not looked at (path = where the clip would be).
    """
    reject_options(opts, "meld", ("splits", "check_media"))
    want = wanted_splits(splits)
    folder = check_root(root, MELD_FIX)
    items: list[Item] = []
    problems: Problems = []
    found = 0
    for split, name in MELD_CSVS.items():
        if want is not None and split not in want:
            continue
        csv_path = find_split_file(folder, split, (name,), want_dir=False)
        if csv_path is None:
            if want is not None:
                raise EmoliteError(f"{name} not found for split '{split}'; {MELD_FIX}", folder)
            continue
        found += 1
        items += load_meld_split(folder, split, csv_path, check_media, problems)
    if not found:
        raise EmoliteError(f"no MELD CSV ({', '.join(MELD_CSVS.values())}) found; {MELD_FIX}", folder)
    return keep_splits(unique_keys(items, problems), want), problems
