"""analyze on Ray vs the plain single-process run, on generated 640×480 H.264 + AAC clips.

    python benchmarks/bench_cluster.py [--clips 8] [--seconds 15] [--out /tmp/emolite-cluster-bench]

Measured, each end to end in this process as a user runs it (model load and, for Ray, starting
a local Ray instance and its workers included): files per second and × real time for the plain
run (`analyze.run`, what `emolite analyze` calls) and for `--ray` with 1 and 2 workers; and, for
a small job (one 3-s clip), the time to the first result with the plain run, with a cold Ray
(`--ray` starting its own local instance) and with a warm one (a Ray instance already up, as on
a cluster: the workers still start and load the model). Every run's rows are checked equal to
the plain run's. Prints JSON and saves it to docs/results/cluster.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import common as C


def _rows(out: Path) -> list:
    return [(r["path"], [(w["start"], w["label"]) for w in r["windows"]])
            for r in json.loads((out / "emotions.json").read_text())["results"]]


def plain(inputs: list[str], out: Path) -> dict:
    from emolite import analyze
    from emolite.inference import load_model

    t0 = time.time()
    model = load_model()
    analyze.run(inputs, model, out=str(out), quiet=True, progress=False)
    wall = time.time() - t0
    return {"wall_s": wall, "rows": _rows(out)}


def with_ray(inputs: list[str], out: Path, workers: int) -> dict:
    from emolite.cluster import run_analyze

    s = run_analyze(inputs, out=str(out), quiet=True, workers=workers)
    return {"wall_s": s["wall_seconds"], "first_result_s": s["seconds_to_first_result"], "rows": _rows(out)}


def first_result_plain(clip: Path) -> float:
    """Seconds from the call to the first file's result (model load included), single process."""
    from emolite import analyze
    from emolite.inference import load_model

    t0 = time.time()
    model = load_model()
    r = analyze.analyze_file(model, clip)
    assert r.windows
    return time.time() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--out", default="/tmp/emolite-cluster-bench")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    C.setup(1)
    import ray

    from emolite.demo import make_clip

    root = Path(args.out)
    media = root / "media"
    for i in range(args.clips):
        if not (media / f"clip{i:03d}.mp4").exists():
            make_clip(media / f"clip{i:03d}.mp4", seconds=args.seconds, width=640, height=480)
    small = make_clip(root / "small" / "small.mp4", seconds=3.0, width=640, height=480)
    media_s = args.clips * args.seconds
    res: dict = {"clips": args.clips, "seconds_each": args.seconds, "size": "640x480 H.264 + AAC",
                 "environment": C.environment(), "ray": ray.__version__}
    C.log("plain run ...")
    base = plain([str(media)], root / "plain")
    runs = {"plain": base}
    for k in (1, 2):
        C.log(f"ray, {k} worker(s) ...")
        runs[f"ray_{k}"] = with_ray([str(media)], root / f"ray{k}", k)
    for name, r in runs.items():
        assert r["rows"] == base["rows"], f"{name}: other rows than the plain run"
        res[name] = {"wall_s": r["wall_s"], "files_per_s": args.clips / r["wall_s"],
                     "x_real_time": media_s / r["wall_s"],
                     **({"first_result_s": r["first_result_s"]} if "first_result_s" in r else {})}
    C.log("small job: time to the first result ...")
    small_job = {"plain_s": first_result_plain(small)}
    small_job["ray_cold_s"] = with_ray([str(small)], root / "small_cold", 1)["first_result_s"]
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level="ERROR", log_to_driver=False,
             configure_logging=False)
    try:
        small_job["ray_warm_s"] = with_ray([str(small)], root / "small_warm", 1)["first_result_s"]
    finally:
        ray.shutdown()
    res["small_job_first_result"] = small_job
    C.emit("cluster", res)


if __name__ == "__main__":
    main()
