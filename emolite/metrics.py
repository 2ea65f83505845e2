"""Metrics by name (`emolite.registry.METRICS`), used by training's validation: a factory
takes the number of classes (or regression outputs) and returns a torchmetrics Metric."""

from __future__ import annotations

import torch
from torchmetrics import ConcordanceCorrCoef, MeanSquaredError, Metric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score, MulticlassRecall

from .registry import METRICS, lookup, register_metric


@register_metric("acc")
def _acc(n: int) -> Metric:
    return MulticlassAccuracy(n, average="micro")


@register_metric("f1_weighted")
def _f1w(n: int) -> Metric:
    return MulticlassF1Score(n, average="weighted")


@register_metric("f1_macro")
def _f1m(n: int) -> Metric:
    return MulticlassF1Score(n, average="macro")


@register_metric("uar")
def _uar(n: int) -> Metric:
    """Unweighted average recall (the usual speech-emotion metric)."""
    return MulticlassRecall(n, average="macro")


@register_metric("ccc")
def _ccc(n: int) -> Metric:
    return ConcordanceCorrCoef(num_outputs=n)


@register_metric("mse")
def _mse(n: int) -> Metric:
    return MeanSquaredError()


REGRESSION_METRICS = ["ccc", "mse"]


def build_metrics(names: list[str], n: int) -> MetricCollection:
    """The named metrics (registry names) for n classes or outputs, as one collection."""
    return MetricCollection({name: lookup(METRICS, name, "metric")(n) for name in names})


def metric_values(values: dict) -> dict[str, float]:
    """Computed metrics -> floats (multi-output ones, e.g. CCC per target, are averaged)."""
    return {k: float(torch.as_tensor(v).float().mean()) for k, v in values.items()}
