"""Preprocessing cost: cache KB per second of video, × real time on this machine, peak RSS;
and streaming decode memory on a short vs a long file (memory must not grow with length).

    python benchmarks/preprocess.py [--clips 8] [--seconds 4] [--input ../shared/data/ravdess] [--long 600]

Without --input it generates 640×480 25 fps H.264+AAC clips with a real face (emolite.demo).
Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from emolite import preprocess
from emolite.demo import make_clip

# VmHWM (not ru_maxrss, which keeps the parent's peak across fork+exec) is this process's own peak.
STREAM_PROBE = """
import sys, time
from emolite import media
t = time.time(); n = 0
for w in media.iter_windows(sys.argv[1], window=2.0, hop=1.0):
    n += 1
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print(n, time.time() - t, hwm)
"""


def stream_rss(path: Path) -> dict:
    """Peak RSS of a fresh process that streams every window of a file."""
    out = subprocess.run([sys.executable, "-c", STREAM_PROBE, str(path)], capture_output=True, text=True, check=True)
    n, secs, rss = out.stdout.split()
    return {"windows": int(n), "decode_seconds": round(float(secs), 2), "peak_rss_mb": round(int(rss) / 1024, 1)}


def rss_mb(pid: int | str = "self") -> float:
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def children(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if int(open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return out


class RssSampler(threading.Thread):
    """Samples this process's and its children's RSS every 50 ms: peak per process and in total."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak_main = self.peak_worker = self.peak_total = 0.0
        self.running = True

    def run(self) -> None:
        while self.running:
            main = rss_mb()
            kids = [rss_mb(k) for k in children(os.getpid())]
            self.peak_main = max(self.peak_main, main)
            self.peak_worker = max([self.peak_worker, *kids])
            self.peak_total = max(self.peak_total, main + sum(kids))
            time.sleep(0.05)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--input", type=Path, help="a folder of real videos instead of generated ones")
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--long", type=float, default=600.0, help="seconds of the long file for the streaming check")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="emolite-bench-"))
    if args.input:
        src = args.input
    else:
        src = tmp / "clips"
        for i in range(args.clips):
            make_clip(src / f"clip{i}.mp4", seconds=args.seconds)
    sampler = RssSampler()
    sampler.start()
    t = time.time()
    s = preprocess.run("files", src, tmp / "cache", workers=args.workers, progress=False)
    wall = time.time() - t
    sampler.running = False
    sampler.join()
    video_seconds = s["seconds_of_media"]
    result = {
        "input": str(args.input or f"{args.clips} generated 640x480 25fps clips of {args.seconds}s"),
        "workers": args.workers, "cpu_count": os.cpu_count(), "entries": s["entries"], "failed": s["failed"],
        "seconds_of_video": video_seconds, "cache_bytes": s["cache_bytes"],
        "kb_per_second_of_video": s["kb_per_second"],
        "x_real_time": round(video_seconds / wall, 2), "wall_seconds": round(wall, 2),
        "peak_rss_mb_main": round(sampler.peak_main, 1), "peak_rss_mb_per_worker": round(sampler.peak_worker, 1),
        "peak_rss_mb_total": round(sampler.peak_total, 1),
        "baseline_hdf5_kb_per_second": round(12e9 / 1024 / (43 * 3.2), 0),  # 43 MELD clips (~3.2 s mean) in 12 GB
    }
    if args.long:
        short = make_clip(tmp / "short.mp4", seconds=60, width=640, height=480, fps=10)
        long = make_clip(tmp / "long.mp4", seconds=args.long, width=640, height=480, fps=10)
        result["streaming_640x480"] = {"60s": stream_rss(short), f"{int(args.long)}s": stream_rss(long)}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
