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
from pathlib import Path

import torch

from . import cache
from . import labels as L
from .data.splits import order_groups
from .errors import EmoliteError
from .fsio import atomic_write_text
from .loader import ClipDataset, ResumableLoader, collate, input_spec, make_loader, model_inputs  # noqa: F401 (scripts)
from .losses import REGRESSION_LOSSES, build_loss, class_weights
from .metrics import REGRESSION_METRICS, build_metrics, metric_values
from .models import build_model, model_config, read_checkpoint, save_checkpoint

HOLDOUT = 0.1          # fraction of train speakers held out when there is no validation split
MAX_PRINTED = 5


# ============================================================================ data

# ============================================================================ splits and classes

def _speaker_holdout(rows: list[dict], frac: float = HOLDOUT, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Speaker-independent validation split of `rows`, in the seeded speaker order of
    data/splits.py (the same order the dataset loaders split by)."""
    key = (lambda r: r.get("speaker") or r["key"])
    spk = order_groups((key(r) for r in rows), seed)
    if len(spk) > 1:
        held = set(spk[:max(1, int(round(frac * len(spk))))])
        return [r for r in rows if key(r) not in held], [r for r in rows if key(r) in held]
    keys = order_groups((r["key"] for r in rows), seed)   # one speaker: hold out items instead
    held = set(keys[:max(1, len(rows) // 10)])
    return [r for r in rows if r["key"] not in held], [r for r in rows if r["key"] in held]


def select_rows(cfg: dict) -> tuple[list[dict], list[dict], list[dict]]:
    """(train, validation, test) index rows of the cache per the [data] table; without a
    validation split, a speaker-independent part of train is held out."""
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
        train, val = _speaker_holdout(train, seed=int(cfg["trainer"]["seed"]))
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

def init_from(model_cfg: dict, num_classes: int, path: str | Path) -> torch.nn.Module:
    """Model with the init checkpoint's architecture; all weights but the head loaded."""
    sd, meta = read_checkpoint(path)
    init_cfg = meta.get("model", {})
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


def mixup(x: dict, alpha: float) -> tuple[dict, float, torch.Tensor]:
    """Mixup (Zhang et al. 2018) of a model-input batch with a shuffled copy of itself: float
    inputs mixed by lam ~ Beta(alpha, alpha), masks or-ed (a modality present in either sample is
    present in the mix). Draws from torch's RNG, which is seeded per step (exact after resume)."""
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    first = next(iter(x.values()))
    perm = torch.randperm(first.shape[0], device=first.device)
    out = {k: (v | v[perm]) if v.dtype == torch.bool else lam * v + (1 - lam) * v[perm] for k, v in x.items()}
    return out, lam, perm


def make_module(cfg: dict, model: torch.nn.Module, classes: list[str], weights: torch.Tensor | None,
                train_loader: ResumableLoader | None = None):
    """The LightningModule (built lazily so importing emolite.train does not import Lightning)."""
    pl = _lightning()

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
            alpha = float(self.cfg["augment"]["mixup"]) if self.cfg["augment"]["enabled"] else 0.0
            if alpha > 0 and not self.regression:
                x, lam, perm = mixup(model_inputs(batch), alpha)
                out = self.model(x)
                loss = lam * self.loss_fn(out, batch["y"]) + (1 - lam) * self.loss_fn(out, batch["y"][perm])
            else:
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


def _make_trainer(cfg: dict, run_dir: Path, ckpt_dir: Path):
    """The Lightning Trainer per [trainer]/[optim]/[debug], and its best-checkpoint callback."""
    pl = _lightning()
    t, o, dbg = cfg["trainer"], cfg["optim"], cfg["debug"]
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    best_cb = ModelCheckpoint(dirpath=str(ckpt_dir), filename="best", monitor=o["monitor"], mode=o["mode"],
                              save_top_k=1, auto_insert_metric_name=False, enable_version_counter=False)
    step_cb = ModelCheckpoint(dirpath=str(ckpt_dir), filename="step", save_top_k=0, save_last=True,
                              every_n_train_steps=max(1, int(t["ckpt_every_n_steps"])), enable_version_counter=False)
    callbacks = [best_cb, step_cb]
    if o["keep"] == "best":   # keep="last" is a fixed schedule: stopping early would cut it short
        callbacks.append(EarlyStopping(monitor=o["monitor"], mode=o["mode"], patience=int(o["patience"]),
                                       check_on_train_epoch_end=False))
    if dbg["kill_after_steps"] > 0:
        callbacks.append(_kill_callback(int(dbg["kill_after_steps"])))
    trainer = pl.Trainer(
        accelerator=t["accelerator"], devices=t["devices"], num_nodes=int(t["num_nodes"]), strategy=t["strategy"],
        precision=t["precision"], max_epochs=int(o["epochs"]), max_steps=int(o["max_steps"]),
        gradient_clip_val=o["grad_clip"] or None, callbacks=callbacks, logger=_loggers(run_dir),
        default_root_dir=str(run_dir), log_every_n_steps=int(t["log_every_n_steps"]),
        enable_progress_bar=bool(t["progress_bar"]), enable_model_summary=False, num_sanity_val_steps=0,
        use_distributed_sampler=False, deterministic=bool(t["deterministic"]),
        limit_train_batches=dbg["limit_train_batches"] or None, limit_val_batches=dbg["limit_val_batches"] or None,
    )
    return trainer, best_cb


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
    atomic_write_text(run_dir / "config.toml", dump_toml(cfg))
    spec = input_spec(d["cache_dir"], train_rows, d["frames"], d["audio_seconds"])
    ydata = lambda rows: None if regression else [cidx[r["label"]] for r in rows]
    tk = d["targets"] if regression else None
    sizes = {"face_size": spec.face_size, "context_size": spec.context_size}
    train_ds = ClipDataset(train_rows, ydata(train_rows), spec.frames, spec.audio_seconds, train=True,
                           augment=cfg["augment"], seed=seed, target_keys=tk, **sizes)
    val_ds = ClipDataset(val_rows, ydata(val_rows), spec.frames, spec.audio_seconds, target_keys=tk, **sizes)
    train_loader = make_loader(train_ds, d["batch_size"], d["sampler"], sample_w, seed, d["num_workers"], train=True)
    val_loader = make_loader(val_ds, d["batch_size"], num_workers=d["num_workers"])
    module = make_module(cfg, model, classes, weights, train_loader)
    train_loader.progress = lambda: module.trainer.fit_loop.epoch_loop.batch_progress.current.processed

    trainer, best_cb = _make_trainer(cfg, run_dir, ckpt_dir)
    import inspect
    fit_kw = {"weights_only": True} if "weights_only" in inspect.signature(trainer.fit).parameters else {}
    ckpt_path = str(last) if resume and last.exists() else None
    if resume and ckpt_path is None:
        print(f"train: nothing to resume in {run_dir}; starting from scratch")
    trainer.fit(module, train_loader, val_loader, ckpt_path=ckpt_path, **fit_kw)

    # Best weights (or, with optim.keep = "last", the final ones already in `model`) -> emolite checkpoint.
    best_path = (best_cb.best_model_path or str(last)) if o["keep"] == "best" else ""
    if best_path and Path(best_path).exists():
        model.load_state_dict(read_checkpoint(best_path)[0])
    vals = trainer.validate(module, val_loader, verbose=False)[0]
    metrics = {k: float(v) for k, v in vals.items() if k.startswith("val/")}
    result = {"run_dir": str(run_dir), "best_checkpoint": str(run_dir / "best.pt"), "epochs": trainer.current_epoch,
              "global_step": trainer.global_step, "classes": classes, **metrics}
    if trainer.is_global_zero:
        meta = {"classes": classes, "targets": d["targets"], "dataset": d["dataset"],
                "preprocess": spec.to_dict(), "metrics": metrics, "train_config": cfg}
        save_checkpoint(run_dir / "best.pt", model, meta)
        if test_rows and not regression:
            from . import evaluate
            res = evaluate.run(run_dir / "best.pt", d["cache_dir"], split=d["test_split"],
                               out_dir=run_dir / f"eval_{d['test_split']}", batch_size=d["batch_size"],
                               dataset=d["dataset"])
            result.update({f"test/{k}": res[k] for k in ("accuracy", "f1_weighted", "f1_macro", "uar")})
        atomic_write_text(run_dir / "metrics.json", json.dumps(result, indent=1))
    return result
