"""Training throughput (clips/s) on CPU of the default full model: attention fusion, T=8
frames, 4 s of audio, batch 16.

    python benchmarks/throughput.py [--steps 8] [--warmup 2] [--batch 16] [--threads 1]

A synthetic cache (the tests' `tests/synthetic.py`, 4-s clips at 5 fps: 20 frames +
4 s of audio per full clip; the cache mixes full, audio-only, video-only, still and
partly-faceless entries, which cost the same in the model since missing parts are masks)
is read through emolite's own training data path (ClipDataset with augmentation, the
epoch batch sampler, collate), and each step is what Lightning's training_step does:
forward, cross-entropy, backward, gradient clipping at 1.0, AdamW step. Reported: the whole
step (data + compute) and its parts, in steps/s and clips/s. No GPU was lent for this task,
so there is no GPU figure. Prints JSON and saves it to docs/results/<name>.json.
"""

from __future__ import annotations

import argparse
import statistics
import time


import common as C


def synthetic_cache_maker():
    """tests/synthetic.py's make_synthetic_cache: a test fixture, not part of the package, so it
    is loaded from its file (the checkout's tests/ folder)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("synthetic", C.REPO / "tests" / "synthetic.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.make_synthetic_cache


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--model", default="attention")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--name", default="throughput")
    args = ap.parse_args()
    C.setup(args.threads)
    import torch

    from emolite import cache
    from emolite.config import load_config
    from emolite.losses import build_loss
    from emolite.models import build_model, count_macs, count_params, example_batch
    from emolite.loader import ClipDataset, make_loader, model_inputs

    classes = ("anger", "happiness", "neutral")
    cdir = C.BENCH / "synthetic_cache"
    if not (cdir / cache.INDEX).exists():
        synthetic_cache_maker()(cdir, classes, {"train": 24}, seconds=4.0)
    rows = cache.read_index(cdir)
    cfg = load_config(None, [])
    ds = ClipDataset(rows, [classes.index(r["label"]) for r in rows], args.frames, args.seconds, train=True,
                     augment=cfg["augment"], seed=0)
    loader = make_loader(ds, args.batch, "shuffle", None, 0, 0, train=True)
    model = build_model(args.model, len(classes)).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    loss_fn = build_loss({"name": "ce", "label_smoothing": 0.0})
    data_t, comp_t = [], []
    n_needed = args.warmup + args.steps
    epoch = 0
    while len(comp_t) < n_needed:
        loader.batch_sampler.set_epoch(epoch)
        it = iter(loader)
        while len(comp_t) < n_needed:
            t = time.perf_counter()
            try:
                batch = next(it)
            except StopIteration:
                break
            t1 = time.perf_counter()
            out = model(model_inputs(batch))
            loss = loss_fn(out, batch["y"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            t2 = time.perf_counter()
            data_t.append(t1 - t)
            comp_t.append(t2 - t1)
        epoch += 1
    d, c = data_t[args.warmup:], comp_t[args.warmup:]
    step = [a + b for a, b in zip(d, c)]
    B = args.batch
    med = statistics.median
    out = {"benchmark": "throughput", "model": args.model, "frames": args.frames, "audio_seconds": args.seconds,
           "batch": B, "threads": args.threads, "measured_steps": len(step),
           "params": count_params(model), "macs_per_clip_forward": count_macs(model, example_batch(1, args.frames,
                                                                                                    args.seconds)),
           "step_seconds_median": med(step), "data_seconds_median": med(d), "compute_seconds_median": med(c),
           "steps_per_s": 1 / med(step), "clips_per_s": B / med(step), "clips_per_s_compute_only": B / med(c),
           "clips_per_s_data_only": B / med(d),
           "gpu": "none lent for this task: no GPU figure",
           "environment": C.environment()}
    C.emit(args.name, out)


if __name__ == "__main__":
    main()
