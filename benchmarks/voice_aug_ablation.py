"""Voice augmentation ablation (issue #12): reverberation, codec/band-limiting and mixup, each
added to the shipped voice recipe, on RAVDESS folds 0 and 1 (6 actors, 360 files).

    for v in "reverb augment.reverb=true" "codec augment.codec=true" "mixup augment.mixup=0.4"; do set -- $v
      python benchmarks/bench_ravdess.py ../shared/data --parts folds --folds 0,1 --set $2 --name voice_abl_$1; done
    python benchmarks/voice_aug_ablation.py ../shared/data

The first line trains the variants (2 folds x ~11 min each on 2 cores; the shipped recipe's fold
models come from benchmarks/bench_ravdess.py). This script scores every variant's fold models through
the user path (`predict(audio=)`) on the same test files, clean and corrupted the same way for all:
white noise at 10 dB SNR, a synthetic room (RT60 0.15-0.9 s; voice_common.corrupt "reverb") and
the telephone band (300-3400 Hz, "phone"). 8 classes, pooled UAR over the 360 files (no voice =
wrong). Prints JSON and saves docs/results/voice_aug_ablation.json.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path



import common as C
import voice_common as V

VARIANTS = {"shipped recipe": [], "+ reverberation": ["augment.reverb=true"], "+ codec / band-limit": ["augment.codec=true"],
            "+ mixup (0.4)": ["augment.mixup=0.4"]}
FOLDS = (0, 1)
CONDITIONS = ("clean", "snr10", "reverb", "phone")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, help="the shared data folder (../shared/data)")
    ap.add_argument("--name", default="voice_aug_ablation")
    args = ap.parse_args()
    C.setup(1)
    import bench_ravdess as ravdess

    t0 = time.time()
    _, epochs = V.shipped_settings()
    rows = ravdess.speech_rows(args.data)
    folds = ravdess.actor_folds(rows)
    rows = [r for r in rows if any(r["speaker"] in folds[i] for i in FOLDS)]
    y = [r["label"] for r in rows]
    out = {"benchmark": "voice_aug_ablation", "folds": [folds[i] for i in FOLDS], "files": len(rows),
           "scoring": "predict(audio=) per file, 8 classes, pooled UAR; no voice = wrong", "variants": {}}
    for name, extra in VARIANTS.items():
        ov = V.recipe(ravdess.CLASSES, epochs, 0, extra)
        fold_ck = {i: V.finished_checkpoint(ov, "ravdess", f"fold{i}", "train the variant first (see the usage above)")
                   for i in FOLDS}
        ck = {a: fold_ck[i] for i in FOLDS for a in folds[i]}
        row = {}
        for how in CONDITIONS:
            res = V.score_files([r["path"] for r in rows], how, [ck[r["speaker"]] for r in rows], features=False,
                                tag="ravdess01")
            pred = [V.label_of(p) for p in res["probs"]]
            row[how] = C.scores(y, pred, ravdess.CLASSES)["uar"]
        out["variants"][name] = {"overrides": extra, "uar_pooled": row}
        C.log(name, row)
    out["wall_seconds"] = time.time() - t0
    C.emit(args.name, out)


if __name__ == "__main__":
    main()
