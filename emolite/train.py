"""Train an emolite model on a preprocessed cache with Lightning.

    from emolite import config, train
    result = train.run(config.load_config("configs/meld.toml", ["trainer.devices=1"]))
    result = train.run(cfg, resume=True)     # continue a killed run exactly where it stopped

Run dir (trainer.out_dir/trainer.name): config.toml, checkpoints/{best,last}.ckpt (Lightning,
resumable), csv/metrics.csv (+ TensorBoard logs when tensorboard is installed), best.pt (the
emolite checkpoint: weights + classes + model/preprocessing config + metrics), metrics.json,
and eval_<test split>/ (metrics.json, confusion matrix) when the cache has a test split.

Hardware (all through [trainer] / `--set trainer.x=...`):
  CPU:                    trainer.accelerator=cpu
  one GPU, mixed prec.:   trainer.devices=1 trainer.precision=bf16-mixed   (or 16-mixed)
  one node, 4 GPUs, DDP:  trainer.devices=4 trainer.strategy=ddp            (Lightning starts the processes)
  several nodes, torchrun (run on every node; Lightning reads the torchrun environment):
    torchrun --nnodes=2 --nproc-per-node=4 --node-rank=$NODE_RANK --master-addr=$HEAD --master-port=29500 \\
      --no-python emolite train --config configs/meld.toml --set trainer.devices=4 --set trainer.num_nodes=2 \\
      --set trainer.strategy=ddp
  SLURM (Lightning reads the SLURM environment; one task per GPU):
    #SBATCH --nodes=2 --ntasks-per-node=4 --gpus-per-node=4
    srun emolite train --config configs/meld.toml --set trainer.devices=4 --set trainer.num_nodes=2 --set trainer.strategy=ddp
  Batches are sharded per rank by our own sampler (use_distributed_sampler=False), so the
  effective batch size is data.batch_size × world size.

Exact resume: every source of randomness is a pure function of (seed, epoch, step or sample
index): the epoch's sample order, each sample's crop/augmentation, and the torch RNG, which is
re-seeded from (seed, global step, rank) before every step (dropout, modality dropout). The
train loader is Lightning-stateful: its state is the number of batches done in the current
epoch, and on resume it skips exactly those. `last.ckpt` is written every
trainer.ckpt_every_n_steps steps, so a run killed mid-epoch resumes from the last such step
and ends with the same weights as an uninterrupted run.
"""

from __future__ import annotations

import copy
import json
import math
import os
import signal
import zlib
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from . import cache
from . import labels as L
from .errors import EmoliteError
from .inputs import make_sample
from .losses import REGRESSION_LOSSES, build_loss, class_weights
from .models import build_model, model_config, save_checkpoint

SAMPLE_RATE = 16000
FACE_SIZE = 112
HOLDOUT = 0.1          # fraction of train speakers held out when there is no validation split
MAX_PRINTED = 5


# ============================================================================ data

class ClipDataset(Dataset):
    """Cache entries -> model windows. Index with an int (evaluation: deterministic) or with
    (index, epoch, position) from `EpochBatchSampler` (training: random window + augmentation
    seeded by (seed, epoch, position, index))."""

    def __init__(self, rows: list[dict], targets: list | None, frames: int = 8, seconds: float = 4.0,
                 train: bool = False, augment: dict | None = None, seed: int = 0, target_keys: list | None = None):
        self.rows, self.targets = rows, targets
        self.frames, self.seconds = frames, seconds
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
        s = make_sample(entry, self.frames, self.seconds, rng, self.augment if self.train else None)
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
        out[k] = x.float() / 255.0 if x.dtype == torch.uint8 and k in ("face", "context") else x
    return out


def _dist(shard: bool = True) -> tuple[int, int]:
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
    """shard=False: every sample on this process even under DDP (stand-alone evaluation)."""
    sampler = EpochBatchSampler(len(ds), batch_size, mode, weights, seed, drop_last=train and len(ds) > batch_size,
                                with_epoch=train, shard=shard)
    cls = ResumableLoader if train else DataLoader
    return cls(ds, batch_sampler=sampler, num_workers=num_workers, collate_fn=collate,
               pin_memory=torch.cuda.is_available(), persistent_workers=num_workers > 0,
               worker_init_fn=_worker_init if num_workers > 0 else None)


# ============================================================================ splits and classes

def _speaker_holdout(rows: list[dict], frac: float = HOLDOUT) -> tuple[list[dict], list[dict]]:
    """Deterministic speaker-independent split of `rows` (by a hash of the speaker id)."""
    key = (lambda r: r.get("speaker") or r["key"])
    spk = sorted({key(r) for r in rows}, key=lambda s: zlib.crc32(str(s).encode()))
    n_val = max(1, int(round(frac * len(spk)))) if len(spk) > 1 else 0
    held = set(spk[:n_val])
    if not held:   # one speaker: hold out items instead
        held_rows = {r["key"] for r in sorted(rows, key=lambda r: zlib.crc32(r["key"].encode()))[: max(1, len(rows) // 10)]}
        return [r for r in rows if r["key"] not in held_rows], [r for r in rows if r["key"] in held_rows]
    return [r for r in rows if key(r) not in held], [r for r in rows if key(r) in held]


def select_rows(cfg: dict) -> tuple[list[dict], list[dict], list[dict]]:
    d = cfg["data"]
    if not d["cache_dir"]:
        raise EmoliteError("no data.cache_dir in the config (set it, or --set data.cache_dir=DIR)")
    rows = cache.read_index(d["cache_dir"])
    if d["dataset"]:
        found = sorted({r.get("dataset", "") for r in rows})
        rows = [r for r in rows if r.get("dataset", "") in (d["dataset"], "")]
        if not rows:
            raise EmoliteError(f"no entries of dataset '{d['dataset']}' in the cache; it has: {', '.join(found)}",
                               d["cache_dir"])
    by = lambda s: [r for r in rows if r["split"] == s] if s else []
    train, val, test = by(d["train_split"]), by(d["val_split"]), by(d["test_split"])
    if not train:
        raise EmoliteError(f"no entries in train split '{d['train_split']}'; splits in the cache: "
                           f"{', '.join(sorted({r['split'] for r in rows}))}", d["cache_dir"])
    if not val:
        train, val = _speaker_holdout(train)
        print(f"train: no '{d['val_split']}' split; holding out {len(val)} train entries "
              f"({len({r.get('speaker') for r in val})} speakers) for validation")
    if d["max_items"] > 0:
        train, val, test = (x[: d["max_items"]] for x in (train, val, test))
    return train, val, test


def class_list(cfg: dict, train_rows: list[dict]) -> list[str]:
    """Explicit data.classes > the label set of data.dataset > labels present in train."""
    d = cfg["data"]
    if d["classes"]:
        return [L.canonical(c) for c in d["classes"]]
    if d["dataset"] in L.DATASET_LABELS:
        return L.dataset_classes(d["dataset"])
    return sorted({r["label"] for r in train_rows})


def _keep_usable(rows: list[dict], modalities: list[str] | None, what: str) -> list[dict]:
    """Drop entries that have none of the model's modalities (e.g. still images for a voice model)."""
    if not modalities:
        return rows
    has = lambda r, m: r.get("has_audio", True) if m == "audio" else r.get("has_video", True)
    keep = [r for r in rows if any(has(r, m) for m in modalities)]
    if len(keep) < len(rows):
        print(f"train: leaving out {len(rows) - len(keep)} {what} entries with none of the model's "
              f"modalities ({', '.join(modalities)})")
    return keep


def _keep_known(rows: list[dict], classes: list[str], what: str) -> list[dict]:
    keep = [r for r in rows if r["label"] in classes]
    if len(keep) < len(rows):
        other = sorted({r["label"] for r in rows} - set(classes))
        print(f"train: leaving out {len(rows) - len(keep)} {what} entries with labels outside the class list: "
              f"{', '.join(other[:MAX_PRINTED])}")
    return keep


# ============================================================================ transfer

def load_init(path: str | Path) -> tuple[dict, dict]:
    """(state_dict, model config) from an emolite .pt or a Lightning .ckpt of ours."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise EmoliteError("init checkpoint not found", path) from None
    except Exception as e:
        raise EmoliteError(f"cannot load init checkpoint ({type(e).__name__})", path) from None
    if "meta" in ckpt:
        return ckpt["state_dict"], ckpt["meta"].get("model", {})
    if "emolite" in ckpt:
        sd = {k[len("model."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
        return sd, ckpt["emolite"]["model"]
    raise EmoliteError("not an emolite checkpoint", path)


def init_from(model_cfg: dict, num_classes: int, path: str | Path) -> torch.nn.Module:
    """Model with the init checkpoint's architecture; all weights but the head loaded."""
    sd, init_cfg = load_init(path)
    keep = {k: model_cfg[k] for k in ("dropout", "modality_dropout") if k in model_cfg}
    model = build_model({**init_cfg, **keep}, num_classes)
    own = model.state_dict()
    load = {k: v for k, v in sd.items() if not k.startswith("head.") and k in own and own[k].shape == v.shape}
    skipped = sorted(set(sd) - set(load) - {k for k in sd if k.startswith("head.")})
    model.load_state_dict(load, strict=False)
    print(f"train: init from {path}: loaded {len(load)} tensors, new head for {num_classes} classes"
          + (f", skipped {len(skipped)} mismatched: {', '.join(skipped[:MAX_PRINTED])}" if skipped else ""))
    return model


# ============================================================================ Lightning

def _lightning():
    import lightning.pytorch as pl
    return pl


def make_module(cfg: dict, model: torch.nn.Module, classes: list[str], weights: torch.Tensor | None,
                train_loader: ResumableLoader | None = None):
    """The LightningModule (built lazily so importing emolite.train does not import Lightning)."""
    pl = _lightning()
    from .evaluate import REGRESSION_METRICS, build_metrics, metric_values

    class EmoModule(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.model = model
            self.cfg = cfg
            self.regression = bool(cfg["data"]["targets"])
            n_out = len(cfg["data"]["targets"]) if self.regression else len(classes)
            self.loss_fn = build_loss(cfg["loss"], weights)
            names = REGRESSION_METRICS if self.regression else cfg["metrics"]["names"]
            self.val_metrics = build_metrics(names, n_out)
            self._metric_values = metric_values

        def forward(self, batch: dict) -> torch.Tensor:
            return self.model(model_inputs(batch))

        def on_train_batch_start(self, batch, batch_idx) -> None:
            # Dropout / modality dropout depend only on (seed, step, rank): exact after resume.
            seed = int(self.cfg["trainer"]["seed"])
            torch.manual_seed((seed * 1_000_003 + self.global_step * 997 + self.global_rank) % (2 ** 63))

        def training_step(self, batch, batch_idx):
            out = self(batch)
            loss = self.loss_fn(out, batch["y"])
            self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(batch["y"]))
            return loss

        def validation_step(self, batch, batch_idx):
            out = self(batch).float()
            loss = self.loss_fn(out, batch["y"])
            self.val_metrics.update(out, batch["y"])
            self.log("val/loss", loss, on_epoch=True, prog_bar=True, sync_dist=True, batch_size=len(batch["y"]))

        def on_validation_epoch_end(self) -> None:
            vals = self._metric_values(self.val_metrics.compute())   # synced across ranks
            self.val_metrics.reset()
            # already identical on all ranks; sync_dist only silences Lightning's DDP warning
            self.log_dict({f"val/{k}": v for k, v in vals.items()}, prog_bar=True, sync_dist=True)

        def configure_optimizers(self):
            o = self.cfg["optim"]
            decay, no_decay = [], []
            for n, p in self.model.named_parameters():
                (no_decay if p.ndim < 2 or "missing" in n or "cls" in n or "type_emb" in n else decay).append(p)
            opt = torch.optim.AdamW([{"params": decay, "weight_decay": o["weight_decay"]},
                                     {"params": no_decay, "weight_decay": 0.0}], lr=o["lr"])
            # Not trainer.estimated_stepping_batches: it sets up the train loader before the
            # checkpoint is restored, and Lightning then never restores the loader's state.
            n = len(train_loader) if train_loader is not None else 1
            lim = self.cfg["debug"]["limit_train_batches"]
            n = min(n, int(lim)) if lim else n
            total = n * int(o["epochs"])
            total = min(total, int(o["max_steps"])) if int(o["max_steps"]) > 0 else total
            total = max(1, total)
            warm = min(int(o["warmup_steps"]), total // 4)
            cosine = o["scheduler"] == "cosine"

            def lr_lambda(step: int) -> float:
                if step < warm:
                    return (step + 1) / warm
                if not cosine:
                    return 1.0
                return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))

            sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

        def on_save_checkpoint(self, checkpoint: dict) -> None:
            checkpoint["emolite"] = json.loads(json.dumps({"classes": classes, "model": self.model.cfg,
                                                           "config": self.cfg}))
            if train_loader is not None:
                checkpoint["emolite"]["train_loader"] = train_loader.state_dict()

        def on_load_checkpoint(self, checkpoint: dict) -> None:
            # Also restore the loader here (before the fit loop starts iterating), independent of
            # whether Lightning's own stateful-loader path runs in this version.
            state = checkpoint.get("emolite", {}).get("train_loader")
            if train_loader is not None and state:
                train_loader.load_state_dict(state)

    return EmoModule()


def _kill_callback(step: int):
    pl = _lightning()

    class KillAt(pl.Callback):
        """Test hook: die hard (no cleanup, like a pre-empted job) at global step `step`."""

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            if trainer.global_step >= step:
                os.kill(os.getpid(), signal.SIGKILL)

    return KillAt()


def _loggers(run_dir: Path) -> list:
    from lightning.pytorch.loggers import CSVLogger

    loggers = [CSVLogger(str(run_dir), name="", version="csv")]
    try:
        import tensorboard  # noqa: F401
        from lightning.pytorch.loggers import TensorBoardLogger
        loggers.append(TensorBoardLogger(str(run_dir), name="", version="tb"))
    except ImportError:
        pass
    return loggers


def preprocess_meta(cfg: dict, rows: list[dict]) -> dict:
    return {"frames": cfg["data"]["frames"], "audio_seconds": cfg["data"]["audio_seconds"],
            "fps": float(rows[0].get("fps", 5.0)) if rows else 5.0, "face_size": FACE_SIZE,
            "context_size": FACE_SIZE, "sample_rate": SAMPLE_RATE}


def run(cfg: dict | str | Path, resume: bool = False) -> dict:
    """Train (or resume) per `cfg`; returns the final metrics (also in <run dir>/metrics.json)."""
    from .config import dump_toml, load_config, load_plugins

    if not isinstance(cfg, dict):
        cfg = load_config(cfg)
    cfg = copy.deepcopy(cfg)
    load_plugins(cfg.get("plugins", []))
    pl = _lightning()
    d, t, o = cfg["data"], cfg["trainer"], cfg["optim"]
    regression = bool(d["targets"])
    if regression and cfg["loss"]["name"] not in REGRESSION_LOSSES:
        cfg["loss"]["name"] = "ccc"
    if not regression and cfg["loss"]["name"] in REGRESSION_LOSSES:
        raise EmoliteError(f"loss '{cfg['loss']['name']}' is for regression; set data.targets (e.g. "
                           "[\"valence\", \"arousal\"]) or use ce / weighted_ce / focal")
    if regression and o["monitor"] == "val/f1_weighted":
        o["monitor"], o["mode"] = "val/ccc", "max"

    train_rows, val_rows, test_rows = select_rows(cfg)
    classes = [] if regression else class_list(cfg, train_rows)
    if not regression:
        train_rows = _keep_known(train_rows, classes, "train")
        val_rows = _keep_known(val_rows, classes, "validation")
    run_dir = Path(t["out_dir"]) / t["name"]
    ckpt_dir = run_dir / "checkpoints"
    last = ckpt_dir / "last.ckpt"
    if last.exists() and not resume:
        raise EmoliteError("this run dir already has checkpoints; resume it (--resume) or pick another "
                           "trainer.name / trainer.out_dir", run_dir)

    pl.seed_everything(int(t["seed"]), workers=True, verbose=False)
    seed = int(t["seed"])
    n_out = len(d["targets"]) if regression else len(classes)
    mcfg = {k: v for k, v in cfg["model"].items() if k != "init"}
    if cfg["model"]["init"]:
        model = init_from(model_config(mcfg), n_out, cfg["model"]["init"])
    else:
        model = build_model(mcfg, n_out)

    mods = getattr(model, "cfg", {}).get("modalities")
    train_rows = _keep_usable(train_rows, mods, "train")
    val_rows = _keep_usable(val_rows, mods, "validation")
    if not train_rows or not val_rows:
        raise EmoliteError(f"no {'training' if not train_rows else 'validation'} entries left after matching "
                           "labels and modalities to the config", d["cache_dir"])
    cidx = {c: i for i, c in enumerate(classes)}
    counts = [sum(r["label"] == c for r in train_rows) for c in classes]
    weights = class_weights(counts) if classes else None
    sample_w = torch.tensor([1.0 / max(1, counts[cidx[r["label"]]]) for r in train_rows]) if classes else None

    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.toml").write_text(dump_toml(cfg))
    ydata = lambda rows: None if regression else [cidx[r["label"]] for r in rows]
    tk = d["targets"] if regression else None
    train_ds = ClipDataset(train_rows, ydata(train_rows), d["frames"], d["audio_seconds"], train=True,
                           augment=cfg["augment"], seed=seed, target_keys=tk)
    val_ds = ClipDataset(val_rows, ydata(val_rows), d["frames"], d["audio_seconds"], target_keys=tk)
    train_loader = make_loader(train_ds, d["batch_size"], d["sampler"], sample_w, seed, d["num_workers"], train=True)
    val_loader = make_loader(val_ds, d["batch_size"], num_workers=d["num_workers"])
    module = make_module(cfg, model, classes, weights, train_loader)
    train_loader.progress = lambda: module.trainer.fit_loop.epoch_loop.batch_progress.current.processed

    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    best_cb = ModelCheckpoint(dirpath=str(ckpt_dir), filename="best", monitor=o["monitor"], mode=o["mode"],
                              save_top_k=1, auto_insert_metric_name=False, enable_version_counter=False)
    step_cb = ModelCheckpoint(dirpath=str(ckpt_dir), filename="step", save_top_k=0, save_last=True,
                              every_n_train_steps=max(1, int(t["ckpt_every_n_steps"])), enable_version_counter=False)
    callbacks = [best_cb, step_cb, EarlyStopping(monitor=o["monitor"], mode=o["mode"], patience=int(o["patience"]),
                                                   check_on_train_epoch_end=False)]
    if cfg["debug"]["kill_after_steps"] > 0:
        callbacks.append(_kill_callback(int(cfg["debug"]["kill_after_steps"])))
    dbg = cfg["debug"]
    trainer = pl.Trainer(
        accelerator=t["accelerator"], devices=t["devices"], num_nodes=int(t["num_nodes"]), strategy=t["strategy"],
        precision=t["precision"], max_epochs=int(o["epochs"]), max_steps=int(o["max_steps"]),
        gradient_clip_val=o["grad_clip"] or None, callbacks=callbacks, logger=_loggers(run_dir),
        default_root_dir=str(run_dir), log_every_n_steps=int(t["log_every_n_steps"]),
        enable_progress_bar=bool(t["progress_bar"]), enable_model_summary=False, num_sanity_val_steps=0,
        use_distributed_sampler=False, deterministic=bool(t["deterministic"]),
        limit_train_batches=dbg["limit_train_batches"] or None, limit_val_batches=dbg["limit_val_batches"] or None,
    )
    import inspect
    fit_kw = {"weights_only": True} if "weights_only" in inspect.signature(trainer.fit).parameters else {}
    ckpt_path = str(last) if resume and last.exists() else None
    if resume and ckpt_path is None:
        print(f"train: nothing to resume in {run_dir}; starting from scratch")
    trainer.fit(module, train_loader, val_loader, ckpt_path=ckpt_path, **fit_kw)

    # Best weights (or, with optim.keep = "last", the final ones already in `model`) -> emolite checkpoint.
    best_path = (best_cb.best_model_path or str(last)) if o["keep"] == "best" else ""
    if best_path and Path(best_path).exists():
        sd = torch.load(best_path, map_location="cpu", weights_only=True)["state_dict"]
        model.load_state_dict({k[len("model."):]: v for k, v in sd.items() if k.startswith("model.")})
    vals = trainer.validate(module, val_loader, verbose=False)[0]
    metrics = {k: float(v) for k, v in vals.items() if k.startswith("val/")}
    result = {"run_dir": str(run_dir), "best_checkpoint": str(run_dir / "best.pt"), "epochs": trainer.current_epoch,
              "global_step": trainer.global_step, "classes": classes, **metrics}
    if trainer.is_global_zero:
        meta = {"classes": classes, "targets": d["targets"], "dataset": d["dataset"],
                "preprocess": preprocess_meta(cfg, train_rows), "metrics": metrics, "train_config": cfg}
        save_checkpoint(run_dir / "best.pt", model, meta)
        if test_rows and not regression:
            from . import evaluate
            res = evaluate.run(run_dir / "best.pt", d["cache_dir"], split=d["test_split"],
                               out_dir=run_dir / f"eval_{d['test_split']}", batch_size=d["batch_size"],
                               dataset=d["dataset"])
            result.update({f"test/{k}": res[k] for k in ("accuracy", "f1_weighted", "f1_macro", "uar")})
        (run_dir / "metrics.json").write_text(json.dumps(result, indent=1))
    return result


# ============================================================================ synthetic data

def make_synthetic_cache(out_dir: str | Path, classes: tuple[str, ...] = ("anger", "happiness", "neutral"),
                         n_per_class: dict | None = None, seconds: float = 2.0, fps: float = 5.0,
                         dataset: str = "synthetic", seed: int = 0) -> Path:
    """A tiny learnable cache without any media decoding (tests, smoke runs): class k has a
    tinted face/context and a tone at 220·(k+1) Hz. Mixes full clips, audio-only clips,
    video-only clips, still images and clips where the face is found in only some frames.
    n_per_class: {split: count}, default {"train": 8, "dev": 3, "test": 3}."""
    rng = np.random.default_rng(seed)
    out = Path(out_dir)
    (out / cache.ENTRIES).mkdir(parents=True, exist_ok=True)
    n_per_class = n_per_class or {"train": 8, "dev": 3, "test": 3}
    i = 0
    for split, n in n_per_class.items():
        for k, label in enumerate(classes):
            for j in range(n):
                kind = ["full", "full", "audio", "video", "image", "partial"][(j + k) % 6]
                nf = 1 if kind == "image" else (0 if kind == "audio" else int(seconds * fps))
                tint = np.zeros(3)
                tint[k % 3] = 90.0
                base = rng.integers(0, 120, (nf, 112, 112, 3)).astype(np.float32)
                face = np.clip(base + tint + 40, 0, 255).astype(np.uint8)
                context = np.clip(base[:, ::-1] + tint / 2, 0, 255).astype(np.uint8)
                face_mask = np.ones(nf, bool)
                if kind == "partial":
                    face_mask[::2] = False
                    face[~face_mask] = 0
                has_audio = kind not in ("video", "image")
                tt = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
                f0 = 220.0 * (k + 1) * rng.uniform(0.95, 1.05)
                audio = (0.3 * np.sin(2 * np.pi * f0 * tt) + 0.02 * rng.normal(size=tt.size)).astype(np.float32) \
                    if has_audio else np.zeros(0, np.float32)
                key = f"{dataset}_{split}_{label}_{j:03d}"
                meta = {"label": label, "speaker": f"spk{j % 4 if split == 'train' else 10 + j % 2}", "split": split,
                        "dataset": dataset, "duration": 0.0 if kind == "image" else seconds, "fps": fps,
                        "has_video": nf > 0, "has_audio": has_audio,
                        "valence": float(k) / max(1, len(classes) - 1), "arousal": float(j % 2)}
                cache.write_entry(out, key, {"face": face, "context": context, "face_mask": face_mask,
                                             "audio": audio}, meta)
                i += 1
    cache.rebuild_index(out)
    return out
