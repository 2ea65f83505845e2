"""Clip arrays (from the cache or from a live window) -> the model's input tensors.

One place decides how N sampled frames become T model frames and how audio is cut or padded
(`make_sample` for training and evaluation on the cache; `clip_inputs`, its evaluation path by
frame time, for analyze, serve and predict), so every path feeds the model the same way.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .augment import augment_audio, augment_frames, fit_length
from .media import FPS, SAMPLE_RATE

FRAMES = 8            # T: frames per model input (spread uniformly over the window)
SECONDS = 4.0         # audio seconds per model input (cropped or zero-padded)
PIXEL_MAX = 255.0     # uint8 pixels are divided by this: models see frames in [0, 1]


def normalize_frames(x: Any) -> Any:
    """uint8 pixels -> float32 in [0, 1]: the one frame normalisation (numpy array or torch tensor)."""
    if isinstance(x, np.ndarray):
        return x.astype(np.float32) / np.float32(PIXEL_MAX)
    return x.float() / PIXEL_MAX


def _resize_frames(x: np.ndarray, size: int | None) -> np.ndarray:
    """N×H×W×3 frames resized to size×size (None or already that size: unchanged)."""
    if size is None or (x.shape[1] == size and x.shape[2] == size):
        return x
    import cv2
    return np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in x]) if len(x) \
        else np.zeros((0, size, size, 3), np.uint8)


def make_sample(entry: dict, frames: int, seconds: float, rng: np.random.Generator | None = None,
                aug: dict | None = None, face_size: int | None = None, context_size: int | None = None) -> dict:
    """One model window from a cache entry: T frames + `seconds` of aligned audio + masks.

    Crops are resized to face_size / context_size (the model's InputSpec; None keeps the
    entry's own size). Frame i of the entry is at time i/fps. If the clip is longer than the window, the window
    starts at a random time (training, rng given) or is centred (evaluation). Frames are
    spread uniformly over the window (stratified random jitter in training); audio is the
    window's samples, zero-padded."""
    n = len(entry["context"]) if entry["has_video"] else 0
    fps = float(entry.get("fps") or FPS)
    audio = entry["audio"] if entry["has_audio"] else np.zeros(0, np.float32)
    dur = max(n / fps if n else 0.0, audio.size / SAMPLE_RATE)
    if dur > seconds:
        t0 = float(rng.uniform(0, dur - seconds)) if rng is not None else (dur - seconds) / 2
    else:
        t0 = 0.0
    span = min(seconds, dur)
    fsize = face_size or entry["face"].shape[1]
    csize = context_size or entry["context"].shape[1]
    if n > 0:
        u = (np.arange(frames) + (rng.uniform(0, 1, frames) if rng is not None else 0.5)) / frames
        idx = np.clip(np.floor((t0 + u * span) * fps).astype(int), 0, n - 1)
        face = _resize_frames(entry["face"][idx], fsize)
        context = _resize_frames(entry["context"][idx], csize)
        face_mask = entry["face_mask"][idx].astype(bool)
        context_mask = np.ones(frames, bool)
        if rng is not None and aug:
            face = augment_frames(face, rng, aug)
            context = augment_frames(context, rng, aug)
            face = face * face_mask[:, None, None, None].astype(np.uint8)   # faceless frames stay black
    else:
        face = np.zeros((frames, fsize, fsize, 3), np.uint8)
        context = np.zeros((frames, csize, csize, 3), np.uint8)
        face_mask = np.zeros(frames, bool)
        context_mask = np.zeros(frames, bool)
    n_samples = int(round(seconds * SAMPLE_RATE))
    a0 = int(round(t0 * SAMPLE_RATE))
    seg = audio[a0:a0 + n_samples].astype(np.float32)
    audio_mask = seg.size > 0
    if audio_mask and rng is not None and aug:
        seg = augment_audio(seg, rng, aug)
    return {"face": face, "context": context, "audio": fit_length(seg, n_samples),
            "face_mask": face_mask, "context_mask": context_mask, "audio_mask": np.bool_(audio_mask)}


def frame_slots(times: np.ndarray, step: float, audio_seconds: float, frames: int,
                seconds: float) -> tuple[np.ndarray, float]:
    """Which of a window's frames the model's T slots show, and the offset (s) of the model's
    span from the window's first frame and from its audio's start: the evaluation path of
    `make_sample`, by time. Each frame shows for `step` s until the next; the window lasts
    as long as its frames or its audio, whichever is longer, and the model sees its middle
    `seconds`. Slot i, at the centre of its T-th of that span, shows the frame on screen then."""
    t = np.asarray(times, np.float64)
    dur = max(t[-1] - t[0] + step if t.size else 0.0, audio_seconds)
    offset = max(0.0, (dur - seconds) / 2)
    slots = t[0] + offset + (np.arange(frames) + 0.5) / frames * min(seconds, dur) if t.size else np.zeros(frames)
    idx = np.searchsorted(t, slots + 1e-6, side="right") - 1
    return np.clip(idx, 0, max(t.size - 1, 0)), offset


def clip_inputs(spec: Any, face: np.ndarray, face_mask: np.ndarray, context: np.ndarray, audio: np.ndarray | None,
                times: np.ndarray | None = None, step: float | None = None, video: bool = True,
                voice: bool = True, still: bool = False) -> dict[str, np.ndarray]:
    """Unbatched model inputs for one window, every setting from the model's `InputSpec`: face
    and context T×3×H×W float32 in [0, 1], audio S float32 (zero-padded), masks.

    Frame i is at `times[i]` and shows for `step` s (default: the frames spread evenly over
    the audio, or at the spec's fps without audio). `video` / `voice` False mask that stream
    out. A still image (`still`) is its one frame in every slot."""
    n = len(context)
    video = bool(video and n > 0)
    audio = np.zeros(0, np.float32) if audio is None else np.asarray(audio, np.float32)
    secs = audio.size / spec.sample_rate
    if times is None or step is None:
        step = secs / n if secs and n else 1.0 / spec.fps
        times = np.arange(n) * step
    if still or not n:
        idx, offset = np.zeros(spec.frames, int), 0.0
    else:
        idx, offset = frame_slots(times, step, secs, spec.frames, spec.audio_seconds)
    fs, cs = spec.face_size, spec.context_size
    if video:
        f, c, m = _resize_frames(face[idx], fs), _resize_frames(context[idx], cs), np.asarray(face_mask, bool)[idx]
    else:
        f, c = np.zeros((spec.frames, fs, fs, 3), np.uint8), np.zeros((spec.frames, cs, cs, 3), np.uint8)
        m = np.zeros(spec.frames, bool)
    n_samples = int(round(spec.audio_seconds * spec.sample_rate))
    a0 = int(round(offset * spec.sample_rate))
    seg = audio[a0:a0 + n_samples] if voice else audio[:0]
    wave = np.zeros(n_samples, np.float32)
    wave[:seg.size] = seg
    return {"face": normalize_frames(f.transpose(0, 3, 1, 2)), "context": normalize_frames(c.transpose(0, 3, 1, 2)),
            "audio": wave, "face_mask": m, "context_mask": np.full(spec.frames, video),
            "audio_mask": np.bool_(seg.size > 0)}


def window_inputs(spec: Any, feats: Any, video: bool = True, voice: bool = True) -> dict[str, np.ndarray]:
    """`clip_inputs` for one window's `features.Features` (its frames, their times and step)."""
    return clip_inputs(spec, feats.face, feats.face_mask, feats.context, feats.audio, feats.times, feats.step,
                       video and feats.has_video, voice and feats.has_audio, feats.still)


def stack(items: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Batch unbatched inputs along a new first axis."""
    return {k: np.stack([it[k] for it in items]) for k in items[0]}
