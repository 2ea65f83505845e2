"""Pilot that chose the voice model's input normalisation and training recipe (issue #4).

A quick in-memory loop (plain PyTorch, not emolite.train) over a few speaker-independent
folds, so several recipes fit in minutes on 2 CPU cores:
  EmoDB:   5 folds of 2 test speakers (sorted ids, pairs), 7 classes, 2-s clips
  RAVDESS: 6 folds of 3 test actors (actors[i::6]), 8 classes, centred/random 3-s crops
Training: emolite's `audio` model, AdamW + one-cycle, class-weighted CE, emolite's default
waveform augmentation, fixed epochs, final weights (no selection on test speakers).
`--norm` patches the encoder's input normalisation: bn (BatchNorm over the log-mel, the first
release), cmvn (per-band mean/variance over time: what became audio_norm="band"), inst
(per-utterance global standardisation). `--specaug 1` adds SpecAugment masks.
`--svm` prints the openSMILE + linear SVM reference on the same folds instead.

    python benchmarks/audio_pilot.py ../shared/data --ds emodb --norm cmvn --folds 0,1,2
    python benchmarks/audio_pilot.py ../shared/data --ds ravdess --svm --folds 0,1

Reads the caches benchmarks/emodb.py and benchmarks/bench_ravdess.py made (run those first).
Results of the runs that chose the recipe: docs/results/audio_pilot.jsonl.
"""
import argparse, json, math, sys, time
from pathlib import Path
import numpy as np, torch, torch.nn.functional as F
import common as Cm
from emolite import cache
from emolite.augment import AUGMENT_DEFAULTS, augment_audio, fit_length
from emolite.models import build_model
from emolite.models import audio as A

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("data", type=Path, help="the shared data folder (for the SVM reference's audio files)")
ap.add_argument("--svm", action="store_true")
ap.add_argument("--ds", default="emodb", choices=("emodb", "ravdess")); ap.add_argument("--norm", default="bn")
ap.add_argument("--specaug", type=int, default=0); ap.add_argument("--mixup", type=float, default=0)
ap.add_argument("--epochs", type=int, default=20); ap.add_argument("--lr", type=float, default=1e-3)
ap.add_argument("--folds", default="0,1,2"); ap.add_argument("--seconds", type=float, default=2.0)
ap.add_argument("--aug", type=int, default=1); ap.add_argument("--ls", type=float, default=0.0)
ap.add_argument("--dropout", type=float, default=0.2); ap.add_argument("--tag", default="")
ap.add_argument("--wd", type=float, default=0.01); ap.add_argument("--bs", type=int, default=16)
args = ap.parse_args()
torch.set_num_threads(1); torch.manual_seed(0)

root = Cm.BENCH / "cache" / {"emodb": "emodb", "ravdess": "ravdess_speech"}[args.ds]
rows = sorted(cache.read_index(root), key=lambda r: r["key"])
if args.svm:   # openSMILE functionals + linear SVM (C by inner speaker-grouped CV) on the same folds
    feat = {"emodb": "eGeMAPSv02", "ravdess": "ComParE_2016"}[args.ds]
    X = Cm.smile_features([r["path"] for r in rows], feat, args.ds)
    y = np.array([r["label"] for r in rows]); g = np.array([r["speaker"] for r in rows]); sp = sorted(set(g))
    groups = [[sp[2*i], sp[2*i+1]] for i in range(5)] if args.ds == "emodb" else [sp[i::6] for i in range(6)]
    yt, yp = [], []
    for fi in [int(f) for f in args.folds.split(",")]:
        te = np.isin(g, groups[fi])
        p, c = Cm.svm_fit_predict(X[~te], y[~te], g[~te], X[te])
        yt += list(y[te]); yp += list(p)
    print("FINAL", json.dumps({"ds": args.ds, "system": f"{feat} + linear SVM", "folds": args.folds,
                               **Cm.scores(yt, yp)}))
    sys.exit(0)
classes = sorted({r["label"] for r in rows})
if args.ds == "emodb":
    classes = ["anger", "boredom", "disgust", "fear", "happiness", "neutral", "sadness"]
rows = [r for r in rows if r["label"] in classes]
wav = [cache.load_entry(r["file"])["audio"] for r in rows]
y = np.array([classes.index(r["label"]) for r in rows]); spk = np.array([r["speaker"] for r in rows])
speakers = sorted(set(spk))
n = int(args.seconds * 16000)

# --- patch the encoder's normalisation + specaugment
orig_fwd = A.AudioEncoder2D.forward
def fwd(self, w):
    x = self.logmel(w)[:, None]
    if args.norm == "inst":
        x = (x - x.mean((2, 3), keepdim=True)) / (x.std((2, 3), keepdim=True) + 1e-5)
    elif args.norm == "cmvn":
        x = (x - x.mean(3, keepdim=True)) / (x.std(3, keepdim=True) + 1e-5)
    elif args.norm == "cmn":
        x = x - x.mean((2, 3), keepdim=True)
        x = self.norm(x)
    else:
        x = self.norm(x)
    if self.training and args.specaug:
        b, _, m, t = x.shape
        for _ in range(2):
            f = torch.randint(0, 9, (b, 1, 1, 1)); f0 = (torch.rand(b, 1, 1, 1) * (m - f)).long()
            ar = torch.arange(m)[None, None, :, None]
            x = x.masked_fill((ar >= f0) & (ar < f0 + f), 0.0)
            tt = torch.randint(0, int(0.1 * t) + 1, (b, 1, 1, 1)); t0 = (torch.rand(b, 1, 1, 1) * (t - tt)).long()
            at = torch.arange(t)[None, None, None, :]
            x = x.masked_fill((at >= t0) & (at < t0 + tt), 0.0)
    x = self.cnn(x)
    b, c, m, t = x.shape
    x = x.permute(0, 3, 1, 2).reshape(b, t, c * m)
    out, (h, _) = self.lstm(x)
    return self.proj(torch.cat([h[-1], out.mean(1)], dim=1))
A.AudioEncoder2D.forward = fwd

def crop(w, rng):
    if w.size > n:
        s = rng.integers(0, w.size - n + 1) if rng is not None else (w.size - n) // 2
        w = w[s:s + n]
    return fit_length(w.astype(np.float32), n)

def uar(yt, yp, k):
    return float(np.mean([np.mean(yp[yt == c] == c) for c in range(k) if (yt == c).any()]))

if args.ds == "emodb":
    groups = [[speakers[2*i], speakers[2*i+1]] for i in range(5)]
else:
    groups = [speakers[i::6] for i in range(6)]
res = []; t0 = time.time(); allt, allp = [], []
for fi in [int(f) for f in args.folds.split(",")]:
    te = np.isin(spk, groups[fi]); tr = ~te
    torch.manual_seed(fi); rng = np.random.default_rng(fi)
    model = build_model("audio", len(classes), dropout=args.dropout)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.wd)
    idx = np.flatnonzero(tr); steps = args.epochs * math.ceil(len(idx) / args.bs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=steps, pct_start=0.1)
    cw = torch.tensor(len(idx) / (len(classes) * np.bincount(y[idx], minlength=len(classes))), dtype=torch.float32)
    aug = dict(AUGMENT_DEFAULTS)
    for ep in range(args.epochs):
        model.train(); rng.shuffle(idx)
        for b in range(0, len(idx), args.bs):
            bi = idx[b:b + args.bs]
            ws = [crop(wav[i], rng) for i in bi]
            if args.aug: ws = [augment_audio(w, rng, aug) for w in ws]
            xb = torch.from_numpy(np.stack(ws)); yb = torch.from_numpy(y[bi])
            batch = {"audio": xb, "audio_mask": torch.ones(len(bi), dtype=torch.bool)}
            if args.mixup > 0:
                lam = float(rng.beta(args.mixup, args.mixup)); perm = torch.randperm(len(bi))
                batch["audio"] = lam * xb + (1 - lam) * xb[perm]
                lo = model(batch)
                loss = lam * F.cross_entropy(lo, yb, weight=cw, label_smoothing=args.ls) + (1 - lam) * F.cross_entropy(lo, yb[perm], weight=cw, label_smoothing=args.ls)
            else:
                loss = F.cross_entropy(model(batch), yb, weight=cw, label_smoothing=args.ls)
            opt.zero_grad(); loss.backward(); torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0); opt.step(); sched.step()
    model.eval(); ti = np.flatnonzero(te)
    with torch.no_grad():
        preds = []
        for b in range(0, len(ti), 64):
            bi = ti[b:b + 64]
            xb = torch.from_numpy(np.stack([crop(wav[i], None) for i in bi]))
            preds.append(model({"audio": xb, "audio_mask": torch.ones(len(bi), dtype=torch.bool)}).argmax(1).numpy())
    p = np.concatenate(preds); allt.append(y[ti]); allp.append(p)
    res.append({"fold": fi, "uar": uar(y[ti], p, len(classes)), "acc": float(np.mean(p == y[ti]))})
    print(args.tag, res[-1], f"{time.time()-t0:.0f}s", flush=True)
yt, yp = np.concatenate(allt), np.concatenate(allp)
print("FINAL", args.tag, json.dumps({**vars(args), "uar": uar(yt, yp, len(classes)), "acc": float(np.mean(yt == yp)), "sec": time.time() - t0}), flush=True)
