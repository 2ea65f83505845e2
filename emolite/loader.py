"""Cache entries -> batches: the dataset, sampler and loader that train and evaluate share.

Reads only the cache (numpy + OpenCV), so it runs where PyAV is absent. Every source of
randomness is a pure function of (seed, epoch, position, index), which makes a resumed run
exact (see emolite/train.py).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from . import cache
from .errors import EmoliteError
from .inputs import FRAMES, SECONDS, make_sample, normalize_frames
from .spec import InputSpec


def input_spec(cache_dir: str, rows: list[dict], frames: int, seconds: float) -> InputSpec:
    """The InputSpec a model trained on this cache gets: the cache's record, unchanged, plus the
    training's frames and input length, which is also its analysis window (`trained_on`).
    (Caches written without a record, e.g. synthetic ones, take the defaults and their entries' fps.)"""
    stored = cache.read_config(cache_dir)
    if "fps" not in stored and rows:
        stored["fps"] = rows[0].get("fps")
    try:
        return InputSpec.from_dict(stored).trained_on(frames, seconds).check()
    except ValueError as e:
        raise EmoliteError(f"the cache's record cannot make model inputs: {e}; preprocess again", cache_dir) from None


class ClipDataset(Dataset):
    """Cache entries -> model windows. Index with an int (evaluation: deterministic) or with
    (index, epoch, position) from `EpochBatchSampler` (training: random window + augmentation
    seeded by (seed, epoch, position, index))."""

    def __init__(self, rows: list[dict], targets: list | None, frames: int = FRAMES, seconds: float = SECONDS,
                 train: bool = False, augment: dict | None = None, seed: int = 0, target_keys: list | None = None,
                 face_size: int | None = None, context_size: int | None = None):
        self.rows, self.targets = rows, targets
        self.frames, self.seconds = frames, seconds
        self.face_size, self.context_size = face_size, context_size   # the InputSpec's; None: as cached
        self.train, self.augment, self.seed = train, augment, seed
        self.target_keys = list(target_keys or [])

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key) -> dict:
        if isinstance(key, (tuple, list)):
            idx, epoch, pos = key
            rng = np.random.default_rng([self.seed, epoch, pos, idx]) if self.train else None
        else:
            idx, rng = int(key), None
        row = self.rows[idx]
        try:
            entry = cache.load_entry(row["file"])
        except Exception as e:
            raise EmoliteError(f"cannot read cache entry ({type(e).__name__}: {e}); re-run preprocess",
                               row["file"]) from None
        s = make_sample(entry, self.frames, self.seconds, rng, self.augment if self.train else None,
                        self.face_size, self.context_size)
        if self.target_keys:
            vals = [entry["meta"].get(k) for k in self.target_keys]
            if any(v is None for v in vals):
                raise EmoliteError(f"entry has no {'/'.join(self.target_keys)} values for regression", row["file"])
            s["y"] = np.asarray(vals, np.float32)
        else:
            s["y"] = np.int64(self.targets[idx])
        return s


def collate(samples: list[dict]) -> dict:
    """Stack samples; frames stay uint8 (B×T×3×H×W) until they reach the device."""
    out = {}
    for k in samples[0]:
        x = torch.from_numpy(np.stack([s[k] for s in samples]))
        if k in ("face", "context"):
            x = x.permute(0, 1, 4, 2, 3)
        out[k] = x
    return out


def model_inputs(batch: dict, device: torch.device | str | None = None) -> dict:
    """Collated batch -> model input dict (float frames in [0, 1]) on `device`."""
    out = {}
    for k in ("face", "context", "audio", "face_mask", "context_mask", "audio_mask"):
        x = batch[k].to(device) if device is not None else batch[k]
        out[k] = normalize_frames(x) if x.dtype == torch.uint8 and k in ("face", "context") else x
    return out


def _dist(shard: bool = True) -> tuple[int, int]:
    """(rank, world size) under torch.distributed, else (0, 1)."""
    if shard and torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class EpochBatchSampler:
    """Batches for one rank. Order = f(seed, epoch) (shuffle, class-weighted with replacement,
    or sequential), sharded over DDP ranks; `skip` batches are dropped once (resume)."""

    def __init__(self, n: int, batch_size: int, mode: str = "shuffle", weights: torch.Tensor | None = None,
                 seed: int = 0, drop_last: bool = False, with_epoch: bool = False, shard: bool = True):
        self.n, self.batch_size, self.mode, self.weights = n, batch_size, mode, weights
        self.seed, self.drop_last, self.with_epoch, self.shard = seed, drop_last, with_epoch, shard
        self.epoch = 0
        self.skip_epoch, self.skip = -1, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def sampler(self):
        """Lightning calls `batch_sampler.sampler.set_epoch(epoch)` each epoch."""
        return self

    def _indices(self) -> list[int]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        if self.mode == "weighted" and self.weights is not None:
            idx = torch.multinomial(self.weights, self.n, replacement=True, generator=g)
        elif self.mode in ("shuffle", "weighted"):
            idx = torch.randperm(self.n, generator=g)
        else:
            idx = torch.arange(self.n)
        idx = idx.tolist()
        rank, world = _dist(self.shard)
        if world > 1:
            if self.with_epoch:   # training: equal step counts on every rank (pad by repeating)
                idx += idx[: (-len(idx)) % world]
            idx = idx[rank::world]   # evaluation: no duplicates, so metrics are exact
        return idx

    def _per_rank(self) -> int:
        rank, world = _dist(self.shard)
        return math.ceil(self.n / world) if self.with_epoch else len(range(rank, self.n, world))

    def __len__(self) -> int:
        m = self._per_rank()
        return m // self.batch_size if self.drop_last and m >= self.batch_size else math.ceil(m / self.batch_size)

    def __iter__(self):
        idx = self._indices()
        batches = [idx[i:i + self.batch_size] for i in range(0, len(idx), self.batch_size)][: len(self)]
        start = 0
        if self.skip_epoch == self.epoch:
            start, self.skip_epoch, self.skip = self.skip, -1, 0
        for b, batch in enumerate(batches[start:], start):
            yield [(i, self.epoch, b * self.batch_size + j) for j, i in enumerate(batch)] if self.with_epoch else batch


class ResumableLoader(DataLoader):
    """DataLoader with Lightning's state_dict protocol: the state is (epoch, batches done),
    read from the trainer's progress (not from prefetching iterators, which run ahead)."""

    progress = staticmethod(lambda: 0)   # replaced by run(): batches done this epoch, from the trainer

    def state_dict(self) -> dict:
        return {"epoch": int(self.batch_sampler.epoch), "batches_done": int(self.progress())}

    def load_state_dict(self, state: dict) -> None:
        # The epoch too: with workers, the first batches are drawn before Lightning's set_epoch.
        self.batch_sampler.epoch = self.batch_sampler.skip_epoch = int(state.get("epoch", 0))
        self.batch_sampler.skip = int(state.get("batches_done", 0))


def _worker_init(_: int) -> None:
    """One thread per loader worker: N workers × all cores each would oversubscribe the CPU."""
    torch.set_num_threads(1)
    try:
        import cv2
        cv2.setNumThreads(1)
    except ImportError:
        pass


def make_loader(ds: ClipDataset, batch_size: int, mode: str = "sequential", weights: torch.Tensor | None = None,
                seed: int = 0, num_workers: int = 0, train: bool = False, shard: bool = True) -> DataLoader:
    """The loader train and evaluate use (resumable when `train`). shard=False: every sample on this process even under DDP (stand-alone evaluation)."""
    sampler = EpochBatchSampler(len(ds), batch_size, mode, weights, seed, drop_last=train and len(ds) > batch_size,
                                with_epoch=train, shard=shard)
    cls = ResumableLoader if train else DataLoader
    return cls(ds, batch_sampler=sampler, num_workers=num_workers, collate_fn=collate,
               pin_memory=torch.cuda.is_available(), persistent_workers=num_workers > 0,
               worker_init_fn=_worker_init if num_workers > 0 else None)
