"""`emolite serve`: a browser page sends webcam frames + microphone audio over one WebSocket and
gets live emotion predictions back; uploads reuse `emolite.analyze`.

The WebSocket protocol and the limits are documented in `protocol.py`; a client's window,
tracking and model cadence live in `session.py`. This module is the wiring: routes, static
files, security headers, the thread pools, and one `Connection` per WebSocket.

Why this shape: work runs in two small fixed thread pools, never on the event loop. The frame
path (decode, face detection or following, ~5-20 ms) answers every frame at once with the face
box and the client's latest label; the model (~30 ms, more on a busy machine) runs beside it on
every k-th frame in its own pool and sends each new label when it is ready, so a model run
never delays a box. Each client has at most one frame job and one model job running and one
frame waiting (a newer frame replaces the waiting one and counts as dropped): a slow server
answers the newest frame late rather than every frame later and later, and memory is bounded
by clients x window.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
from fastapi import FastAPI, File, HTTPException, Request, UploadFile, WebSocket
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from ..errors import EmoliteError
from ..inference import EmotionModel
from . import protocol as P
from .protocol import BadInput, Limits
from .uploads import (UPLOAD_PREFIX, analyze_response, check_upload, classify_response, clean_stale_uploads,
                      save_upload, upload_ext)
from .session import (DETECT_EVERY, MODEL_EVERY, Job, LiveSettings, ModelWork, Session, infer, live_settings,
                      model_capacity)

HOST = "127.0.0.1"
PORT = 8000
MAX_PENDING_UPLOADS = 2          # uploads running or waiting; more get 503
WORKERS = 2                      # frame threads: decode + face detection (about the number of cores)
MODEL_WORKERS = 1                # model threads: labels queue here under load while boxes stay prompt
STATIC = Path(__file__).parent / "static"
LOCAL_HOSTS = P.LOCAL_HOSTS
HTTP_CONNECTIONS = 1024            # uvicorn's connection cap (slow clients are shed before it: conn.py)
CSP = ("default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; img-src 'self' data: blob:; media-src 'self' blob: mediastream:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")

log = logging.getLogger("emolite.serve")

__all__ = ["Limits", "create_app", "serve", "check_upload"]


@dataclass
class Server:
    """What every route and connection of one app shares: the model, the pools, the counters."""

    model: EmotionModel
    settings: LiveSettings
    limits: Limits
    workers: int
    model_workers: int
    detect_every: int
    model_every: int
    pool: ThreadPoolExecutor = field(init=False)          # frames: decode, faces
    model_pool: ThreadPoolExecutor = field(init=False)    # model runs
    upload_pool: ThreadPoolExecutor = field(init=False)   # whole-file uploads
    sessions: dict[str, Session] = field(default_factory=dict)
    addresses: dict[str, str] = field(default_factory=dict)   # session id -> its client's address
    stats: dict = field(default_factory=lambda: {"sessions_total": 0, "frames": 0, "answered": 0, "labels": 0,
                                                 "dropped": 0, "errors": 0, "uploads": 0})
    uploads_active: int = 0
    model_inflight: int = 0      # model runs queued or running, all clients
    hosts: frozenset = P.LOCAL_HOSTS       # Host names this server answers to
    origins: frozenset = frozenset()       # other page origins allowed (--allow-origin)

    def __post_init__(self) -> None:
        self.pool = ThreadPoolExecutor(max(1, self.workers), thread_name_prefix="emolite-frames")
        self.model_pool = ThreadPoolExecutor(max(1, self.model_workers), thread_name_prefix="emolite-model")
        self.upload_pool = ThreadPoolExecutor(1, thread_name_prefix="emolite-upload")

    def shutdown(self) -> None:
        for p in (self.pool, self.model_pool, self.upload_pool):
            p.shutdown(wait=False, cancel_futures=True)

    def count(self, s: Session, key: str) -> None:
        """One more `key` for this client and for the server."""
        s.stats[key] += 1
        self.stats[key] += 1

    def health(self, local: bool = True) -> dict:
        """Status and load; each client's statistics only for a caller on this machine."""
        limits = self.limits
        out = {"status": "ok", "classes": self.model.classes, "backend": self.model.backend,
                "modalities": self.model.modalities, "sessions": len(self.sessions),
                "max_sessions": limits.max_sessions, "workers": self.workers,
                "limits": {**asdict(limits), "ws_max_size": limits.ws_max_size},
                "stats": {**self.stats, "uploads_active": self.uploads_active,
                          "model_runs_inflight": self.model_inflight},
                "clients": [{"session": s.id, **s.stats} for s in self.sessions.values()]}
        if not local:
            del out["clients"]
        return out

    def allows(self, headers) -> str | None:
        """Why a request may not use the server (None: it may): Host, then Origin."""
        if not P.host_allowed(headers.get("host"), self.hosts):
            return "unknown Host; use the address the server printed (or --host / --allow-origin)"
        if not P.origin_allowed(headers.get("origin"), headers.get("host"), self.origins):
            return "requests from other pages are refused; see --allow-origin"
        return None


# ---------------------------------------------------------------- the app


def create_app(model: EmotionModel, limits: Limits = Limits(), workers: int = WORKERS,
               detect_every: int = DETECT_EVERY, model_every: int = MODEL_EVERY,
               model_workers: int = MODEL_WORKERS, host: str | None = None,
               allow_origins: Iterable[str] = (), web_model: str | Path | None = None) -> FastAPI:
    """The FastAPI app for one loaded model. Limits, pool sizes and who may connect (this
    machine's names, `host`, `allow_origins`) are fixed per app. Cleans stale upload folders."""
    srv = Server(model, live_settings(model), limits, workers, model_workers, detect_every, model_every)
    srv.origins = P.normalize_origins(allow_origins)
    srv.hosts = P.allowed_hosts(host, srv.origins)
    removed = clean_stale_uploads()
    if removed:
        log.info("removed %d upload folder(s) a stopped server left", removed)

    @asynccontextmanager
    async def lifespan(app):
        yield
        srv.shutdown()

    app = FastAPI(title="emolite", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.model, app.state.limits, app.state.sessions, app.state.stats = model, limits, srv.sessions, srv.stats
    app.state.server = srv
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    add_guard(app, srv)
    add_http_routes(app, srv)
    add_ondevice_routes(app, web_model or model)

    @app.websocket("/ws")
    async def ws_endpoint(ws: WebSocket):
        why = srv.allows(ws.headers)
        if why is not None:   # refused at the handshake (HTTP 403): no session, no hello
            log.info("websocket refused: %s (Host %r, Origin %r)", why, ws.headers.get("host"), ws.headers.get("origin"))
            await ws.close(1008)
            return
        await Connection.accept(ws, srv)

    return app


def add_guard(app: FastAPI, srv: Server) -> None:
    limits = srv.limits

    @app.middleware("http")
    async def guard(request: Request, call_next):
        """Refuse foreign Hosts and Origins and oversized bodies from the headers, before anything
        is read; set the page's CSP."""
        if not P.host_allowed(request.headers.get("host"), srv.hosts):
            return JSONResponse({"error": "unknown Host; use the address the server printed"}, 421)
        if request.method not in ("GET", "HEAD", "OPTIONS") and srv.allows(request.headers) is not None:
            return JSONResponse({"error": srv.allows(request.headers)}, 403)
        if request.method in ("POST", "PUT", "PATCH"):
            cl = request.headers.get("content-length")
            if cl is None:
                return JSONResponse({"error": "Content-Length required"}, 411)
            if not cl.isdigit() or int(cl) > limits.max_upload + 65536:
                return JSONResponse({"error": f"upload over the limit of {limits.max_upload} bytes"}, 413)
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response


def add_http_routes(app: FastAPI, srv: Server) -> None:
    @app.get("/")
    async def index():
        return FileResponse(STATIC / "index.html")

    @app.get("/health")
    async def health(request: Request):
        return srv.health(local=bool(request.client) and request.client.host in LOCAL_HOSTS)

    @app.post("/classify")
    @app.post("/predict", include_in_schema=False)   # its former name
    async def classify(file: UploadFile = File(...)):
        """The overall label of a whole file (image, audio or video) and its windows, for programs."""
        return await run_upload(srv, file, lambda path, name: classify_response(srv.model, srv.limits, path, name))

    @app.post("/analyze")
    async def analyze_endpoint(file: UploadFile = File(...)):
        """The analyze timeline: window rows and the plot as a PNG data URL."""
        return await run_upload(srv, file, lambda path, name: analyze_response(srv.model, srv.limits, path, name))


def add_ondevice_routes(app: FastAPI, model) -> None:
    """The on-device mode's graphs (emolite.web.graphs: the model's ONNX, the detector, the VAD),
    from the package and the cache dir, resolved once (a checkpoint is exported on first use)."""
    from .. import web

    found: dict = {}
    lock = asyncio.Lock()      # the page asks for all three at once: resolve (export) once

    @app.get(f"/{web.ONDEVICE_PREFIX}/{{name}}")
    async def ondevice(name: str):
        if name not in web.MODEL_FILES:
            raise HTTPException(404, "no such file")
        async with lock:
            if not found:
                try:
                    found.update(await asyncio.get_running_loop().run_in_executor(None, web.graphs, model))
                except EmoliteError as e:
                    raise HTTPException(404, str(e)) from None
        src = found[name]
        if isinstance(src, bytes):
            return Response(src, media_type="application/octet-stream")
        return FileResponse(src, media_type="application/octet-stream")


# ---------------------------------------------------------------- uploads


async def run_upload(srv: Server, upload: UploadFile, fn: Callable[[Path, str], dict]) -> dict:
    """Save the upload (bounded), check it, and run `fn(path, name)` in the upload thread."""
    if srv.uploads_active >= MAX_PENDING_UPLOADS:
        raise HTTPException(503, "busy with other uploads; try again shortly")
    srv.uploads_active += 1
    tmpdir = tempfile.TemporaryDirectory(prefix=f"{UPLOAD_PREFIX}{os.getpid()}-")
    try:
        name = Path(upload.filename or "upload").name[-120:] or "upload"
        path = Path(tmpdir.name) / f"upload{upload_ext(name)}"
        await save_upload(upload, path, srv.limits.max_upload)
        t0 = time.perf_counter()
        out = await asyncio.get_running_loop().run_in_executor(srv.upload_pool, lambda: fn(path, name))
        srv.stats["uploads"] += 1
        return {**out, "seconds": round(time.perf_counter() - t0, 3)}
    except HTTPException:
        raise
    except EmoliteError as e:
        raise HTTPException(400, str(e).replace(e.path, name) if e.path else str(e)) from None
    except Exception as e:  # a decoder surprise in one upload must not take the server down
        log.exception("upload %r failed", upload.filename)
        raise HTTPException(422, f"could not analyse this file ({type(e).__name__})") from None
    finally:
        srv.uploads_active -= 1
        await upload.close()
        tmpdir.cleanup()


# ---------------------------------------------------------------- one WebSocket


class Connection:
    """One WebSocket and its session: the receive loop, one frame worker task, model runs.
    Sends go through one lock (answers and labels come from different tasks)."""

    def __init__(self, ws: WebSocket, srv: Server, s: Session):
        self.ws, self.srv, self.s = ws, srv, s
        self.lock = asyncio.Lock()
        self.wake = asyncio.Event()
        self.model_task: asyncio.Task | None = None
        self.loop = asyncio.get_running_loop()
        self.active = time.perf_counter()   # the last frame, audio or audio-only request (pings do not count)

    @classmethod
    async def accept(cls, ws: WebSocket, srv: Server) -> None:
        """Accept a client, or tell it the server (or its address's share) is full (1013); run it
        to the end."""
        await ws.accept()
        limits = srv.limits
        address = ws.client.host if ws.client else ""
        full = None
        if len(srv.sessions) >= limits.max_sessions:
            full = f"server full ({limits.max_sessions} clients); try again later"
        elif sum(a == address for a in srv.addresses.values()) >= limits.max_sessions_per_address:
            full = (f"{limits.max_sessions_per_address} sessions from your address already; close one "
                    "(another tab?) and try again")
        if full is not None:
            await ws.send_text(json.dumps(P.error(full)))
            await ws.close(1013)
            return
        s = Session(uuid.uuid4().hex[:8], srv.model.detector, srv.settings, srv.detect_every, srv.model_every,
                    limits.max_fps, limits.max_message_rate, max_people=limits.max_people)
        srv.sessions[s.id] = s
        srv.addresses[s.id] = address
        srv.stats["sessions_total"] += 1
        await cls(ws, srv, s).run()

    async def send(self, obj: dict) -> None:
        async with self.lock:
            await self.ws.send_text(json.dumps(obj))

    async def error(self, message: str, **extra) -> bool:
        """Tell this client; False once it has used up its errors (then it is closed)."""
        self.srv.count(self.s, "errors")
        await self.send(P.error(message, **extra))
        return self.s.stats["errors"] < self.srv.limits.max_errors

    def offer(self, job: Job) -> None:
        if self.s.offer(job):
            self.srv.stats["dropped"] += 1
        self.wake.set()

    async def run(self) -> None:
        s, srv, model = self.s, self.srv, self.srv.model
        await self.send(P.hello(s.id, model.classes, model.modalities, srv.settings.window, srv.limits,
                                srv.settings.spec.sample_rate))
        task = asyncio.create_task(self.worker())
        try:
            idle = srv.limits.idle_timeout
            while not task.done():
                try:   # an idle client (pings alone are idle) must not hold a session slot
                    left = self.active + idle - time.perf_counter()
                    if left <= 0:
                        raise asyncio.TimeoutError
                    msg = await asyncio.wait_for(self.ws.receive(), left)
                except asyncio.TimeoutError:
                    await self.send(P.error(f"no message for {idle:g} s (pings do not count); closing"))
                    await self.ws.close(1001)
                    break
                if msg["type"] == "websocket.disconnect":
                    break
                try:
                    await self.handle(msg)
                except BadInput as e:
                    if not await self.error(str(e)):
                        await self.ws.close(1008)
                        break
                except Exception as e:   # a bug on one message: this client is told and closed cleanly
                    log.warning("session %s: message failed: %r", s.id, e)
                    await self.send(P.error(f"internal error on this message ({type(e).__name__}); closing"))
                    await self.ws.close(1011)
                    break
        except Exception as e:  # the client went away mid-send, or the socket broke
            log.debug("session %s ended: %s", s.id, e)
        finally:
            task.cancel()
            if self.model_task is not None:
                self.model_task.cancel()
            srv.sessions.pop(s.id, None)
            srv.addresses.pop(s.id, None)

    async def handle(self, msg: dict) -> None:
        """One received message: rate and size checks, then a frame, audio, ping or audio-only request."""
        now = time.perf_counter()
        self.s.check_rate(now)
        m = P.parse_message(msg, self.srv.limits)
        if not isinstance(m, P.Ping):
            self.active = now
        if isinstance(m, P.FrameMsg):
            self.srv.count(self.s, "frames")
            self.offer(Job(m.frame_id, m.t, m.image, m.size, now))
        elif isinstance(m, P.AudioMsg):
            self.s.add_audio(m.samples, now)
        elif isinstance(m, P.Ping):
            await self.send(P.pong(m.t))
        else:
            self.offer(Job(m.frame_id, m.t, None, (0, 0), now))

    async def worker(self) -> None:
        """Answer the newest waiting frame, one at a time, at most `max_fps` per second."""
        s = self.s
        try:
            while True:
                await self.wake.wait()
                self.wake.clear()
                wait = s.start_in(time.perf_counter())
                if wait > 0:          # fairness: newer frames may replace this one meanwhile
                    await asyncio.sleep(wait)
                job = s.take(time.perf_counter())
                if job is not None and not await self.answer(job):
                    return
        except Exception as e:  # the socket broke mid-send: the receive loop ends the session
            log.debug("session %s: worker stopped: %s", s.id, e)

    async def answer(self, job: Job) -> bool:
        """One job in the frame pool, its answer sent, a model run started if due; False when
        the client used up its errors (closed)."""
        s, srv = self.s, self.srv
        audio = s.audio_window(s.last_start)
        try:
            out, work = await self.loop.run_in_executor(srv.pool, s.process, job, audio)
        except BadInput as e:
            if not await self.error(str(e), frame_id=job.frame_id):
                await self.ws.close(1008)
                return False
            return True
        except Exception as e:  # a bug or a decoder surprise: this client hears of it, the server goes on
            log.exception("session %s: frame %s failed", s.id, job.frame_id)
            await self.error(f"internal error on this frame ({type(e).__name__})", frame_id=job.frame_id)
            return True
        out["timings"]["total_ms"] = P.ms(time.perf_counter() - job.received)
        srv.count(s, "answered")
        await self.send(out)
        if s.model_due(job.data is None, self.model_task is not None, srv.model_inflight,
                       model_capacity(srv.model_workers)):
            self.model_task = asyncio.create_task(self.run_model(job, work))
        return True

    async def run_model(self, job: Job, work: ModelWork) -> None:
        """One model run for this client (at most one at a time); its label goes out when ready."""
        s, srv = self.s, self.srv
        t = time.perf_counter()
        srv.model_inflight += 1
        try:
            try:
                res, ms = await self.loop.run_in_executor(srv.model_pool, infer, srv.model, srv.settings, work)
            except Exception as e:  # a bug: this client hears of it, the server goes on
                log.exception("session %s: model run on frame %s failed", s.id, job.frame_id)
                await self.error(f"internal error in the model ({type(e).__name__})", frame_id=job.frame_id)
                return
            label = s.set_label(res.main, job.frame_id, ms, res.people, res.voice_alone, res.main_id)
            srv.stats["labels"] += 1
            now = time.perf_counter()
            timings = {"wait_ms": round((now - t) * 1000 - ms, 1), "model_ms": round(ms, 1),
                       "total_ms": P.ms(now - job.received)}
            feats = work.feats
            await self.send(P.label_message(job.frame_id, job.t, label, bool(feats.face_mask.any()),
                                            bool(feats.has_audio), timings, voice=bool(feats.voiced)))
        except Exception as e:  # the socket went away: the receive loop ends the session
            log.debug("session %s: label not sent: %s", s.id, e)
        finally:
            srv.model_inflight -= 1
            self.model_task = None


# ---------------------------------------------------------------- the command


def serve(model_path: str | None = None, host: str = HOST, port: int = PORT, device: str = "cpu",
          workers: int = WORKERS, limits: Limits = Limits(), detect_every: int = DETECT_EVERY,
          model_every: int = MODEL_EVERY, model_workers: int = MODEL_WORKERS, log_level: str = "info",
          allow_origins: Iterable[str] = (), idle_timeout: float | None = None) -> None:
    """Bind the address first (a wrong --host or a busy port is one line before anything else),
    load the model, pin each inference thread's libraries to its share of the cores, print the
    address actually bound, run uvicorn on that socket."""
    import uvicorn

    from ..faces import get_detector
    from ..inference import load_model
    from .conn import DeadlineProtocol, bind, url

    if idle_timeout is not None:
        from dataclasses import replace

        from ..options import number
        limits = replace(limits, idle_timeout=number("--idle-timeout", idle_timeout, 1, 3600))
    origins = P.normalize_origins(allow_origins)   # a bad --allow-origin fails before the model loads
    sock = bind(host, port)
    try:
        if host not in LOCAL_HOSTS:
            print(f"warning: serving on {host}: anyone who can reach this machine can use the server "
                  "(browsers only give the camera to https pages or localhost)", file=sys.stderr)
        threads = max(1, (os.cpu_count() or 1) // max(1, workers))
        model = load_model(model_path, device=device, threads=threads)
        spec = model.spec
        if spec.detector == "retinaface":   # sets the shared onnxruntime session's thread count
            get_detector("retinaface", side=spec.detect_side, threads=threads)
        model.detector(np.zeros((240, 320, 3), np.uint8))    # load and warm up before the first client
        model.predict(audio=np.zeros(spec.sample_rate, np.float32))
        from .. import web

        web.graphs(model_path)     # the on-device page's model: exported once now, not on its first visit
        app = create_app(model, limits, workers, detect_every, model_every, model_workers, host, origins,
                         model_path or "default")
        print(f"emolite: open {url(host, sock, LOCAL_HOSTS)} in a browser", file=sys.stderr)
        config = uvicorn.Config(app, log_level=log_level, ws_max_size=limits.ws_max_size, ws_max_queue=8,
                                ws_per_message_deflate=False, http=DeadlineProtocol,
                                limit_concurrency=max(HTTP_CONNECTIONS, limits.max_sessions + 32))
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
