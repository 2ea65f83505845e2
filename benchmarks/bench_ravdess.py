"""RAVDESS speech (actors 01-18), audio only, 6-fold by actor: the shipped voice recipe vs
openSMILE ComParE_2016 + linear SVM, 8 classes and 7 without calm; EmoDB <-> RAVDESS
cross-corpus on the six shared classes (anger, disgust, fear, happiness, neutral, sadness);
the same folds' test audio with white noise at 20 / 10 / 5 dB SNR and ±20 dB gain.

    python benchmarks/emodb.py ../shared/data                       # first: its fold models are used cross-corpus
    python benchmarks/bench_ravdess.py ../shared/data [--epochs 30] [--jobs 2] [--parts folds,cross,robust] [--name voice_ravdess]
    python benchmarks/bench_ravdess.py ../shared/data --parts cross_trained [--cross-epochs N] --name voice_cross_trained

Folds: emolite.data.splits.speaker_folds(k=6, seed 0, balanced by sex): 3 actors per fold.
Fold i: test = fold i; both systems train on the 15 other actors.
Ours: emolite/recipes/default.py's voice recipe (`audio` model, band-normalised log-mel
CNN-LSTM, 3-s input, weighted sampler, batch 32, fixed epochs with the final weights kept, noise
5-30 dB SNR and gain ±20 dB augmentation), 8 classes; fold i+1 is only a logged validation
monitor (it trains too). Preprocessing stores each file whole; training takes a random 3-s
window of it (files are 2.9-5.0 s); scoring is the user path, `predict(audio=)` on the whole
file (voice activity, 3-s windows at a 1-s hop, the last ending with the file, mean
probabilities); a file without voice counts as wrong. The one centred 3-s window of
`emolite evaluate` is reported too ("ours_centre_window").
Baseline: ComParE_2016 functionals (6,373) of the whole file -> StandardScaler ->
SVC(kernel="linear", C=0.01, class_weight="balanced") (issue #12's setting, fixed).
7 classes: the 8-class models of each system scored on the 936 non-calm files with the calm
output excluded (the best of the other 7 classes; SVM: one-vs-rest decision values), not
separately trained 7-class models.
Cross-corpus (--parts cross): no separate training; each EmoDB leave-one-speaker-out model of
benchmarks/emodb.py (9 speakers, 7 classes) on every RAVDESS shared-class file and each RAVDESS
fold model here on every EmoDB shared-class file, answers restricted to the 6 shared classes;
the SVMs of the same folds alike, standardised on their training corpus ("compare_svm") or
with each corpus standardised on itself ("compare_svm_per_corpus_norm": uses the test
corpus's unlabelled feature statistics; ours needs none, its normalisation is per utterance).
Mean ± sd over the models of a direction. --parts cross_trained: the first release's protocol,
a 6-class model per corpus trained on all of its shared-class files (same recipe).
Robustness (--parts robust): every test file at each condition, the same corrupted samples
for both systems, scored by the fold models above (our checkpoints and the SVMs trained on
clean features); white Gaussian noise at an SNR relative to the file's mean power, or the
gain changed and clipped at full scale.
Prints JSON and saves it to docs/results/<name>.json after each part (and each robustness
condition). Earlier figures (old recipe at 20/40 epochs, eGeMAPS cross-corpus, 2-s trimmed
EmoDB) are in docs/results/ravdess.json, ravdess_e40.json, ravdess_v1.json.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


import common as C
import voice_common as V

CLASSES = ["anger", "calm", "disgust", "fear", "happiness", "neutral", "sadness", "surprise"]
CLASSES7 = [c for c in CLASSES if c != "calm"]
SHARED = ["anger", "disgust", "fear", "happiness", "neutral", "sadness"]


def speech_rows(data: Path) -> list[dict]:
    """RAVDESS speech (audio only) through emolite's preprocessing cache, in a fixed order."""
    _, rows, _ = C.preprocess_cache("ravdess", data / "ravdess" / "speech", "ravdess_speech", {"modality": "audio"})
    return sorted(rows, key=lambda r: r["key"])


def actor_folds(rows: list[dict], k: int = 6, seed: int = 0) -> list[list[str]]:
    from emolite.data import Item
    from emolite.data.splits import speaker_folds

    items = [Item(r["path"], r["label"], speaker=r["speaker"], key=r["key"]) for r in rows]
    strata = {r["speaker"]: "male" if int(r["speaker"]) % 2 else "female" for r in rows}
    return speaker_folds(items, k, seed, strata)


def fold_jobs(rows, folds_actors, which, ov) -> list[tuple]:
    jobs = []
    for i in which:
        test, dev = set(folds_actors[i]), set(folds_actors[(i + 1) % len(folds_actors)])
        split_of = lambda r: "test" if r["speaker"] in test else ("train", "dev") if r["speaker"] in dev else "train"  # noqa: E731,B023
        jobs.append((str(C.make_view(rows, split_of, C.BENCH / "views" / "ravdess" / f"fold{i}")), ov, "ravdess", f"fold{i}"))
    return jobs


def main() -> None:
    _, shipped_epochs = V.shipped_settings()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, help="the shared data folder (../shared/data)")
    ap.add_argument("--epochs", type=int, default=shipped_epochs, help="fold models (default: the shipped recipe's)")
    ap.add_argument("--emodb-epochs", type=int, default=shipped_epochs,
                    help="epochs of the EmoDB fold models (benchmarks/emodb.py) used cross-corpus")
    ap.add_argument("--cross-epochs", type=int, default=None,
                    help="epochs of the cross_trained models (default: --epochs)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], help="extra emolite config override (repeatable)")
    ap.add_argument("--folds", type=str, default="", help="comma-separated fold numbers (default: all 6)")
    ap.add_argument("--parts", default="folds,cross,robust", help="folds (always) plus any of cross, robust, cross_trained")
    ap.add_argument("--jobs", type=int, default=2, help="models trained / files scored at once (1 thread each)")
    ap.add_argument("--name", default="voice_ravdess")
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    C.setup(1)
    import numpy as np

    t0 = time.time()
    rows = speech_rows(args.data)
    folds_actors = actor_folds(rows)
    which = [int(f) for f in args.folds.split(",")] if args.folds else list(range(len(folds_actors)))
    ov = V.recipe(CLASSES, args.epochs, args.seed, args.set)
    out = {"benchmark": "ravdess_voice", "protocol": "6-fold by actor (3 actors per fold); both systems train on "
           "the 15 non-test actors", "classes": CLASSES, "items": len(rows), "actor_folds": folds_actors,
           "folds": which, "epochs": args.epochs, "shipped_epochs": shipped_epochs, "environment": C.environment(),
           "svm": f"ComParE_2016 functionals of the whole file -> StandardScaler -> SVC(linear, C={C.SVM_C}, "
                  "balanced), C fixed (issue #12's setting)",
           "ours_scoring": "predict(audio=) on the whole file: VAD, 3-s windows, 1-s hop, mean; no voice = wrong"}

    # ---- training: the fold models (both cores: two folds at a time, one thread each)
    jobs = fold_jobs(rows, folds_actors, which, ov)
    t = time.time()
    runs = dict(zip([j[3] for j in jobs], V.train_all(jobs, args.jobs)))
    out["train_wall_seconds"] = time.time() - t
    out["parallel_jobs"] = args.jobs

    y = np.array([r["label"] for r in rows])
    g = np.array([r["speaker"] for r in rows])
    fold_runs = [runs[f"fold{i}"] for i in which]
    ck_of = {a: str(Path(runs[f"fold{i}"]["run_dir"]) / "best.pt") for i in which for a in folds_actors[i]}
    masks = [np.isin(g, folds_actors[i]) for i in which]
    clean = V.score_files([r["path"] for r in rows], "clean", [ck_of.get(r["speaker"]) for r in rows],
                          procs=args.jobs, tag="ravdess")
    svms = [C.svm_fit(clean["X"][~te], y[~te]) for te in masks]
    calm = y == "calm"

    def evaluate(res) -> dict:
        o8, s8, o7, s7 = [], [], [], []
        for te, svm in zip(masks, svms):
            idx = np.flatnonzero(te)
            i7 = np.flatnonzero(te & ~calm)
            o8.append({"y_true": list(y[idx]), "y_pred": [V.label_of(res["probs"][j]) for j in idx]})
            s8.append({"y_true": list(y[idx]), "y_pred": C.svm_labels(svm, res["X"][idx])})
            o7.append({"y_true": list(y[i7]), "y_pred": [V.label_of(res["probs"][j], CLASSES7) for j in i7]})
            s7.append({"y_true": list(y[i7]), "y_pred": C.svm_labels(svm, res["X"][i7], CLASSES7)})
        return {"ours_8": V.summary(o8, CLASSES), "svm_8": V.summary(s8, CLASSES),
                "ours_7": V.summary(o7, CLASSES7), "svm_7": V.summary(s7, CLASSES7)}

    r = evaluate(clean)
    out["ours"] = {"overrides": ov, "epochs_run": [f["result"].get("epochs") for f in fold_runs],
                   "train_seconds_sum": sum(f["seconds"] for f in fold_runs), "8_classes": r["ours_8"],
                   "7_classes_calm_excluded": r["ours_7"]}
    out["ours_centre_window"] = {"scoring": "emolite evaluate at the end of training: one centred 3-s window",
                                 **C.fold_summary(fold_runs, CLASSES)}
    out["compare_svm"] = {"features": clean["X"].shape[1], "8_classes": r["svm_8"], "7_classes_calm_excluded": r["svm_7"]}
    out["targets"] = {"uar": 0.65, **{f"met_{k}_pooled": out["ours"][k]["pooled"]["uar"] >= 0.65
                                      for k in ("8_classes", "7_classes_calm_excluded")}}
    out["wall_seconds"] = time.time() - t0
    C.emit(args.name, out)

    if "cross" in parts:
        try:
            out["cross_corpus"] = cross_corpus(args, rows, y, masks, svms, clean["X"],
                                               [ck_of[folds_actors[i][0]] for i in which])
        except Exception as e:   # noqa: BLE001 - keep the robustness part; rerun with --parts cross later
            import traceback
            traceback.print_exc()
            out["cross_corpus"] = {"failed": f"{type(e).__name__}: {e}"}
        out["wall_seconds"] = time.time() - t0
        C.emit(args.name, out)

    if "robust" in parts:
        rob = {"noise": "white Gaussian, SNR relative to the file's mean power; gain clipped at full scale",
               "conditions": {}, "uar_drop_points_pooled": {}}
        out["robustness"] = rob
        for how in V.ROBUST_ORDER:
            res = clean if how == "clean" else V.score_files(
                [r["path"] for r in rows], how, [ck_of.get(r["speaker"]) for r in rows], procs=args.jobs, tag="ravdess")
            e = r if how == "clean" else evaluate(res)
            rob["conditions"][how] = {k: {"uar_pooled": v["pooled"]["uar"], "accuracy_pooled": v["pooled"]["accuracy"],
                                          "uar_mean": v["uar_mean"], "no_voice": v["no_voice"]} for k, v in e.items()}
            rob["conditions"][how]["seconds"] = res["seconds"]
            base = rob["conditions"]["clean"]
            rob["uar_drop_points_pooled"][how] = {k: round(100 * (base[k]["uar_pooled"] - v["uar_pooled"]), 1)
                                                  for k, v in rob["conditions"][how].items() if k != "seconds"}
            C.log(how, {k: round(v["uar_pooled"], 3) for k, v in rob["conditions"][how].items() if k != "seconds"})
            if "snr10" in rob["uar_drop_points_pooled"]:
                rob["target_drop_at_snr10_le_5_points"] = {k: rob["uar_drop_points_pooled"]["snr10"][k] <= 5.0
                                                           for k in ("ours_8", "ours_7")}
            out["wall_seconds"] = time.time() - t0
            C.emit(args.name, out)   # after every condition: a cut-off run keeps what it measured

    if "cross_trained" in parts:
        out["cross_corpus_trained"] = cross_trained(args, rows, clean["X"], folds_actors)
        out["wall_seconds"] = time.time() - t0
        C.emit(args.name, out)


def cross_trained(args, rows, X_rav, folds_actors) -> dict:
    """EmoDB <-> RAVDESS with models trained for it (the first release's protocol): ours, the
    shipped recipe with the 6 shared classes on all of one corpus's shared-class files (EmoDB's
    first two speakers / RAVDESS fold 0's actors are a logged monitor only, they train too),
    tested on all of the other's; the ComParE SVM on the same files."""
    import numpy as np
    import emodb as E

    emo_rows = E.utterance_rows(args.data)
    X_emo = V.score_files([r["path"] for r in emo_rows], "clean", None, procs=args.jobs, tag="emodb")["X"]
    emo = [{**r, "speaker": f"emodb_{r['speaker']}"} for r in emo_rows if r["label"] in SHARED]
    rav = [{**r, "speaker": f"ravdess_{r['speaker']}"} for r in rows if r["label"] in SHARED]
    ov = V.recipe(SHARED, args.cross_epochs or args.epochs, args.seed, args.set)
    emo_spk = sorted({r["speaker"] for r in emo})
    plans = {"ravdess_to_emodb": (rav, emo, {f"ravdess_{a}" for a in folds_actors[0]}),
             "emodb_to_ravdess": (emo, rav, set(emo_spk[:2]))}
    jobs = []
    for name, (tr, te, dev) in plans.items():
        train_keys = {r["key"] for r in tr}
        split_of = lambda r: ((("train", "dev") if r["speaker"] in dev else "train") if r["key"] in train_keys  # noqa: E731,B023
                              else "test")
        jobs.append((str(C.make_view(tr + te, split_of, C.BENCH / "views" / "cross" / name)), ov, "cross", name))
    t = time.time()
    runs = dict(zip(plans, V.train_all(jobs, args.jobs)))
    res = {"classes": SHARED, "overrides": ov, "train_wall_seconds": time.time() - t, "chance_uar": 1 / len(SHARED)}
    feats = {"emodb": (emo_rows, X_emo), "ravdess": (rows, X_rav)}
    for name, (src, dst) in {"emodb_to_ravdess": ("emodb", "ravdess"), "ravdess_to_emodb": ("ravdess", "emodb")}.items():
        (tr_rows, Xtr_all), (te_rows, Xte_all) = feats[src], feats[dst]
        tri = [j for j, r in enumerate(tr_rows) if r["label"] in SHARED]
        tei = [j for j, r in enumerate(te_rows) if r["label"] in SHARED]
        ck = str(Path(runs[name]["run_dir"]) / "best.pt")
        probs = V.score_many([te_rows[j]["path"] for j in tei], [ck], procs=args.jobs, tag=f"crosstrained_{name}")
        yt = [te_rows[j]["label"] for j in tei]
        yp = [V.label_of(p[0]) for p in probs]
        entry = {"ours": {**C.scores(yt, yp, SHARED), "per_class_recall": C.per_class_recall(yt, yp),
                          "no_voice": sum(p == V.NO_VOICE for p in yp), "epochs_run": runs[name]["result"].get("epochs"),
                          "train_seconds": runs[name]["seconds"]},
                 "ours_centre_window": C.scores(runs[name]["y_true"], runs[name]["y_pred"], SHARED)}
        ytr = [tr_rows[j]["label"] for j in tri]
        for key, (A, B) in {"compare_svm": (Xtr_all, Xte_all),
                            "compare_svm_per_corpus_norm": (C.zscore(Xtr_all), C.zscore(Xte_all))}.items():
            pred = C.svm_labels(C.svm_fit(A[tri], ytr), B[tei])
            entry[key] = {**C.scores(yt, pred, SHARED), "per_class_recall": C.per_class_recall(yt, pred)}
        entry["ours_ahead_of_compare_svm"] = entry["ours"]["uar"] > entry["compare_svm"]["uar"]
        res[name] = entry
        C.log(name, {k: round(v["uar"], 3) for k, v in entry.items() if isinstance(v, dict)})
    return res


def cross_corpus(args, rows, y, rav_masks, rav_svms, X_rav, rav_ckpts) -> dict:
    """EmoDB <-> RAVDESS on the 6 shared classes with the within-corpus fold models (no separate
    training): each EmoDB leave-one-speaker-out model (9 speakers, 7 classes) on every RAVDESS
    shared-class file, each RAVDESS fold model (15 actors, 8 classes) on every EmoDB shared-class
    file; answers restricted to the 6 shared classes (the other outputs cannot be chosen). The
    SVMs alike (the same folds' ComParE SVMs; one-vs-rest decision values over the shared
    classes). Reported: mean ± sd over the models of one direction, and min / max."""
    import numpy as np
    import emodb as E

    emo_rows = E.utterance_rows(args.data)
    spk = sorted({r["speaker"] for r in emo_rows})
    ov_e = V.recipe(E.CLASSES, args.emodb_epochs, args.seed, args.set)
    emo_ckpts = [V.finished_checkpoint(ov_e, "emodb", f"fold{i}",
                                       f"run benchmarks/emodb.py first (with --epochs {args.emodb_epochs})")
                 for i in range(len(spk))]
    X_emo = V.score_files([r["path"] for r in emo_rows], "clean", None, procs=args.jobs, tag="emodb")["X"]
    ye = np.array([r["label"] for r in emo_rows])
    ge = np.array([r["speaker"] for r in emo_rows])
    e_sh = np.isin(ye, SHARED)
    r_sh = np.isin(y, SHARED)
    Zr, Ze = C.zscore(X_rav), C.zscore(X_emo)
    res = {"classes": SHARED, "chance_uar": 1 / len(SHARED), "models": "the within-corpus fold models (shipped recipe, "
           f"EmoDB {args.emodb_epochs} epochs / RAVDESS {args.epochs} epochs), not trained for this test",
           "emodb_items": int(e_sh.sum()), "ravdess_items": int(r_sh.sum())}
    plans = {"emodb_to_ravdess": (emo_ckpts, [r["path"] for r in rows], r_sh, y, X_rav, Zr,
                                  [(ge != s) for s in spk], X_emo, Ze, ye),
             "ravdess_to_emodb": (rav_ckpts, [r["path"] for r in emo_rows], e_sh, ye, X_emo, Ze,
                                  [~m for m in rav_masks], X_rav, Zr, y)}
    for name, (ckpts, paths, sh, yt_all, Xte, Zte, train_masks, Xtr, Ztr, ytr) in plans.items():
        idx = np.flatnonzero(sh)
        probs = V.score_many([paths[j] for j in idx], ckpts, procs=args.jobs, tag=f"cross_{name}")
        yt = list(yt_all[idx])
        entry = {}
        ours = [C.scores(yt, [V.label_of(p[k], SHARED) for p in probs], SHARED) for k in range(len(ckpts))]
        entry["ours"] = _spread(ours)
        entry["ours"]["no_voice"] = sum(p[0] is None for p in probs)
        for key, (A, B) in {"compare_svm": (Xtr, Xte), "compare_svm_per_corpus_norm": (Ztr, Zte)}.items():
            sc = []
            for k, m in enumerate(train_masks):
                svm = rav_svms[k] if (name == "ravdess_to_emodb" and key == "compare_svm") else C.svm_fit(A[m], ytr[m])
                sc.append(C.scores(yt, C.svm_labels(svm, B[idx], SHARED), SHARED))
            entry[key] = _spread(sc)
        entry["ours_ahead_of_compare_svm"] = entry["ours"]["uar_mean"] > entry["compare_svm"]["uar_mean"]
        res[name] = entry
        C.log(name, {k: round(v["uar_mean"], 3) for k, v in entry.items() if isinstance(v, dict)})
    return res


def _spread(sc: list[dict]) -> dict:
    import numpy as np

    out = {"models": len(sc), "per_model": sc}
    for k in ("uar", "accuracy", "f1_macro"):
        v = np.array([s[k] for s in sc])
        out.update({f"{k}_mean": float(v.mean()), f"{k}_std": float(v.std()), f"{k}_min": float(v.min()),
                    f"{k}_max": float(v.max())})
    return out


if __name__ == "__main__":
    main()
