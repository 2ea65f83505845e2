"""The wire protocol of `emolite serve`: message formats, limits, and the checks that turn a
client's bytes into typed messages (or a `BadInput` whose text goes back to that client).

Pure functions, no sockets and no per-client state, so every hostile input is testable alone.

WebSocket protocol (`/ws`)
--------------------------
Client -> server, binary messages: 1-byte type, then the payload (little-endian numbers).

  0x01 frame   u32 frame_id | f64 client_time_ms | JPEG or PNG bytes (e.g. 320 px wide)
  0x02 audio   int16 PCM, 16 kHz mono (any number of samples up to the chunk limit)
  0x03 audio   float32 PCM in [-1, 1], 16 kHz mono

Client -> server, text messages (JSON objects):

  {"type": "ping", "t": any}                     -> {"type": "pong", "t": same} (not activity:
                                                   see idle_timeout)
  {"type": "audio_only", "id": int, "t": float}  -> a prediction and a label from the audio window
                                                   alone, for clients without a camera ("predict",
                                                   its former name, is still accepted)

Server -> client (JSON text):

  {"type": "hello", "session": str, "classes": [...], "modalities": [...], "limits": {...},
   "window_s": the model's window in seconds (3.0 for the default model)}
  {"type": "prediction", "frame_id": int, "t": echo of client_time_ms, "face_box": [x1, y1,
   x2, y2] in the client's frame pixels or null, "frame_size": [w, h] (null for "audio_only"),
   "label": str, "confidence": float, "probs": {class: p} (this client's latest label; null
   until its first), "main_person": the id of the person that label is about (null: no
   tracked person), "label_frame_id": the frame that label was computed at, "has_audio": bool,
   "dropped": int (frames of this client replaced before processing, so far),
   "people": [person, ...] (every tracked person in this frame, by id; [] for "audio_only"),
   "voice_alone": {"label", "confidence", "probs"} or null (see below),
   "timings": {"queue_ms", "decode_ms", "detect_ms", "model_ms" (of that label), "total_ms"}}
      -- one per frame, right after detection
  {"type": "label", "frame_id": int, "t": echo, "label", "confidence", "probs", "main_person", "face_found",
   "has_audio", "voice": bool (speech in the window's audio), "people": [person, ...] (everyone
   in the window; "box" is their last box in it), "voice_alone",
   "timings": {"wait_ms", "model_ms", "total_ms" (frame arrival -> label sent)}}
      -- the model's output for the window ending at that frame (every k-th frame)

  person = {"id": int (stable for this client while the person stays in view or comes back
            within seconds; from 1; ids restart when the frame size changes), "box": [x1, y1,
            x2, y2] in the client's frame pixels, "label", "confidence", "probs" (this person's
            latest label; null until their first model run), "speaker": bool (the voice was
            attributed to this person in that run)}

Every face is tracked (up to `limits.max_people`, `emolite serve --max-people`, default and most
people.MAX_PEOPLE, the largest first; a face gets an id from its
second detection). With at most one person in the window the model runs as it always did: the
main face plus the voice, and that person's entry repeats that label. With two or more, every
person's face is labelled in one batched model call and the voice is fused only into the
person whose mouth is seen moving (`people.speaker`); when nobody can be told, the voice is
labelled on its own ("voice_alone") and nobody gets it. The top-level "face_box", "label",
"confidence" and "probs" stay the main face's (the one `faces.track` follows): with several
people its label is that person's entry (the voice included only when they are the speaker).
  {"type": "error", "message": str[, "frame_id": int]}   (only to the client that caused it)

Round-trip latency = client clock now - echoed `t` (for a "label": from that frame's capture
to its label). After `max_errors` errors a client is
closed with code 1008; beyond `max_sessions` clients, or `max_sessions_per_address` from one
address, a new client gets an error and code 1013.
Messages over `max_message` bytes get an error; uvicorn closes the connection (1009) for
messages over 2 x max_message before they reach the app. A client that sends nothing for
`idle_timeout` seconds is closed (1001), so idle clients cannot hold the session slots; pings
do not count (a client that only pings is idle). A text message that is not JSON this server
reads (not JSON, nested too deep, an integer of thousands of digits) gets an error like any
other bad message.

HTTP: GET / (the page), GET /health, and, with an image, audio or video file as multipart field
`file`: POST /classify (the file's overall label, its face box and one row per window, JSON for
programs; POST /predict, its former name, still answers) and POST /analyze (the same rows and
the timeline plot as a PNG data URL, for the page). Both list the windows as "windows".
A request head must arrive within 10 s and a request body within 10 s plus 1 s per 16 KiB
(`conn.py`); slower clients are closed.

Who may use it: every request must name this server in its Host header (localhost, an IP
address, the `--host` name or an allowed origin's host: a DNS-rebinding page names its own
domain and is refused), and a WebSocket or POST that carries an Origin must come from the
server's own page or an `--allow-origin` one (any other page a user visits is refused).
/health lists each client's statistics only when asked from this machine.
"""

from __future__ import annotations

import ipaddress
import json
import math
import struct
from dataclasses import dataclass
from urllib.parse import urlsplit

import numpy as np

from .. import media
from ..people import MAX_PEOPLE
from ..options import OptionError

SAMPLE_RATE = media.SAMPLE_RATE  # Hz of the PCM clients send: the rate the library decodes files at
MAX_MESSAGE = 1 << 20            # bytes per WebSocket message (a 320 px JPEG is ~20 KB)
MAX_FRAME_PIXELS = 1280 * 720    # per frame, checked from the image header before decoding
MAX_UPLOAD = 50 << 20            # bytes per uploaded file
MAX_UPLOAD_SECONDS = 300.0       # media duration per upload (a small file can hold hours)
MAX_UPLOAD_PIXELS = 3840 * 2160  # uploaded images and video frames
MAX_SESSIONS = 16                # concurrent WebSocket clients
MAX_SESSIONS_PER_ADDRESS = 4     # of them from one client address (a few tabs; not every slot)
MAX_AUDIO_CHUNK = SAMPLE_RATE    # samples per audio message (1 s)
MAX_ERRORS = 50                  # errors before a client is disconnected
MAX_MESSAGE_RATE = 100.0         # messages per second per client (the page sends ~9): floods get errors
MAX_FPS = 10.0                   # frames processed per second per client (fairness between clients)
IDLE_TIMEOUT = 30.0              # s without a message before a client is closed (the page sends ~9/s)
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
FRAME_HEADER = struct.Struct("<Id")   # frame_id, client_time_ms after the type byte
T_FRAME, T_PCM16, T_PCM32 = 0x01, 0x02, 0x03
JPEG_SOF = (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF)


@dataclass(frozen=True)
class Limits:
    """What one server accepts; fixed per app, sent to each client in "hello"."""

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
    idle_timeout: float = IDLE_TIMEOUT
    max_people: int = MAX_PEOPLE          # faces tracked and labelled at once per client
    max_sessions_per_address: int = MAX_SESSIONS_PER_ADDRESS

    @property
    def ws_max_size(self) -> int:
        """uvicorn's hard cap: larger messages close the connection (1009) before the app sees them."""
        return 2 * self.max_message


class BadInput(ValueError):
    """A client message the server refuses; its text goes back to that client."""


@dataclass(frozen=True)
class FrameMsg:
    """0x01: one camera frame, its header checked; the image is decoded later, in a worker."""

    frame_id: int
    t: float
    image: bytes
    size: tuple[int, int]     # (width, height) from the image header


@dataclass(frozen=True)
class AudioMsg:
    """0x02 / 0x03: PCM as float32 in [-1, 1]."""

    samples: np.ndarray


@dataclass(frozen=True)
class Ping:
    t: object


@dataclass(frozen=True)
class AudioOnlyMsg:
    """A prediction from the audio window alone (clients without a camera)."""

    frame_id: int
    t: float


Message = FrameMsg | AudioMsg | Ping | AudioOnlyMsg


# ---------------------------------------------------------------- client -> server


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
        if m in JPEG_SOF:
            if i + 7 > n:
                return None
            h, w = struct.unpack(">HH", data[i + 3:i + 7])
            return w, h
        i += max(seg, 2)
    return None


def check_image(data: bytes, max_pixels: int) -> tuple[int, int]:
    """The image's (width, height) if its header is a JPEG/PNG within `max_pixels`."""
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
    """JPEG/PNG bytes (header already checked) -> H×W×3 RGB uint8; the decoded size must match
    the header (a truncated file can decode to something else)."""
    import cv2

    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None or (img.shape[1], img.shape[0]) != size:
        raise BadInput("frame could not be decoded (corrupt or truncated image)")
    return np.ascontiguousarray(img[..., ::-1])


def parse_frame(payload: bytes, limits: Limits) -> tuple[int, float, tuple[int, int]]:
    """A frame payload (after the type byte) -> frame_id, client time, image (width, height)."""
    if len(payload) < FRAME_HEADER.size + 8:
        raise BadInput(f"frame message too short: needs a {FRAME_HEADER.size}-byte header (u32 frame_id, "
                       "f64 client time) and the image")
    frame_id, t = FRAME_HEADER.unpack_from(payload)
    if not math.isfinite(t):
        raise BadInput("frame client time is not a finite number")
    return frame_id, t, check_image(payload[FRAME_HEADER.size:], limits.max_frame_pixels)


def parse_pcm(kind: int, payload: bytes, limits: Limits) -> np.ndarray:
    """An audio payload (after the type byte) -> float32 samples in [-1, 1]."""
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


def parse_binary(data: bytes, limits: Limits) -> FrameMsg | AudioMsg:
    """A binary WebSocket message -> a frame or an audio chunk."""
    if not data:
        raise BadInput("empty binary message")
    kind = data[0]
    if kind == T_FRAME:
        frame_id, t, size = parse_frame(data[1:], limits)
        return FrameMsg(frame_id, t, bytes(data[1 + FRAME_HEADER.size:]), size)
    if kind in (T_PCM16, T_PCM32):
        return AudioMsg(parse_pcm(kind, data[1:], limits))
    raise BadInput(f"unknown message type 0x{kind:02x}: expected 0x01 (JPEG frame), "
                   "0x02 (int16 PCM) or 0x03 (float32 PCM)")


def parse_text(text: str) -> Ping | AudioOnlyMsg:
    """A text WebSocket message (a JSON object) -> a ping or an audio-only request."""
    try:
        obj = json.loads(text or "")
    except ValueError as e:   # not JSON, or an integer over Python's digit limit (a ValueError too)
        why = "an integer with too many digits" if "digits" in str(e) else "not valid JSON"
        raise BadInput(f"text message is {why}; send a JSON object such as {{\"type\": \"ping\"}}") from None
    except RecursionError:
        raise BadInput("text message is JSON nested too deeply to be read") from None
    if not isinstance(obj, dict):
        raise BadInput("JSON message must be an object with a \"type\"")
    kind = obj.get("type")
    if kind == "ping":
        return Ping(obj.get("t"))
    if kind in ("audio_only", "predict"):   # "predict": its former name
        return AudioOnlyMsg(*_id_and_time(obj.get("id", 0), obj.get("t", 0.0)))
    raise BadInput(f"unknown message type {str(kind)[:40]!r}: expected \"ping\" or \"audio_only\"")


def _id_and_time(fid: object, t: object) -> tuple[int, float]:
    """An audio-only request's id (a u32, as a frame's) and time (a finite number)."""
    try:
        ok = (isinstance(fid, int) and not isinstance(fid, bool) and 0 <= fid < 1 << 32
              and isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(float(t)))
    except OverflowError:   # an integer too large for a float
        ok = False
    if not ok:
        raise BadInput("audio_only needs an integer \"id\" (0 to 2^32-1) and a finite number \"t\"")
    return fid, float(t)


def parse_message(msg: dict, limits: Limits) -> Message:
    """An ASGI WebSocket receive event ({"bytes": ...} or {"text": ...}) -> a typed message;
    the size limit first, so nothing large is parsed."""
    data, text = msg.get("bytes"), msg.get("text")
    size = len(data) if data is not None else len(text.encode()) if text is not None else 0
    if size > limits.max_message:
        raise BadInput(f"message of {size} bytes is over the limit of {limits.max_message} bytes")
    return parse_binary(data, limits) if data is not None else parse_text(text)


# ---------------------------------------------------------------- who may connect


def host_name(header: str | None) -> str:
    """The host of a Host header or URL netloc, without port or IPv6 brackets, lower case."""
    h = (header or "").strip().lower()
    if h.startswith("["):
        return h[1:h.find("]")] if "]" in h else h
    return h.rsplit(":", 1)[0] if h.count(":") == 1 else h


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


def host_allowed(header: str | None, hosts: frozenset[str]) -> bool:
    """Whether a request's Host names this server: one of `hosts` or an IP address. (A DNS
    rebinding page reaches the server under its own domain name, which is not listed.)"""
    name = host_name(header)
    return bool(name) and (name in hosts or _is_ip(name))


def origin_allowed(origin: str | None, host_header: str | None, origins: frozenset[str]) -> bool:
    """Whether a request may come from the page at `origin`: none given (not a browser page),
    the server's own page (same host:port as the request), or an allowed origin."""
    if origin is None:
        return True
    o = origin.strip().lower().rstrip("/")
    if o in origins:
        return True
    parts = urlsplit(o)
    return parts.scheme in ("http", "https") and bool(parts.netloc) and parts.netloc == (host_header or "").strip().lower()


def allowed_hosts(host: str | None, origins: frozenset[str]) -> frozenset[str]:
    """Host names the server answers to: this machine's, the bound name, and allowed origins' hosts."""
    extra = {host_name(urlsplit(o).netloc) for o in origins} | ({host_name(host)} if host else set())
    return LOCAL_HOSTS | {h for h in extra if h}


def normalize_origins(origins) -> frozenset[str]:
    """--allow-origin values as compared: scheme://host[:port], lower case, no trailing slash."""
    out = set()
    for o in origins or ():
        parts = urlsplit(str(o).strip().lower())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise OptionError(f"--allow-origin {o!r} is not an origin like https://example.org")
        out.add(f"{parts.scheme}://{parts.netloc}")
    return frozenset(out)


# ---------------------------------------------------------------- server -> client


def hello(session: str, classes: list[str], modalities: list[str], window_s: float, limits: Limits,
          sample_rate: int = SAMPLE_RATE) -> dict:
    """The first message: what the model knows and what this server accepts."""
    return {"type": "hello", "session": session, "classes": classes, "modalities": modalities,
            "window_s": window_s,
            "limits": {"max_message": limits.max_message, "max_frame_pixels": limits.max_frame_pixels,
                       "max_audio_chunk": limits.max_audio_chunk, "max_fps": limits.max_fps,
                       "max_message_rate": limits.max_message_rate, "sample_rate": sample_rate,
                       "max_people": limits.max_people}}


def pong(t: object) -> dict:
    return {"type": "pong", "t": t}


def error(message: str, **extra) -> dict:
    return {"type": "error", "message": message, **extra}


def label_fields(label: dict | None) -> dict:
    """A client's latest label as message fields (all None before its first)."""
    keys = ("label", "confidence", "probs", "main_person")
    return {**{k: (label or {}).get(k) for k in keys}, "label_frame_id": label["frame_id"] if label else None}


def client_box(box, scale: float) -> list[float] | None:
    """A box in analysed-frame pixels -> the client's frame pixels (frames are analysed at
    `scale` × the client's size), rounded as sent; None stays None."""
    return None if box is None else [round(float(v) / scale, 1) for v in box]


def person(pid: int, box: list[float] | None, label: dict | None, speaker: bool) -> dict:
    """One tracked person as sent: id, box (client px) and their latest label (None before it)."""
    return {"id": int(pid), "box": box, **{k: (label or {}).get(k) for k in ("label", "confidence", "probs")},
            "speaker": bool(speaker)}


def prediction(frame_id: int, t: float, face_box: list[float] | None, frame_size: tuple[int, int] | None,
               label: dict | None, has_audio: bool, dropped: int, timings: dict,
               people: list[dict] | None = None, voice_alone: dict | None = None) -> dict:
    """The answer to one frame (or predict request), sent right after detection; `people`:
    every person in this frame (see `person`)."""
    return {"type": "prediction", "frame_id": frame_id, "t": t, "face_box": face_box,
            "frame_size": list(frame_size) if frame_size is not None else None, **label_fields(label),
            "has_audio": has_audio, "dropped": dropped, "people": people or [], "voice_alone": voice_alone,
            "timings": timings}


def label_message(frame_id: int, t: float, label: dict, face_found: bool, has_audio: bool, timings: dict,
                  voice: bool = False) -> dict:
    """A new label: the model's output for the window ending at that frame (label null when the
    window had neither a face nor voice); `voice`: speech was found in the window's audio;
    every person's label and the voice's own, as kept by the session."""
    return {"type": "label", "frame_id": frame_id, "t": t, **label_fields(label), "face_found": face_found,
            "has_audio": has_audio, "voice": voice, "people": label.get("people", []),
            "voice_alone": label.get("voice_alone"), "timings": timings}


def ms(seconds: float) -> float:
    """Seconds -> milliseconds as sent (0.1 ms resolution)."""
    return round(seconds * 1000, 1)
