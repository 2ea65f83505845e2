"""Seeded, speaker-independent train/dev/test splits and k-fold splits.

Acted corpora repeat the same sentences for every actor, so only a split by speaker
measures generalisation: a speaker's items always land in exactly one split. Orders come
from a hash of (seed, speaker), not from `random`, so a split is the same on every
machine and Python version. Items with no speaker count as a group of their own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

from . import Item
from ..errors import EmoliteError

SPLIT_NAMES: tuple[str, ...] = ("train", "dev", "test")
DEFAULT_FRACTIONS: tuple[float, float, float] = (0.7, 0.15, 0.15)
FRACTION_TOLERANCE = 1e-6
SPLIT_PRIORITY: tuple[int, ...] = (0, 2, 1)  # train, test, dev: who gets a speaker first when few


def group_of(item: Item) -> str:
    """The unit that must not straddle splits: the speaker, else the item itself."""
    return item.speaker or item.key or item.path


def _rank(seed: int, name: str) -> str:
    return hashlib.sha1(f"{seed}:{name}".encode("utf-8")).hexdigest()


def normalize_fractions(fractions: Sequence[float] | Mapping[str, float]) -> tuple[float, float, float]:
    """(train, dev, test) from a 3-sequence or a {split: fraction} dict; must add up to 1."""
    if isinstance(fractions, Mapping):
        unknown = set(fractions) - set(SPLIT_NAMES)
        if unknown:
            raise EmoliteError(f"unknown split(s) {sorted(unknown)} in fractions; use train, dev, test")
        values = tuple(float(fractions.get(name, 0.0)) for name in SPLIT_NAMES)
    else:
        values = tuple(float(f) for f in fractions)
    if len(values) != 3 or min(values) < 0 or abs(sum(values) - 1.0) > FRACTION_TOLERANCE:
        raise EmoliteError(f"fractions {fractions!r} must be three non-negative numbers "
                           "(train, dev, test) that add up to 1, e.g. (0.7, 0.15, 0.15)")
    return values  # type: ignore[return-value]


def order_groups(groups: Iterable[str], seed: int, strata: Mapping[str, str] | None = None) -> list[str]:
    """Seeded order of the distinct groups.

    With `strata` (group -> e.g. sex or label) each stratum is shuffled on its own and the
    strata are interleaved in proportion, so every contiguous slice mixes them evenly.
    """
    by_stratum: dict[str, list[str]] = {}
    for group in sorted(set(groups)):
        by_stratum.setdefault((strata or {}).get(group, ""), []).append(group)
    keyed: list[tuple[float, str, str]] = []
    for stratum, members in by_stratum.items():
        members.sort(key=lambda g: _rank(seed, g))
        keyed += [((i + 0.5) / len(members), _rank(seed, stratum), g) for i, g in enumerate(members)]
    return [group for _, _, group in sorted(keyed)]


def split_sizes(n: int, fractions: Sequence[float]) -> list[int]:
    """Group counts per split (largest remainder); scarce groups go to train, then test, then dev."""
    quotas = [n * f for f in fractions]
    sizes = [int(q + 1e-9) for q in quotas]
    by_remainder = sorted(SPLIT_PRIORITY, key=lambda i: -(quotas[i] - sizes[i]) if fractions[i] > 0 else 1)
    for i in by_remainder[:n - sum(sizes)]:
        sizes[i] += 1
    for rank, i in enumerate(SPLIT_PRIORITY):
        if fractions[i] > 0 and sizes[i] == 0:
            donors = ([j for j in range(len(sizes)) if sizes[j] > 1]
                      or [j for j in SPLIT_PRIORITY[rank + 1:] if sizes[j] > 0])
            if donors:
                donor = max(donors, key=lambda j: sizes[j])
                sizes[donor] -= 1
                sizes[i] += 1
    return sizes


def split_by_speaker(items: Sequence[Item], seed: int = 0,
                     fractions: Sequence[float] | Mapping[str, float] = DEFAULT_FRACTIONS,
                     strata: Mapping[str, str] | None = None) -> list[Item]:
    """Copies of `items` with `split` set to train/dev/test, whole speakers at a time."""
    fracs = normalize_fractions(fractions)
    groups = order_groups((group_of(it) for it in items), seed, strata)
    where: dict[str, str] = {}
    pos = 0
    for name, size in zip(SPLIT_NAMES, split_sizes(len(groups), fracs)):
        where.update((group, name) for group in groups[pos:pos + size])
        pos += size
    return [replace(it, split=where[group_of(it)]) for it in items]


def speaker_folds(items: Sequence[Item], k: int, seed: int = 0,
                  strata: Mapping[str, str] | None = None) -> list[list[str]]:
    """k disjoint, near-equal lists of speakers, dealt from the seeded (strata-interleaved) order
    in a snake: forwards, then backwards. Plain round-robin would give every fold one stratum
    when k is even (strata alternate m, f, m, f ...)."""
    groups = order_groups((group_of(it) for it in items), seed, strata)
    k = int(k)
    if not 2 <= k <= len(groups):
        raise EmoliteError(f"folds={k} needs 2 <= folds <= the number of speakers ({len(groups)})")
    folds: list[list[str]] = [[] for _ in range(k)]
    for i, g in enumerate(groups):
        r, j = divmod(i, k)
        folds[j if r % 2 == 0 else k - 1 - j].append(g)
    return [sorted(f) for f in folds]


def fold_split(items: Sequence[Item], k: int, fold: int, seed: int = 0,
               strata: Mapping[str, str] | None = None) -> list[Item]:
    """Fold `fold` is test, the next fold (when k >= 3) is dev, the rest is train."""
    folds = speaker_folds(items, k, seed, strata)
    if not 0 <= int(fold) < len(folds):
        raise EmoliteError(f"fold={fold} is out of range; use 0..{len(folds) - 1} for folds={k}")
    test = set(folds[int(fold)])
    dev = set(folds[(int(fold) + 1) % len(folds)]) if len(folds) >= 3 else set()
    pick = lambda g: "test" if g in test else "dev" if g in dev else "train"  # noqa: E731
    return [replace(it, split=pick(group_of(it))) for it in items]


def assign_splits(items: Sequence[Item], seed: int = 0,
                  fractions: Sequence[float] | Mapping[str, float] | None = DEFAULT_FRACTIONS,
                  folds: int | None = None, fold: int = 0,
                  strata: Mapping[str, str] | None = None) -> list[Item]:
    """The loaders' one entry point: k-fold when `folds` is set, else by fractions."""
    if not items:
        return list(items)
    if folds is not None:
        return fold_split(items, folds, fold, seed, strata)
    return split_by_speaker(items, seed, fractions or DEFAULT_FRACTIONS, strata)
