"""Dataset loaders: each reads a real on-disk layout and returns a list of `Item`s.

Loaders register themselves by name (`emolite.registry.DATASETS`); a loader takes the
dataset root folder (plus keyword options) and returns (items, problems), where problems
are (path, reason) pairs for rows that were skipped (missing or unreadable clips).
"""

from __future__ import annotations

from dataclasses import dataclass, asdict


@dataclass(frozen=True)
class Item:
    """One labelled sample: a media file (or a [start, end) segment of one)."""

    path: str                 # absolute path of the media file
    label: str                # canonical emotion name (see emolite.labels)
    speaker: str = ""         # speaker/actor/subject id, for speaker-independent splits
    split: str = ""           # "train" | "dev" | "test" | "" (unsplit)
    start: float | None = None  # seconds; None = whole file
    end: float | None = None
    dataset: str = ""
    key: str = ""             # unique, filesystem-safe id used as the cache entry name

    def to_dict(self) -> dict:
        """Plain dict (stored in each cache entry's metadata)."""
        return asdict(self)


def load_dataset(name: str, root, **opts) -> tuple[list[Item], list[tuple[str, str]]]:
    """Run the loader registered as `name` (built-in or plugin) on `root`; see each loader's options."""
    from ..registry import DATASETS, lookup

    return lookup(DATASETS, name, "dataset")(root, **opts)


# Importing the loader modules registers them (meld, cremad, ravdess, manifest, folder, fer2013,
# speech and the speech corpora nemo, ased, turev, emodb).
from . import splits, manifest, meld, cremad, ravdess, fer2013, speech  # noqa: E402,F401
