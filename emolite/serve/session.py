"""One live client's state, without a socket: its sliding window of frames and audio, the
newest-frame-only slot (a newer frame replaces a waiting one and counts as dropped), its tracked
main face and every person's track (`crowd.py`), its message-rate bucket, and when its next
model run is due.

Why a server-side window: the model needs ~2 s of frames and audio, while a client sends one
frame and a few audio chunks at a time. Frames go through the library's own path
(`emolite.features.window_features`: detection, `faces.track`, crops, context) and the model
input through `emolite.inputs.clip_inputs`, as for files; every input setting comes from the
model (`live_settings`). The app (`app.py`) only moves messages and runs these methods in its
thread pools; everything here takes the time as an argument or measures it, so tests drive a
session directly.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from .. import media
from ..errors import EmoliteError
from ..faces import Detector, track
from ..features import Features, usable, window_features
from ..inference import EmotionModel, Prediction
from ..people import MAX_PEOPLE
from ..spec import InputSpec
from ..vad import voice_activity
from . import protocol as P
from .crowd import Crowd, LivePeople, PeopleResult, infer_one, infer_people
from .follow import FaceFollower

DETECT_EVERY = 3      # run the face detector on every k-th frame of a client, follow the box between
MODEL_EVERY = 3       # run the model on every k-th frame of a client (if its last run is done) ...
MODEL_QUEUE = 1       # ... and at most this many runs wait per model thread (labels come less often
MODEL_MAX_WAIT = 10   #     when the machine is busy, not later) unless a client waited this many frames
AUDIO_GRACE = 0.5     # s: audio that arrived longer ago than the window plus this is stale (muted mic)
LIVE_FPS = (1.0, 30.0)  # a client's measured frame rate is clipped to this range


@dataclass(frozen=True)
class LiveSettings:
    """The model's input record plus what live serving adds; read once from the model
    (`live_settings`), never hard-coded in serve."""

    spec: InputSpec             # crops, fps, sample rate, window, T frames, audio seconds: as trained
    modalities: tuple[str, ...]
    max_side: int = media.MAX_SIDE   # px: larger client frames are downscaled before detection

    @property
    def window(self) -> float:
        """Seconds of frames and audio per prediction."""
        return self.spec.window_seconds

    @property
    def fps(self) -> float:
        """Nominal frame rate: frame times inside a window (the memo's keys)."""
        return self.spec.fps

    @property
    def window_samples(self) -> int:
        return int(self.spec.window_seconds * self.spec.sample_rate)

    @property
    def use_video(self) -> bool:
        return any(m in self.modalities for m in ("face", "context"))

    @property
    def use_audio(self) -> bool:
        return "audio" in self.modalities


def live_settings(model: EmotionModel) -> LiveSettings:
    """The model's `InputSpec` and modalities; refuses a model that expects audio at another
    rate than clients send."""
    spec = model.spec
    if spec.sample_rate != P.SAMPLE_RATE:
        raise EmoliteError(f"this model expects {spec.sample_rate} Hz audio but serve's clients send "
                           f"{P.SAMPLE_RATE} Hz; use a model trained at {P.SAMPLE_RATE} Hz")
    return LiveSettings(spec, tuple(model.modalities))


@dataclass
class Job:
    """One frame (or audio-only predict request) waiting for, or in, a frame worker."""

    frame_id: int
    t: float
    data: bytes | None          # the image (None: an audio-only prediction)
    size: tuple[int, int]       # (width, height) from the image header
    received: float             # perf_counter on arrival


def downscale(frame: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """A frame with its longest side at most `max_side`, and the scale applied (1.0: untouched)."""
    h, w = frame.shape[:2]
    if max(h, w) <= max_side:
        return frame, 1.0
    import cv2

    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA), scale


def memo_key(t: float) -> float:
    """A frame time as `window_features` keys its memo."""
    return round(float(t), 4)


def model_capacity(model_workers: int) -> int:
    """Model runs that may be queued or running at once, all clients together."""
    return model_workers * (1 + MODEL_QUEUE)


@dataclass
class ModelWork:
    """What a model run on one answered frame's window needs, taken by the frame worker."""

    feats: Features             # the main face's window (crops, context, audio)
    fps: float | None           # the client's measured frame rate (None: no video)
    crowd: Crowd | None = None  # every person's boxes over the window (None: no video)


def infer(model: EmotionModel, settings: LiveSettings, work: ModelWork) -> tuple[PeopleResult, float]:
    """Model pool: voice activity on the window's audio (here, not per frame: it costs a few ms),
    the shared window -> inputs path, then one model call: the main face and the voice, or, with
    two or more people in the window, every person in one batch with the voice fused into the
    speaker only (`crowd.infer_people`). A window with neither a face nor voice gets no label
    (a Prediction with label None), as in analyze. Returns the result and ms."""
    t = time.perf_counter()
    feats = work.feats
    if feats.has_audio and "audio" in model.modalities:
        feats.voiced = voice_activity(feats.audio).voiced
    if not any(usable(feats, model.modalities).values()):
        return PeopleResult(Prediction(None, None, dict.fromkeys(model.classes)), []), (time.perf_counter() - t) * 1000
    crowd = work.crowd
    if crowd is not None and len(crowd.ids) >= 2:
        out = infer_people(model, settings.spec, feats, work.fps, crowd)
    else:
        out = infer_one(model, settings.spec, feats, work.fps, crowd)
    return out, (time.perf_counter() - t) * 1000


def prediction_fields(pred: Prediction) -> dict:
    """A prediction as sent: label, confidence, probs (4 decimals; None when there was no label)."""
    r = lambda v: None if v is None else round(v, 4)  # noqa: E731
    return {"label": pred.label, "confidence": r(pred.confidence), "probs": {c: r(v) for c, v in pred.probs.items()}}


class Session:
    """One client's window and tracking state. A frame worker owns the video fields (one job per
    session at a time); the event loop owns the audio, the pending slot and the counters."""

    def __init__(self, sid: str, detector: Detector, settings: LiveSettings, detect_every: int = DETECT_EVERY,
                 model_every: int = MODEL_EVERY, max_fps: float = P.MAX_FPS,
                 max_message_rate: float = P.MAX_MESSAGE_RATE, now: float | None = None,
                 max_people: int = MAX_PEOPLE):
        self.id = sid
        self.settings = settings
        self.detect = FaceFollower(detector, detect_every)
        self.people = LivePeople(max_people)
        self.model_every = model_every
        self.max_fps = max_fps
        self.rate = max_message_rate
        self.frames: deque = deque(maxlen=max(1, math.ceil(settings.window * max_fps)))  # (arrival, seq, frame)
        self.audio: deque = deque()                    # (arrival, float32 chunk)
        self.audio_samples = 0
        self.memo: dict = {}                           # window_features' memo: frame time -> (faces, context)
        self.seq = 0
        self.frame_shape: tuple | None = None
        self.prev_box: np.ndarray | None = None
        self.label: dict | None = None   # the latest model output: label, confidence, probs, frame_id, model_ms
        self.since_model = 1 << 30       # frames since the last model run started (the first frame runs it)
        self.pending: Job | None = None
        self.last_start = 0.0
        self.tokens, self.tokens_at = max_message_rate, time.perf_counter() if now is None else now
        self.stats = {"frames": 0, "answered": 0, "labels": 0, "dropped": 0, "errors": 0, "audio_chunks": 0}

    # ---- event loop side: messages, rate, the newest-frame slot

    def check_rate(self, now: float) -> None:
        """Token bucket: `max_message_rate` messages per second, bursts up to as many."""
        self.tokens = min(self.rate, self.tokens + (now - self.tokens_at) * self.rate)
        self.tokens_at = now
        if self.tokens < 1.0:
            raise P.BadInput(f"too many messages: at most {self.rate:g} per second")
        self.tokens -= 1.0

    def offer(self, job: Job) -> bool:
        """Put a job in the one waiting slot; True when it replaced (dropped) a waiting one."""
        dropped = self.pending is not None
        if dropped:
            self.stats["dropped"] += 1
        self.pending = job
        return dropped

    def start_in(self, now: float) -> float:
        """Seconds to wait before the next job starts (at most `max_fps` per second; <= 0: now)."""
        return self.last_start + 1.0 / self.max_fps - now

    def take(self, now: float) -> Job | None:
        """The waiting job (the newest), if any; it starts now."""
        job, self.pending = self.pending, None
        if job is not None:
            self.last_start = now
        return job

    def add_audio(self, x: np.ndarray, now: float) -> None:
        """Append a chunk; keep about two windows of audio."""
        self.audio.append((now, x))
        self.audio_samples += x.size
        self.stats["audio_chunks"] += 1
        limit = 2 * self.settings.window_samples
        while self.audio and self.audio_samples - self.audio[0][1].size >= limit:
            self.audio_samples -= self.audio.popleft()[1].size

    def audio_window(self, now: float) -> np.ndarray:
        """The last window of audio that arrived recently (a muted mic drops out, not stale audio)."""
        recent = [x for t, x in self.audio if t > now - self.settings.window - AUDIO_GRACE]
        if not recent:
            return np.zeros(0, np.float32)
        return np.concatenate(recent)[-self.settings.window_samples:]

    def model_due(self, audio_only: bool, busy: bool, inflight: int, capacity: int) -> bool:
        """After each answered frame: start a model run now? Every `model_every`-th frame (every
        audio-only request) when this client's last run is done and the model pool has room;
        a client that waited `MODEL_MAX_WAIT` frames gets a run even when the pool is full."""
        self.since_model += 1
        room = inflight < capacity or self.since_model >= MODEL_MAX_WAIT
        if not busy and (self.since_model >= self.model_every or audio_only) and room:
            self.since_model = 0
            return True
        return False

    def set_label(self, pred: Prediction, frame_id: int, model_ms: float,
                  people: list[tuple] = (), voice_alone: Prediction | None = None, main_id: int | None = None) -> dict:
        """Keep a finished model run as this client's latest label (sent with every answer):
        the main face's, each person's (id, box, prediction, speaker), which of them is the main
        face, and the voice's own."""
        self.label = {**prediction_fields(pred), "frame_id": frame_id, "model_ms": round(model_ms, 1), "main_person": main_id,
                      "people": [P.person(p, box, prediction_fields(pr), spoke) for p, box, pr, spoke in people],
                      "voice_alone": None if voice_alone is None else prediction_fields(voice_alone)}
        self.stats["labels"] += 1
        return self.label

    def people_now(self, newest: dict, scale: float) -> list[dict]:
        """Every person in the newest frame: its box (client px) and its latest label, if any yet."""
        labels = {e["id"]: e for e in (self.label or {}).get("people", [])}
        return [P.person(p, P.client_box(f.box, scale), labels.get(p),
                         bool(labels.get(p, {}).get("speaker"))) for p, f in sorted(newest.items())]

    # ---- frame worker side: the window, the face, the answer

    def reset_video(self) -> None:
        self.frames.clear()
        self.memo.clear()
        self.prev_box = None
        self.detect.reset()
        self.people.reset()       # ids restart: the last labels no longer name these people
        if self.label is not None:
            self.label = {**self.label, "people": [], "main_person": None}

    def add_frame(self, frame: np.ndarray, received: float) -> None:
        """Append a decoded frame; drop frames older than the window. A new frame size (the
        client changed resolution) starts a new window."""
        if frame.shape != self.frame_shape:
            self.reset_video()
            self.frame_shape = frame.shape
        self.seq += 1
        self.frames.append((received, self.seq, frame))
        while self.frames and self.frames[0][0] < received - self.settings.window:
            self.frames.popleft()

    def frame_rate(self) -> float:
        """The client's real frame rate over the window (from arrival times), so the model's T
        frames are spread over the same seconds as the audio."""
        f = self.frames
        if len(f) < 2 or f[-1][0] <= f[0][0]:
            return self.settings.fps
        return float(np.clip((len(f) - 1) / (f[-1][0] - f[0][0]), *LIVE_FPS))

    def window(self, with_video: bool, audio: np.ndarray) -> media.Window:
        """The current window as the library's `media.Window`: frames at nominal times seq/fps."""
        s = self.settings
        w = media.Window(0.0, 0.0)
        if with_video and s.use_video and self.frames:
            seqs = np.array([q for _, q, _ in self.frames], np.float64)
            w.frames = np.stack([f for _, _, f in self.frames])
            w.times = seqs / s.fps
            w.start, w.end = float(w.times[0]), float(w.times[-1] + 1 / s.fps)
        if s.use_audio and audio.size > 0:
            w.audio = audio
        if not w.has_video and not w.has_audio:
            raise P.BadInput("nothing to predict from yet: send frames or audio first")
        return w

    def features(self, window: media.Window) -> Features:
        """Faces, crops and context for the window through the library (each frame once, via the memo)."""
        s = self.settings
        spec = s.spec
        feats = window_features(window, self.detect if s.use_video else None, spec.face_size, spec.context_size,
                                spec.margin, spec.align, prev_box=self.prev_box, memo=self.memo, fps=spec.fps)
        keep = {memo_key(t) for t in window.times}
        for k in [k for k in self.memo if k not in keep]:
            del self.memo[k]
        return feats

    def newest_box(self, feats: Features, window: media.Window) -> np.ndarray | None:
        """The face box to show for the newest frame. Usually the window's tracked face; but when
        the face jumped (a fast move breaks the frame-to-frame link) the longer, older track wins
        the window and has no box now: then the main face of the newest frame's own detections,
        by `faces.track`'s rule (continuing the last box shown)."""
        if not feats.has_video:
            return None
        if feats.face_mask[-1]:
            box = feats.boxes[-1].copy()
        else:
            newest = self.memo.get(memo_key(window.times[-1]), ([], None))[0]
            main = track([newest], feats.frame_size, self.prev_box)[0] if newest else None
            box = None if main is None else np.asarray(main.box, np.float32).copy()
        if box is not None:
            self.prev_box = box
        return box

    def process(self, job: Job, audio: np.ndarray) -> tuple[dict, ModelWork]:
        """Frame worker: decode, add to the window, detect or follow the faces, track the people.
        Returns the client's answer and what a model run on this window needs."""
        t0 = time.perf_counter()
        scale = 1.0
        if job.data is not None:
            frame, scale = downscale(P.decode_image(job.data, job.size), self.settings.max_side)
            self.add_frame(frame, job.received)
        t1 = time.perf_counter()
        window = self.window(job.data is not None, audio)
        feats = self.features(window)
        box = self.newest_box(feats, window)
        newest = self.people.track(window, self.memo) if feats.has_video else {}
        t2 = time.perf_counter()
        timings = {"queue_ms": P.ms(t0 - job.received), "decode_ms": P.ms(t1 - t0), "detect_ms": P.ms(t2 - t1),
                   "model_ms": self.label["model_ms"] if self.label else 0.0}
        out = P.prediction(job.frame_id, job.t, P.client_box(box, scale),
                           job.size if job.data is not None else None, self.label, bool(feats.has_audio),
                           self.stats["dropped"], timings, self.people_now(newest, scale),
                           (self.label or {}).get("voice_alone"))
        if not feats.has_video:
            return out, ModelWork(feats, None)
        return out, ModelWork(feats, self.frame_rate(), self.people.crowd(window, self.memo, scale))
