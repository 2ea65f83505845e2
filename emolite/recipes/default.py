"""Train the packaged default model (emolite/assets/default.pt) from the real data, reproducibly.

    emolite train-default ../shared/data --work /tmp/emolite-default
    python -m emolite.recipes.default ../shared/data --work /tmp/emolite-default

1. face expert (`face_cnn`, 48×48 grey, per frame): FER2013 train + the face pool + CK+48 by
   `emolite.recipes.face`; the epoch is chosen on FER2013 public_test. Crops come from the same
   geometry analyze uses (detector, margin FACE_MARGIN, small-still fallback).
2. voice expert (`audio`, band-normalised 2-D CNN + LSTM): full-length EmoDB + RAVDESS speech
   (actors 01-18), RAVDESS calm -> neutral, EmoDB boredom dropped; split 80/10/10 by speaker;
   fixed epochs (`optim.keep=last`); noise 5-30 dB SNR, gain ±20 dB, speed/pitch, time shift.
3. calibrate each expert (temperature on its dev split) and choose the fusion weights on dev
   pseudo-pairs (a face and a voice sample of the same class), since no paired data exists.
4. save the late-fusion model with its InputSpec + a JSON of held-out figures for MODEL_CARD.md.
Stages reuse finished work in --work, so a killed run resumes; `--stage voice` etc. runs one.
Scores: `emolite.metrics` (macro averages over the classes present in each split).
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .. import metrics as M
from ..arch import LateConfig
from ..labels import EMOTIONS
from ..models import build_model, count_params, load_checkpoint, save_checkpoint
from ..spec import InputSpec
from . import face as face_recipe
from .face import SPLIT

REPO = Path(__file__).resolve().parents[2]   # the checkout (the defaults below write into it)
# Voice labels outside EMOTIONS: RAVDESS calm is a low-arousal neutral delivery (the
# corpus's own "neutral" has half as many files and no strong intensity), so it joins neutral;
# EmoDB boredom (low arousal, negative) has no place in the 7 classes and would blur
# neutral or sadness, so it is dropped.
RELABEL = {"calm": "neutral", "boredom": None}
AUDIO_SECONDS = 3.0    # voice expert input; analyze windows have the same length
FRAMES = 8             # frames per analysis window (the face expert sees each alone)
FACE_MARGIN = 0.0      # FER2013's framing is the detector box (measured: image side = 0.96 × box)
FACE_EPOCHS = 24
FACE_EPOCHS_2 = 10     # second, low-rate cycle
FACE_EPOCHS_3 = 16     # third cycle, a warm restart at lr 0.02
VOICE_EPOCHS = 30
VOICE_BATCH = 32
VOICE_NOISE_SNR_DB = 5.0   # augmentation: noise down to this SNR
VOICE_GAIN_DB = 20.0       # augmentation: gain within ±this
TEMPERATURES = np.linspace(0.5, 3.0, 26)
WEIGHTS = np.linspace(0.0, 1.0, 21)


def default_spec() -> InputSpec:
    """What the default model sees: 3-s windows (1-s hop), 48-px face crops at margin 0."""
    return InputSpec(audio_seconds=AUDIO_SECONDS, window_seconds=AUDIO_SECONDS, frames=FRAMES,
                     face_size=face_recipe.FACE_SIDE, margin=FACE_MARGIN)


def voice_manifest(data: Path, work: Path) -> Path:
    """EmoDB + RAVDESS speech as one manifest with speakers, relabelled (see RELABEL)."""
    rows = []
    for r in csv.DictReader(open(data / "emodb" / "labels.csv")):
        lab = RELABEL.get(r["emotion"], r["emotion"])
        if lab:
            rows.append((str((data / "emodb" / r["file"]).resolve()), lab, "emodb" + r["speaker"]))
    for r in csv.DictReader(open(data / "ravdess" / "labels.csv")):
        lab = RELABEL.get(r["emotion"], r["emotion"])
        if r["modality"] == "audio" and lab:
            rows.append((str((data / "ravdess" / r["file"]).resolve()), lab, "ravdess" + r["actor"]))
    work.mkdir(parents=True, exist_ok=True)
    path = work / "voice.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "speaker"])
        w.writerows(rows)
    return path


def voice_overrides(classes: Sequence[str], epochs: int) -> list[str]:
    """The voice expert's emolite.train settings (model, window, sampler, batch, schedule,
    augmentation); loss, lr, weight decay and the rest are emolite's defaults. The voice
    benchmarks train with these too (benchmarks/voice_common.recipe)."""
    return ['model.name="audio"', f"data.classes={json.dumps(list(classes))}", f"data.audio_seconds={AUDIO_SECONDS}",
            'data.sampler="weighted"', f"data.batch_size={VOICE_BATCH}", f"optim.epochs={epochs}",
            'optim.keep="last"', 'optim.monitor="val/uar"', f"augment.noise_snr_db={VOICE_NOISE_SNR_DB}",
            f"augment.gain_db={VOICE_GAIN_DB}"]


def train_voice(data: Path, work: Path, epochs: int) -> tuple[dict, str]:
    from .. import preprocess, train
    from ..config import load_config

    s = preprocess.run("manifest", voice_manifest(data, work), work / "voice", workers=1, progress=False,
                       dataset_opts=SPLIT, detector="none")
    print(f"voice cache: {s['done']} done, {s['reused']} reused, {s['failed']} failed -> {s['cache']}", flush=True)
    cache_dir = s["cache"]
    cfg = load_config(None, [f"data.cache_dir={json.dumps(cache_dir)}", f"trainer.out_dir={json.dumps(str(work / 'runs'))}",
                             'trainer.name="voice"', "trainer.progress_bar=false", "data.num_workers=1",
                             *voice_overrides(EMOTIONS, epochs)])
    run_dir = work / "runs" / "voice"
    if (run_dir / "metrics.json").exists():
        print(f"voice: reusing finished run {run_dir}")
        return json.loads((run_dir / "metrics.json").read_text()), cache_dir
    t = time.time()
    res = train.run(cfg, resume=(run_dir / "checkpoints" / "last.ckpt").exists())
    res["train_seconds"] = round(time.time() - t, 1)
    print(f"voice: {json.dumps({k: v for k, v in res.items() if '/' in k})}", flush=True)
    return res, cache_dir


def train_faces(data: Path, work: Path, epochs: int) -> Path:
    """Three one-cycle schedules, each from the previous one's best weights (each curve was still
    rising at its end; the epoch of each is chosen on public_test): FACE_EPOCHS at lr 0.05, then
    FACE_EPOCHS_2 at lr 0.01, then FACE_EPOCHS_3 at lr 0.02 (a warm restart: public_test 0.632 -> 0.646)."""
    common = [str(data), "--work", str(work), "--margin", str(FACE_MARGIN)]
    if not (work / "face" / "summary.json").exists():
        face_recipe.main(common + ["--name", "face", "--epochs", str(epochs)])
    last = "face"
    for name, n, lr in (("face2", FACE_EPOCHS_2, "0.01"), ("face3", FACE_EPOCHS_3, "0.02")):
        if not (work / name / "summary.json").exists():
            face_recipe.main(common + ["--name", name, "--epochs", str(n), "--lr", lr,
                                      "--init", str(work / last / "best.pt")])
        last = name
    return work / last / "best.pt"


# ----------------------------------------------------------------------------- calibration + fusion
@torch.no_grad()
def voice_log_probs(model: torch.nn.Module, cache_dir: str, split: str):
    """Log-probabilities over EMOTIONS and labels for every entry of a voice split."""
    from .. import cache
    from ..loader import ClipDataset, collate, model_inputs

    rows = [r for r in cache.read_index(cache_dir) if r["split"] == split and r["label"] in EMOTIONS]
    ds = ClipDataset(rows, [EMOTIONS.index(r["label"]) for r in rows], 1, AUDIO_SECONDS)
    out, ys = [], []
    for i in range(0, len(ds), 64):
        b = collate([ds[j] for j in range(i, min(i + 64, len(ds)))])
        out.append(torch.log_softmax(model(model_inputs(b)), -1))
        ys.append(b["y"])
    return torch.cat(out).numpy(), torch.cat(ys).numpy(), rows


def face_log_probs(model: torch.nn.Module, faces: dict, split: str):
    x, y, src = faces[split]
    z = face_recipe.logits_of(model.net, x)
    return torch.log_softmax(torch.from_numpy(z), -1).numpy(), y, src


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
    """n, accuracy, macro F1 and UAR (emolite.metrics) of log-probabilities against labels."""
    m = M.scores(y.tolist(), lp.argmax(1).tolist())
    return {"n": int(len(y)), "accuracy": round(m["accuracy"], 4), "f1_macro": round(m["f1_macro"], 4),
            "uar": round(m["uar"], 4), "classes": [EMOTIONS[c] for c in sorted(set(y))]}


def fuse(args, face_ckpt: Path, voice_res: dict, voice_cache: str) -> None:
    face, fmeta = load_checkpoint(face_ckpt)
    voice, vmeta = load_checkpoint(voice_res["best_checkpoint"])
    faces = face_recipe.load_data(args.data, args.work, FACE_MARGIN)
    lf_dev, yf_dev, src_dev = face_log_probs(face, faces, "dev")
    la_dev, ya_dev, _ = voice_log_probs(voice, voice_cache, "dev")
    tf, ta = calibrate(lf_dev, yf_dev), calibrate(la_dev, ya_dev)
    dev_pairs = pseudo_pairs(yf_dev, ya_dev, seed=0)
    w_face = float(max(WEIGHTS, key=lambda w: (fused_acc(lf_dev, la_dev, dev_pairs, yf_dev, w, tf, ta), -abs(w - 0.5))))

    lf, yf, src_f = face_log_probs(face, faces, "test")
    la, ya, rows_a = voice_log_probs(voice, voice_cache, "test")
    test_pairs = pseudo_pairs(yf, ya, seed=1)
    by_source = {f"face_{split}:{s}": metrics(lp[src == s], y[src == s])
                 for split, lp, y, src in (("dev", lf_dev, yf_dev, src_dev), ("test", lf, yf, src_f))
                 for s in sorted(set(src))}
    for corpus in ("emodb", "ravdess"):
        idx = [i for i, r in enumerate(rows_a) if f"/{corpus}/" in r.get("path", "")]
        if idx:
            by_source[f"voice_test:{corpus}"] = metrics(la[idx], ya[idx])

    late_cfg = LateConfig(experts={"face": face.cfg, "audio": voice.cfg},
                          weights={"face": w_face, "audio": 1.0 - w_face}, temperatures={"face": tf, "audio": ta})
    late = build_model(late_cfg, len(EMOTIONS))
    late.experts["face"].load_state_dict(face.state_dict())
    late.experts["audio"].load_state_dict(voice.state_dict())
    late.eval()
    report = {
        "classes": list(EMOTIONS), "params": count_params(late),
        "params_face": count_params(face), "params_voice": count_params(voice),
        "fusion": {"weights": late_cfg.weights, "temperatures": late_cfg.temperatures,
                   "dev_pairs": len(dev_pairs), "test_pairs": len(test_pairs),
                   "test_pair_accuracy_fused": fused_acc(lf, la, test_pairs, yf, w_face, tf, ta),
                   "test_pair_accuracy_face_only": fused_acc(lf, la, test_pairs, yf, 1.0, tf, ta),
                   "test_pair_accuracy_voice_only": fused_acc(lf, la, test_pairs, yf, 0.0, tf, ta)},
        "test": {"face (pool + CK+ test splits)": metrics(lf, yf), "voice": metrics(la, ya), **by_source},
        "training": {"face": {k: fmeta.get(k) for k in ("epoch", "train_args")},
                     "voice": {k: v for k, v in voice_res.items() if k != "classes"}},
        "relabel": RELABEL,
        "torch": torch.__version__,
    }
    meta = {"classes": list(EMOTIONS), "dataset": "default", "preprocess": default_spec().to_dict(),
            "metrics": {"face_fer2013_public_test_accuracy": by_source["face_dev:fer2013"]["accuracy"],
                        "voice_test_uar": report["test"]["voice"]["uar"],
                        "fused_test_pair_accuracy": report["fusion"]["test_pair_accuracy_fused"]},
            "note": "late fusion of a face expert (FER2013 + face pool + CK+48, 48×48 grey per frame) and a "
                    "voice expert (full-length EmoDB + RAVDESS speech); no context expert (no paired "
                    "audio-visual training data). See MODEL_CARD.md."}
    save_checkpoint(args.out, late, meta)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=1))
    print(json.dumps(report["fusion"], indent=1))
    print(f"saved {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")


def add_arguments(ap: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The recipe's options (shared by `emolite train-default` and `python -m emolite.recipes.default`)."""
    ap.add_argument("data", type=Path)
    ap.add_argument("--work", type=Path, default=Path("/tmp/emolite-default"))
    ap.add_argument("--out", type=Path, default=REPO / "emolite" / "assets" / "default.pt")
    ap.add_argument("--report", type=Path, default=REPO / "docs" / "default_model.json")
    ap.add_argument("--stage", choices=("all", "voice", "face"), default="all")
    ap.add_argument("--face-epochs", type=int, default=FACE_EPOCHS)
    ap.add_argument("--voice-epochs", type=int, default=VOICE_EPOCHS)
    return ap


def run(args) -> None:
    """The stages `args.stage` names; "all" ends with the fused model at args.out."""
    args.data = args.data.resolve()
    torch.set_num_threads(2)
    if args.stage in ("all", "voice"):
        voice_res, voice_cache = train_voice(args.data, args.work, args.voice_epochs)
    if args.stage in ("all", "face"):
        face_ckpt = train_faces(args.data, args.work, args.face_epochs)
    if args.stage == "all":
        fuse(args, face_ckpt, voice_res, voice_cache)


def main(argv: list[str] | None = None) -> None:
    """Parse argv (the command line when None) and `run`."""
    run(add_arguments(argparse.ArgumentParser(description=__doc__.split("\n")[0])).parse_args(argv))


if __name__ == "__main__":
    main()
