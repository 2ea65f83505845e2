"""Labelled speech folders: a folder with labels.csv (file, speaker, emotion[, corpus, split])
registered as `speech`, which any user can point at their own recordings, and the speech
corpora staged that way (nEMO, ASED, TurEV-DB, EmoDB) under their own names.

Every item's `dataset` is its corpus and its speaker id is prefixed by the corpus
(`nemo_EB0`), so speakers never collide when corpora are pooled or held out in turn
(splits.loco_folds, splits.balance_weights). A pooled CSV may name each row's corpus in a
`corpus` column. Labels are canonical names (emolite.labels); `pool=True` applies the
cross-corpus rule labels.POOLED (calm -> neutral, boredom left out).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from . import Item
from ..errors import EmoliteError
from ..labels import DATASET_LABELS, EMOTIONS, EXTRA, canonical, pool_label
from ..media import AUDIO_EXTS, VIDEO_EXTS
from ..registry import register_dataset
from .manifest import (KEY_UNSAFE, SPLIT_ALIASES, Problems, csv_items, keep_splits, media_problem,
                       reject_options, resolve_media, safe_key, unique_keys, wanted_splits)
from .splits import DEFAULT_FRACTIONS, assign_splits

SPEECH_REQUIRED: dict[str, tuple[str, ...]] = {
    "path": ("file", "path", "filename", "filepath"),
    "label": ("emotion", "label"),
    "speaker": ("speaker", "actor", "subject"),
}
SPEECH_OPTIONAL: dict[str, tuple[str, ...]] = {"corpus": ("corpus", "dataset"), "split": ("split",)}
SPEECH_HEADER_HINT = "file,speaker,emotion[,corpus,split]"
SPEECH_EXTS: frozenset[str] = frozenset(AUDIO_EXTS | VIDEO_EXTS)
# The staged corpora read by this loader under their own names (see /work/shared/data/README.md).
SPEECH_CORPORA: tuple[str, ...] = ("nemo", "ased", "turev", "emodb")
SPEECH_OPTIONS: tuple[str, ...] = ("splits", "check_media", "seed", "fractions", "folds", "fold", "classes",
                                   "corpus", "pool")


def corpus_name(text: str) -> str:
    """A corpus id safe in keys and speaker ids: lower case, runs of other characters -> '_'."""
    name = KEY_UNSAFE.sub("_", str(text).strip().lower()).strip("._")
    if not name:
        raise EmoliteError(f"corpus name {text!r} has no letters or digits; pass corpus='mycorpus'")
    return name


def corpus_speaker(corpus: str, speaker: str) -> str:
    """`<corpus>_<speaker>`: ids that stay distinct when corpora are pooled (idempotent)."""
    return speaker if speaker.startswith(f"{corpus}_") else f"{corpus}_{speaker}"


def speech_label(raw: str, corpus: str, classes: set[str] | None) -> str | None:
    """The canonical label of a raw one, or None when it is not a class this corpus has.

    A staged corpus accepts its own spellings (labels.DATASET_LABELS) and their canonical
    names; any other folder accepts canonical names and their aliases (or `classes`)."""
    known = DATASET_LABELS.get(corpus)
    if known is not None:
        label = known.get(raw, known.get(raw.strip().lower()))
        if label is None and canonical(raw) in known.values():
            label = canonical(raw)
    else:
        label = canonical(raw)
        if classes is None and label not in EMOTIONS + EXTRA:
            label = None
    if label is not None and classes is not None and label not in classes:
        return None
    return label


def speech_row(row: dict[str, str], cols: dict[str, str], base: Path, corpus: str, classes: set[str] | None,
               check_media: bool, where: str) -> Item | tuple[str, str]:
    """One labels.csv row as an Item, or the (path, reason) it was skipped for."""
    get = lambda col: row.get(cols[col], "").strip() if col in cols else ""  # noqa: E731
    raw_path, raw_label, speaker = get("path"), get("label"), get("speaker")
    if not raw_path:
        return where, "empty file name"
    path = resolve_media(base, raw_path)
    if not raw_label:
        return str(path), f"empty emotion ({where})"
    if not speaker:
        return str(path), f"empty speaker; speaker-independent splits need one ({where})"
    row_corpus = corpus_name(get("corpus")) if get("corpus") else corpus
    label = speech_label(raw_label, row_corpus, classes)
    if label is None:
        allowed = sorted(classes) if classes is not None else sorted(set(DATASET_LABELS.get(row_corpus, {}).values())
                                                                     or set(EMOTIONS + EXTRA))
        return str(path), f"unknown emotion '{raw_label}' for {row_corpus}; expected one of {allowed} ({where})"
    split = SPLIT_ALIASES.get(get("split").lower(), None) if get("split") else ""
    if split is None:
        return str(path), f"split '{get('split')}' is not train, dev or test ({where})"
    if path.suffix.lower() not in SPEECH_EXTS:
        return str(path), f"not an audio or video file ({path.suffix or 'no extension'}) ({where})"
    if check_media:
        reason = media_problem(path)
        if reason:
            return str(path), f"{reason} ({where})"
    rel = os.path.relpath(path, base) if path.is_relative_to(base) else str(path)
    return Item(path=str(path), label=label, speaker=corpus_speaker(row_corpus, speaker), split=split,
                dataset=row_corpus, key=safe_key(row_corpus, rel))


def read_speech_folder(root: str | os.PathLike, corpus: str | None, classes: Iterable[str] | None,
                       check_media: bool, pool: bool) -> tuple[list[Item], Problems]:
    """Every usable row of a speech folder's labels.csv (no splits yet)."""
    keep = None if classes is None else {canonical(c) for c in classes}
    make = lambda row, cols, csv_path, where: speech_row(  # noqa: E731
        row, cols, csv_path.parent, corpus_name(corpus if corpus is not None else csv_path.parent.name),
        keep, check_media, where)
    csv_path, items, problems = csv_items(root, SPEECH_REQUIRED, SPEECH_OPTIONAL, SPEECH_HEADER_HINT, make)
    if pool:   # a label the rule leaves out (None) is dropped by design, not a problem
        items = [replace(it, label=pool_label(it.label)) for it in items if pool_label(it.label) is not None]
    if not items and not problems:
        raise EmoliteError(f"labels.csv lists no recordings; add rows {SPEECH_HEADER_HINT}", csv_path)
    return unique_keys(items, problems), problems


@register_dataset("speech")
def load_speech(root: str | os.PathLike, splits: str | Iterable[str] | None = None, check_media: bool = True,
                seed: int = 0, fractions: Sequence[float] | Mapping[str, float] | None = None,
                folds: int | None = None, fold: int = 0, classes: Iterable[str] | None = None,
                corpus: str | None = None, pool: bool = False, **opts) -> tuple[list[Item], Problems]:
    """Items of a labelled speech folder: labels.csv (file, speaker, emotion[, corpus, split])
    with file paths relative to it (or absolute).

    corpus: the corpus id (default: the folder's name); a `corpus` column overrides it per row.
    Splits are by speaker: the CSV's `split` column when it has one and neither `fractions`
    nor `folds` is given, else seeded `fractions` (default 0.7/0.15/0.15) or fold `fold` of
    `folds`, each split mixing the corpora in proportion. classes: keep only these labels
    (others are problems). pool: apply labels.POOLED (calm -> neutral, boredom left out).
    """
    reject_options(opts, "speech", SPEECH_OPTIONS)
    want = wanted_splits(splits)
    items, problems = read_speech_folder(root, corpus, classes, check_media, pool)
    if fractions is not None or folds is not None or not any(it.split for it in items):
        strata = {it.speaker: it.dataset for it in items}
        items = assign_splits(items, seed, fractions or DEFAULT_FRACTIONS, folds, fold, strata)
    return keep_splits(items, want), problems


def _register_corpus(name: str) -> None:
    def load(root: str | os.PathLike, **opts) -> tuple[list[Item], Problems]:
        if "corpus" in opts:
            raise EmoliteError(f"dataset '{name}' sets its own corpus; use dataset 'speech' to choose one")
        return load_speech(root, corpus=name, **opts)

    load.__name__ = f"load_{name}"
    load.__doc__ = f"The staged {name} folder (labels.csv: file, speaker, emotion); options as `speech`."
    register_dataset(name)(load)


for _name in SPEECH_CORPORA:
    _register_corpus(_name)
