"""The one implementation of "window -> model input arrays", shared by preprocess, analyze and serve.

A window's frames go through the detector and the tracker; every frame gives a face crop
(zeros + mask=False when no face) and a letterboxed context image; audio passes through,
cleaned of NaN/inf samples, and (with `vad=True`, analyze and serve) is checked for speech.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import faces as F
from .media import FPS, Window
from .people import PeopleTracker, mouth_motion
from .vad import clean_audio, voice_activity


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
    voiced: bool | None = None             # speech in the audio (None: not checked)

    def arrays(self) -> dict:
        """The arrays the cache stores (see cache.write_entry)."""
        return {"face": self.face, "face_mask": self.face_mask, "context": self.context,
                "boxes": self.boxes, "audio": self.audio}


def window_features(window: Window, detector: F.Detector | None, face_size: int = F.FACE_SIZE,
                    context_size: int = F.CONTEXT_SIZE, margin: float = F.MARGIN, align: bool = False,
                    prev_box: np.ndarray | None = None, memo: dict | None = None,
                    detect_every: int = 1, fps: float = FPS, vad: bool = False) -> Features:
    """Detect + track the main face over the window's frames and cut the model's inputs.

    `memo` (frame time -> (detections, context image)) lets overlapping windows process each
    frame once; the caller drops old keys. `detect_every=k` runs the detector on every k-th
    frame of the stream only (k <= faces.MAX_GAP): the tracker interpolates the boxes between.
    `vad=True` sets `voiced` (see emolite.vad): windows of silence, noise or music are not."""
    audio = clean_audio(window.audio, f"audio at {window.start:.1f} s") if window.has_audio else np.zeros(0, np.float32)
    voiced = voice_activity(audio).voiced if vad else None
    if not window.has_video:
        z = np.zeros((0, face_size, face_size, 3), np.uint8)
        return Features(z, np.zeros(0, bool), np.zeros((0, context_size, context_size, 3), np.uint8),
                        np.zeros((0, 4), np.float32), audio, False, window.has_audio, voiced=voiced)
    dets, contexts, _ = detect_frames(window, detector, context_size, memo, detect_every, fps)
    main = F.track(dets, window.frames.shape[1:3], prev_box)
    return _crops(window, main, np.stack(contexts), audio, voiced, face_size, margin, align)


def detect_frames(window: Window, detector: F.Detector | None, context_size: int, memo: dict | None,
                  detect_every: int, fps: float) -> tuple[list[list[F.Face]], list[np.ndarray], list[bool]]:
    """Detections, context image and whether the detector ran, for each of the window's frames
    (memoised by frame time: overlapping windows share frames)."""
    memo = {} if memo is None else memo
    dets, contexts, ran = [], [], []
    for t, f in zip(window.times, window.frames):
        k = round(float(t), 4)
        if k not in memo:
            run = detector is not None and (detect_every <= 1 or round(float(t) * fps) % detect_every == 0)
            memo[k] = (detector(f) if run else [], F.letterbox(f, context_size), run)
        dets.append(memo[k][0])
        contexts.append(memo[k][1])
        ran.append(memo[k][2])
    frames = window.frames
    if detector is not None and len(frames) == 1 and window.end == window.start and not dets[0] \
            and max(frames.shape[1:3]) <= F.SMALL_IMAGE:
        dets = [[F.whole_face(frames[0])]]  # a small still with no detection: a dataset crop (CK+ 48×48)
    return dets, contexts, ran


def _crops(window: Window, track: list[F.Face | None], context: np.ndarray, audio: np.ndarray,
           voiced: bool | None, face_size: int, margin: float, align: bool) -> Features:
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
    return Features(face, mask, context, boxes, audio, True, window.has_audio, tuple(frames.shape[1:3]), voiced)


def people_features(window: Window, detector: F.Detector | None, tracker: PeopleTracker,
                    face_size: int = F.FACE_SIZE, context_size: int = F.CONTEXT_SIZE, margin: float = F.MARGIN,
                    align: bool = False, memo: dict | None = None, detect_every: int = 1, fps: float = FPS,
                    vad: bool = False) -> tuple[dict[int, Features], dict[int, float | None], Features]:
    """Every tracked person's inputs for one window: {person id: Features}, their mouth motion
    (for `people.speaker`), and the window's face-less Features (context + audio: the voice on
    its own). The same detector, memo, crops and audio path as `window_features`; `tracker`
    carries identities from window to window (frames already tracked are skipped)."""
    if not window.has_video:
        return {}, {}, window_features(window, None, face_size, context_size, margin, align, vad=vad)
    audio = clean_audio(window.audio, f"audio at {window.start:.1f} s") if window.has_audio else np.zeros(0, np.float32)
    voiced = voice_activity(audio).voiced if vad else None
    dets, contexts, ran = detect_frames(window, detector, context_size, memo, detect_every, fps)
    context = np.stack(contexts)
    frames = window.frames
    if len(frames) == 1 and window.end == window.start:   # a still image: every face is a person, left to right
        found = sorted(tracker.eligible(dets[0]), key=lambda f: f.box[0])
        per_frame = [{i + 1: f for i, f in enumerate(found)}]
    else:
        for t, f, d, r in zip(window.times, frames, dets, ran):
            tracker.update(t, d, f, r)
        per_frame = [tracker.at(t) for t in window.times]
    ids = sorted({p for fr in per_frame for p in fr})
    people = {p: _crops(window, [fr.get(p) for fr in per_frame], context, audio, voiced, face_size, margin, align)
              for p in ids}
    motion = {p: mouth_motion(frames, [fr.get(p) for fr in per_frame]) for p in ids}
    nobody = _crops(window, [None] * len(frames), context, audio, voiced, face_size, margin, align)
    return people, motion, nobody


def usable(feats: Features, modalities: list[str]) -> dict[str, bool]:
    """Which of the model's streams this window really offers: a face it found, voice (not just
    sound, when checked), the scene. With none of them there is nothing to label."""
    voice = feats.has_audio and feats.audio.size > 0 and feats.voiced is not False
    return {"face": "face" in modalities and bool(feats.face_mask.any()),
            "context": "context" in modalities and feats.has_video,
            "audio": "audio" in modalities and voice}
