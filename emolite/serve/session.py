"""One live client's state, without a socket: its sliding window of frames and audio, the
newest-frame-only slot (a newer frame replaces a waiting one and counts as dropped), its tracked
main face and every person's track (`crowd.py`), its message-rate bucket, and when its next
model run is due.

Why a server-side window: the model needs ~2 s of frames and audio, while a client sends one
frame and a few audio chunks at a time. A frame's time is its capture time on the client's clock
(`frame_time`: the spacing it was taken at, whatever the network did). Frames are sampled onto
the model's grid by the rule media uses for files (`emolite.grid`: T frames per window, the
detection cadence analyze uses), go through the library's own path
(`emolite.features.window_features`: detection, `faces.track`, crops, context) and the one
inference core (`emolite.core`), so a client sending a file's frames with their times gets
analyze's answer (tests/test_parity.py); every input setting comes from the model
(`live_settings`). Between detections the box shown for each client frame follows the face by
template matching (`follow.FaceFollower`): display only, the model never sees it. The app
(`app.py`) only moves messages and runs these methods in its thread pools; everything here takes
the time as an argument or measures it, so tests drive a session directly.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from .. import core, grid, media
from ..errors import EmoliteError
from ..faces import Detector, Face, track
from ..features import Features, usable, window_features
from ..grid import GridSampler, frame_key, model_rate
from ..inference import EmotionModel, Prediction
from ..people import MAX_PEOPLE
from ..spec import InputSpec
from . import protocol as P
from .crowd import Crowd, LivePeople, PeopleResult, infer_one, infer_people
from .follow import FaceFollower

DETECT_EVERY = 3      # the box shown: the detector on every k-th client frame, followed between
MODEL_EVERY = 3       # run the model on every k-th frame of a client (if its last run is done) ...
MODEL_QUEUE = 1       # ... and at most this many runs wait per model thread (labels come less often
MODEL_MAX_WAIT = 10   #     when the machine is busy, not later) unless a client waited this many frames
AUDIO_GRACE = 0.5     # s: audio that arrived longer ago than the window plus this is stale (muted mic)


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
    def rate(self) -> float:
        """The model's frame grid (samples per second): T frames per window, as analyze samples."""
        return model_rate(self.spec.frames, self.spec.window_seconds)

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
    t: float                    # client_time_ms: the frame's capture time on the client's clock
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


def model_capacity(model_workers: int) -> int:
    """Model runs that may be queued or running at once, all clients together."""
    return model_workers * (1 + MODEL_QUEUE)


@dataclass
class ModelWork:
    """What a model run on one answered frame's window needs, taken by the frame worker."""

    feats: Features             # the main face's window (crops, context, audio; frames on the grid)
    crowd: Crowd | None = None  # every person's boxes over the window (None: no video)


def infer(model: EmotionModel, settings: LiveSettings, work: ModelWork) -> tuple[PeopleResult, float]:
    """Model pool: the one inference core (`emolite.core`: the voice check on the window's
    audio, here, not per frame; inputs; one model call): the main face and the voice, or, with
    two or more people in the window, every person in one batch with the voice fused into the
    speaker only (`crowd.infer_people`). A window with neither a face nor voice gets no label
    (a Prediction with label None), as in analyze. Returns the result and ms."""
    t = time.perf_counter()
    feats = work.feats
    core.voice(feats, model.modalities)
    if not any(usable(feats, model.modalities).values()):
        return PeopleResult(Prediction(None, None, dict.fromkeys(model.classes)), []), (time.perf_counter() - t) * 1000
    crowd = work.crowd
    if crowd is not None and len(crowd.ids) >= 2:
        out = infer_people(model, settings.spec, feats, crowd)
    else:
        out = infer_one(model, settings.spec, feats, crowd)
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
        self.detector = detector
        self.detect = FaceFollower(detector, detect_every)
        self.grid = GridSampler(settings.rate, settings.window)
        self.grid_every = grid.detect_every(max_people > 1)   # the grid's cadence: analyze's (--people)
        self.people = LivePeople(max_people)
        self.model_every = model_every
        self.max_fps = max_fps
        self.rate = max_message_rate
        self.frames: deque = deque(maxlen=settings.spec.frames + 1)   # (grid time, frame): the model's window
        self.newest: np.ndarray | None = None          # the last client frame (shown; maybe not on the grid)
        self.newest_grid: list[float] = []             # the grid times it filled
        self.audio: deque = deque()                    # (arrival, float32 chunk)
        self.audio_samples = 0
        self.memo: dict = {}                           # window_features' memo: frame key -> (faces, context, ran)
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
        self.grid.reset()
        self.newest, self.newest_grid = None, []
        self.prev_box = None
        self.detect.reset()
        self.people.reset()       # ids restart: the last labels no longer name these people
        if self.label is not None:
            self.label = {**self.label, "people": [], "main_person": None}

    def frame_time(self, job: Job) -> float:
        """A frame's time in seconds: the client's capture time (client_time_ms). A clock that
        goes back more than a window (the client restarted it) starts a new window; one that
        is not finite falls back to the arrival time."""
        t = job.t / 1000.0 if math.isfinite(job.t) and abs(job.t) < 1e15 else job.received
        if self.frames and t < self.frames[-1][0] - self.settings.window:
            self.reset_video()
        return t

    def add_frame(self, frame: np.ndarray, t: float) -> None:
        """A decoded frame at time t (its arrival): the newest frame shown, and on the model's
        grid at every grid time it fills (`grid.GridSampler`); grid samples older than the
        window drop out. A new frame size (the client changed resolution) starts a new window."""
        if frame.shape != self.frame_shape:
            self.reset_video()
            self.frame_shape = frame.shape
        self.newest, self.newest_grid = frame, self.grid.push(t)
        for g in self.newest_grid:
            self.frames.append((g, frame))
        while self.frames and self.frames[0][0] <= self.frames[-1][0] - self.settings.window + 1e-6:
            self.frames.popleft()

    def window(self, with_video: bool, audio: np.ndarray) -> media.Window:
        """The current window as the library's `media.Window`: the grid samples at their times."""
        s = self.settings
        w = media.Window(0.0, 0.0)
        if with_video and s.use_video and self.frames:
            w.frames = np.stack([f for _, f in self.frames])
            w.times = np.array([g for g, _ in self.frames], np.float64)
            w.start, w.end = float(w.times[0]), float(w.times[-1] + 1 / s.rate)
        if s.use_audio and audio.size > 0:
            w.audio = audio
        if not w.has_video and not w.has_audio:
            raise P.BadInput("nothing to predict from yet: send frames or audio first")
        return w

    def features(self, window: media.Window) -> Features:
        """Faces, crops and context for the window through the library, as analyze cuts them
        (each grid sample once, via the memo; the detector by `grid.detect_due`)."""
        s = self.settings
        spec = s.spec
        feats = window_features(window, self.detector if s.use_video else None, spec.face_size, spec.context_size,
                                spec.margin, spec.align, memo=self.memo, detect_every=self.grid_every, fps=s.rate)
        keep = {frame_key(t) for t in window.times}
        for k in [k for k in self.memo if k not in keep]:
            del self.memo[k]
        return feats

    def shown_faces(self) -> list[Face]:
        """The faces in the newest client frame: the grid's detections when the detector just
        ran on it, else the follower's (detector every k-th frame, template matching between)."""
        if self.newest is None:
            return []
        for g in self.newest_grid:
            faces, _, ran = self.memo.get(frame_key(g), (None, None, False))
            if ran:                         # one detector run per frame at most
                self.detect.seed(self.newest, faces)
                return faces
        return self.detect(self.newest)

    def newest_box(self, faces: list[Face]) -> np.ndarray | None:
        """The face box to show for the newest frame: its main face by `faces.track`'s rule,
        continuing the last box shown."""
        main = track([faces], self.newest.shape[:2], self.prev_box)[0] if faces else None
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
            self.add_frame(frame, self.frame_time(job))
        t1 = time.perf_counter()
        window = self.window(job.data is not None, audio)
        feats = self.features(window)
        shown = self.shown_faces() if feats.has_video else []
        box = self.newest_box(shown) if feats.has_video else None
        people = self.people.track(window, self.memo, shown) if feats.has_video else {}
        t2 = time.perf_counter()
        timings = {"queue_ms": P.ms(t0 - job.received), "decode_ms": P.ms(t1 - t0), "detect_ms": P.ms(t2 - t1),
                   "model_ms": self.label["model_ms"] if self.label else 0.0}
        out = P.prediction(job.frame_id, job.t, P.client_box(box, scale),
                           job.size if job.data is not None else None, self.label, bool(feats.has_audio),
                           self.stats["dropped"], timings, self.people_now(people, scale),
                           (self.label or {}).get("voice_alone"))
        if not feats.has_video:
            return out, ModelWork(feats)
        return out, ModelWork(feats, self.people.crowd(window, self.memo, scale))

