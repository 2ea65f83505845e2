"""Train the default model's face expert (FaceCNN) at FER2013 scale, on 2 CPU cores.

    emolite train-face ../shared/data --work /tmp/emolite-face --epochs 30
    python -m emolite.recipes.face ../shared/data --work /tmp/emolite-face --epochs 30

Data: FER2013 train + the face pool (faces_mux) + CK+48, 7 classes (contempt dropped).
Selection: FER2013 public_test only (plus the pool's and CK+'s dev splits, by subject).

Every image first goes through the same face geometry as `emolite analyze` on a still (the
detector, the crop margin the model will be used with, the small-still fallback), so
training sees what users feed. Augmentation aims at video frames, not stills: scale / shift /
rotation jitter around the detector's crop, blur, JPEG 30-90, low light and gamma, partial
occlusion (the grey conversion is in the model). A run's per-epoch scores go to
`<work>/<name>/log.jsonl`; `best.pt` (best public_test accuracy) and `last.pt` are emolite
checkpoints of the `face_cnn` model. Scores: `emolite.metrics` (macro F1 over the classes
present in each split).
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path
from queue import Queue

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..labels import EMOTIONS
from ..metrics import scores as metric_scores

FACE_SIDE = 48
SPLIT = {"fractions": (0.8, 0.1, 0.1), "seed": 0}
SOURCES = {  # name: (loader, path under the data dir, loader options)
    "fer2013": ("fer2013", "fer2013", {}),
    "faces_mux": ("manifest", "faces_mux/labels.csv", SPLIT),
    "ckplus48": ("manifest", "ckplus48/labels.csv", SPLIT),
}


# ----------------------------------------------------------------------------- data
def user_path_crops(paths: list[str], margin: float, side: int = FACE_SIDE) -> np.ndarray:
    """Grey side×side face crops made exactly as `emolite analyze` makes them from a still."""
    from ..faces import get_detector
    from ..features import still_features
    from ..media import read_image

    det = get_detector("retinaface")
    out = np.zeros((len(paths), side, side), np.uint8)
    for i, p in enumerate(paths):
        img = read_image(p)
        f = still_features(img, det, face_size=side, context_size=8, margin=margin)
        out[i] = cv2.cvtColor(f.face[0], cv2.COLOR_RGB2GRAY) if f.face_mask[0] else \
            cv2.resize(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), (side, side), interpolation=cv2.INTER_AREA)
        if i % 5000 == 0:
            print(f"  crops {i}/{len(paths)}", flush=True)
    return out


def load_data(data: Path, work: Path, margin: float) -> dict:
    """{split: (X N×48×48 uint8, y N int64, source N str)}, cached in `work`."""
    cache = work / f"crops_m{margin:g}.npz"
    if cache.exists():
        z = np.load(cache, allow_pickle=False)
        return {s: (z[f"{s}_x"], z[f"{s}_y"], z[f"{s}_src"]) for s in ("train", "dev", "test")}
    from ..data import load_dataset

    rows = {"train": [], "dev": [], "test": []}
    for name, (loader, rel, opts) in SOURCES.items():
        items, problems = load_dataset(loader, data / rel, **opts)
        for it in items:
            if it.label in EMOTIONS:
                rows[it.split].append((str(it.path), EMOTIONS.index(it.label), name))
        print(f"{name}: {len(items)} items, {len(problems)} problems", flush=True)
    out = {}
    for s, r in rows.items():
        x = user_path_crops([p for p, _, _ in r], margin)
        out[s] = (x, np.array([y for _, y, _ in r], np.int64), np.array([n for _, _, n in r]))
    work.mkdir(parents=True, exist_ok=True)
    np.savez(cache, **{f"{s}_{k}": v for s, t in out.items() for k, v in zip(("x", "y", "src"), t)})
    return out


# ----------------------------------------------------------------------------- augmentation
def augment(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One 48×48 grey face as a video frame might show it."""
    s = img.shape[0]
    scale = rng.uniform(0.85, 1.15)
    ang = rng.uniform(-12, 12)
    m = cv2.getRotationMatrix2D((s / 2, s / 2), ang, scale)
    m[:, 2] += rng.uniform(-0.08, 0.08, 2) * s
    x = cv2.warpAffine(img, m, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    if rng.random() < 0.5:
        x = x[:, ::-1]
    if rng.random() < 0.25:   # out of focus / motion
        x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.5, 1.3))
    if rng.random() < 0.15:   # a small face upscaled
        k = int(rng.integers(20, 36))
        x = cv2.resize(cv2.resize(x, (k, k), interpolation=cv2.INTER_AREA), (s, s), interpolation=cv2.INTER_LINEAR)
    x = x.astype(np.float32) / 255.0
    if rng.random() < 0.5:    # gamma, contrast, brightness
        x = np.clip(x, 0, 1) ** rng.uniform(0.6, 1.6)
        x = (x - x.mean()) * rng.uniform(0.7, 1.3) + x.mean() + rng.uniform(-0.1, 0.1)
    if rng.random() < 0.15:   # low light: dark and noisy
        x = x * rng.uniform(0.25, 0.6) + rng.normal(0, rng.uniform(0.01, 0.04), x.shape)
    x = np.clip(x * 255.0, 0, 255).astype(np.uint8)
    if rng.random() < 0.3:    # JPEG 30-90
        ok, buf = cv2.imencode(".jpg", x, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(30, 91))])
        x = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
    if rng.random() < 0.25:   # partial occlusion (hand, microphone, another head)
        a = rng.uniform(0.08, 0.25) * s * s
        h = int(np.clip(np.sqrt(a * rng.uniform(0.5, 2.0)), 4, s - 1))
        w = int(np.clip(a / h, 4, s - 1))
        y0, x0 = rng.integers(0, s - h), rng.integers(0, s - w)
        x = x.copy()
        x[y0:y0 + h, x0:x0 + w] = rng.integers(0, 256)
    return np.ascontiguousarray(x)


def batches(x: np.ndarray, y: np.ndarray, bs: int, rng: np.random.Generator, aug: bool):
    """Shuffled augmented batches, made in a thread (OpenCV releases the GIL)."""
    q: Queue = Queue(maxsize=6)
    order = rng.permutation(len(x))
    seed = int(rng.integers(1 << 31))

    def work():
        r = np.random.default_rng(seed)
        for i in range(0, len(order) - bs + 1, bs):
            idx = order[i:i + bs]
            xb = np.stack([augment(x[j], r) for j in idx]) if aug else x[idx]
            q.put((torch.from_numpy(xb[:, None].astype(np.float32) / 255.0), torch.from_numpy(y[idx])))
        q.put(None)

    threading.Thread(target=work, daemon=True).start()
    while (b := q.get()) is not None:
        yield b


# ----------------------------------------------------------------------------- train / eval
@torch.no_grad()
def logits_of(net: torch.nn.Module, x: np.ndarray, flip: bool = False) -> np.ndarray:
    net.eval()
    out = []
    for i in range(0, len(x), 512):
        t = torch.from_numpy(x[i:i + 512, None].astype(np.float32) / 255.0)
        z = net(t)
        if flip:
            z = (z + net(t.flip(-1))) / 2
        out.append(z)
    return torch.cat(out).numpy()


def scores(z: np.ndarray, y: np.ndarray) -> dict:
    """Accuracy and macro F1 (emolite.metrics) of logits z against labels y."""
    m = metric_scores(y.tolist(), z.argmax(1).tolist())
    return {"acc": round(m["accuracy"], 4), "f1": round(m["f1_macro"], 4), "n": int(len(y))}


def evaluate(net, data: dict, flip: bool) -> dict:
    res = {}
    for split in ("dev", "test"):
        x, y, src = data[split]
        z = logits_of(net, x, flip)
        for name in SOURCES:
            k = src == name
            if k.any():
                res[f"{split}/{name}"] = scores(z[k], y[k])
    return res


def training_set(args, data: dict, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The training images after --exclude and --subset."""
    x, y, src = data["train"]
    if args.exclude:   # e.g. a pretrain that never sees CK+ (benchmarks/ckplus_folds.py)
        k = ~np.isin(src, args.exclude.split(","))
        x, y, src = x[k], y[k], src[k]
    if args.subset < 1.0:
        k = rng.permutation(len(x))[: int(len(x) * args.subset)]
        x, y, src = x[k], y[k], src[k]
    return x, y, src


def build(args, y: np.ndarray):
    """The face_cnn model (from --init when given) and the loss's class weight / logit adjustment."""
    from ..arch import FaceCNNConfig
    from ..models import build_model, load_checkpoint

    model = build_model(FaceCNNConfig(width=args.width, size=args.size, dropout=args.dropout), len(EMOTIONS))
    if args.init:   # continue from an earlier run's weights (a second, lower-rate cycle)
        model.load_state_dict(load_checkpoint(args.init)[0].state_dict())
    prior = np.bincount(y, minlength=len(EMOTIONS)) / len(y)
    weight = torch.tensor((1.0 / len(EMOTIONS)) / np.maximum(prior, 1e-3), dtype=torch.float32) \
        if args.loss == "weighted" else None
    adjust = torch.tensor(args.tau * np.log(np.maximum(prior, 1e-4)), dtype=torch.float32) \
        if args.loss == "logit_adjust" else None
    return model, weight, adjust


def mix(xb: torch.Tensor, yb: torch.Tensor, alpha: float, rng: np.random.Generator):
    """Mixup or cutmix (half the batches, when alpha > 0): (images, lam, labels a, labels b)."""
    if not (alpha > 0 and rng.random() < 0.5):
        return xb, 1.0, yb, yb
    lam = float(rng.beta(alpha, alpha))
    perm = torch.randperm(len(xb))
    if rng.random() < 0.5:   # cutmix
        s = xb.shape[-1]
        c = int(s * np.sqrt(1 - lam))
        cy, cx = rng.integers(0, s - c + 1, 2)
        xb = xb.clone()
        xb[..., cy:cy + c, cx:cx + c] = xb[perm][..., cy:cy + c, cx:cx + c]
        lam = 1 - c * c / (s * s)
    else:
        xb = lam * xb + (1 - lam) * xb[perm]
    return xb, lam, yb, yb[perm]


def one_epoch(net, x, y, args, rng, opt, sched, weight, adjust) -> float:
    """One pass of SGD over shuffled, augmented batches; returns the mean loss."""
    net.train()
    tot, n = 0.0, 0
    smooth = args.smoothing
    for xb, yb in batches(x, y, args.batch, rng, aug=not args.no_aug):
        xb = xb.to(memory_format=torch.channels_last)
        xb, lam, ya, yb2 = mix(xb, yb, args.mixup, rng)
        z = net(xb)
        if adjust is not None:
            z = z + adjust
        loss = lam * F.cross_entropy(z, ya, weight=weight, label_smoothing=smooth)
        if lam < 1.0:
            loss = loss + (1 - lam) * F.cross_entropy(z, yb2, weight=weight, label_smoothing=smooth)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        tot += float(loss) * len(xb)
        n += len(xb)
    return tot / max(n, 1)


def _plain(args) -> dict:
    return {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}


def train(args, data: dict) -> dict:
    """Train per `args` (see `parser`); writes log.jsonl, best.pt, last.pt and summary.json
    under <work>/<name> and returns the summary."""
    from ..models import save_checkpoint

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    x, y, src = training_set(args, data, rng)
    model, weight, adjust = build(args, y)
    net = model.net.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=args.lr, momentum=0.9, nesterov=True, weight_decay=args.wd)
    steps = args.epochs * (len(x) // args.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=steps, pct_start=0.15,
                                                div_factor=10, final_div_factor=100)
    run = args.work / args.name
    run.mkdir(parents=True, exist_ok=True)
    log = open(run / "log.jsonl", "w")
    best, best_ep = -1.0, -1
    t0 = time.time()
    for ep in range(args.epochs):
        loss = one_epoch(net, x, y, args, rng, opt, sched, weight, adjust)
        res = evaluate(net, data, flip=False)
        res_f = evaluate(net, data, flip=True)
        row = {"epoch": ep + 1, "loss": round(loss, 4), "seconds": round(time.time() - t0, 1),
               **res, "flip": {k: v for k, v in res_f.items() if k.startswith("dev/")}}
        log.write(json.dumps(row) + "\n")
        log.flush()
        print(json.dumps(row), flush=True)
        acc = res["dev/fer2013"]["acc"]
        meta = {"classes": list(EMOTIONS), "dataset": "+".join(n for n in SOURCES if n in set(src)), "epoch": ep + 1,
                "init": args.init, "train_args": _plain(args)}
        model.net = net.to(memory_format=torch.contiguous_format)
        if acc > best:
            best, best_ep = acc, ep + 1
            save_checkpoint(run / "best.pt", model, meta)
        save_checkpoint(run / "last.pt", model, meta)
        net = net.to(memory_format=torch.channels_last)
    log.close()
    summary = {"name": args.name, "best_epoch": best_ep, "best_dev_fer_acc": best, "final": row,
               "params": sum(p.numel() for p in net.parameters()), "train_seconds": round(time.time() - t0, 1),
               "args": _plain(args)}
    (run / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def add_arguments(ap: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The recipe's options (shared by `emolite train-face` and `python -m emolite.recipes.face`)."""
    ap.add_argument("data", type=Path)
    ap.add_argument("--work", type=Path, default=Path("/tmp/emolite-face"))
    ap.add_argument("--name", default="face")
    ap.add_argument("--margin", type=float, default=0.0, help="crop margin the model will be used with")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--subset", type=float, default=1.0, help="fraction of the training images (pilots)")
    ap.add_argument("--exclude", default="", help="comma-separated sources left out of training, e.g. ckplus48")
    ap.add_argument("--width", type=int, default=24)
    ap.add_argument("--size", type=int, default=48)
    ap.add_argument("--dropout", type=float, default=0.3)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--wd", type=float, default=5e-4)
    ap.add_argument("--loss", choices=("ce", "weighted", "logit_adjust"), default="ce")
    ap.add_argument("--tau", type=float, default=1.0)
    ap.add_argument("--smoothing", type=float, default=0.1)
    ap.add_argument("--mixup", type=float, default=0.0, help="Beta(a, a) for mixup/cutmix; 0 = off")
    ap.add_argument("--no-aug", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--init", default="", help="face_cnn checkpoint to start from")
    return ap


def run(args) -> dict:
    """Crops (cached in --work), then `train`; returns the run's summary."""
    torch.set_num_threads(args.threads)
    data = load_data(args.data, args.work, args.margin)
    print({s: len(v[0]) for s, v in data.items()}, flush=True)
    return train(args, data)


def main(argv: list[str] | None = None) -> dict:
    """Parse argv (the command line when None) and `run`."""
    return run(add_arguments(argparse.ArgumentParser(description=__doc__.split("\n")[0])).parse_args(argv))


if __name__ == "__main__":
    print(json.dumps(main(), indent=1))
