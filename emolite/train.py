"""Train an emolite model on a preprocessed cache with Lightning.

    from emolite import config, train
    result = train.run(config.load_config("configs/meld.toml", ["trainer.devices=1"]))
    result = train.run(cfg, resume=True)     # continue a killed run exactly where it stopped

Run dir (trainer.out_dir/trainer.name): config.toml, checkpoints/{best,last}.ckpt (Lightning,
resumable), csv/metrics.csv (+ TensorBoard logs when tensorboard is installed), best.pt (the
emolite checkpoint: weights + classes + typed model config + InputSpec + metrics), metrics.json,
and eval_<test split>/ (metrics.json, confusion matrix) when the cache has a test split. The
.ckpt files carry the same record (emolite/lit.py), so either file loads with `--model`; the
InputSpec's window is the length trained on (data.audio_seconds), so analyze and serve cut it.

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
import inspect
import json
from dataclasses import replace
from pathlib import Path

import torch

from . import cache
from . import labels as L
from .data.splits import order_groups
from .errors import EmoliteError
from .fsio import atomic_write_text
from .loader import ClipDataset, input_spec, make_loader
from .losses import REGRESSION_LOSSES, class_weights
from .models import build_model, model_config, read_checkpoint, save_checkpoint
from .spec import InputSpec

HOLDOUT = 0.1          # fraction of train speakers held out when there is no validation split
MAX_PRINTED = 5


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

def init_from(table: dict, num_classes: int, path: str | Path) -> torch.nn.Module:
    """Model with the init checkpoint's architecture (its typed config; the [model] table's
    dropout rates); all weights but the head loaded."""
    sd, meta = read_checkpoint(path)
    init_cfg = model_config(meta.get("model"))
    keep = {k: float(table[k]) for k in ("dropout", "modality_dropout")
            if k in table and hasattr(init_cfg, k) and not (k == "modality_dropout" and len(init_cfg.modalities) < 2)}
    model = build_model(replace(init_cfg, **keep), num_classes)
    own = model.state_dict()
    load = {k: v for k, v in sd.items() if not k.startswith("head.") and k in own and own[k].shape == v.shape}
    skipped = sorted(set(sd) - set(load) - {k for k in sd if k.startswith("head.")})
    model.load_state_dict(load, strict=False)
    print(f"train: init from {path}: loaded {len(load)} tensors, new head for {num_classes} classes"
          + (f", skipped {len(skipped)} mismatched: {', '.join(skipped[:MAX_PRINTED])}" if skipped else ""))
    return model


# ============================================================================ Lightning

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
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    from .lit import KillAt

    t, o, dbg = cfg["trainer"], cfg["optim"], cfg["debug"]
    best_cb = ModelCheckpoint(dirpath=str(ckpt_dir), filename="best", monitor=o["monitor"], mode=o["mode"],
                              save_top_k=1, auto_insert_metric_name=False, enable_version_counter=False)
    step_cb = ModelCheckpoint(dirpath=str(ckpt_dir), filename="step", save_top_k=0, save_last=True,
                              every_n_train_steps=max(1, int(t["ckpt_every_n_steps"])), enable_version_counter=False)
    callbacks = [best_cb, step_cb]
    if o["keep"] == "best":   # keep="last" is a fixed schedule: stopping early would cut it short
        callbacks.append(EarlyStopping(monitor=o["monitor"], mode=o["mode"], patience=int(o["patience"]),
                                       check_on_train_epoch_end=False))
    if dbg["kill_after_steps"] > 0:
        callbacks.append(KillAt(int(dbg["kill_after_steps"])))
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


# ============================================================================ run

def _task(cfg: dict) -> bool:
    """Settle regression vs classification in cfg (loss, monitor); True for regression."""
    d, o = cfg["data"], cfg["optim"]
    regression = bool(d["targets"])
    if regression and cfg["loss"]["name"] not in REGRESSION_LOSSES:
        cfg["loss"]["name"] = "ccc"
    if not regression and cfg["loss"]["name"] in REGRESSION_LOSSES:
        raise EmoliteError(f"loss '{cfg['loss']['name']}' is for regression; set data.targets (e.g. "
                           "[\"valence\", \"arousal\"]) or use ce / weighted_ce / focal")
    if regression and o["monitor"] == "val/f1_weighted":
        o["monitor"], o["mode"] = "val/ccc", "max"
    return regression


def _resume_point(last: Path, resume: bool, run_dir: Path) -> str | None:
    """The checkpoint to resume from, checked readable first: a damaged or malicious last.ckpt is
    one line (torch.load runs weights_only, so nothing in it ever runs)."""
    if last.exists() and not resume:
        raise EmoliteError("this run dir already has checkpoints; resume it (--resume) or pick another "
                           "trainer.name / trainer.out_dir", run_dir)
    if not resume:
        return None
    if not last.exists():
        print(f"train: nothing to resume in {run_dir}; starting from scratch")
        return None
    try:
        read_checkpoint(last)
    except EmoliteError as e:
        raise EmoliteError(f"cannot resume: the checkpoint is unreadable ({e.args[0].split(': ', 1)[-1]}); "
                           "delete it to start again, or pick another trainer.name", last) from None
    return str(last)


def _data(cfg: dict, regression: bool, model, spec: InputSpec, rows: tuple, classes: list[str]):
    """(train loader, validation loader, class weights) for the model's modalities and classes."""
    d, seed = cfg["data"], int(cfg["trainer"]["seed"])
    mods = list(getattr(model.cfg, "modalities", None) or []) or None
    train_rows, val_rows = _keep_usable(rows[0], mods, "train"), _keep_usable(rows[1], mods, "validation")
    if not train_rows or not val_rows:
        raise EmoliteError(f"no {'training' if not train_rows else 'validation'} entries left after matching "
                           "labels and modalities to the config", d["cache_dir"])
    cidx = {c: i for i, c in enumerate(classes)}
    counts = [sum(r["label"] == c for r in train_rows) for c in classes]
    weights = class_weights(counts) if classes else None
    sample_w = torch.tensor([1.0 / max(1, counts[cidx[r["label"]]]) for r in train_rows]) if classes else None
    ydata = lambda rows: None if regression else [cidx[r["label"]] for r in rows]
    kw = dict(target_keys=d["targets"] if regression else None, face_size=spec.face_size,
              context_size=spec.context_size)
    train_ds = ClipDataset(train_rows, ydata(train_rows), spec.frames, spec.audio_seconds, train=True,
                           augment=cfg["augment"], seed=seed, **kw)
    val_ds = ClipDataset(val_rows, ydata(val_rows), spec.frames, spec.audio_seconds, **kw)
    train_loader = make_loader(train_ds, d["batch_size"], d["sampler"], sample_w, seed, d["num_workers"], train=True)
    return train_loader, make_loader(val_ds, d["batch_size"], num_workers=d["num_workers"]), weights


def _finish(cfg: dict, module, trainer, best_cb, val_loader, run_dir: Path, last: Path, test_rows: list) -> dict:
    """Best (or last) weights -> best.pt with the whole record; final validation and test metrics."""
    d, o = cfg["data"], cfg["optim"]
    best_path = (best_cb.best_model_path or str(last)) if o["keep"] == "best" else ""
    if best_path and Path(best_path).exists():
        module.model.load_state_dict(read_checkpoint(best_path)[0])
    vals = trainer.validate(module, val_loader, verbose=False)[0]
    metrics = {k: float(v) for k, v in vals.items() if k.startswith("val/")}
    result = {"run_dir": str(run_dir), "best_checkpoint": str(run_dir / "best.pt"), "epochs": trainer.current_epoch,
              "global_step": trainer.global_step, "classes": module.classes, **metrics}
    if trainer.is_global_zero:
        rec = module.record()
        meta = {**{k: rec[k] for k in ("classes", "targets", "dataset", "preprocess")}, "metrics": metrics,
                "train_config": cfg}
        save_checkpoint(run_dir / "best.pt", module.model, meta)
        if test_rows and not module.regression:
            from . import evaluate
            res = evaluate.run(run_dir / "best.pt", d["cache_dir"], split=d["test_split"],
                               out_dir=run_dir / f"eval_{d['test_split']}", batch_size=d["batch_size"],
                               dataset=d["dataset"])
            result.update({f"test/{k}": res[k] for k in ("accuracy", "f1_weighted", "f1_macro", "uar")})
        atomic_write_text(run_dir / "metrics.json", json.dumps(result, indent=1))
    return result


def run(cfg: dict | str | Path, resume: bool = False) -> dict:
    """Train (or resume) per `cfg`; returns the final metrics (also in <run dir>/metrics.json)."""
    import lightning.pytorch as pl

    from .config import check_config, dump_toml, load_config, load_plugins
    from .lit import EmoModule

    cfg = copy.deepcopy(cfg if isinstance(cfg, dict) else load_config(cfg))
    check_config(cfg)   # also a dict built in code, not only a loaded file
    load_plugins(cfg.get("plugins", []))
    d, t = cfg["data"], cfg["trainer"]
    regression = _task(cfg)
    train_rows, val_rows, test_rows = select_rows(cfg)
    classes = [] if regression else class_list(cfg, train_rows)
    if not regression:
        train_rows, val_rows = _keep_known(train_rows, classes, "train"), _keep_known(val_rows, classes, "validation")
    run_dir = Path(t["out_dir"]) / t["name"]
    ckpt_dir = run_dir / "checkpoints"
    last = ckpt_dir / "last.ckpt"
    ckpt_path = _resume_point(last, resume, run_dir)

    pl.seed_everything(int(t["seed"]), workers=True, verbose=False)
    n_out = len(d["targets"]) if regression else len(classes)
    init = cfg["model"]["init"]
    model = init_from(cfg["model"], n_out, init) if init else build_model(model_config(
        cfg["model"]["name"], **{k: v for k, v in cfg["model"].items() if k not in ("init", "name")}), n_out)
    spec = input_spec(d["cache_dir"], train_rows, d["frames"], d["audio_seconds"])
    train_loader, val_loader, weights = _data(cfg, regression, model, spec, (train_rows, val_rows), classes)

    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.toml", dump_toml(cfg))
    module = EmoModule(cfg, model, classes, weights, spec, train_loader)
    train_loader.progress = lambda: module.trainer.fit_loop.epoch_loop.batch_progress.current.processed
    trainer, best_cb = _make_trainer(cfg, run_dir, ckpt_dir)
    fit_kw = {"weights_only": True} if "weights_only" in inspect.signature(trainer.fit).parameters else {}
    trainer.fit(module, train_loader, val_loader, ckpt_path=ckpt_path, **fit_kw)
    return _finish(cfg, module, trainer, best_cb, val_loader, run_dir, last, test_rows)
