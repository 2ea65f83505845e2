"""Load test for `emolite serve`: N WebSocket clients, each sending 320×240 JPEG frames with a
real face (emolite.demo.frame_at) at 5 Hz plus 200 ms int16 audio chunks, against a server
process this script starts. Prints JSON (and saves docs/results/<name>.json): round-trip latency percentiles, frames sent /
answered / dropped, and the server's RSS before, during and after (from /proc/<pid>/status).
`latency_ms`: frame sent -> its answer (face box + latest label); `label_latency_ms`: frame
sent -> the label the model computed on the window ending at that frame.

    python benchmarks/serve_load.py [--clients 8] [--seconds 60] [--model ckpt.pt|model.onnx]

Without --model a random-weight full model (the tests' architecture) is used: the cost is the
same as a trained one's. Latency is measured client send -> answer received, on the same
machine (the clients' CPU counts against the server's).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import common
from emolite.serve import app as S

SR = 16000
LOOP_FRAMES = 50          # distinct frames per client (10 s at 5 Hz), pre-encoded
SERVER = ("import sys; from emolite.serve.app import serve, Limits; "
          "serve(sys.argv[1] or None, port=int(sys.argv[2]), workers=int(sys.argv[3]), "
          "detect_every=int(sys.argv[4]), model_every=int(sys.argv[5]), log_level='warning', "
          "limits=Limits(max_sessions=max(16, int(sys.argv[6])), max_sessions_per_address=max(16, int(sys.argv[6]))))")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_status(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak) in MB, and CPU seconds used so far."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM"):
            out[k] = round(int(v.split()[0]) / 1024, 1)
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    out["cpu_s"] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def random_checkpoint(folder: Path) -> Path:
    import torch

    from emolite.models import build_model, save_checkpoint

    torch.manual_seed(0)
    classes = ["anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise"]
    net = build_model("attention", num_classes=len(classes))
    return save_checkpoint(folder / "random.pt", net, {"classes": classes})


def media_messages(fps: float) -> tuple[list[bytes], list[bytes]]:
    import cv2

    from emolite import demo

    q = [cv2.IMWRITE_JPEG_QUALITY, 75]
    jpegs = [cv2.imencode(".jpg", demo.frame_at(i / fps, 320, 240)[..., ::-1], q)[1].tobytes()
             for i in range(LOOP_FRAMES)]
    hop = int(SR / fps)
    x = (demo.voice(LOOP_FRAMES / fps, SR) * 32767).astype("<i2")
    audio = [b"\x02" + x[i:i + hop].tobytes() for i in range(0, x.size - hop + 1, hop)]
    return jpegs, audio


async def client(k: int, n: int, url: str, seconds: float, fps: float, jpegs: list[bytes], audio: list[bytes]) -> dict:
    from websockets.asyncio.client import connect

    st = {"sent": 0, "answered": 0, "labels": 0, "errors": 0, "dropped": 0, "lat": [], "label_lat": [], "detect": [],
          "model": [], "total": [], "faces": 0}
    async with connect(url, max_size=1 << 22, compression=None) as ws:
        json.loads(await ws.recv())  # hello

        async def reader() -> None:
            async for raw in ws:
                m = json.loads(raw)
                if m["type"] == "prediction":
                    st["lat"].append(time.perf_counter() * 1000 - m["t"])
                    st["answered"] += 1
                    st["dropped"] = m["dropped"]
                    st["faces"] += m["face_box"] is not None
                    st["detect"].append(m["timings"]["detect_ms"])
                    st["total"].append(m["timings"]["total_ms"])
                elif m["type"] == "label":
                    st["label_lat"].append(time.perf_counter() * 1000 - m["t"])
                    st["labels"] += 1
                    st["model"].append(m["timings"]["model_ms"])
                elif m["type"] == "error":
                    st["errors"] += 1

        task = asyncio.create_task(reader())
        period = 1.0 / fps
        t0 = time.perf_counter() + k * period / n   # clients are not in step with each other
        i = 0
        while True:
            due = t0 + i * period
            if due - t0 >= seconds:
                break
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            await ws.send(audio[i % len(audio)])
            await ws.send(b"\x01" + struct.pack("<Id", i, time.perf_counter() * 1000) + jpegs[i % len(jpegs)])
            st["sent"] += 1
            i += 1
        await asyncio.sleep(1.0)  # answers still in flight
        task.cancel()
    return st


async def run_clients(n: int, url: str, seconds: float, fps: float, pid: int) -> tuple[list[dict], list[dict]]:
    jpegs, audio = media_messages(fps)
    timeline: list[dict] = []

    async def sample() -> None:
        t0 = time.perf_counter()
        while True:
            await asyncio.sleep(5.0)
            timeline.append({"t": round(time.perf_counter() - t0), **proc_status(pid)})

    s = asyncio.create_task(sample())
    results = await asyncio.gather(*(client(k, n, url, seconds, fps, jpegs, audio) for k in range(n)))
    s.cancel()
    return list(results), timeline


def pct(xs: list[float]) -> dict:
    if not xs:
        return {}
    a = np.asarray(xs)
    return {"p50": round(float(np.percentile(a, 50)), 1), "p95": round(float(np.percentile(a, 95)), 1),
            "p99": round(float(np.percentile(a, 99)), 1), "max": round(float(a.max()), 1),
            "mean": round(float(a.mean()), 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--fps", type=float, default=5.0)
    ap.add_argument("--model", help="checkpoint or ONNX (default: random weights, same cost)")
    ap.add_argument("--workers", type=int, default=S.WORKERS)
    ap.add_argument("--detect-every", type=int, default=S.DETECT_EVERY)
    ap.add_argument("--model-every", type=int, default=S.MODEL_EVERY)
    ap.add_argument("--name", default="serve_load", help="docs/results/<name>.json")
    args = ap.parse_args()

    import httpx

    tmp = tempfile.TemporaryDirectory()
    model = args.model or str(random_checkpoint(Path(tmp.name)))
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-c", SERVER, model, str(port), str(args.workers), str(args.detect_every),
                             str(args.model_every), str(args.clients)], env=env)
    try:
        deadline = time.time() + 120
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise SystemExit("the server did not start")
            time.sleep(0.3)
        before = proc_status(proc.pid)
        load_before = [round(x, 2) for x in os.getloadavg()]  # other processes sharing the cores
        t0 = time.perf_counter()
        results, timeline = asyncio.run(run_clients(args.clients, f"ws://127.0.0.1:{port}/ws", args.seconds,
                                                    args.fps, proc.pid))
        wall = time.perf_counter() - t0
        time.sleep(0.5)
        after = proc_status(proc.pid)
        health = httpx.get(f"http://127.0.0.1:{port}/health").json()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        tmp.cleanup()

    cat = lambda k: [x for r in results for x in r[k]]  # noqa: E731
    sent = sum(r["sent"] for r in results)
    answered = sum(r["answered"] for r in results)
    common.emit(args.name, {
        "clients": args.clients, "seconds": args.seconds, "fps_per_client": args.fps, "cpu_count": os.cpu_count(),
        "load_average_before": load_before, "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "config": {"workers": args.workers, "detect_every": args.detect_every, "model_every": args.model_every,
                   "model": args.model or "random-weight checkpoint (attention, 7 classes)"},
        "frames": {"sent": sent, "answered": answered, "dropped": sum(r["dropped"] for r in results),
                   "errors": sum(r["errors"] for r in results), "labels": sum(r["labels"] for r in results),
                   "with_face_box": sum(r["faces"] for r in results),
                   "answered_per_s": round(answered / max(wall, 1e-9), 1)},
        "latency_ms": pct(cat("lat")),
        "label_latency_ms": pct(cat("label_lat")),
        "server_ms": {"total": pct(cat("total")), "detect": pct(cat("detect")), "model": pct(cat("model"))},
        "server_rss_mb": {"before": before["VmRSS"], "after": after["VmRSS"], "peak": after["VmHWM"],
                          "every_5s": [x["VmRSS"] for x in timeline]},
        "server_cpu_cores_used": round((after["cpu_s"] - before["cpu_s"]) / wall, 2),
        "server_stats": health["stats"],
    })


if __name__ == "__main__":
    main()
