"""Preprocessing cost: cache KB per second of video, × real time on this machine, peak RSS;
and streaming decode memory on a short vs a long file (memory must not grow with length).

    python benchmarks/bench_preprocess.py [--clips 8] [--seconds 4] [--input ../shared/data/ravdess] [--long 600]

Without --input it generates 640×480 25 fps H.264+AAC clips with a real face (emolite.demo).
Peak RSS: common.peak_rss. Prints JSON and saves docs/results/<name>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import common
from emolite.demo import make_clip

# Each measured step runs in its own process under common.peak_rss (the one memory method).
STREAM_PROBE = """
import sys, time
from emolite import media
t = time.time(); n = 0
for w in media.iter_windows(sys.argv[1], window=2.0, hop=1.0):
    n += 1
print(n, time.time() - t)
"""
PREPROCESS_PROBE = """
import json, sys, time
from emolite import preprocess
t = time.time()
s = preprocess.run("files", sys.argv[1], sys.argv[2], workers=int(sys.argv[3]), progress=False)
print(json.dumps({**s, "wall": time.time() - t}, default=str))
"""


def stream_rss(path: Path) -> dict:
    """Peak RSS of a fresh process that streams every window of a file."""
    r = common.peak_rss([sys.executable, "-c", STREAM_PROBE, str(path)])
    assert r["exit"] == 0, r["stderr"][-2000:]
    n, secs = r["stdout"].split()
    return {"windows": int(n), "decode_seconds": round(float(secs), 2), "peak_rss_mb": r["peak_rss_mb"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--input", type=Path, help="a folder of real videos instead of generated ones")
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--long", type=float, default=600.0, help="seconds of the long file for the streaming check")
    ap.add_argument("--name", default="preprocess", help="docs/results/<name>.json")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="emolite-bench-"))
    if args.input:
        src = args.input
    else:
        src = tmp / "clips"
        for i in range(args.clips):
            make_clip(src / f"clip{i}.mp4", seconds=args.seconds)
    r = common.peak_rss([sys.executable, "-c", PREPROCESS_PROBE, str(src), str(tmp / "cache"), str(args.workers)])
    assert r["exit"] == 0, r["stderr"][-2000:]
    s = json.loads(r["stdout"].strip().splitlines()[-1])
    wall = s["wall"]
    video_seconds = s["seconds_of_media"]
    result = {
        "input": str(args.input or f"{args.clips} generated 640x480 25fps clips of {args.seconds}s"),
        "workers": args.workers, "cpu_count": os.cpu_count(), "entries": s["entries"], "failed": s["failed"],
        "seconds_of_video": video_seconds, "cache_bytes": s["cache_bytes"],
        "kb_per_second_of_video": s["kb_per_second"],
        "x_real_time": round(video_seconds / wall, 2), "wall_seconds": round(wall, 2),
        "peak_rss_mb_largest_process": r["peak_rss_mb"], "peak_rss_method": "common.peak_rss (RUSAGE_CHILDREN)",
        "baseline_hdf5_kb_per_second": round(12e9 / 1024 / (43 * 3.2), 0),  # 43 MELD clips (~3.2 s mean) in 12 GB
    }
    if args.long:
        short = make_clip(tmp / "short.mp4", seconds=60, width=640, height=480, fps=10)
        long = make_clip(tmp / "long.mp4", seconds=args.long, width=640, height=480, fps=10)
        result["streaming_640x480"] = {"60s": stream_rss(short), f"{int(args.long)}s": stream_rss(long)}
    common.emit(args.name, result)


if __name__ == "__main__":
    main()
