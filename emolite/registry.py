"""Plug-in points: plain dicts from a name to a function or class, filled by decorators.

A user adds a dataset, model, loss, metric, face detector, fusion or audio encoder by
decorating one function (or class) in their own code (imported before `emolite train`, e.g.
via `--plugin mymodule`); no fork needed.
"""

from __future__ import annotations

from typing import Callable

DATASETS: dict[str, Callable] = {}
MODELS: dict[str, Callable] = {}
LOSSES: dict[str, Callable] = {}
METRICS: dict[str, Callable] = {}
DETECTORS: dict[str, Callable] = {}
FUSIONS: dict[str, Callable] = {}         # (in_dims, d, dropout) -> fusion module
AUDIO_ENCODERS: dict[str, Callable] = {}  # (out_dim, n_mels, hidden, channels, norm, specaug) -> encoder


def _register(table: dict[str, Callable], name: str) -> Callable:
    def deco(fn: Callable) -> Callable:
        table[name] = fn
        return fn
    return deco


def register_dataset(name: str) -> Callable:
    """Decorator: a dataset loader `(root, **opts) -> (items, problems)` under `name`."""
    return _register(DATASETS, name)


def register_model(name: str) -> Callable:
    """Decorator: a model factory `(cfg, num_classes) -> nn.Module` under `name`."""
    return _register(MODELS, name)


def register_loss(name: str) -> Callable:
    """Decorator: a loss factory `(class_weights, **loss options) -> nn.Module` under `name`."""
    return _register(LOSSES, name)


def register_metric(name: str) -> Callable:
    """Decorator: a metric factory `(n) -> torchmetrics.Metric` under `name`."""
    return _register(METRICS, name)


def register_detector(name: str) -> Callable:
    """Decorator: a face detector factory `(**opts) -> Detector` under `name`."""
    return _register(DETECTORS, name)


def register_fusion(name: str) -> Callable:
    """Decorator: a fusion module class `(in_dims, d, dropout)` under `name`."""
    return _register(FUSIONS, name)


def register_audio_encoder(name: str) -> Callable:
    """Decorator: a voice encoder factory under `name` (config model.audio_kind)."""
    return _register(AUDIO_ENCODERS, name)


def lookup(table: dict[str, Callable], name: str, kind: str) -> Callable:
    """Find `name` in a registry, or raise a clear error listing what exists."""
    from .errors import EmoliteError

    if name not in table:
        raise EmoliteError(f"unknown {kind} '{name}'; choose one of: {', '.join(sorted(table))}")
    return table[name]
