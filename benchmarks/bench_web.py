"""The live page in headless Chromium, on-device mode vs server mode, side by side. Prints JSON.

Chromium's fake camera plays a 320×240 clip of a real face (emolite.demo) at 15 fps and its
fake microphone a voice; the page runs as a user would open it (`emolite serve`'s page, the
default model unless --model). For each mode, after the first label and for --seconds:
- detect_ms / model_ms: medians per frame (on-device: measured in the page, the model run
  includes voice activity; server: the server's own timings sent with each answer);
- frames_per_s: frames answered (box + latest label), labels_per_s: model outputs reaching the page;
- first_label_s: page load (navigation start) -> first label on screen;
- tab_rss_mb: resident memory of the page's renderer process(es) at the end (from /proc);
  server mode also gives the server process's RSS growth (the same Python process as this script).

    python benchmarks/bench_web.py [--seconds 20] [--model ckpt.pt|model.onnx] [--name web]

Needs Debian's chromium (/usr/bin/chromium) and Playwright. The machine's cores are shared
with the page, the server and Chromium's own processes.
"""

from __future__ import annotations

import argparse
import os
import socket
import tempfile
import threading
import time
import wave
from contextlib import contextmanager
from pathlib import Path

import numpy as np

import common


CHROMIUM = "/usr/bin/chromium"
W, H, FPS, CLIP_S = 320, 240, 15, 10

COLLECT = """() => {
  window.__bench = { frames: [], labels: [] };
  const wrap = (k, into) => { const f = handlers[k]; handlers[k] = (m) => { into.push([performance.now(), m.timings]); f(m); }; };
  wrap('prediction', window.__bench.frames);
  wrap('label', window.__bench.labels);
}"""


def write_media(d: Path) -> tuple[Path, Path]:
    import cv2

    from emolite import demo

    y4m = d / "clip.y4m"
    with open(y4m, "wb") as f:
        f.write(f"YUV4MPEG2 W{W} H{H} F{FPS}:1 Ip A1:1 C420jpeg\n".encode())
        for i in range(CLIP_S * FPS):
            f.write(b"FRAME\n" + cv2.cvtColor(demo.frame_at(i / FPS, W, H), cv2.COLOR_RGB2YUV_I420).tobytes())
    wav = d / "clip.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((demo.voice(CLIP_S, 16000) * 32767).astype("<i2").tobytes())
    return y4m, wav


def browser_args(y4m: Path, wav: Path) -> list[str]:
    """Headless Chromium whose fake camera and microphone play these files (as tests/test_browser.py)."""
    return ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={y4m}",
            f"--use-file-for-fake-audio-capture={wav}", "--autoplay-policy=no-user-gesture-required"]


@contextmanager
def server_on(model, web_model):
    """emolite serve's app under uvicorn in a thread of this process, on a free port."""
    import uvicorn

    from emolite.serve import Limits, create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(create_app(model, web_model=web_model), host="127.0.0.1", port=port,
                                        log_level="warning", ws_max_size=Limits().ws_max_size))
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    while not srv.started:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        t.join(timeout=10)


def descendants(pid: int) -> list[int]:
    kids: dict[int, list[int]] = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                ppid = int(Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(p))
    out, todo = [], [pid]
    while todo:
        for k in kids.get(todo.pop(), []):
            out.append(k)
            todo.append(k)
    return out


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def renderer_rss_mb() -> float:
    """Our Chromium's renderer processes (children of this script, via Playwright's driver)."""
    total = 0.0
    for p in descendants(os.getpid()):
        try:
            if b"--type=renderer" in Path(f"/proc/{p}/cmdline").read_bytes():
                total += rss_mb(p)
        except OSError:
            pass
    return round(total, 1)


def median(xs):
    xs = [x for x in xs if x is not None]
    return round(float(np.median(xs)), 1) if xs else None


def run_mode(browser_args, url: str, seconds: float, device: bool) -> dict:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=browser_args, headless=True)
        try:
            page = browser.new_page()
            page.goto(url)
            page.wait_for_function("() => Number(document.body.dataset.labels || 0) >= 1", timeout=120_000)
            first = float(page.get_attribute("body", "data-first-label-ms")) / 1000
            loaded = page.get_attribute("body", "data-device-ready")
            page.evaluate(COLLECT)
            time.sleep(seconds)
            b = page.evaluate("() => window.__bench")
            stats = page.evaluate("() => window.emoliteDevice ? { vad: window.emoliteDevice.live.stats.vadMs } : null")
            out = {"first_label_s": round(first, 2), "tab_rss_mb": renderer_rss_mb()}
            span = lambda xs: (xs[-1][0] - xs[0][0]) / 1000 if len(xs) > 1 else None  # noqa: E731
            out["frames_per_s"] = round((len(b["frames"]) - 1) / span(b["frames"]), 2) if span(b["frames"]) else 0.0
            out["labels_per_s"] = round((len(b["labels"]) - 1) / span(b["labels"]), 2) if span(b["labels"]) else 0.0
            out["detect_ms"] = median([t["detect_ms"] for _, t in b["frames"]])
            out["model_ms"] = median([t["model_ms"] for _, t in b["labels"]])
            if device:
                out["vad_ms"] = median(stats["vad"])
                out["models_loaded_ms"] = int(loaded)
            return out
        finally:
            browser.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--model", default=None)
    ap.add_argument("--name", default="web", help="docs/results/<name>.json")
    args = ap.parse_args()
    os.environ.setdefault("EMOLITE_CACHE", tempfile.mkdtemp(prefix="emolite-bench-"))
    from emolite import web
    from emolite.inference import load_model

    d = Path(tempfile.mkdtemp(prefix="emolite-web-bench-"))
    bargs = browser_args(*write_media(d))
    model = load_model(args.model)
    web.graphs(args.model)   # export once before timing: first use is not page load
    res = {"load_average_before": [round(x, 1) for x in os.getloadavg()], "chromium": CHROMIUM, "cores": os.cpu_count(), "clip": f"{W}x{H} at {FPS} fps", "seconds": args.seconds,
           "model": args.model or "default", "runtime": f"onnxruntime-web {web.RUNTIME_VERSION}", "wasm_threads": 1}
    with server_on(model, web_model=args.model or "default") as url:
        res["on_device"] = run_mode(bargs, f"{url}/?mode=device", args.seconds, True)
        before = rss_mb(os.getpid())
        res["server"] = run_mode(bargs, f"{url}/", args.seconds, False)
        res["server"]["server_rss_growth_mb"] = round(rss_mb(os.getpid()) - before, 1)
    res["load_average"] = [round(x, 1) for x in os.getloadavg()]   # the cores are shared: say how busy
    common.emit(args.name, res)


if __name__ == "__main__":
    main()
