"""The one implementation of "window -> model input arrays", shared by preprocess, analyze and serve.

A window's frames go through the detector and the tracker; every frame gives a face crop
(zeros + mask=False when no face) and a letterboxed context image; audio passes through,
cleaned of NaN/inf samples. Whether it holds a voice is
decided once per window by `emolite.core` (the one voice-activity rule), not here. The
detection cadence and the frame keys are `emolite.grid`'s. A still image is its own path
(`still=True`), not a window of zero length.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from . import faces as F
from .grid import detect_due, frame_key
from .media import FPS, Window
from .people import PeopleTracker, mouth_motion
from .vad import finite_audio


@dataclass
class Features:
    """Model-ready arrays for one window (uint8 images, float32 audio) plus what was found."""

    face: np.ndarray            # N×S×S×3 uint8
    face_mask: np.ndarray       # N bool
    context: np.ndarray         # N×C×C×3 uint8
    boxes: np.ndarray           # N×4 float32 (x1, y1, x2, y2 in frame pixels; NaN without a face)
    audio: np.ndarray           # float32 at 16 kHz, empty without audio
    has_video: bool
    has_audio: bool
    frame_size: tuple[int, int] = (0, 0)   # H, W of the analysed frames
    voiced: bool | None = None             # speech in the audio (None: not checked; see emolite.core)
    times: np.ndarray = field(default_factory=lambda: np.zeros(0))   # N frame times (s)
    step: float = 1.0 / FPS                # s each frame shows for (the sampling grid's step)
    still: bool = False                    # one still image, not a window of video

    def arrays(self) -> dict:
        """The arrays the cache stores (see cache.write_entry)."""
        return {"face": self.face, "face_mask": self.face_mask, "context": self.context,
                "boxes": self.boxes, "audio": self.audio}


def window_features(window: Window, detector: F.Detector | None, face_size: int = F.FACE_SIZE,
                    context_size: int = F.CONTEXT_SIZE, margin: float = F.MARGIN, align: bool = False,
                    prev_box: np.ndarray | None = None, memo: dict | None = None,
                    detect_every: int = 1, fps: float = FPS, still: bool = False) -> Features:
    """Detect + track the main face over the window's frames and cut the model's inputs.

    `memo` (frame key -> (detections, context image, detector ran)) lets overlapping windows
    process each frame once; the caller drops old keys. `detect_every=k` runs the detector on
    every k-th sample of the `fps` grid only (`grid.detect_due`): the tracker interpolates the
    boxes between. `still`: the window is one still image (`still_features`)."""
    audio = window_audio(window)
    if not window.has_video:
        z = np.zeros((0, face_size, face_size, 3), np.uint8)
        return Features(z, np.zeros(0, bool), np.zeros((0, context_size, context_size, 3), np.uint8),
                        np.zeros((0, 4), np.float32), audio, False, window.has_audio,
                        step=1.0 / fps)
    dets, contexts, _ = detect_frames(window, detector, context_size, memo, detect_every, fps, still)
    main = F.track(dets, window.frames.shape[1:3], prev_box)
    f = _crops(window, main, np.stack(contexts), audio, face_size, margin, align)
    return replace(f, still=still, step=1.0 / fps)


def still_features(image: np.ndarray, detector: F.Detector | None, face_size: int = F.FACE_SIZE,
                   context_size: int = F.CONTEXT_SIZE, margin: float = F.MARGIN, align: bool = False) -> Features:
    """One still image (a photo, a dataset crop): its main face and context, no audio."""
    return window_features(still_window(image), detector, face_size, context_size, margin, align, still=True)


def still_window(image: np.ndarray) -> Window:
    """A still image as a one-frame Window at time 0 (pass `still=True` with it)."""
    return Window(0.0, 0.0, image[None], np.zeros(1), None)


def window_audio(window: Window) -> np.ndarray:
    """The window's audio as finite float32 (empty without audio); the caller counts and
    reports NaN/inf samples once (analyze's warnings, predict's notes)."""
    if not window.has_audio:
        return np.zeros(0, np.float32)
    return finite_audio(window.audio)[0]


def detect_frames(window: Window, detector: F.Detector | None, context_size: int, memo: dict | None,
                  detect_every: int, fps: float, still: bool = False
                  ) -> tuple[list[list[F.Face]], list[np.ndarray], list[bool]]:
    """Detections, context image and whether the detector ran, for each of the window's frames
    (memoised by `grid.frame_key`: overlapping windows share frames)."""
    memo = {} if memo is None else memo
    dets, contexts, ran = [], [], []
    for t, f in zip(window.times, window.frames):
        k = frame_key(t)
        if k not in memo:
            run = detector is not None and detect_due(t, fps, detect_every)
            memo[k] = (detector(f) if run else [], F.letterbox(f, context_size), run)
        dets.append(memo[k][0])
        contexts.append(memo[k][1])
        ran.append(memo[k][2])
    frames = window.frames
    if detector is not None and still and not dets[0] and max(frames.shape[1:3]) <= F.SMALL_IMAGE:
        dets = [[F.whole_face(frames[0])]]  # a small still with no detection: a dataset crop (CK+ 48×48)
    return dets, contexts, ran


def _crops(window: Window, track: list[F.Face | None], context: np.ndarray, audio: np.ndarray,
           face_size: int, margin: float, align: bool) -> Features:
    """One face track's crops over the window's frames, with the shared context and audio."""
    frames = window.frames
    n = len(frames)
    face = np.zeros((n, face_size, face_size, 3), np.uint8)
    mask = np.zeros(n, bool)
    boxes = np.full((n, 4), np.nan, np.float32)
    for i, f in enumerate(track):
        if f is not None:
            face[i] = F.crop_face(frames[i], f, face_size, margin, align)
            mask[i] = True
            boxes[i] = f.box
    return Features(face, mask, context, boxes, audio, True, window.has_audio, tuple(frames.shape[1:3]),
                    times=np.asarray(window.times, np.float64))


def people_features(window: Window, detector: F.Detector | None, tracker: PeopleTracker,
                    face_size: int = F.FACE_SIZE, context_size: int = F.CONTEXT_SIZE, margin: float = F.MARGIN,
                    align: bool = False, memo: dict | None = None, detect_every: int = 1, fps: float = FPS,
                    still: bool = False) -> tuple[dict[int, Features], dict[int, float | None], Features]:
    """Every tracked person's inputs for one window: {person id: Features}, their mouth motion
    (for `people.speaker`), and the window's face-less Features (context + audio: the voice on
    its own). The same detector, memo, crops and audio path as `window_features`; `tracker`
    carries identities from window to window (frames already tracked are skipped). In a still
    image every face is a person, numbered left to right."""
    if not window.has_video:
        return {}, {}, window_features(window, None, face_size, context_size, margin, align)
    audio = window_audio(window)
    dets, contexts, ran = detect_frames(window, detector, context_size, memo, detect_every, fps, still)
    context = np.stack(contexts)
    frames = window.frames
    if still:
        found = sorted(tracker.eligible(dets[0]), key=lambda f: f.box[0])
        per_frame = [{i + 1: f for i, f in enumerate(found)}]
    else:
        for t, f, d, r in zip(window.times, frames, dets, ran):
            tracker.update(t, d, f, r)
        per_frame = [tracker.at(t) for t in window.times]
    ids = sorted({p for fr in per_frame for p in fr})
    cut = lambda tr: replace(_crops(window, tr, context, audio, face_size, margin, align),  # noqa: E731
                             still=still, step=1.0 / fps)
    people = {p: cut([fr.get(p) for fr in per_frame]) for p in ids}
    motion = {p: mouth_motion(frames, [fr.get(p) for fr in per_frame]) for p in ids}
    return people, motion, cut([None] * len(frames))


def usable(feats: Features, modalities: list[str]) -> dict[str, bool]:
    """Which of the model's streams this window really offers: a face it found, voice (not just
    sound, when checked), the scene. With none of them there is nothing to label."""
    voice = feats.has_audio and feats.audio.size > 0 and feats.voiced is not False
    return {"face": "face" in modalities and bool(feats.face_mask.any()),
            "context": "context" in modalities and feats.has_video,
            "audio": "audio" in modalities and voice}
