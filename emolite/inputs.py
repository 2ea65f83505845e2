"""Clip arrays (from the cache or from a live window) -> the model's input tensors.

One place decides how N sampled frames become T model frames and how audio is cut or padded,
so training (eval mode), analyze, serve and ONNX all feed the model the same way.
"""

from __future__ import annotations

import numpy as np

FRAMES = 8            # T: frames per model input (sampled uniformly over the window)
SECONDS = 4.0         # audio seconds per model input (cropped or zero-padded)
SAMPLE_RATE = 16000


def frame_indices(n: int, T: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """T indices spread uniformly over n frames; with an rng, jittered within each segment."""
    if n <= 0:
        return np.zeros(T, np.int64)
    if rng is None:
        return np.round(np.linspace(0, n - 1, T)).astype(np.int64)
    edges = np.linspace(0, n, T + 1)
    return np.minimum(np.floor(edges[:-1] + rng.random(T) * (edges[1:] - edges[:-1])), n - 1).astype(np.int64)


def fit_audio(audio: np.ndarray, length: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Crop (centre, or random with an rng) or zero-pad at the end to exactly `length` samples."""
    audio = np.asarray(audio, np.float32).reshape(-1)
    if audio.size >= length:
        start = (audio.size - length) // 2 if rng is None else int(rng.integers(0, audio.size - length + 1))
        return audio[start:start + length]
    return np.pad(audio, (0, length - audio.size))


def clip_inputs(face: np.ndarray, face_mask: np.ndarray, context: np.ndarray, audio: np.ndarray,
                T: int = FRAMES, seconds: float = SECONDS, has_video: bool | None = None,
                has_audio: bool | None = None, rng: np.random.Generator | None = None) -> dict[str, np.ndarray]:
    """Unbatched model inputs: face/context T×3×H×W float32 in [0, 1], audio S float32, masks."""
    n = len(context)
    has_video = n > 0 if has_video is None else bool(has_video and n > 0)
    audio = np.zeros(0, np.float32) if audio is None else audio
    has_audio = audio.size > 0 if has_audio is None else bool(has_audio and audio.size > 0)
    fs = face.shape[1] if face.ndim == 4 else 112
    cs = context.shape[1] if context.ndim == 4 else 112
    if has_video:
        idx = frame_indices(n, T, rng)
        f = face[idx].astype(np.float32).transpose(0, 3, 1, 2) / 255.0
        c = context[idx].astype(np.float32).transpose(0, 3, 1, 2) / 255.0
        fm = np.asarray(face_mask, bool)[idx]
        cm = np.ones(T, bool)
    else:
        f = np.zeros((T, 3, fs, fs), np.float32)
        c = np.zeros((T, 3, cs, cs), np.float32)
        fm = cm = np.zeros(T, bool)
    a = fit_audio(audio, int(round(seconds * SAMPLE_RATE)), rng) if has_audio else \
        np.zeros(int(round(seconds * SAMPLE_RATE)), np.float32)
    return {"face": f, "context": c, "audio": a, "face_mask": fm, "context_mask": cm,
            "audio_mask": np.array(has_audio)}


def stack(items: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Batch unbatched inputs along a new first axis."""
    return {k: np.stack([it[k] for it in items]) for k in items[0]}
