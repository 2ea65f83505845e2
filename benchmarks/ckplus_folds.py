"""CK+48 10-fold by subject for the shipped face expert's recipe (issue #11), HOG + SVM beside it.

    python -m emolite.recipes.face ../shared/data --work W --name pre_nock --exclude ckplus48 --epochs 10
    python benchmarks/ckplus_folds.py ../shared/data --pretrained W/pre_nock/best.pt

The shipped face expert trains on 80 % of CK+'s subjects, so it cannot be scored by 10-fold.
Here the same network is first trained without any CK+ image (FER2013 + the face pool,
`--exclude ckplus48`), then, per fold, fine-tuned on the 8 training folds (the video
augmentation of emolite/recipes/face.py, SGD lr `--lr`, cosine, `--epochs` epochs), the epoch
chosen on the next fold (dev), scored on the held-out fold. Folds:
emolite.data.splits.speaker_folds(k=10, seed 0) over `subject` (no subject in two folds), as
benchmarks/ckplus.py. Crops: the user path (`train_face.user_path_crops`: the detector and
margin 0, as analyze). Classes: CK+'s six that the model knows (contempt, 54 images, is not
one of emolite's 7 and is left out; CK+48 has no neutral); answers are the argmax over those
six (`*_any7` lets neutral answer too). Baseline: HOG (8-px cells, 2×2 blocks) + linear SVM,
C chosen on the same dev fold. Prints JSON and saves docs/results/ckplus_folds.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


import common as C

K = 10
SVM_CS = (0.001, 0.01, 0.1, 1.0)


def hog_features(x: np.ndarray) -> np.ndarray:
    from skimage.feature import hog

    return np.stack([hog(im, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2)) for im in x])


def hog_svm(f: np.ndarray, y: np.ndarray, tr: np.ndarray, dev: np.ndarray, te: np.ndarray) -> np.ndarray:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    fits = [make_pipeline(StandardScaler(), LinearSVC(C=c, class_weight="balanced", max_iter=5000)).fit(f[tr], y[tr])
            for c in SVM_CS]
    return max(fits, key=lambda m: (m.predict(f[dev]) == y[dev]).mean()).predict(f[te])


def finetune(init: str, x: np.ndarray, y: np.ndarray, tr: np.ndarray, dev: np.ndarray, te: np.ndarray,
             keep: np.ndarray, args) -> dict:
    """Fine-tune the pretrained expert on `tr`; the epoch with the best dev accuracy scores `te`."""
    import torch
    import torch.nn.functional as F
    from emolite.recipes import face as train_face

    from emolite.models import load_checkpoint

    net = load_checkpoint(init)[0].net
    opt = torch.optim.SGD(net.parameters(), lr=args.lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    steps = args.epochs * max(1, len(tr) // args.batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    rng = np.random.default_rng(args.seed)

    def answers(z):
        return np.asarray(keep)[z[:, keep].argmax(1)], z.argmax(1)
    best = (-1.0, None, None, 0)
    for ep in range(args.epochs):
        net.train()
        for xb, yb in train_face.batches(x[tr], y[tr], args.batch, rng, aug=True):
            loss = F.cross_entropy(net(xb), yb, label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        acc = (answers(train_face.logits_of(net, x[dev]))[0] == y[dev]).mean()
        if acc > best[0]:
            z = train_face.logits_of(net, x[te])
            best = (acc, *answers(z), ep + 1)
    return {"dev_acc": float(best[0]), "pred": best[1], "pred_any7": best[2], "epoch": best[3]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, help="the shared data folder (../shared/data)")
    ap.add_argument("--pretrained", required=True, help="face_cnn checkpoint trained without CK+")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--name", default="ckplus_folds")
    args = ap.parse_args()
    C.setup(args.threads)
    from emolite.recipes import face as train_face

    from emolite.data import load_dataset
    from emolite.data.splits import speaker_folds
    from emolite.labels import EMOTIONS
    from emolite.models import load_checkpoint

    t0 = time.time()
    pretrained, meta = load_checkpoint(args.pretrained)
    if "ckplus48" in str(meta.get("dataset", "")):
        sys.exit(f"{args.pretrained} was trained on CK+ ({meta.get('dataset')}); train one with --exclude ckplus48")
    items, problems = load_dataset("manifest", args.data / "ckplus48" / "labels.csv")
    items = sorted((it for it in items if it.label in EMOTIONS), key=lambda it: str(it.path))
    x = train_face.user_path_crops([str(it.path) for it in items], margin=0.0)
    y = np.array([EMOTIONS.index(it.label) for it in items])
    subj = np.array([it.speaker for it in items])
    keep = sorted(set(y.tolist()))
    folds = speaker_folds(items, K, args.seed)
    feats = hog_features(x)
    zero_shot = train_face.logits_of(pretrained.net, x)
    zs_pred = np.asarray(keep)[zero_shot[:, keep].argmax(1)]
    y_true, ours, ours7, svm, per_fold = [], [], [], [], []
    for i in range(K):
        te, dev = np.isin(subj, folds[i]), np.isin(subj, folds[(i + 1) % K])
        tr = ~(te | dev)
        r = finetune(args.pretrained, x, y, tr, dev, te, keep, args)
        s = hog_svm(feats, y, tr, dev, te)
        y_true += y[te].tolist(); ours += r["pred"].tolist(); ours7 += r["pred_any7"].tolist(); svm += s.tolist()
        per_fold.append({"fold": i, "n": int(te.sum()), "epoch": r["epoch"], "dev_acc": round(r["dev_acc"], 4),
                         "ours_acc": round(float((r["pred"] == y[te]).mean()), 4),
                         "hog_svm_acc": round(float((s == y[te]).mean()), 4)})
        print(json.dumps(per_fold[-1]), flush=True)
    names = [EMOTIONS[c] for c in keep]

    def sc(pred):
        return C.scores([EMOTIONS[c] for c in y_true], [EMOTIONS[c] for c in pred], names)
    out = {"benchmark": "ckplus48_10fold_face_cnn", "protocol": f"{K}-fold by subject (speaker_folds seed {args.seed}); "
           "fold i test, fold i+1 dev (epoch choice), 8 folds fine-tune", "classes": names, "items": len(items),
           "subjects": len(set(subj)), "problems": len(problems), "pretrained": args.pretrained,
           "pretrained_on": meta.get("dataset"), "finetune": {"epochs": args.epochs, "lr": args.lr, "batch": args.batch},
           "ours": sc(ours), "ours_any7": sc(ours7), "hog_svm": sc(svm),
           "zero_shot_no_ckplus": C.scores([EMOTIONS[c] for c in y], [EMOTIONS[c] for c in zs_pred], names),
           "per_fold": per_fold, "target_accuracy": 0.95, "environment": C.environment(),
           "wall_seconds": round(time.time() - t0, 1)}
    C.emit(args.name, out)


if __name__ == "__main__":
    main()
