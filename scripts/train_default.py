"""Train the packaged default model (emolite/assets/default.pt) from the real data, reproducibly.

    python scripts/train_default.py ../shared/data --work /tmp/emolite-default

1. preprocess: CK+48 + the face pool (faces), EmoDB + RAVDESS speech (voice); splits 80/10/10
   by subject/speaker (the face pool has no identities: stratified by label).
2. train a face expert (per-frame, on stills) and a voice expert with `emolite.train`.
3. calibrate each expert (temperature on its dev split) and choose the fusion weights on dev
   pseudo-pairs (a face and a voice sample of the same class), since no paired data exists.
4. save the late-fusion model + a JSON of held-out (test split) figures for MODEL_CARD.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from emolite import preprocess, train
from emolite.config import load_config
from emolite.labels import EMOTIONS
from emolite.models import build_model, count_params, load_checkpoint, save_checkpoint

SPLIT = {"fractions": (0.8, 0.1, 0.1), "seed": 0}
SOURCES = {  # name: (loader, path under the data dir, loader options, modality)
    "ckplus48": ("manifest", "ckplus48/labels.csv", SPLIT, "faces"),
    "faces_mux": ("manifest", "faces_mux/labels.csv", SPLIT, "faces"),
    "emodb": ("manifest", "emodb/labels.csv", SPLIT, "voice"),
    "ravdess_speech": ("ravdess", "ravdess", {**SPLIT, "modality": "audio"}, "voice"),
}
FRAMES = 8             # frames per analysis window at inference (the face expert sees each alone)
AUDIO_SECONDS = 3.0    # EmoDB clips are 2 s, RAVDESS 3-5 s
TEMPERATURES = np.linspace(0.5, 3.0, 26)
WEIGHTS = np.linspace(0.0, 1.0, 21)


def prepare(data: Path, work: Path) -> dict[str, str]:
    caches = {}
    for name, (loader, rel, opts, modality) in SOURCES.items():
        s = preprocess.run(loader, data / rel, work / modality, progress=False, dataset_opts=opts)
        print(f"{name}: {s['done']} done, {s['reused']} reused, {s['failed']} failed -> {s['cache']}", flush=True)
        caches[modality] = s["cache"]
    return caches


def train_expert(name: str, cache_dir: str, work: Path, overrides: list[str]) -> dict:
    cfg = load_config(None, [f"data.cache_dir={json.dumps(cache_dir)}", f"data.classes={json.dumps(list(EMOTIONS))}",
                             f"trainer.out_dir={json.dumps(str(work / 'runs'))}", f"trainer.name=\"{name}\"",
                             "trainer.progress_bar=false", "data.num_workers=2", "data.sampler=\"weighted\"",
                             *overrides])
    run_dir = work / "runs" / name
    if (run_dir / "metrics.json").exists():
        print(f"{name}: reusing finished run {run_dir}")
        return json.loads((run_dir / "metrics.json").read_text())
    t = time.time()
    res = train.run(cfg, resume=(run_dir / "checkpoints" / "last.ckpt").exists())
    res["train_seconds"] = round(time.time() - t, 1)
    print(f"{name}: {json.dumps({k: v for k, v in res.items() if '/' in k})}", flush=True)
    return res


@torch.no_grad()
def log_probs(model: torch.nn.Module, cache_dir: str, split: str, frames: int, seconds: float):
    """Log-probabilities over EMOTIONS and labels for every entry of a split (eval windows)."""
    from emolite import cache

    rows = [r for r in cache.read_index(cache_dir) if r["split"] == split and r["label"] in EMOTIONS]
    ds = train.ClipDataset(rows, [EMOTIONS.index(r["label"]) for r in rows], frames, seconds)
    out, ys = [], []
    for i in range(0, len(ds), 64):
        b = train.collate([ds[j] for j in range(i, min(i + 64, len(ds)))])
        out.append(torch.log_softmax(model(train.model_inputs(b)), -1))
        ys.append(b["y"])
    return torch.cat(out).numpy(), torch.cat(ys).numpy(), rows


def calibrate(lp: np.ndarray, y: np.ndarray) -> float:
    """Temperature minimising the dev negative log-likelihood."""
    def nll(t):
        z = lp / t
        z = z - np.log(np.exp(z).sum(1, keepdims=True))
        return -z[np.arange(len(y)), y].mean()
    return float(min(TEMPERATURES, key=nll))


def pseudo_pairs(ya: np.ndarray, yb: np.ndarray, seed: int, per_class: int = 200) -> list[tuple[int, int]]:
    """Pairs (face index, voice index) of the same class: our stand-in for audio-visual samples."""
    rng = np.random.default_rng(seed)
    pairs = []
    for c in sorted(set(ya) & set(yb)):
        ia, ib = np.flatnonzero(ya == c), np.flatnonzero(yb == c)
        n = min(per_class, max(len(ia), len(ib)))
        pairs += list(zip(rng.choice(ia, n), rng.choice(ib, n)))
    return pairs


def fused_acc(lf, la, pairs, ya, w: float, tf: float, ta: float) -> float:
    f = np.array([lf[i] for i, _ in pairs]) / tf
    a = np.array([la[j] for _, j in pairs]) / ta
    score = w * (f - np.log(np.exp(f).sum(1, keepdims=True))) + (1 - w) * (a - np.log(np.exp(a).sum(1, keepdims=True)))
    return float((score.argmax(1) == np.array([ya[i] for i, _ in pairs])).mean())


def metrics(lp: np.ndarray, y: np.ndarray) -> dict:
    from sklearn.metrics import accuracy_score, f1_score, recall_score

    p = lp.argmax(1)
    present = sorted(set(y))
    return {"n": int(len(y)), "accuracy": round(float(accuracy_score(y, p)), 4),
            "f1_macro": round(float(f1_score(y, p, labels=present, average="macro")), 4),
            "uar": round(float(recall_score(y, p, labels=present, average="macro")), 4),
            "classes": [EMOTIONS[c] for c in present]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data", type=Path)
    ap.add_argument("--work", type=Path, default=Path("/tmp/emolite-default"))
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "emolite" / "assets" / "default.pt")
    ap.add_argument("--report", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "default_model.json")
    ap.add_argument("--epochs", type=int, default=25)
    args = ap.parse_args()
    torch.set_num_threads(2)
    caches = prepare(args.data, args.work)
    e = args.epochs
    face_res = train_expert("face", caches["faces"], args.work, [
        "model.name=\"face\"", "data.frames=1", f"optim.epochs={e}", "optim.patience=8", "data.batch_size=64",
        "optim.lr=2e-3"])
    voice_res = train_expert("voice", caches["voice"], args.work, [
        "model.name=\"audio\"", f"data.audio_seconds={AUDIO_SECONDS}", f"optim.epochs={e}", "optim.patience=8",
        "data.batch_size=32"])
    face, fmeta = load_checkpoint(face_res["best_checkpoint"])
    voice, vmeta = load_checkpoint(voice_res["best_checkpoint"])

    lf_dev, yf_dev, _ = log_probs(face, caches["faces"], "dev", 1, AUDIO_SECONDS)
    la_dev, ya_dev, _ = log_probs(voice, caches["voice"], "dev", 1, AUDIO_SECONDS)
    tf, ta = calibrate(lf_dev, yf_dev), calibrate(la_dev, ya_dev)
    dev_pairs = pseudo_pairs(yf_dev, ya_dev, seed=0)
    w_face = float(max(WEIGHTS, key=lambda w: (fused_acc(lf_dev, la_dev, dev_pairs, yf_dev, w, tf, ta), -abs(w - 0.5))))

    lf, yf, rows_f = log_probs(face, caches["faces"], "test", 1, AUDIO_SECONDS)
    la, ya, rows_a = log_probs(voice, caches["voice"], "test", 1, AUDIO_SECONDS)
    test_pairs = pseudo_pairs(yf, ya, seed=1)
    by_source = {}
    for name, lp_, y_, rows in (("face", lf, yf, rows_f), ("voice", la, ya, rows_a)):
        for src, (_, rel, _, _) in SOURCES.items():
            top = str((args.data / rel.split("/")[0]).resolve())
            idx = [i for i, r in enumerate(rows) if r.get("path", "").startswith(top + "/")]
            if idx:
                by_source[f"{name}:{src}"] = metrics(lp_[idx], y_[idx])

    late_cfg = {"name": "late", "experts": {"face": face.cfg, "audio": voice.cfg}, "per_frame": ["face"],
                "weights": {"face": w_face, "audio": 1.0 - w_face}, "temperatures": {"face": tf, "audio": ta},
                "modalities": ["face", "audio"]}
    late = build_model(late_cfg, len(EMOTIONS))
    late.experts["face"].load_state_dict(face.state_dict())
    late.experts["audio"].load_state_dict(voice.state_dict())
    late.eval()
    report = {
        "classes": list(EMOTIONS), "params": count_params(late),
        "fusion": {"weights": late_cfg["weights"], "temperatures": late_cfg["temperatures"],
                   "dev_pairs": len(dev_pairs), "test_pairs": len(test_pairs),
                   "test_pair_accuracy_fused": fused_acc(lf, la, test_pairs, yf, w_face, tf, ta),
                   "test_pair_accuracy_face_only": fused_acc(lf, la, test_pairs, yf, 1.0, tf, ta),
                   "test_pair_accuracy_voice_only": fused_acc(lf, la, test_pairs, yf, 0.0, tf, ta)},
        "test": {"face": metrics(lf, yf), "voice": metrics(la, ya), **by_source},
        "training": {"face": {k: v for k, v in face_res.items() if k != "classes"},
                     "voice": {k: v for k, v in voice_res.items() if k != "classes"}},
        "data": {k: {"loader": v[0], "path": v[1], "split": "80/10/10 by subject/speaker (seed 0)"} for k, v in SOURCES.items()},
        "torch": torch.__version__,
    }
    meta = {"classes": list(EMOTIONS), "dataset": "default",
            "preprocess": {**fmeta.get("preprocess", {}), "frames": FRAMES, "audio_seconds": AUDIO_SECONDS},
            "metrics": {"face_test_accuracy": report["test"]["face"]["accuracy"],
                        "voice_test_accuracy": report["test"]["voice"]["accuracy"],
                        "fused_test_pair_accuracy": report["fusion"]["test_pair_accuracy_fused"]},
            "note": "late fusion of a face expert (CK+48 + face pool stills) and a voice expert (EmoDB + RAVDESS "
                    "speech); no context expert (no paired audio-visual training data). See MODEL_CARD.md."}
    save_checkpoint(args.out, late, meta)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=1))
    print(json.dumps(report["fusion"], indent=1))
    print(f"saved {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
