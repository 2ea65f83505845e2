"""Evaluate an emolite checkpoint on a split of a preprocessed cache.

    res = evaluate.run("runs/meld/best.pt", "cache/cremad", split="test", out_dir="eval/cremad")

Writes metrics.json (accuracy, weighted/macro F1, UAR, per-class precision/recall/F1,
confusion matrix), confusion_matrix.png and predictions.csv. When the data's label set
differs from the model's (a MELD model on RAVDESS), labels are matched through canonical
names (`labels.map_labels`); samples whose class the model cannot output are dropped and
named in the JSON and on stdout. Scores come from `emolite.metrics` (macro F1 / UAR average
over the classes present in the data, so a model class the data lacks, MELD "surprise" on
CREMA-D, does not count as a zero).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import torch
from torchmetrics.functional import concordance_corrcoef, mean_squared_error

from . import cache
from . import labels as L
from . import metrics as M
from .errors import EmoliteError
from .fsio import atomic_path, atomic_write_text
from .loader import ClipDataset, make_loader, model_inputs
from .models import load_checkpoint
from .spec import InputSpec

BATCH_SIZE = 32
# metrics.json's key order (as written before the scores moved to emolite.metrics)
RESULT_ORDER = ("checkpoint", "cache_dir", "split", "n", "classes", "accuracy", "f1_weighted", "f1_macro", "uar",
                "per_class", "confusion_matrix", "label_mapping", "dropped_labels", "dropped_samples", "absent_classes")


def plot_confusion(cm: np.ndarray, classes: list[str], path: str | Path, title: str = "") -> Path:
    """Row-normalised colours, raw counts in the cells."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    n = len(classes)
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * n, 1.0 + 0.6 * n), dpi=100)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), classes, rotation=45, ha="right")
    ax.set_yticks(range(n), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(n):
        for j in range(n):
            ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=8,
                    color="white" if norm[i, j] > 0.5 else "black")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return Path(path)


def _predict(model: torch.nn.Module, loader, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Model outputs and targets over a loader, in order."""
    outs, targets = [], []
    model.eval().to(device)
    with torch.no_grad():
        for batch in loader:
            outs.append(model(model_inputs(batch, device)).float().cpu())
            targets.append(batch["y"])
    return torch.cat(outs), torch.cat(targets)


def _select(rows: list[dict], cache_dir, split: str, dataset: str) -> list[dict]:
    """The index rows of one dataset and split ("" / "all": every split)."""
    if dataset:
        rows = [r for r in rows if r.get("dataset", dataset) in (dataset, "")]
    if split not in ("", "all"):
        avail = sorted({r["split"] for r in rows})
        rows = [r for r in rows if r["split"] == split]
        if not rows:
            raise EmoliteError(f"no entries in split '{split}'; splits here: {', '.join(avail) or '(none)'}", cache_dir)
    return rows


def _regression(rows, targets_keys: list[str], data_opts: dict, load) -> dict:
    """CCC (mean and per target) and MSE of a valence/arousal model."""
    ds = ClipDataset(rows, None, target_keys=targets_keys, **data_opts)
    pred, y = load(ds)
    ccc = concordance_corrcoef(pred, y).reshape(-1)
    return dict(n=len(rows), targets=targets_keys, ccc=float(ccc.mean()), mse=float(mean_squared_error(pred, y)),
                ccc_per_target=dict(zip(targets_keys, ccc.tolist())))


def _known(rows: list[dict], classes: list[str], cache_dir) -> tuple[list[dict], list[int], dict]:
    """The rows whose label the model can output, their class indices, and the mapping report."""
    data_labels = sorted({r["label"] for r in rows})
    mapping = L.map_labels(data_labels, classes)
    dropped = L.dropped_labels(data_labels, classes)
    keep = [r for r in rows if r["label"] not in dropped]
    if dropped:
        print(f"evaluate: dropped {len(rows) - len(keep)} of {len(rows)} samples whose class the model does not "
              f"know: {', '.join(dropped)}")
    if not keep:
        raise EmoliteError(f"no sample's class is one the model knows (model: {', '.join(classes)}; "
                           f"data: {', '.join(data_labels)})", cache_dir)
    y_idx = [mapping[data_labels.index(r["label"])] for r in keep]
    report = {"label_mapping": {data_labels[i]: classes[j] for i, j in mapping.items()},
              "dropped_labels": dropped, "dropped_samples": len(rows) - len(keep)}
    return keep, y_idx, report


def _classification(pred: torch.Tensor, y: torch.Tensor, classes: list[str]) -> dict:
    """metrics.json's scores (emolite.metrics: macro averages over the classes in the truth)."""
    cm = M.confusion(y.numpy(), pred.numpy(), len(classes))
    s = M.from_confusion(cm)
    return {"classes": classes, **{k: s[k] for k in M.SCORES},
            "per_class": {k: {"precision": float(s["precision"][i]), "recall": float(s["recall"][i]),
                              "f1": float(s["f1"][i]), "support": int(s["support"][i])} for i, k in enumerate(classes)},
            "confusion_matrix": cm.astype(int).tolist(),
            "absent_classes": [k for i, k in enumerate(classes) if not s["present"][i]]}


def _write_predictions(path: Path, keep: list[dict], pred: torch.Tensor, probs: torch.Tensor, classes: list[str]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["key", "label", "pred"] + classes)
        for r, p, pr in zip(keep, pred.tolist(), probs.tolist()):
            w.writerow([r["key"], r["label"], classes[p]] + [f"{x:.4f}" for x in pr])


def run(checkpoint: str | Path, cache_dir: str | Path, split: str = "test", out_dir: str | Path | None = None,
        batch_size: int = BATCH_SIZE, num_workers: int = 0, device: str | None = None, dataset: str = "") -> dict:
    """Evaluate; returns the metrics dict also written to out_dir/metrics.json.

    split: "test" | "dev" | "train" | "all"; dataset: keep only this dataset's entries."""
    model, meta = load_checkpoint(checkpoint)
    classes = list(meta.get("classes", []))
    spec = InputSpec.from_dict(meta.get("preprocess"))
    targets_keys = list(meta.get("targets", []))
    rows = _select(cache.read_index(cache_dir), cache_dir, split, dataset)
    out_dir = Path(out_dir or Path(checkpoint).parent / f"eval_{split or 'all'}")
    out_dir.mkdir(parents=True, exist_ok=True)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    data_opts = dict(frames=spec.frames, seconds=spec.audio_seconds, face_size=spec.face_size,
                     context_size=spec.context_size)

    def load(ds):
        return _predict(model, make_loader(ds, batch_size, num_workers=num_workers, shard=False), dev)

    res: dict = {"checkpoint": str(checkpoint), "cache_dir": str(cache_dir), "split": split}
    if targets_keys:   # regression model (valence/arousal)
        res.update(_regression(rows, targets_keys, data_opts, load))
        atomic_write_text(out_dir / "metrics.json", json.dumps(res, indent=1))
        return res
    keep, y_idx, report = _known(rows, classes, cache_dir)
    logits, y = load(ClipDataset(keep, y_idx, **data_opts))
    probs = torch.softmax(logits, dim=1)
    pred = probs.argmax(1)
    scores = _classification(pred, y, classes)
    res.update({"n": len(keep), **scores, **report})
    res = {k: res[k] for k in RESULT_ORDER if k in res}
    atomic_write_text(out_dir / "metrics.json", json.dumps(res, indent=1))
    plot_confusion(np.asarray(scores["confusion_matrix"]), classes, out_dir / "confusion_matrix.png",
                   f"{Path(str(cache_dir)).name} {split}: acc {res['accuracy']:.3f}  wF1 {res['f1_weighted']:.3f}")
    _write_predictions(out_dir / "predictions.csv", keep, pred, probs, classes)
    print(f"evaluate: {len(keep)} samples  acc {res['accuracy']:.4f}  wF1 {res['f1_weighted']:.4f}  "
          f"mF1 {res['f1_macro']:.4f}  UAR {res['uar']:.4f}  -> {out_dir / 'metrics.json'}")
    return res
