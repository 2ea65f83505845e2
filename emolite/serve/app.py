"""`emolite serve`: a browser page sends webcam frames + microphone audio over one WebSocket and
gets live emotion predictions back; uploads reuse `emolite.analyze`.

Why this shape: the model needs a ~2 s window of frames and audio, so each client has a small
server-side state (its window, its tracked face, its detector memo). Work runs in two small
fixed thread pools, never on the event loop. The frame path (decode, face detection or
tracking, ~5-20 ms) answers every frame at once with the face box and the client's latest
label; the model (~30 ms, more on a busy machine) runs beside it on every k-th frame in its own
pool and sends each new label when it is ready, so a model run never delays a box. Each client
has at most one frame job and one model job running and one frame waiting (a newer frame
replaces the waiting one and counts as dropped): a slow server answers the newest frame late
rather than every frame later and later, and memory is bounded by clients x window.

WebSocket protocol (`/ws`)
--------------------------
Client -> server, binary messages: 1-byte type, then the payload (little-endian numbers).

  0x01 frame   u32 frame_id | f64 client_time_ms | JPEG or PNG bytes (e.g. 320 px wide)
  0x02 audio   int16 PCM, 16 kHz mono (any number of samples up to the chunk limit)
  0x03 audio   float32 PCM in [-1, 1], 16 kHz mono

Client -> server, text messages (JSON objects):

  {"type": "ping", "t": any}                  -> {"type": "pong", "t": same}
  {"type": "predict", "id": int, "t": float}  -> a prediction and a label from the audio window
                                                alone (for clients without a camera)

Server -> client (JSON text):

  {"type": "hello", "session": str, "classes": [...], "modalities": [...], "limits": {...}, "window_s": 2.0}
  {"type": "prediction", "frame_id": int, "t": echo of client_time_ms, "face_box": [x1, y1,
   x2, y2] in the client's frame pixels or null, "frame_size": [w, h] (null for "predict"),
   "label": str, "confidence": float, "probs": {class: p} (this client's latest label; null
   until its first), "label_frame_id": the frame that label was computed at, "has_audio": bool,
   "dropped": int (frames of this client replaced before processing, so far),
   "timings": {"queue_ms", "decode_ms", "detect_ms", "model_ms" (of that label), "total_ms"}}
      -- one per frame, right after detection
  {"type": "label", "frame_id": int, "t": echo, "label", "confidence", "probs", "face_found",
   "has_audio", "timings": {"wait_ms", "model_ms", "total_ms" (frame arrival -> label sent)}}
      -- the model's output for the window ending at that frame (every k-th frame)
  {"type": "error", "message": str[, "frame_id": int]}   (only to the client that caused it)

Round-trip latency = client clock now - echoed `t` (for a "label": from that frame's capture
to its label). After `max_errors` errors a client is
closed with code 1008; beyond `max_sessions` a new client gets an error and code 1013.
Messages over `max_message` bytes get an error; uvicorn closes the connection (1009) for
messages over 2 x max_message before they reach the app.

HTTP: GET / (the page), GET /health, POST /predict and POST /analyze (multipart field `file`).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import math
import os
import struct
import sys
import tempfile
import time
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from fastapi import FastAPI, File, HTTPException, Request, UploadFile, WebSocket
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from .. import analyze
from .. import inputs as I
from .. import media
from ..errors import EmoliteError
from ..features import window_features
from ..inference import EmotionModel

HOST = "127.0.0.1"
PORT = 8000
MAX_MESSAGE = 1 << 20            # bytes per WebSocket message (a 320 px JPEG is ~20 KB)
MAX_FRAME_PIXELS = 1280 * 720    # per frame, checked from the image header before decoding
MAX_UPLOAD = 50 << 20            # bytes per uploaded file
MAX_UPLOAD_SECONDS = 300.0       # media duration per upload (a small file can hold hours)
MAX_UPLOAD_PIXELS = 3840 * 2160  # uploaded images and video frames
MAX_SESSIONS = 16                # concurrent WebSocket clients
MAX_AUDIO_CHUNK = 16000          # samples per audio message (1 s)
MAX_ERRORS = 50                  # errors before a client is disconnected
MAX_MESSAGE_RATE = 100.0         # messages per second per client (the page sends ~9): floods get errors
MAX_FPS = 10.0                   # frames processed per second per client (fairness between clients)
MAX_PENDING_UPLOADS = 2          # uploads running or waiting; more get 503
WORKERS = 2                      # frame threads: decode + face detection (about the number of cores)
MODEL_WORKERS = 1                # model threads: labels queue here under load while boxes stay prompt
DETECT_EVERY = 3                 # run the face detector on every k-th frame of a client, reuse the box between
FOLLOW_MIN_SCORE = 0.7           # template match needed to move a face box without the detector
MODEL_EVERY = 3                  # run the model on every k-th frame of a client (if its last run is done) ...
MODEL_QUEUE = 1                  # ... and at most this many runs wait per model thread (labels come less often
MODEL_MAX_WAIT = 10              #     when the machine is busy, not later) unless a client waited this many frames
WINDOW = analyze.WINDOW          # s of frames and audio per prediction (as analyze)
NOMINAL_FPS = 5.0                # frame times inside a session's window (the memo's keys)
MAX_WINDOW_FRAMES = 20           # frames kept per client, whatever its frame rate
PROC_SIDE = 640                  # px: larger client frames are downscaled before detection
SAMPLE_RATE = 16000
FRAME_HEADER = struct.Struct("<Id")   # frame_id, client_time_ms after the type byte
T_FRAME, T_PCM16, T_PCM32 = 0x01, 0x02, 0x03
STATIC = Path(__file__).parent / "static"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
CSP = ("default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob: mediastream:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")

log = logging.getLogger("emolite.serve")


@dataclass(frozen=True)
class Limits:
    max_message: int = MAX_MESSAGE
    max_frame_pixels: int = MAX_FRAME_PIXELS
    max_upload: int = MAX_UPLOAD
    max_upload_seconds: float = MAX_UPLOAD_SECONDS
    max_upload_pixels: int = MAX_UPLOAD_PIXELS
    max_sessions: int = MAX_SESSIONS
    max_audio_chunk: int = MAX_AUDIO_CHUNK
    max_errors: int = MAX_ERRORS
    max_fps: float = MAX_FPS
    max_message_rate: float = MAX_MESSAGE_RATE

    @property
    def ws_max_size(self) -> int:
        """uvicorn's hard cap: larger messages close the connection (1009) before the app sees them."""
        return 2 * self.max_message


class BadInput(ValueError):
    """A client message the server refuses; its text goes back to that client."""


# ---------------------------------------------------------------- hostile-input checks


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's SOF or a PNG's IHDR header, without decoding; None otherwise.

    Why: a few hundred bytes can declare a 60000×60000 image; decoding it would allocate 10 GB."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 24:
        w, h = struct.unpack(">II", data[16:24])
        return w, h
    if data[:2] != b"\xff\xd8":
        return None
    i, n = 2, len(data)
    for _ in range(1000):
        while i < n and data[i] != 0xFF:
            i += 1
        while i < n and data[i] == 0xFF:
            i += 1
        if i + 1 >= n:
            return None
        m = data[i]
        i += 1
        if m == 0x01 or 0xD0 <= m <= 0xD8:
            continue
        if m == 0xD9 or i + 2 > n:
            return None
        seg = struct.unpack(">H", data[i:i + 2])[0]
        if m in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            if i + 7 > n:
                return None
            h, w = struct.unpack(">HH", data[i + 3:i + 7])
            return w, h
        i += max(seg, 2)
    return None


def check_image(data: bytes, max_pixels: int) -> tuple[int, int]:
    size = image_size(data)
    if size is None:
        raise BadInput("frame is not a JPEG or PNG image")
    w, h = size
    if w <= 0 or h <= 0:
        raise BadInput(f"frame declares an empty image ({w}x{h})")
    if w * h > max_pixels:
        raise BadInput(f"frame of {w}x{h} pixels is over the limit of {max_pixels} pixels; send it downscaled")
    return w, h


def decode_image(data: bytes, size: tuple[int, int]) -> np.ndarray:
    """JPEG/PNG bytes (header already checked) -> H×W×3 RGB uint8."""
    import cv2

    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None or (img.shape[1], img.shape[0]) != size:
        raise BadInput("frame could not be decoded (corrupt or truncated image)")
    return np.ascontiguousarray(img[..., ::-1])


def parse_frame(payload: bytes, limits: Limits) -> tuple[int, float, tuple[int, int]]:
    if len(payload) < FRAME_HEADER.size + 8:
        raise BadInput(f"frame message too short: needs a {FRAME_HEADER.size}-byte header (u32 frame_id, "
                       "f64 client time) and the image")
    frame_id, t = FRAME_HEADER.unpack_from(payload)
    if not math.isfinite(t):
        raise BadInput("frame client time is not a finite number")
    return frame_id, t, check_image(payload[FRAME_HEADER.size:], limits.max_frame_pixels)


def parse_pcm(kind: int, payload: bytes, limits: Limits) -> np.ndarray:
    width = 2 if kind == T_PCM16 else 4
    if not payload:
        raise BadInput("empty audio message")
    if len(payload) % width:
        raise BadInput(f"audio message of {len(payload)} bytes is not a whole number of "
                       f"{'int16' if width == 2 else 'float32'} samples")
    if len(payload) // width > limits.max_audio_chunk:
        raise BadInput(f"audio chunk too long: {len(payload) // width} samples, at most {limits.max_audio_chunk}")
    if kind == T_PCM16:
        return np.frombuffer(payload, "<i2").astype(np.float32) / 32768.0
    x = np.frombuffer(payload, "<f4").astype(np.float32)
    if not np.isfinite(x).all():
        raise BadInput("audio holds NaN or infinite samples")
    return np.clip(x, -1.0, 1.0)


# ---------------------------------------------------------------- per-client state


def follow_faces(prev: np.ndarray, cur: np.ndarray, faces: list) -> list | None:
    """Move each face box from `prev` to `cur` by matching its patch in a nearby search area;
    None when any match is poor (the detector must look again)."""
    import cv2

    from ..faces import Face

    a, b = cv2.cvtColor(prev, cv2.COLOR_RGB2GRAY), cv2.cvtColor(cur, cv2.COLOR_RGB2GRAY)
    h, w = a.shape
    out = []
    for f in faces[:4]:
        x1, y1, x2, y2 = (int(round(v)) for v in f.box)
        x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
        if x2 - x1 < 8 or y2 - y1 < 8:
            return None
        m = max(x2 - x1, y2 - y1) // 2        # search this far in every direction
        sx1, sy1, sx2, sy2 = max(0, x1 - m), max(0, y1 - m), min(w, x2 + m), min(h, y2 + m)
        score = cv2.matchTemplate(b[sy1:sy2, sx1:sx2], a[y1:y2, x1:x2], cv2.TM_CCOEFF_NORMED)
        _, best, _, (bx, by) = cv2.minMaxLoc(score)
        if not best >= FOLLOW_MIN_SCORE:
            return None
        d = np.array([sx1 + bx - x1, sy1 + by - y1], np.float32)
        out.append(Face(f.box + np.tile(d, 2), f.score, None if f.landmarks is None else f.landmarks + d))
    return out



@dataclass
class Job:
    frame_id: int
    t: float
    data: bytes | None          # the image (None: an audio-only prediction)
    size: tuple[int, int]
    received: float             # perf_counter on arrival


class Session:
    """One client's window and tracking state. The worker thread owns the video fields (one job
    per session at a time); the event loop owns the audio and the pending slot."""

    def __init__(self, sid: str, detector, detect_every: int):
        self.id = sid
        self.frames: deque = deque(maxlen=MAX_WINDOW_FRAMES)   # (arrival, seq, frame)
        self.audio: deque = deque()                            # (arrival, float32 chunk)
        self.audio_samples = 0
        self.memo: dict = {}
        self.seq = 0
        self.prev_box: np.ndarray | None = None
        self.label: dict | None = None          # the latest model output: label, confidence, probs, frame_id, model_ms
        self.since_model = 1 << 30              # frames since the last model run started (the first frame runs it)
        self.model_task: asyncio.Task | None = None
        self.frame_shape: tuple | None = None
        self.pending: Job | None = None
        self.tokens, self.tokens_at = 0.0, 0.0   # message-rate bucket
        self.wake = asyncio.Event()
        self.last_start = 0.0
        self.stats = {"frames": 0, "answered": 0, "labels": 0, "dropped": 0, "errors": 0, "audio_chunks": 0}
        self._detector = detector
        self._detect_every = max(1, detect_every)
        self._det_calls = 0
        self._last_dets: list = []
        self._last_frame: np.ndarray | None = None

    def detect(self, frame: np.ndarray) -> list:
        """The detector on every k-th frame; between, the previous faces moved by template matching
        (~1 ms instead of ~15). A poor match (a jump, a turn) or no face falls back to detection."""
        self._det_calls += 1
        if self._last_dets and self._det_calls % self._detect_every and self._last_frame is not None \
                and self._last_frame.shape == frame.shape:
            moved = follow_faces(self._last_frame, frame, self._last_dets)
            if moved is not None:
                self._last_dets, self._last_frame = moved, frame
                return moved
        self._last_dets, self._last_frame = self._detector(frame), frame
        return self._last_dets

    def add_audio(self, x: np.ndarray, now: float, limit: int) -> None:
        self.audio.append((now, x))
        self.audio_samples += x.size
        while self.audio and self.audio_samples - self.audio[0][1].size >= limit:
            self.audio_samples -= self.audio.popleft()[1].size

    def audio_window(self, now: float) -> np.ndarray:
        """The last WINDOW s of audio that arrived recently (a muted mic drops out, not stale audio)."""
        recent = [x for t, x in self.audio if t > now - WINDOW - 0.5]
        if not recent:
            return np.zeros(0, np.float32)
        return np.concatenate(recent)[-int(WINDOW * SAMPLE_RATE):]

    def reset_video(self) -> None:
        self.frames.clear()
        self.memo.clear()
        self.prev_box = None
        self._last_dets, self._last_frame = [], None


def newest_box(feats, newest_dets: list, prev_box: np.ndarray | None) -> np.ndarray | None:
    """The face box to show for the newest frame. Usually the window's tracked face; but when the
    face jumped (a fast move breaks the frame-to-frame link) the longer, older track wins the
    window and has no box now: then the newest frame's own detection nearest the last box."""
    if not feats.has_video:
        return None
    if feats.face_mask[-1]:
        return feats.boxes[-1].copy()
    if not newest_dets:
        return None
    from ..faces import iou

    best = max(newest_dets, key=lambda f: (iou(f.box, prev_box) if prev_box is not None else 0.0, f.area))
    return np.asarray(best.box, np.float32).copy()


def frame_rate(frames: deque) -> float:
    """The client's real frame rate over the window (from arrival times), so the model's T frames
    are spread over the same seconds as the audio."""
    if len(frames) < 2 or frames[-1][0] <= frames[0][0]:
        return NOMINAL_FPS
    return float(np.clip((len(frames) - 1) / (frames[-1][0] - frames[0][0]), 1.0, 30.0))


def process_frame(model: EmotionModel, s: Session, job: Job, audio: np.ndarray) -> tuple[dict, object, float | None]:
    """Frame pool: decode, add to the window, detect or follow the face. Returns the client's
    answer and what a model run on this window needs (features, frame rate)."""
    import cv2

    t0 = time.perf_counter()
    use_video = any(m in model.modalities for m in ("face", "context"))
    use_audio = "audio" in model.modalities and audio.size > 0
    scale = 1.0
    if job.data is not None:
        frame = decode_image(job.data, job.size)
        h, w = frame.shape[:2]
        if max(h, w) > PROC_SIDE:
            scale = PROC_SIDE / max(h, w)
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        if frame.shape != s.frame_shape:   # the client changed resolution: start a new window
            s.reset_video()
            s.frame_shape = frame.shape
        s.seq += 1
        s.frames.append((job.received, s.seq, frame))
        while s.frames and s.frames[0][0] < job.received - WINDOW:
            s.frames.popleft()
    t1 = time.perf_counter()
    window = media.Window(0.0, 0.0)
    if job.data is not None and use_video:
        seqs = np.array([q for _, q, _ in s.frames], np.float64)
        window.frames = np.stack([f for _, _, f in s.frames])
        window.times = seqs / NOMINAL_FPS
        window.start, window.end = float(window.times[0]), float(window.times[-1] + 1 / NOMINAL_FPS)
    if use_audio:
        window.audio = audio
    if not window.has_video and not window.has_audio:
        raise BadInput("nothing to predict from yet: send frames or audio first")
    p = model.preprocessing
    feats = window_features(window, s.detect if use_video else None, p["face_size"], p["context_size"], p["margin"],
                            p["align"], prev_box=s.prev_box, memo=s.memo, fps=NOMINAL_FPS)
    keep = {round(float(t), 4) for t in window.times}
    for k in [k for k in s.memo if k not in keep]:
        del s.memo[k]
    box = newest_box(feats, s.memo.get(round(float(window.times[-1]), 4), ([], None))[0] if feats.has_video else [],
                     s.prev_box)
    if box is not None:
        s.prev_box = box
        box = [round(float(v) / scale, 1) for v in box]
    t2 = time.perf_counter()
    out = {"type": "prediction", "frame_id": job.frame_id, "t": job.t, "face_box": box,
           "frame_size": list(job.size) if job.data is not None else None, **label_fields(s.label),
           "has_audio": bool(feats.has_audio), "dropped": s.stats["dropped"],
           "timings": {"queue_ms": round((t0 - job.received) * 1000, 1), "decode_ms": round((t1 - t0) * 1000, 1),
                       "detect_ms": round((t2 - t1) * 1000, 1),
                       "model_ms": s.label["model_ms"] if s.label else 0.0}}
    return out, feats, frame_rate(s.frames) if feats.has_video else None


def label_fields(label: dict | None) -> dict:
    keys = ("label", "confidence", "probs")
    return {**{k: (label or {}).get(k) for k in keys}, "label_frame_id": label["frame_id"] if label else None}


def infer(model: EmotionModel, feats, fps: float | None) -> tuple[np.ndarray, float]:
    """Model pool: the shared window -> inputs path, then one model call. Returns probs, ms."""
    t = time.perf_counter()
    x = I.clip_inputs(feats.face, feats.face_mask, feats.context, feats.audio, model.frames, model.seconds,
                      feats.has_video, feats.has_audio, fps=fps)
    probs = model.predict_inputs(I.stack([x]))[0]
    return probs, (time.perf_counter() - t) * 1000


# ---------------------------------------------------------------- the app


def create_app(model: EmotionModel, limits: Limits = Limits(), workers: int = WORKERS,
               detect_every: int = DETECT_EVERY, model_every: int = MODEL_EVERY, model_workers: int = MODEL_WORKERS):
    """The FastAPI app for one loaded model. Limits and pool sizes are fixed per app."""
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="emolite-frames")
    model_pool = ThreadPoolExecutor(max_workers=max(1, model_workers), thread_name_prefix="emolite-model")
    upload_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="emolite-upload")
    sessions: dict[str, Session] = {}
    stats = {"sessions_total": 0, "frames": 0, "answered": 0, "labels": 0, "dropped": 0, "errors": 0, "uploads": 0}
    uploads = {"active": 0}
    models = {"inflight": 0}     # model runs queued or running, all clients

    @asynccontextmanager
    async def lifespan(app):
        yield
        pool.shutdown(wait=False, cancel_futures=True)
        model_pool.shutdown(wait=False, cancel_futures=True)
        upload_pool.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="emolite", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.model, app.state.limits, app.state.sessions, app.state.stats = model, limits, sessions, stats
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.middleware("http")
    async def guard(request: Request, call_next):
        """Refuse oversized bodies from the header, before anything is read; set the page's CSP."""
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

    @app.get("/")
    async def index():
        return FileResponse(STATIC / "index.html")

    @app.get("/health")
    async def health():
        return {"status": "ok", "classes": model.classes, "backend": model.backend,
                "modalities": model.modalities, "sessions": len(sessions), "max_sessions": limits.max_sessions,
                "workers": workers, "limits": {**asdict(limits), "ws_max_size": limits.ws_max_size},
                "stats": {**stats, "uploads_active": uploads["active"], "model_runs_inflight": models["inflight"]},
                "clients": [{"session": s.id, **s.stats} for s in sessions.values()]}

    async def run_upload(upload: UploadFile, fn):
        """Save the upload (bounded), check it, and run `fn(path, name)` in the upload thread."""
        if uploads["active"] >= MAX_PENDING_UPLOADS:
            raise HTTPException(503, "busy with other uploads; try again shortly")
        uploads["active"] += 1
        tmpdir = tempfile.TemporaryDirectory(prefix="emolite-upload-")
        try:
            name = Path(upload.filename or "upload").name[-120:] or "upload"
            ext = Path(name).suffix.lower()
            if ext not in media.MEDIA_EXTS or ext in media.IMAGE_EXTS - {".jpg", ".jpeg", ".png"}:
                raise HTTPException(415, f"unsupported file type {ext or '(none)'!r}: send a video, an audio "
                                         "file, or a JPEG/PNG image")
            path = Path(tmpdir.name) / f"upload{ext}"
            size = 0
            with open(path, "wb") as f:
                while chunk := await upload.read(1 << 20):
                    size += len(chunk)
                    if size > limits.max_upload:
                        raise HTTPException(413, f"upload over the limit of {limits.max_upload} bytes")
                    f.write(chunk)
            if size == 0:
                raise HTTPException(400, "the uploaded file is empty")
            t0 = time.perf_counter()
            loop = asyncio.get_running_loop()
            out = await loop.run_in_executor(upload_pool, lambda: fn(path, name))
            stats["uploads"] += 1
            return {**out, "seconds": round(time.perf_counter() - t0, 3)}
        except HTTPException:
            raise
        except EmoliteError as e:
            raise HTTPException(400, str(e).replace(e.path, name) if e.path else str(e)) from None
        except Exception as e:  # a decoder surprise in one upload must not take the server down
            log.exception("upload %r failed", upload.filename)
            raise HTTPException(422, f"could not analyse this file ({type(e).__name__})") from None
        finally:
            uploads["active"] -= 1
            await upload.close()
            tmpdir.cleanup()

    def analyze_upload(path: Path, name: str) -> analyze.Result:
        check_upload(path, limits)
        r = analyze.analyze_file(model, path)
        r.path = name
        return r

    @app.post("/predict")
    async def predict(file: UploadFile = File(...)):
        """One prediction for a whole file (image, audio or video), for programs."""
        def fn(path, name):
            r = analyze_upload(path, name)
            box = next((w.face_box for w in r.windows if w.face_box), None)
            return {"file": name, "label": r.label, "confidence": r.confidence, "probs": r.probs,
                    "face_box": box, "modalities": r.modalities, "faces_found": r.faces_found,
                    "warnings": r.warnings, "windows": [analyze.window_row(name, w) for w in r.windows]}
        return await run_upload(file, fn)

    @app.post("/analyze")
    async def analyze_endpoint(file: UploadFile = File(...)):
        """The analyze timeline: window rows and the plot as a PNG data URL."""
        def fn(path, name):
            r = analyze_upload(path, name)
            png = analyze.plot_timeline(r, path.with_name("plot.png")).read_bytes()
            return {"file": name, "label": r.label, "confidence": r.confidence, "probs": r.probs,
                    "modalities": r.modalities, "warnings": r.warnings,
                    "rows": [analyze.window_row(name, w) for w in r.windows],
                    "plot_png": "data:image/png;base64," + base64.b64encode(png).decode()}
        return await run_upload(file, fn)

    @app.websocket("/ws")
    async def ws_endpoint(ws: WebSocket):
        await ws.accept()
        if len(sessions) >= limits.max_sessions:
            await ws.send_text(json.dumps({"type": "error", "message": f"server full ({limits.max_sessions} "
                                                                       "clients); try again later"}))
            await ws.close(1013)
            return
        s = Session(uuid.uuid4().hex[:8], model.detector, detect_every)
        s.tokens, s.tokens_at = limits.max_message_rate, time.perf_counter()
        sessions[s.id] = s
        stats["sessions_total"] += 1
        await run_session(ws, s)

    async def run_session(ws, s: Session) -> None:
        lock = asyncio.Lock()
        loop = asyncio.get_running_loop()

        async def send(obj: dict) -> None:
            async with lock:
                await ws.send_text(json.dumps(obj))

        async def error(message: str, **extra) -> bool:
            """Tell this client; False once it has used up its errors (then it is closed)."""
            s.stats["errors"] += 1
            stats["errors"] += 1
            await send({"type": "error", "message": message, **extra})
            return s.stats["errors"] < limits.max_errors

        def offer(job: Job) -> None:
            if s.pending is not None:
                s.stats["dropped"] += 1
                stats["dropped"] += 1
            s.pending = job
            s.wake.set()

        async def run_model(job: Job, feats, fps: float | None) -> None:
            """One model run for this client (at most one at a time); its label goes out when ready."""
            t = time.perf_counter()
            models["inflight"] += 1
            try:
                try:
                    probs, ms = await loop.run_in_executor(model_pool, infer, model, feats, fps)
                except Exception as e:  # a bug: this client hears of it, the server goes on
                    log.exception("session %s: model run on frame %s failed", s.id, job.frame_id)
                    await error(f"internal error in the model ({type(e).__name__})", frame_id=job.frame_id)
                    return
                pred = model.to_prediction(probs)
                s.label = {"label": pred.label, "confidence": round(pred.confidence, 4),
                           "probs": {c: round(v, 4) for c, v in pred.probs.items()}, "frame_id": job.frame_id,
                           "model_ms": round(ms, 1)}
                s.stats["labels"] += 1
                stats["labels"] += 1
                now = time.perf_counter()
                await send({"type": "label", "frame_id": job.frame_id, "t": job.t, **label_fields(s.label),
                            "face_found": bool(feats.face_mask.any()), "has_audio": bool(feats.has_audio),
                            "timings": {"wait_ms": round((now - t) * 1000 - ms, 1), "model_ms": round(ms, 1),
                                        "total_ms": round((now - job.received) * 1000, 1)}})
            except Exception as e:  # the socket went away: the receive loop ends the session
                log.debug("session %s: label not sent: %s", s.id, e)
            finally:
                models["inflight"] -= 1
                s.model_task = None

        async def worker() -> None:
            try:
                while True:
                    await s.wake.wait()
                    s.wake.clear()
                    wait = s.last_start + 1.0 / limits.max_fps - time.perf_counter()
                    if wait > 0:          # fairness: newer frames may replace this one meanwhile
                        await asyncio.sleep(wait)
                    job, s.pending = s.pending, None
                    if job is None:
                        continue
                    s.last_start = time.perf_counter()
                    audio = s.audio_window(s.last_start)
                    try:
                        out, feats, fps = await loop.run_in_executor(pool, process_frame, model, s, job, audio)
                    except BadInput as e:
                        if not await error(str(e), frame_id=job.frame_id):
                            await ws.close(1008)
                            return
                        continue
                    except Exception as e:  # a bug or a decoder surprise: this client hears of it, the server goes on
                        log.exception("session %s: frame %s failed", s.id, job.frame_id)
                        await error(f"internal error on this frame ({type(e).__name__})", frame_id=job.frame_id)
                        continue
                    out["timings"]["total_ms"] = round((time.perf_counter() - job.received) * 1000, 1)
                    s.stats["answered"] += 1
                    stats["answered"] += 1
                    await send(out)
                    s.since_model += 1
                    room = models["inflight"] < model_workers * (1 + MODEL_QUEUE) or s.since_model >= MODEL_MAX_WAIT
                    if s.model_task is None and (s.since_model >= model_every or job.data is None) and room:
                        s.since_model = 0
                        s.model_task = asyncio.create_task(run_model(job, feats, fps))
            except Exception as e:  # the socket broke mid-send: the receive loop ends the session
                log.debug("session %s: worker stopped: %s", s.id, e)

        async def handle(msg: dict) -> None:
            now = time.perf_counter()
            rate = limits.max_message_rate
            s.tokens = min(rate, s.tokens + (now - s.tokens_at) * rate)
            s.tokens_at = now
            if s.tokens < 1.0:
                raise BadInput(f"too many messages: at most {rate:g} per second")
            s.tokens -= 1.0
            data, text = msg.get("bytes"), msg.get("text")
            size = len(data) if data is not None else len(text.encode()) if text is not None else 0
            if size > limits.max_message:
                raise BadInput(f"message of {size} bytes is over the limit of {limits.max_message} bytes")
            if data is not None:
                if not data:
                    raise BadInput("empty binary message")
                kind = data[0]
                if kind == T_FRAME:
                    frame_id, t, wh = parse_frame(data[1:], limits)
                    s.stats["frames"] += 1
                    stats["frames"] += 1
                    offer(Job(frame_id, t, bytes(data[1 + FRAME_HEADER.size:]), wh, now))
                elif kind in (T_PCM16, T_PCM32):
                    s.add_audio(parse_pcm(kind, data[1:], limits), now, int(WINDOW * SAMPLE_RATE) * 2)
                    s.stats["audio_chunks"] += 1
                else:
                    raise BadInput(f"unknown message type 0x{kind:02x}: expected 0x01 (JPEG frame), "
                                   "0x02 (int16 PCM) or 0x03 (float32 PCM)")
                return
            try:
                obj = json.loads(text or "")
            except (json.JSONDecodeError, RecursionError):
                raise BadInput("text message is not valid JSON") from None
            if not isinstance(obj, dict):
                raise BadInput("JSON message must be an object with a \"type\"")
            kind = obj.get("type")
            if kind == "ping":
                await send({"type": "pong", "t": obj.get("t")})
            elif kind == "predict":
                fid, t = obj.get("id", 0), obj.get("t", 0.0)
                if not isinstance(fid, int) or not isinstance(t, (int, float)) or not math.isfinite(t):
                    raise BadInput("predict needs an integer \"id\" and a number \"t\"")
                offer(Job(fid, float(t), None, (0, 0), now))
            else:
                raise BadInput(f"unknown message type {str(kind)[:40]!r}: expected \"ping\" or \"predict\"")

        await send({"type": "hello", "session": s.id, "classes": model.classes, "modalities": model.modalities,
                    "window_s": WINDOW,
                    "limits": {"max_message": limits.max_message, "max_frame_pixels": limits.max_frame_pixels,
                               "max_audio_chunk": limits.max_audio_chunk, "max_fps": limits.max_fps,
                               "max_message_rate": limits.max_message_rate,
                               "sample_rate": SAMPLE_RATE}})
        task = asyncio.create_task(worker())
        try:
            while not task.done():
                msg = await ws.receive()
                if msg["type"] == "websocket.disconnect":
                    break
                try:
                    await handle(msg)
                except BadInput as e:
                    if not await error(str(e)):
                        await ws.close(1008)
                        break
        except Exception as e:  # the client went away mid-send, or the socket broke
            log.debug("session %s ended: %s", s.id, e)
        finally:
            task.cancel()
            if s.model_task is not None:
                s.model_task.cancel()
            sessions.pop(s.id, None)

    return app


def check_upload(path: Path, limits: Limits) -> None:
    """Refuse uploads that are small on disk but huge to decode: pixel bombs, hours of video."""
    if path.suffix.lower() in (".jpg", ".jpeg", ".png"):
        size = image_size(path.read_bytes())
        if size is None:
            raise EmoliteError("not a JPEG/PNG image (unreadable header)")
        if size[0] * size[1] > limits.max_upload_pixels:
            raise EmoliteError(f"image of {size[0]}x{size[1]} pixels is over the limit of {limits.max_upload_pixels}")
        return
    info = media.probe(path)
    if info["duration"] > limits.max_upload_seconds:
        raise EmoliteError(f"media of {info['duration']:.0f} s is over the limit of {limits.max_upload_seconds:.0f} s")
    for st in info["streams"]:
        if st.get("type") == "video" and (st.get("width") or 0) * (st.get("height") or 0) > limits.max_upload_pixels:
            raise EmoliteError(f"video of {st['width']}x{st['height']} pixels is over the limit")
    if info["kind"] == "unknown":
        raise EmoliteError("no audio or video stream this FFmpeg can decode")


def serve(model_path: str | None = None, host: str = HOST, port: int = PORT, device: str = "cpu",
          workers: int = WORKERS, limits: Limits = Limits(), detect_every: int = DETECT_EVERY,
          model_every: int = MODEL_EVERY, model_workers: int = MODEL_WORKERS, log_level: str = "info") -> None:
    """Load the model, pin each inference thread's libraries to its share of the cores, run uvicorn."""
    import uvicorn

    from ..faces import get_detector
    from ..inference import load_model

    if host not in LOCAL_HOSTS:
        print(f"warning: serving on {host}: anyone who can reach this machine can use the server "
              "(browsers only give the camera to https pages or localhost)", file=sys.stderr)
    threads = max(1, (os.cpu_count() or 1) // max(1, workers))
    model = load_model(model_path, device=device, threads=threads)
    pre = model.preprocessing
    if pre["detector"] == "retinaface":   # sets the shared onnxruntime session's thread count
        get_detector("retinaface", side=pre["detect_side"], threads=threads)
    model.detector(np.zeros((240, 320, 3), np.uint8))    # load and warm up before the first client
    model.predict(audio=np.zeros(SAMPLE_RATE, np.float32))
    app = create_app(model, limits, workers, detect_every, model_every, model_workers)
    print(f"emolite: open http://{'localhost' if host in LOCAL_HOSTS else host}:{port}/ in a browser", file=sys.stderr)
    uvicorn.run(app, host=host, port=port, log_level=log_level, ws_max_size=limits.ws_max_size, ws_max_queue=8,
                ws_per_message_deflate=False, limit_concurrency=limits.max_sessions + 32)
