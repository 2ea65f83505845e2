"""The voice expert under noise and level changes, through the user path (`model.predict(audio=)`).

    python benchmarks/voice_robustness.py --cache /tmp/emolite-default/voice/<hash>

Test split of the default model's voice cache (speakers never seen in training; written by
emolite/recipes/default.py), each clip clean, with white noise at 20 / 10 / 5 dB SNR, and with
its gain changed by +20 / -20 dB (clipped at full scale). `predict` applies what analyze
applies: voice activity (a clip found voiceless gets no label and counts as wrong), the
model's 3-s windows, the band normalisation. Prints JSON (docs/results/voice_robustness.json).
"""

from __future__ import annotations

import argparse

import numpy as np

import common


def corrupt(x: np.ndarray, how: str, rng: np.random.Generator) -> np.ndarray:
    if how.startswith("snr"):
        snr = float(how[3:])
        p = float(np.mean(x.astype(np.float64) ** 2))
        return (x + rng.normal(0, np.sqrt(p / 10 ** (snr / 10)), x.shape)).astype(np.float32)
    if how.startswith("gain"):
        return np.clip(x * 10 ** (float(how[4:]) / 20), -1, 1).astype(np.float32)
    return x


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", required=True, help="the voice cache config folder of emolite/recipes/default.py")
    ap.add_argument("--model", default=None)
    ap.add_argument("--split", default="test")
    ap.add_argument("--name", default="voice_robustness", help="docs/results/<name>.json")
    args = ap.parse_args()
    common.setup(threads=2)
    import emolite
    from emolite import cache

    model = emolite.load_model(args.model)
    rows = [r for r in cache.read_index(args.cache) if r["split"] == args.split and r["label"] in model.classes]
    clips = [(cache.load_entry(r["file"])["audio"], r["label"]) for r in rows]
    out = {"what": __doc__.split("\n")[0], "clips": len(clips), "speakers": sorted({r.get("speaker", "") for r in rows}),
           "conditions": {}}
    for how in ("clean", "snr20", "snr10", "snr5", "gain+20", "gain-20"):
        rng = np.random.default_rng(0)
        preds = [model.predict(audio=corrupt(a, how, rng)).label or "(no voice)" for a, _ in clips]
        res = common.scores([y for _, y in clips], preds, model.classes)
        res["no_voice"] = sum(p == "(no voice)" for p in preds)
        out["conditions"][how] = res
        common.log(how, res["uar"], res["accuracy"], res["no_voice"])
    clean = out["conditions"]["clean"]["uar"]
    out["uar_drop_points"] = {k: round(100 * (clean - v["uar"]), 1) for k, v in out["conditions"].items()}
    common.emit(args.name, out)


if __name__ == "__main__":
    main()
