"""Every classification score emolite reports, computed one way from a confusion matrix:
training's validation (the torchmetrics `METRICS` below), `emolite evaluate`, the recipes in
`emolite.recipes` and the benchmarks all call this module, so a validation UAR and a test UAR
are the same number on the same predictions.

The rule for classes absent from the truth: macro averages (UAR = mean recall per class,
macro F1) are taken over the classes that have at least one true sample. A class the truth
lacks is left out even when it is predicted: its false alarms already lower the recall of
the true classes they were taken from, and counting it as a 0 would make the same answers
score lower the more classes the model knows (a 7-class model on a 4-class test split).
Accuracy and weighted F1 need no rule (an absent class weighs 0). A present class that is
never predicted has precision 0 and F1 0.
"""

from __future__ import annotations

from typing import Hashable, Sequence

import numpy as np
import torch
from torchmetrics import ConcordanceCorrCoef, MeanSquaredError, Metric, MetricCollection

from .registry import METRICS, lookup, register_metric

SCORES = ("accuracy", "uar", "f1_macro", "f1_weighted")


def confusion(y_true: Sequence[int], y_pred: Sequence[int], n: int) -> np.ndarray:
    """n×n counts, rows = truth, columns = prediction (class indices 0..n-1)."""
    t, p = np.asarray(y_true, np.int64).reshape(-1), np.asarray(y_pred, np.int64).reshape(-1)
    assert t.shape == p.shape, (t.shape, p.shape)
    return np.bincount(t * n + p, minlength=n * n).reshape(n, n)


def from_confusion(cm: np.ndarray) -> dict:
    """Scores of a confusion matrix (rows = truth): the four SCORES as floats, and per class
    precision, recall, f1 and support as arrays; `present` marks the classes with support."""
    cm = np.asarray(cm, np.float64)
    tp, support, predicted = np.diag(cm), cm.sum(1), cm.sum(0)
    present = support > 0
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=present)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    total = support.sum()
    return {"accuracy": float(tp.sum() / total) if total else 0.0,
            "uar": float(recall[present].mean()) if present.any() else 0.0,
            "f1_macro": float(f1[present].mean()) if present.any() else 0.0,
            "f1_weighted": float((f1 * support).sum() / total) if total else 0.0,
            "precision": precision, "recall": recall, "f1": f1, "support": support.astype(np.int64),
            "present": present}


def _index(y_true: Sequence[Hashable], y_pred: Sequence[Hashable], classes: Sequence[Hashable] | None) -> list:
    """The classes in order, then any other label seen (e.g. a "(no voice)" answer)."""
    order = list(classes) if classes is not None else []
    seen = set(order)
    order += sorted({*y_true, *y_pred} - seen, key=str)
    return order


def scores(y_true: Sequence[Hashable], y_pred: Sequence[Hashable], classes: Sequence[Hashable] | None = None) -> dict:
    """{"n", "accuracy", "uar", "f1_macro", "f1_weighted"} of two label sequences (names or
    indices), with the module's rule for classes absent from y_true."""
    assert len(y_true) == len(y_pred), (len(y_true), len(y_pred))
    order = _index(y_true, y_pred, classes)
    at = {c: i for i, c in enumerate(order)}
    s = from_confusion(confusion([at[v] for v in y_true], [at[v] for v in y_pred], len(order)))
    return {"n": len(y_true), **{k: s[k] for k in SCORES}}


def confusion_of(y_true: Sequence[Hashable], y_pred: Sequence[Hashable], classes: Sequence[Hashable]) -> list[list[int]]:
    """Confusion matrix over `classes` as lists (labels outside `classes` are not counted)."""
    at = {c: i for i, c in enumerate(classes)}
    pairs = [(at[t], at[p]) for t, p in zip(y_true, y_pred) if t in at and p in at]
    return confusion([t for t, _ in pairs], [p for _, p in pairs], len(classes)).tolist()


def per_class_recall(y_true: Sequence[Hashable], y_pred: Sequence[Hashable]) -> dict:
    """Recall of each class present in y_true."""
    yt, yp = np.asarray(y_true), np.asarray(y_pred)
    return {c: float(np.mean(yp[yt == c] == c)) for c in sorted(set(y_true))}


# ----------------------------------------------------------------------------- training's validation
class ConfusionScore(Metric):
    """A torchmetrics Metric that sums a confusion matrix (synced across DDP ranks) and reports
    one of SCORES from it (`from_confusion`); preds are logits/probabilities N×n or indices N."""

    full_state_update = False

    def __init__(self, n: int, score: str) -> None:
        super().__init__()
        assert score in SCORES, score
        self.n, self.score = n, score
        self.add_state("cm", default=torch.zeros(n, n, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        p = preds.argmax(-1) if preds.ndim == 2 else preds
        assert p.shape == target.shape, (preds.shape, target.shape)
        self.cm += torch.bincount(target.long() * self.n + p.long(), minlength=self.n * self.n).reshape(self.n, self.n)

    def compute(self) -> torch.Tensor:
        return torch.tensor(from_confusion(self.cm.cpu().numpy())[self.score])


@register_metric("acc")
def _acc(n: int) -> Metric:
    return ConfusionScore(n, "accuracy")


@register_metric("f1_weighted")
def _f1w(n: int) -> Metric:
    return ConfusionScore(n, "f1_weighted")


@register_metric("f1_macro")
def _f1m(n: int) -> Metric:
    return ConfusionScore(n, "f1_macro")


@register_metric("uar")
def _uar(n: int) -> Metric:
    """Unweighted average recall (the usual speech-emotion metric)."""
    return ConfusionScore(n, "uar")


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
