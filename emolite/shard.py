"""`--shard K/N` and `emolite merge`: split one job over machines with any scheduler (SLURM job
arrays, Kubernetes indexed jobs, a shell loop), then put the pieces back together.

A file's shard is a hash of its *key*: its path relative to the input argument it was found
under (a folder argument: the path inside that folder; a file argument: its name; a glob: the
path below the glob's fixed leading folders). Not the absolute path: machines mount the same
data at different places (/mnt/nfs/tv vs /data/tv), and a resolved path would split the job
differently on each, losing some files and doing others twice. sha1, not Python's `hash()`,
which is salted per process.

Each shard writes `emotions.shard.json` beside its outputs: its K/N and the key of every input in
input order. `emolite merge` (emolite.merge) uses it to refuse the same file from two shards, to
name the files no shard finished, and to write rows in the order a single-machine run writes them.
"""

from __future__ import annotations

import glob
import hashlib
import json
from pathlib import Path
from typing import Iterable, TypeVar

from .fsio import atomic_write_text
from .options import OptionError

MAX_SHARDS = 100_000
MANIFEST_SUFFIX = ".shard.json"   # emotions.shard.json, beside emotions.jsonl
T = TypeVar("T")


def parse_shard(text: str | tuple[int, int]) -> tuple[int, int]:
    """'K/N' (1 <= K <= N) -> (K, N); OptionError naming --shard otherwise."""
    if isinstance(text, tuple):
        k, n = text
    else:
        try:
            k, n = (int(x) for x in str(text).split("/"))
        except ValueError:
            raise OptionError(f"--shard must be K/N with whole numbers, e.g. 3/8; got {text!r}") from None
    if not (1 <= n <= MAX_SHARDS and 1 <= k <= n):
        raise OptionError(f"--shard K/N needs 1 <= K <= N <= {MAX_SHARDS}; got {k}/{n}")
    return k, n


def shard_of(key: str, n: int) -> int:
    """The shard (1..n) a key belongs to: stable across runs, machines and Python versions."""
    return int(hashlib.sha1(key.encode("utf-8")).hexdigest()[:15], 16) % n + 1


def _glob_root(spec: str) -> Path:
    """The fixed leading folders of a glob ('data/**/*.mp4' -> 'data')."""
    parts = []
    for part in Path(spec).parts:
        if glob.has_magic(part):
            break
        parts.append(part)
    return Path(*parts) if parts else Path(".")


def input_key(path: Path, specs: Iterable[str]) -> str:
    """A file's key: its path relative to the argument it came from (see the module docstring)."""
    p = Path(path)
    for s in specs:
        root = Path(s) if Path(s).is_dir() else _glob_root(s) if glob.has_magic(s) else None
        if root is None:
            if Path(s) == p:
                return p.name
            continue
        try:
            return p.relative_to(root).as_posix()
        except ValueError:
            continue
    return p.name


def select(specs: list[str], files: list[Path], shard: str | tuple[int, int]) -> tuple[list[Path], dict]:
    """This shard's files (input order kept) and its manifest (K/N, every input's key in order)."""
    k, n = parse_shard(shard)
    keys = [input_key(f, specs) for f in files]
    mine = [(f, key) for f, key in zip(files, keys) if shard_of(key, n) == k]
    return [f for f, _ in mine], {"shard": f"{k}/{n}", "keys": keys, "files": {str(f): key for f, key in mine}}


def select_keys(items: list[T], keys: list[str], shard: str | tuple[int, int]) -> list[T]:
    """The items of this shard, by their keys (preprocess: the dataset's item keys)."""
    k, n = parse_shard(shard)
    return [it for it, key in zip(items, keys) if shard_of(key, n) == k]


def manifest_path(record: Path) -> Path:
    """emotions.jsonl -> emotions.shard.json."""
    return record.with_suffix(MANIFEST_SUFFIX)


def write_manifest(record: Path | None, manifest: dict | None) -> None:
    """Written at the start of a sharded run (atomically), so merge knows what was expected."""
    if record is not None and manifest is not None:
        atomic_write_text(manifest_path(record), json.dumps(manifest))
