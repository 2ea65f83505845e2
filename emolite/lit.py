"""The LightningModule and callbacks of `emolite train` (imported only when training runs, so
importing emolite.train does not import Lightning)."""

from __future__ import annotations

import json
import math
import os
import signal

import lightning.pytorch as pl
import torch

from . import arch
from .loader import ResumableLoader, model_inputs
from .losses import build_loss
from .metrics import REGRESSION_METRICS, build_metrics, metric_values
from .spec import InputSpec


def mixup(x: dict, alpha: float) -> tuple[dict, float, torch.Tensor]:
    """Mixup (Zhang et al. 2018) of a model-input batch with a shuffled copy of itself: float
    inputs mixed by lam ~ Beta(alpha, alpha), masks or-ed (a modality present in either sample is
    present in the mix). Draws from torch's RNG, which is seeded per step (exact after resume)."""
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    first = next(iter(x.values()))
    perm = torch.randperm(first.shape[0], device=first.device)
    out = {k: (v | v[perm]) if v.dtype == torch.bool else lam * v + (1 - lam) * v[perm] for k, v in x.items()}
    return out, lam, perm


def lr_schedule(o: dict, steps_per_epoch: int):
    """Linear warm-up, then cosine decay to 0 over the run (or constant): step -> lr factor."""
    total = steps_per_epoch * int(o["epochs"])
    if int(o["max_steps"]) > 0:
        total = min(total, int(o["max_steps"]))
    total = max(1, total)
    warm = min(int(o["warmup_steps"]), total // 4)
    cosine = o["scheduler"] == "cosine"

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        if not cosine:
            return 1.0
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))
    return factor


class EmoModule(pl.LightningModule):
    """One model, its loss and validation metrics; every checkpoint it writes carries the whole
    record (classes, typed model config, the InputSpec as "preprocess", the training config)."""

    def __init__(self, cfg: dict, model: torch.nn.Module, classes: list[str], weights: torch.Tensor | None,
                 spec: InputSpec, train_loader: ResumableLoader | None = None):
        super().__init__()
        self.model, self.cfg, self.classes, self.spec = model, cfg, classes, spec
        self.train_loader = train_loader
        self.regression = bool(cfg["data"]["targets"])
        self.n_out = len(cfg["data"]["targets"]) if self.regression else len(classes)
        self.loss_fn = build_loss(cfg["loss"], weights)
        names = REGRESSION_METRICS if self.regression else cfg["metrics"]["names"]
        self.val_metrics = build_metrics(names, self.n_out)

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
        vals = metric_values(self.val_metrics.compute())   # synced across ranks
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
        n = len(self.train_loader) if self.train_loader is not None else 1
        lim = self.cfg["debug"]["limit_train_batches"]
        n = min(n, int(lim)) if lim else n
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_schedule(o, n))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def record(self) -> dict:
        """The checkpoint metadata a model of this run is used with (as in best.pt)."""
        d = self.cfg["data"]
        return json.loads(json.dumps({"classes": self.classes, "num_classes": self.n_out, "targets": d["targets"],
                                      "dataset": d["dataset"], "model": arch.to_dict(self.model.cfg),
                                      "preprocess": self.spec.to_dict(), "config": self.cfg}))

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["emolite"] = self.record()
        if self.train_loader is not None:
            checkpoint["emolite"]["train_loader"] = self.train_loader.state_dict()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # Also restore the loader here (before the fit loop starts iterating), independent of
        # whether Lightning's own stateful-loader path runs in this version.
        state = checkpoint.get("emolite", {}).get("train_loader")
        if self.train_loader is not None and state:
            self.train_loader.load_state_dict(state)


class KillAt(pl.Callback):
    """Test hook: die hard (no cleanup, like a pre-empted job) at global step `step`."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step >= self.step:
            os.kill(os.getpid(), signal.SIGKILL)
