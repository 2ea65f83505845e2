"""Seeded, speaker-independent train/dev/test splits and k-fold splits.

Acted corpora repeat the same sentences for every actor, so only a split by speaker
measures generalisation: a speaker's items always land in exactly one split. Orders come
from a hash of (seed, speaker), not from `random`, so a split is the same on every
machine and Python version. Items with no speaker count as a group of their own.

For pooled corpora: `balance_weights` (equal shares per corpus, then per speaker) and
`loco_folds` (leave-one-corpus-out with an inner dev split outside the held-out corpus).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace

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


# ----------------------------------------------------------------------------- pooled corpora

BALANCE_LEVELS: tuple[str, ...] = ("dataset", "speaker")
LOCO_INNER: tuple[str, ...] = ("speakers", "corpus")
LOCO_DEV_FRACTION = 0.15


def _field(item: Item | Mapping[str, object], name: str) -> str:
    """An Item's attribute or a cache index row's value (both carry dataset, speaker, label)."""
    return str(item.get(name, "") if isinstance(item, Mapping) else getattr(item, name))


def balance_weights(items: Sequence[Item | Mapping[str, object]],
                    levels: Sequence[str] = BALANCE_LEVELS) -> list[float]:
    """Per-item sampling weights (summing to 1) that give every value of levels[0] an equal
    share, then every value of levels[1] an equal share of its parent's, and so on; the items
    of one leaf share it equally.

    The default (dataset, speaker): each corpus, and within it each speaker, contributes the
    same in expectation, so a 4,000-clip corpus does not drown one of 500 nor a talkative
    speaker the rest. Add "label" to balance the classes within each speaker too. Speakers are
    told apart per corpus, so "01" of two corpora are two speakers."""
    if not levels:
        raise EmoliteError("balance_weights needs at least one level, e.g. ('dataset', 'speaker')")
    paths = [tuple(_field(it, name) for name in levels) for it in items]
    children: dict[tuple, set] = {}
    leaf_size: dict[tuple, int] = {}
    for p in paths:
        for depth in range(len(p)):
            children.setdefault(p[:depth], set()).add(p[depth])
        leaf_size[p] = leaf_size.get(p, 0) + 1
    weights = []
    for p in paths:
        w = 1.0 / leaf_size[p]
        for depth in range(len(p)):
            w /= len(children[p[:depth]])
        weights.append(w)
    return weights


@dataclass(frozen=True)
class LocoFold:
    """One leave-one-corpus-out fold: train on `train`, stop early / select on `dev` (never the
    held-out corpus), score `test` (all of `held_out`) over `classes`."""

    held_out: str
    classes: tuple[str, ...]          # the held-out corpus's classes that training has too
    train: list[Item]
    dev: list[Item]
    test: list[Item]
    dropped_classes: tuple[str, ...]  # held-out classes no training corpus has (their items left out)

    def items(self) -> list[Item]:
        """train + dev + test, each with its `split` set."""
        return self.train + self.dev + self.test


def dev_speakers(items: Sequence[Item], seed: int, fraction: float) -> set[tuple[str, str]]:
    """(corpus, speaker) pairs for an inner dev split: a seeded `fraction` of each corpus's
    speakers (at least one where a corpus has two or more; none from a one-speaker corpus)."""
    by_corpus: dict[str, list[str]] = {}
    for it in items:
        by_corpus.setdefault(it.dataset, []).append(group_of(it))
    out: set[tuple[str, str]] = set()
    for corpus, groups in by_corpus.items():
        order = order_groups(groups, seed)
        n_dev = 0 if len(order) < 2 else min(len(order) - 1, max(1, round(fraction * len(order))))
        out.update((corpus, g) for g in order[:n_dev])
    return out


def loco_folds(items: Sequence[Item], held_out: Iterable[str] | None = None, inner: str = "speakers",
               dev_fraction: float = LOCO_DEV_FRACTION, seed: int = 0) -> Iterator[LocoFold]:
    """Leave-one-corpus-out: for each corpus (`Item.dataset`; all, or those in `held_out`), train
    on the others' items of the classes it has and test on all of it.

    inner: how the dev split for early stopping is drawn, never from the held-out corpus:
    "speakers" = a seeded `dev_fraction` of each training corpus's speakers; "corpus" = the
    whole next training corpus (cyclic order), i.e. selection on an unseen corpus too."""
    if inner not in LOCO_INNER:
        raise EmoliteError(f"unknown inner split '{inner}'; use one of {', '.join(LOCO_INNER)}")
    corpora = sorted({it.dataset for it in items})
    if len(corpora) < 2 or "" in corpora:
        raise EmoliteError("leave-one-corpus-out needs items of at least two corpora, each with its dataset "
                           f"set (found: {corpora})")
    chosen = corpora if held_out is None else list(held_out)
    unknown = [c for c in chosen if c not in corpora]
    if unknown:
        raise EmoliteError(f"held-out corpus {unknown} not among the items' corpora {corpora}")
    for corpus in chosen:
        own = {it.label for it in items if it.dataset == corpus}
        others = [it for it in items if it.dataset != corpus and it.label in own]
        classes = tuple(sorted({it.label for it in others}))
        test = [replace(it, split="test") for it in items if it.dataset == corpus and it.label in classes]
        if inner == "corpus":
            rest = [c for c in corpora[corpora.index(corpus) + 1:] + corpora[:corpora.index(corpus)]
                    if any(it.dataset == c for it in others)]
            dev_of = lambda it, d=rest[0] if len(rest) > 1 else None: it.dataset == d  # noqa: E731
        else:
            picked = dev_speakers(others, seed, dev_fraction)
            dev_of = lambda it, p=picked: (it.dataset, group_of(it)) in p  # noqa: E731
        yield LocoFold(held_out=corpus, classes=classes,
                       train=[replace(it, split="train") for it in others if not dev_of(it)],
                       dev=[replace(it, split="dev") for it in others if dev_of(it)], test=test,
                       dropped_classes=tuple(sorted(own - set(classes))))
