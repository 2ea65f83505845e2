"""CREMA-D: 91 actors x 12 sentences x 6 emotions, as VideoFlash/*.flv and AudioWAV/*.wav.

Labels come from the clip name `ActorID_Sentence_Emotion_Level` (the intended emotion).
CREMA-D ships no split, so one is made by actor (seeded); when VideoDemographics.csv is
present the split is balanced by sex as well.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from . import Item
from ..errors import EmoliteError
from ..labels import DATASET_LABELS
from ..registry import register_dataset
from .manifest import (Problems, check_root, find_columns, keep_splits, media_problem, read_csv,
                       reject_options, unique_keys, wanted_splits)
from .splits import DEFAULT_FRACTIONS, assign_splits

# modality -> (folder, extension) as in the official repository.
CREMAD_MEDIA: dict[str, tuple[str, str]] = {"video": ("VideoFlash", ".flv"), "audio": ("AudioWAV", ".wav")}
CREMAD_NAME = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})$")
CREMAD_SENTENCES: frozenset[str] = frozenset(
    {"IEO", "TIE", "IOM", "IWW", "TAI", "MTI", "IWL", "ITH", "DFA", "ITS", "TSI", "WSI"})
CREMAD_LEVELS: frozenset[str] = frozenset({"LO", "MD", "HI", "XX"})
CREMAD_DEMOGRAPHICS = "VideoDemographics.csv"
CREMAD_FIX = "pass the CREMA-D folder that holds VideoFlash/*.flv and/or AudioWAV/*.wav"


def pick_modality(root: Path, modality: str | None) -> str:
    """The modality to load: as asked, or video with a fall back to audio when VideoFlash/ is absent."""
    if modality is not None and modality not in CREMAD_MEDIA:
        raise EmoliteError(f"unknown modality '{modality}' for cremad; use video or audio")
    for name in ([modality] if modality else ["video", "audio"]):
        if (root / CREMAD_MEDIA[name][0]).is_dir():
            return name
    folders = CREMAD_MEDIA[modality][0] + "/" if modality else "VideoFlash/ or AudioWAV/"
    raise EmoliteError(f"no {folders} folder found; {CREMAD_FIX}", root)


def parse_name(stem: str) -> tuple[str, str] | str:
    """(actor, canonical label) from `1001_DFA_ANG_XX`, or why the name is malformed."""
    match = CREMAD_NAME.match(stem)
    if not match:
        return "name is not ActorID_Sentence_Emotion_Level (e.g. 1001_DFA_ANG_XX)"
    actor, sentence, emotion, level = match.groups()
    label = DATASET_LABELS["cremad"].get(emotion)
    if label is None:
        return f"unknown emotion code '{emotion}'; expected one of {', '.join(DATASET_LABELS['cremad'])}"
    if sentence not in CREMAD_SENTENCES:
        return f"unknown sentence code '{sentence}'"
    if level not in CREMAD_LEVELS:
        return f"unknown level '{level}'; expected LO, MD, HI or XX"
    return actor, label


def read_demographics(root: str | os.PathLike, problems: Problems | None = None) -> dict[str, dict[str, str]]:
    """ActorID -> {Age, Sex, Race, Ethnicity} from VideoDemographics.csv ({} when absent).

    Optional metadata: a malformed file is recorded in `problems` and ignored.
    """
    path = Path(root) / CREMAD_DEMOGRAPHICS
    if not path.is_file():
        return {}
    try:
        header, rows = read_csv(path, "re-download it from the CREMA-D repository")
        cols = find_columns(path, header, {"actor": ("ActorID",)})
    except EmoliteError as exc:
        if problems is not None:
            problems.append((str(path), f"{exc}; ignored (split not balanced by sex)"))
        return {}
    return {row[cols["actor"]]: row for _, row in rows if row.get(cols["actor"])}


@register_dataset("cremad")
def load_cremad(root: str | os.PathLike, splits: str | Iterable[str] | None = None,
                check_media: bool = True, modality: str | None = None, seed: int = 0,
                fractions: Sequence[float] = DEFAULT_FRACTIONS, folds: int | None = None,
                fold: int = 0, **opts) -> tuple[list[Item], Problems]:
    """CREMA-D items split by actor (seeded `fractions`, or `folds`/`fold` for k-fold).

    modality: "video" (VideoFlash/*.flv), "audio" (AudioWAV/*.wav), or None = video,
    falling back to audio when VideoFlash/ is absent.
    """
    reject_options(opts, "cremad", ("splits", "check_media", "modality", "seed", "fractions", "folds", "fold"))
    want = wanted_splits(splits)
    folder = check_root(root, CREMAD_FIX)
    chosen = pick_modality(folder, modality)
    media_dir, ext = CREMAD_MEDIA[chosen]
    files = sorted(p for p in (folder / media_dir).iterdir()
                   if p.suffix.lower() == ext and not p.name.startswith("."))
    if not files:
        raise EmoliteError(f"no {ext} files in {media_dir}/; {CREMAD_FIX}", folder / media_dir)
    problems: Problems = []
    items: list[Item] = []
    for path in files:
        parsed = parse_name(path.stem)
        reason = parsed if isinstance(parsed, str) else media_problem(path) if check_media else None
        if reason:
            problems.append((str(path), reason))
            continue
        actor, label = parsed
        items.append(Item(path=str(path), label=label, speaker=actor, dataset="cremad",
                          key=f"cremad_{chosen}_{path.stem}"))
    demographics = read_demographics(folder, problems)
    strata = {actor: info.get("Sex", "") for actor, info in demographics.items()}
    items = assign_splits(unique_keys(items, problems), seed, fractions, folds, fold, strata)
    return keep_splits(items, want), problems
