"""RAVDESS: 24 actors, labels in the file name `MM-CC-EE-II-SS-RR-AA.ext`, at any depth.

Fields: modality (01 audio-video, 02 video only, 03 audio only), channel (01 speech,
02 song), emotion (01..08), intensity, statement, repetition, actor. Every actor speaks
the same two sentences, so the split is by actor (seeded), balanced by sex (odd actors
are male, even female).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence

from . import Item
from ..errors import EmoliteError
from ..labels import DATASET_LABELS
from ..media import scan
from ..registry import register_dataset
from .manifest import (Problems, check_root, keep_splits, media_problem, reject_options, unique_keys,
                       wanted_splits)
from .splits import DEFAULT_FRACTIONS, assign_splits

RAVDESS_EXTS: tuple[str, ...] = (".mp4", ".wav", ".flac")
RAVDESS_NAME = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)$")
# modality code <- the names users may pass.
RAVDESS_MODALITIES: dict[str, str] = {"av": "01", "audio-video": "01", "01": "01",
                                      "video": "02", "02": "02", "audio": "03", "03": "03"}
SPEECH, SONG = "01", "02"
BINARY_CODES = ("01", "02")  # valid values of channel, intensity, statement, repetition
RAVDESS_FIX = ("pass the folder that holds RAVDESS files named like 03-01-05-02-01-01-12.wav "
               "(any depth, .mp4/.wav/.flac)")


def parse_name(stem: str) -> dict[str, str] | str:
    """The seven fields of a RAVDESS name, or why it is not one."""
    match = RAVDESS_NAME.match(stem)
    if not match:
        return "name is not RAVDESS modality-channel-emotion-intensity-statement-repetition-actor"
    fields = dict(zip(("modality", "channel", "emotion", "intensity", "statement", "repetition", "actor"),
                      match.groups()))
    if fields["modality"] not in ("01", "02", "03"):
        return f"unknown modality code {fields['modality']} (01, 02 or 03)"
    if fields["emotion"] not in DATASET_LABELS["ravdess"]:
        return f"unknown emotion code {fields['emotion']} (01..08)"
    for name in ("channel", "intensity", "statement", "repetition"):
        if fields[name] not in BINARY_CODES:
            return f"unknown {name} code {fields[name]} (01 or 02)"
    if fields["actor"] == "00":
        return "actor 00 does not exist (01..24)"
    return fields


def modality_codes(modality: str | Iterable[str] | None) -> set[str] | None:
    """The `modality=` option as RAVDESS codes (None = all)."""
    if modality is None:
        return None
    names = [modality] if isinstance(modality, str) else list(modality)
    unknown = [n for n in names if str(n).lower() not in RAVDESS_MODALITIES]
    if unknown:
        raise EmoliteError(f"unknown modality {unknown} for ravdess; use av, video or audio")
    return {RAVDESS_MODALITIES[str(n).lower()] for n in names}


@register_dataset("ravdess")
def load_ravdess(root: str | os.PathLike, splits: str | Iterable[str] | None = None,
                 check_media: bool = True, include_song: bool = False,
                 modality: str | Iterable[str] | None = None, seed: int = 0,
                 fractions: Sequence[float] = DEFAULT_FRACTIONS, folds: int | None = None,
                 fold: int = 0, **opts) -> tuple[list[Item], Problems]:
    """RAVDESS items split by actor (seeded `fractions`, or `folds`/`fold` for k-fold).

    include_song: keep channel 02 (sung) files. modality: "av", "video", "audio" or a
    list of them (None = every file found). A recording found twice (e.g. .wav and .flac)
    is kept once; the copy is a problem.
    """
    reject_options(opts, "ravdess", ("splits", "check_media", "include_song", "modality", "seed",
                                     "fractions", "folds", "fold"))
    want = wanted_splits(splits)
    codes = modality_codes(modality)
    folder = check_root(root, RAVDESS_FIX)
    items: list[Item] = []
    recognised = 0
    seen: dict[str, str] = {}
    paths, problems = scan(folder, RAVDESS_EXTS)
    for path in paths:
        fields = parse_name(path.stem)
        if isinstance(fields, str):
            problems.append((str(path), f"{fields} (e.g. 03-01-05-02-01-01-12.wav)"))
            continue
        recognised += 1
        if fields["channel"] == SONG and not include_song:
            continue
        if codes is not None and fields["modality"] not in codes:
            continue
        reason = media_problem(path) if check_media else None
        if reason is None and path.stem in seen:
            reason = f"same recording as {seen[path.stem]}; skipped"
        if reason:
            problems.append((str(path), reason))
            continue
        seen[path.stem] = str(path)
        items.append(Item(path=str(path), label=DATASET_LABELS["ravdess"][fields["emotion"]],
                          speaker=fields["actor"], dataset="ravdess", key=f"ravdess_{path.stem}"))
    if not recognised:
        raise EmoliteError(f"no RAVDESS files found; {RAVDESS_FIX}", folder)
    strata = {it.speaker: "male" if int(it.speaker) % 2 else "female" for it in items}
    items = assign_splits(unique_keys(items, problems), seed, fractions, folds, fold, strata)
    return keep_splits(items, want), problems
