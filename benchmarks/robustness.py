"""Robustness figures for issue 13: peak memory of `emolite analyze` / `emolite info` on long and
duration-less files, and how `emolite serve` holds up against hostile clients.

    python benchmarks/robustness.py [--work /tmp/bench/robustness] [--skip-memory] [--skip-server]

1. Memory (each command in its own subprocess, default model, `analyze -o` to a temp folder;
   peak RSS of that process from `/usr/bin/time -v`, or from getrusage(RUSAGE_CHILDREN) in a
   fresh helper process when /usr/bin/time is missing):
   - a duration-less Matroska file, 640×480 25 fps H.264 + AAC, written as a live recorder does
     (audio and video packets interleaved in time, streamed into a non-seekable pipe, so the
     muxer writes no duration and no cues): 5 min, and 1 min to compare;
   - a 16 kHz mono WAV: 30 min, and 3 min;
   - a 320×240 5 fps H.264 + AAC MP4 with a face moving over a moving background: 1 hour, and
     6 min.
   Reported: peak RSS (MB) and wall seconds per file and command, and the ratio long/short of
   peak RSS (flat with length = close to 1).
2. Hostile server (`emolite serve` on a free 127.0.0.1 port, `--idle-timeout 2`, default 16
   sessions): WebSocket handshakes with `Origin: http://evil.example` and with a foreign Host
   (DNS rebinding), counted refused vs accepted (raw handshakes, so the status is exact); the
   same for POST /classify and GET /health; every session slot filled by idle clients (one
   per loopback address 127.0.0.x, as a slot per address is limited), then after the idle
   timeout the slots they hold and whether a new client gets a session; 47 half-open HTTP
   connections (a partial request line, held) while /health is asked.
3. Slow clients (issue 24): 20 and 1030 POSTs from 127.0.0.1 that send their headers and 10
   bytes of a 100 kB body and then stall, held past the body deadline while a good client on
   the same address asks /health every 0.5 s (status codes, latency) and the slow connections
   the server still holds are counted each second; 16 WebSocket clients that only ping, once a
   second, from one address and then from 16 addresses: sessions they get, whether a good
   client (audio chunks) is accepted meanwhile and after the idle timeout, what they still hold.

Generated media go to the work folder (never the repository) and are reused when present.
Everything runs under `nice -n 19` (the benchmark machine is shared). Prints JSON and saves it
to docs/results/robustness.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from common import RESULTS, emit, log

from emolite.serve.conn import BODY_TIMEOUT, HEADER_TIMEOUT

NICE = ["nice", "-n", "19"]
TIME = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").exists() else None)
SR = 16000
HALF_OPEN = 47
SLOW_BODIES = (20, 1030)   # slow-body POSTs held at once (the two probes)
PINGERS = 16               # ping-only WebSocket clients (the default session count)
EVIL_ORIGIN = "http://evil.example"


# ----------------------------------------------------------------------------- media


def _frames(n: int, fps: float, width: int, height: int) -> list[np.ndarray]:
    """n frames of the demo picture (the shipped face drifting over a moving background)."""
    from emolite.demo import frame_at

    return [frame_at(i / fps, width, height) for i in range(n)]


def write_av(path: Path, seconds: float, width: int, height: int, fps: int, fmt: str, live: bool) -> Path:
    """H.264 + AAC (16 kHz mono), packets muxed as they come out of the encoders, frame by frame
    and audio chunk by audio chunk in time order (a recorder's interleaving). live=True streams
    the container into a pipe (not seekable): Matroska then has no duration and no cues."""
    import av

    from emolite.demo import voice

    loop = _frames(int(4 * fps), fps, width, height)   # a 4-s loop of moving frames
    sound = voice(8.0, SR)                              # an 8-s loop of voice-like sound
    tmp = path.with_name(path.name + ".part")
    if live:
        r, w = os.pipe()
        sink = open(tmp, "wb")

        def drain():
            with os.fdopen(r, "rb") as src:
                while chunk := src.read(1 << 20):
                    sink.write(chunk)
            sink.close()

        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        target = os.fdopen(w, "wb")
    else:
        target = str(tmp)
    out = av.open(target, "w", format=fmt)
    try:
        vs = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "tune": "zerolatency"})
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        as_ = out.add_stream("aac", rate=SR)
        as_.layout = "mono"
        hop = as_.codec_context.frame_size or 1024
        n_frames, n_samples = int(seconds * fps), int(seconds * SR)
        done = 0   # audio samples encoded
        for i in range(n_frames):
            vf = av.VideoFrame.from_ndarray(loop[i % len(loop)], format="rgb24")
            vf.pts = i
            vf.time_base = Fraction(1, fps)
            for p in vs.encode(vf):
                out.mux(p)
            until = min(n_samples, int((i + 1) * SR / fps))
            while done + hop <= until or (i == n_frames - 1 and done < n_samples):
                j = done % sound.size
                chunk = sound[j:j + hop]
                if chunk.size < hop:
                    chunk = np.concatenate([chunk, sound[:hop - chunk.size]])
                af = av.AudioFrame.from_ndarray(chunk[None].astype(np.float32), format="fltp", layout="mono")
                af.sample_rate, af.pts, af.time_base = SR, done, Fraction(1, SR)
                for p in as_.encode(af):
                    out.mux(p)
                done += hop
        for s in (vs, as_):
            for p in s.encode():
                out.mux(p)
    finally:
        out.close()
        if live:
            target.close()
            reader.join()
    tmp.rename(path)
    return path


def write_wav(path: Path, seconds: float) -> Path:
    import soundfile as sf

    from emolite.demo import voice

    sound = voice(8.0, SR)
    tmp = path.with_name(path.name + ".part")
    with sf.SoundFile(str(tmp), "w", SR, 1, "PCM_16", format="WAV") as f:
        left = int(seconds * SR)
        while left > 0:
            f.write(sound[:left])
            left -= min(left, sound.size)
    tmp.rename(path)
    return path


def make_media(work: Path) -> list[dict]:
    """The files (generated in a child process under nice, reused when present)."""
    specs = [
        {"group": "duration_less_mkv", "name": "live-5min-640x480.mkv", "seconds": 300, "kind": "av",
         "width": 640, "height": 480, "fps": 25, "fmt": "matroska", "live": True},
        {"group": "duration_less_mkv", "name": "live-1min-640x480.mkv", "seconds": 60, "kind": "av",
         "width": 640, "height": 480, "fps": 25, "fmt": "matroska", "live": True},
        {"group": "wav", "name": "voice-30min.wav", "seconds": 1800, "kind": "wav"},
        {"group": "wav", "name": "voice-3min.wav", "seconds": 180, "kind": "wav"},
        {"group": "long_video", "name": "video-60min-320x240-5fps.mp4", "seconds": 3600, "kind": "av",
         "width": 320, "height": 240, "fps": 5, "fmt": "mp4", "live": False},
        {"group": "long_video", "name": "video-6min-320x240-5fps.mp4", "seconds": 360, "kind": "av",
         "width": 320, "height": 240, "fps": 5, "fmt": "mp4", "live": False},
    ]
    work.mkdir(parents=True, exist_ok=True)
    for s in specs:
        s["path"] = str(work / s["name"])
        if Path(s["path"]).exists():
            continue
        t = time.time()
        log(f"generating {s['name']} ...")
        subprocess.run(NICE + [sys.executable, __file__, "--_make", json.dumps(s)], check=True)
        log(f"  {time.time() - t:.0f} s")
    return specs


def _make_one(spec: dict) -> None:
    p = Path(spec["path"])
    if spec["kind"] == "wav":
        write_wav(p, spec["seconds"])
    else:
        write_av(p, spec["seconds"], spec["width"], spec["height"], spec["fps"], spec["fmt"], spec["live"])


# ----------------------------------------------------------------------------- peak RSS


def measure(cmd: list[str], timeout: float) -> dict:
    """Run cmd under nice; peak RSS (MB) of the process, wall seconds, exit code, last stderr line."""
    with tempfile.TemporaryDirectory(prefix="emolite-rss-") as d:
        out = Path(d) / "time.txt"
        if TIME:
            full = NICE + [TIME, "-v", "-o", str(out)] + cmd
        else:   # a fresh helper process: its RUSAGE_CHILDREN is this one command
            helper = ("import json, resource, subprocess, sys; r = subprocess.run(sys.argv[2:]).returncode; "
                      "open(sys.argv[1], 'w').write('Maximum resident set size (kbytes): %d\\n' % "
                      "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r)")
            full = NICE + [sys.executable, "-c", helper, str(out)] + cmd
        t = time.time()
        try:
            p = subprocess.run(full, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=timeout)
            code, err = p.returncode, p.stderr
        except subprocess.TimeoutExpired:
            return {"exit": None, "timed_out": True, "wall_s": time.time() - t}
        wall = time.time() - t
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", out.read_text() if out.exists() else "")
        lines = [x for x in err.strip().splitlines() if x.strip() and "Command exited" not in x]
        return {"peak_rss_mb": round(int(m.group(1)) / 1024, 1) if m else None, "wall_s": round(wall, 1),
                "exit": code, "stderr_last": lines[-1][:200] if lines else ""}


def memory(work: Path, timeout: float) -> dict:
    specs = make_media(work)
    from emolite import media

    emolite = [sys.executable, "-m", "emolite"]
    files = {}
    for s in specs:
        path = s["path"]
        pr = media.probe(path)
        row = {"group": s["group"], "seconds": s["seconds"], "bytes": Path(path).stat().st_size,
               "container_duration_s": round(float(pr.get("duration") or 0), 1)}
        if s["kind"] == "av":
            row["video"] = f"{s['width']}x{s['height']} {s['fps']} fps H.264 + AAC 16 kHz, {s['fmt']}" + \
                (", live (pipe)" if s["live"] else "")
        log(f"info {s['name']} ...")
        row["info"] = measure(emolite + ["info", path], timeout)
        log(f"  {row['info']}")
        with tempfile.TemporaryDirectory(prefix="emolite-rob-out-") as out:
            log(f"analyze {s['name']} ...")
            row["analyze"] = measure(emolite + ["analyze", path, "-o", out, "-q"], timeout)
            csv = Path(out) / "emotions.csv"
            row["analyze"]["rows"] = max(0, csv.read_text().count("\n") - 1) if csv.exists() else None
            log(f"  {row['analyze']}")
        files[s["name"]] = row
    ratios = {}
    for group in ("duration_less_mkv", "wav", "long_video"):
        long, short = [(n, r) for n, r in files.items() if r["group"] == group]
        ratios[group] = {"long": long[0], "short": short[0],
                         "length_ratio": round(long[1]["seconds"] / short[1]["seconds"], 1)}
        for cmd in ("analyze", "info"):
            a, b = long[1][cmd].get("peak_rss_mb"), short[1][cmd].get("peak_rss_mb")
            ratios[group][f"{cmd}_rss_ratio"] = round(a / b, 3) if a and b else None
    return {"measured_with": "/usr/bin/time -v (max RSS of the command's process)" if TIME
            else "getrusage(RUSAGE_CHILDREN) in a helper process", "files": files, "long_over_short": ratios}


# ----------------------------------------------------------------------------- hostile server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(port: int, method: str = "GET", path: str = "/health", headers: dict | None = None,
         body: bytes = b"", timeout: float = 10.0) -> tuple[int | None, float, bytes]:
    """A raw HTTP/1.1 request on 127.0.0.1 -> (status, seconds, body). status None: no answer."""
    h = {"Host": f"127.0.0.1:{port}", "Connection": "close", **(headers or {})}
    if method == "POST":
        h["Content-Length"] = str(len(body))
    req = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n"
    t = time.perf_counter()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(req.encode() + body)
            data = b""
            while chunk := s.recv(65536):
                data += chunk
                if b"\r\n\r\n" in data and path == "/ws":   # a handshake answer: the head is enough
                    break
    except OSError:
        return None, time.perf_counter() - t, b""
    took = time.perf_counter() - t
    m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
    return (int(m.group(1)) if m else None), took, data.partition(b"\r\n\r\n")[2]


def ws_handshake(port: int, host: str | None = None, origin: str | None = None) -> int | None:
    """A raw WebSocket upgrade request; the status (101 = a session was accepted)."""
    h = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
         "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
    if host:
        h["Host"] = host
    if origin:
        h["Origin"] = origin
    return http(port, "GET", "/ws", h)[0]


def health(port: int) -> dict:
    status, took, body = http(port)
    try:
        obj = json.loads(body)
    except ValueError:
        obj = {}
    return {"status": status, "ms": round(took * 1000, 1), "sessions": obj.get("sessions")}


async def _idle_slots(port: int, max_sessions: int, idle_timeout: float) -> dict:
    """Fill every slot with idle clients, wait past the idle timeout, try a new client."""
    import websockets

    uri, origin = f"ws://127.0.0.1:{port}/ws", f"http://127.0.0.1:{port}"

    async def open_one(address: str = "127.0.0.1"):
        return await ws_open(uri, origin, address)

    idle = []
    for i in range(max_sessions):   # one address each: an address holds only a few slots
        idle.append(await open_one(f"127.0.0.{10 + i}"))
    sessions_full = await asyncio.to_thread(health, port)
    extra, kind = await open_one("127.0.0.9")       # one over the limit: "server full"
    await extra.close()
    t0 = time.perf_counter()
    await asyncio.sleep(idle_timeout + 2.0)
    after = await asyncio.to_thread(health, port)
    closed, codes = 0, []
    for ws, _ in idle:
        try:
            while True:   # the server's "closing" error, then the close frame
                await asyncio.wait_for(ws.recv(), 2)
        except websockets.ConnectionClosed as e:
            closed += 1
            codes.append(e.rcvd.code if e.rcvd else None)
        except asyncio.TimeoutError:
            pass
    fresh, fresh_kind = await open_one()
    await fresh.send(json.dumps({"type": "ping", "t": 1}))
    pong = json.loads(await asyncio.wait_for(fresh.recv(), 10)).get("type")
    await fresh.close()
    for ws, _ in idle:
        await ws.close()
    return {"idle_clients": max_sessions, "hello_received": sum(k == "hello" for _, k in idle),
            "sessions_when_full": sessions_full["sessions"], "one_more_client_got": kind,
            "waited_s": round(time.perf_counter() - t0, 1),
            "slots_held_by_idle_clients_after_timeout": after["sessions"],
            "idle_clients_closed_by_server": closed, "close_codes": sorted(set(codes), key=str),
            "new_client_after_timeout": {"first_message": fresh_kind, "ping": pong}}


async def ws_open(uri: str, origin: str, address: str):
    """A WebSocket from a loopback source address -> (socket, type of its first message)."""
    import websockets

    ws = await asyncio.wait_for(websockets.connect(uri, origin=origin, open_timeout=10,
                                                   local_addr=(address, 0)), 15)
    first = json.loads(await asyncio.wait_for(ws.recv(), 15))
    return ws, first.get("type")


def _still_open(s: socket.socket) -> bool:
    """Whether the server still holds `s` (reads whatever it sent first, e.g. a 408)."""
    s.setblocking(False)
    try:
        while s.recv(65536):
            pass
        return False
    except BlockingIOError:
        return True
    except OSError:
        return False


def slow_bodies(port: int, n: int, hold_s: float) -> dict:
    """n POSTs that send their head and 10 bytes of a 100 kB body, then stall; a good client on
    the same address asks /health every 0.5 s meanwhile; the slow ones still open each second."""
    head = (f"POST /classify HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 100000\r\n"
            "Content-Type: multipart/form-data; boundary=xyz\r\n\r\n--xyz\r\n").encode()
    socks, t0 = [], time.time()
    for _ in range(n):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(head)
            socks.append(s)
        except OSError:
            pass
    opened_s = time.time() - t0
    probes, held, last = [], [], -1.0
    while time.time() - t0 < hold_s:
        if time.time() - last >= 1.0:
            last = time.time()
            socks = [s for s in socks if _still_open(s) or s.close()]
            held.append({"t_s": round(last - t0, 1), "still_open": len(socks)})
        probes.append({"t_s": round(time.time() - t0, 1), **health(port)})
        time.sleep(0.5)
    end = sum(_still_open(s) for s in socks)
    for s in socks:
        s.close()
    ok = [p for p in probes if p["status"] == 200]
    return {"slow_posts": n, "opened_in_s": round(opened_s, 1), "held_s": hold_s,
            "health_probes": len(probes), "health_200": len(ok),
            "health_statuses": sorted({str(p["status"]) for p in probes}),
            "health_ms_median": float(np.median([p["ms"] for p in ok])) if ok else None,
            "health_ms_max": max((p["ms"] for p in probes), default=None),
            "slow_still_open_max_after_1s": max((h["still_open"] for h in held[1:]), default=None),
            "slow_still_open_by_second": held, "slow_still_open_at_end": end,
            "health_by_probe": [(p["t_s"], p["status"], p["ms"]) for p in probes]}


async def _ping_only(port: int, idle_timeout: float, one_address: bool) -> dict:
    """PINGERS clients that only ping, once a second (from one address or one each); a good
    client meanwhile and after the idle timeout; what the pingers hold by then."""
    import websockets

    uri, origin = f"ws://127.0.0.1:{port}/ws", f"http://127.0.0.1:{port}"
    pingers = [await ws_open(uri, origin, "127.0.0.1" if one_address else f"127.0.0.{40 + i}")
               for i in range(PINGERS)]
    live = [ws for ws, kind in pingers if kind == "hello"]
    stop = asyncio.Event()

    async def ping(ws):
        try:
            while not stop.is_set():
                await ws.send(json.dumps({"type": "ping", "t": time.time()}))
                await asyncio.sleep(1.0)
        except websockets.ConnectionClosed:
            pass

    async def good_client() -> str:
        ws, kind = await ws_open(uri, origin, "127.0.0.2")
        if kind == "hello":
            await ws.send(bytes([2]) + bytes(2 * 4000))   # a quarter second of silence: real activity
        await ws.close()
        return kind

    tasks = [asyncio.create_task(ping(ws)) for ws in live]
    t0 = time.perf_counter()
    meanwhile = await good_client()
    sessions_held = (await asyncio.to_thread(health, port))["sessions"]
    await asyncio.sleep(idle_timeout + 2.0)
    after = await good_client()
    closed = sum(ws.close_code is not None for ws in live)
    codes = sorted({ws.close_code for ws in live if ws.close_code is not None})
    stop.set()
    await asyncio.gather(*tasks)
    for ws, _ in pingers:
        await ws.close()
    return {"ping_only_clients": PINGERS, "from": "one address" if one_address else f"{PINGERS} addresses",
            "given_a_session": len(live), "sessions_held": sessions_held,
            "good_client_meanwhile": meanwhile, "waited_s": round(time.perf_counter() - t0, 1),
            "pingers_closed_by_server_after_idle_timeout": closed, "close_codes": codes,
            "good_client_after_idle_timeout": after}


def half_open(port: int, n: int, hold_s: float) -> dict:
    """n connections that send a partial request line and hold; /health asked meanwhile."""
    socks, opened = [], 0
    for _ in range(n):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"GET /health HTT")
            socks.append(s)
            opened += 1
        except OSError:
            pass
    probes = []
    t0 = time.time()
    try:
        while time.time() - t0 < hold_s:
            probes.append({"t_s": round(time.time() - t0, 1), **health(port)})
            time.sleep(1.0)
        ws = ws_handshake(port, origin=f"http://127.0.0.1:{port}")
        still_open = 0
        for s in socks:   # which half-open connections has the server dropped?
            s.setblocking(False)
            try:
                still_open += s.recv(1) != b""
            except BlockingIOError:
                still_open += 1
            except OSError:
                pass
    finally:
        for s in socks:
            s.close()
    ok = [p for p in probes if p["status"] == 200]
    return {"half_open_connections": opened, "held_s": hold_s, "health_probes": len(probes),
            "health_200": len(ok), "health_statuses": sorted({str(p["status"]) for p in probes}),
            "health_ms_max": max((p["ms"] for p in probes), default=None),
            "health_ms_median": float(np.median([p["ms"] for p in ok])) if ok else None,
            "websocket_handshake_meanwhile": ws, "half_open_still_open_at_end": still_open}


def server(idle_timeout: float, tries: int) -> dict:
    port = free_port()
    cmd = NICE + [sys.executable, "-m", "emolite", "serve", "--host", "127.0.0.1", "--port", str(port),
                  "--idle-timeout", str(idle_timeout)]
    log(f"serve on 127.0.0.1:{port} ...")
    logf = tempfile.TemporaryFile()
    proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 180
        while time.time() < deadline and health(port)["status"] != 200:
            if proc.poll() is not None:
                logf.seek(0)
                raise RuntimeError(f"server exited: {logf.read().decode()[-2000:]}")
            time.sleep(0.5)
        first = json.loads(http(port)[2])
        max_sessions = first["max_sessions"]
        good_origin = f"http://127.0.0.1:{port}"
        res = {"port": "127.0.0.1 (free port)", "idle_timeout_s": idle_timeout, "max_sessions": max_sessions}

        def count(statuses):
            return {"tries": len(statuses), "refused": sum(s not in (101, 200) for s in statuses),
                    "accepted": sum(s in (101, 200) for s in statuses), "statuses": sorted({str(s) for s in statuses})}

        res["control_websocket_own_origin"] = count([ws_handshake(port, origin=good_origin) for _ in range(3)])
        res["websocket_foreign_origin"] = count([ws_handshake(port, origin=EVIL_ORIGIN) for _ in range(tries)])
        res["websocket_foreign_host"] = count([ws_handshake(port, host="evil.example") for _ in range(tries)])
        res["websocket_foreign_host_and_origin"] = count(
            [ws_handshake(port, host="evil.example", origin=EVIL_ORIGIN) for _ in range(tries)])
        res["health_foreign_host"] = count([http(port, headers={"Host": "evil.example"})[0] for _ in range(tries)])
        body = b"x" * 100
        res["classify_foreign_origin"] = count([http(port, "POST", "/classify", {"Origin": EVIL_ORIGIN}, body)[0]
                                               for _ in range(tries)])
        time.sleep(idle_timeout + 1)   # let the control sessions time out before filling the slots
        log("idle clients ...")
        res["idle_sessions"] = asyncio.run(_idle_slots(port, max_sessions, idle_timeout))
        log("half-open connections ...")
        # held past the server's head timeout: they should be closed by the end
        res["half_open"] = half_open(port, HALF_OPEN, hold_s=max(HEADER_TIMEOUT + 5.0, 3 * idle_timeout))
        for n in SLOW_BODIES:
            log(f"{n} slow-body POSTs ...")
            res[f"slow_bodies_{n}"] = slow_bodies(port, n, hold_s=BODY_TIMEOUT + 10.0)
        log("ping-only clients ...")
        res["ping_only_one_address"] = asyncio.run(_ping_only(port, idle_timeout, True))
        res["ping_only_many_addresses"] = asyncio.run(_ping_only(port, idle_timeout, False))
        res["health_after"] = health(port)
        res["server_alive_at_end"] = proc.poll() is None
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        logf.close()
    return res


# ----------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default=os.path.join(os.environ.get("EMOLITE_BENCH_DIR", "/tmp/bench"), "robustness"),
                    help="folder for the generated media (reused when present)")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per analyze/info run")
    ap.add_argument("--idle-timeout", type=float, default=2.0)
    ap.add_argument("--tries", type=int, default=20, help="hostile requests of each kind")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--skip-server", action="store_true")
    ap.add_argument("--no-save", action="store_true")
    ap.add_argument("--_make", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._make:
        _make_one(json.loads(args._make))
        return
    result = {"cpus": os.cpu_count(), "nice": 19}
    old = RESULTS / "robustness.json"
    if (args.skip_memory or args.skip_server) and old.exists():   # keep the part not rerun
        result.update({k: v for k, v in json.loads(old.read_text()).items() if k in ("memory", "server")})
    if not args.skip_memory:
        result["memory"] = memory(Path(args.work), args.timeout)
    if not args.skip_server:
        result["server"] = server(args.idle_timeout, args.tries)
    emit("robustness", result, save=not args.no_save)


if __name__ == "__main__":
    main()
