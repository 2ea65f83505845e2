"""Losses by name (`emolite.registry.LOSSES`).

A loss factory takes (class_weights: Tensor | None, **options from the [loss] table) and
returns an nn.Module called as loss(output, target). Classification losses get integer
targets B; regression losses ("mse", "ccc") get float targets B×K (e.g. valence, arousal).
A plugin registers its own with `@register_loss("name")`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .registry import LOSSES, lookup, register_loss

REGRESSION_LOSSES = {"mse", "ccc"}


class CrossEntropy(nn.Module):
    """Cross-entropy with optional class weights and label smoothing."""

    def __init__(self, weight: torch.Tensor | None = None, label_smoothing: float = 0.0):
        super().__init__()
        self.register_buffer("weight", weight, persistent=False)
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float(), target, weight=self.weight, label_smoothing=self.label_smoothing)


class FocalLoss(nn.Module):
    """Lin et al. 2017: down-weights easy examples, (1-p_t)^gamma · CE; optional class weights."""

    def __init__(self, weight: torch.Tensor | None = None, gamma: float = 2.0):
        super().__init__()
        self.register_buffer("weight", weight, persistent=False)
        self.gamma = gamma

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logp = F.log_softmax(logits.float(), dim=-1).gather(1, target[:, None]).squeeze(1)
        loss = -((1 - logp.exp()) ** self.gamma) * logp
        if self.weight is not None:
            w = self.weight[target]
            return (loss * w).sum() / w.sum()
        return loss.mean()


def ccc(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Lin's concordance correlation coefficient per output column (B×K -> K)."""
    pred, target = pred.float(), target.float()
    pm, tm = pred.mean(0), target.mean(0)
    pv, tv = pred.var(0, unbiased=False), target.var(0, unbiased=False)
    cov = ((pred - pm) * (target - tm)).mean(0)
    return 2 * cov / (pv + tv + (pm - tm) ** 2 + 1e-8)


class CCCLoss(nn.Module):
    """1 - concordance correlation, averaged over the regression targets."""

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return 1 - ccc(pred, target).mean()


class MSELoss(nn.Module):
    """Mean squared error for regression targets."""

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(pred.float(), target.float())


@register_loss("ce")
def _ce(class_weights=None, label_smoothing: float = 0.0, **_) -> nn.Module:
    return CrossEntropy(None, label_smoothing)


@register_loss("weighted_ce")
def _weighted_ce(class_weights=None, label_smoothing: float = 0.0, **_) -> nn.Module:
    return CrossEntropy(class_weights, label_smoothing)


@register_loss("focal")
def _focal(class_weights=None, gamma: float = 2.0, **_) -> nn.Module:
    return FocalLoss(class_weights, gamma)


@register_loss("mse")
def _mse(class_weights=None, **_) -> nn.Module:
    return MSELoss()


@register_loss("ccc")
def _ccc(class_weights=None, **_) -> nn.Module:
    return CCCLoss()


def class_weights(counts: list[int]) -> torch.Tensor:
    """Inverse-frequency weights normalised to mean 1 (absent classes get 0)."""
    c = torch.tensor(counts, dtype=torch.float32)
    w = torch.where(c > 0, c.sum() / (len(c) * c.clamp(min=1)), torch.zeros_like(c))
    return w


def build_loss(loss_cfg: dict, weights: torch.Tensor | None = None) -> nn.Module:
    """The loss named in the config's [loss] table (class weights for weighted_ce)."""
    opts = {k: v for k, v in loss_cfg.items() if k not in ("name", "extra")}
    opts.update(loss_cfg.get("extra", {}))
    return lookup(LOSSES, loss_cfg["name"], "loss")(weights, **opts)
