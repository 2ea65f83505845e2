"""Voice activity: is there speech in this audio? Silence, hum, noise and music are "no voice".

The voice model was trained on speech only; on anything else its answer is a guess (3 s of
digital silence came out "surprise", 0.57). So a window's audio counts as present only when
Silero VAD (MIT, its ONNX weights ship inside the `silero-vad` wheel; nothing downloads)
finds enough speech in it. We run Silero's batched "sequence" ONNX graph with onnxruntime
(one call per 16 s of audio, torch-free), not its per-frame Python loop. Digital silence
skips the model; other audio is brought to one level first (Silero alone missed 21 % of
speech files 30 dB down; the voice model ignores level, so must this). Why Silero and not an energy rule: an energy rule passes hum, noise and
music at any level above its threshold, and the rule's threshold would depend on the
recording level the voice model is meant to ignore (see benchmarks/bench_vad.py).
"""

from __future__ import annotations

import importlib.util
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import EmoliteError

SAMPLE_RATE = 16000         # Silero's 16 kHz model (the rate media.py decodes to)
FRAME = 512                 # samples per VAD frame (32 ms)
CONTEXT = 64                # samples of the previous frame each frame is given
BLOCK = 512                 # frames per ONNX call
SPEECH_PROB = 0.5           # a frame is speech above this probability (Silero's default)
MIN_SPEECH_S = 0.25         # a window needs this much speech to count as voiced
SILENT_RMS = 1e-4           # below this RMS (-80 dBFS) audio is silent: no model call
LEVEL_RMS = 0.1             # audio is scaled to this RMS (-20 dBFS) first: Silero misses quiet speech
MODEL_FILE = "silero_vad_16k_sequence.onnx"

_session = None


@dataclass
class VoiceActivity:
    speech_s: float          # seconds of frames above SPEECH_PROB
    fraction: float          # share of the audio's frames that are speech
    voiced: bool             # speech_s >= MIN_SPEECH_S


def finite_audio(audio: np.ndarray) -> tuple[np.ndarray, int]:
    """float32 audio with NaN/inf samples replaced by 0, and how many there were: the caller
    says so once, in its result (analyze's warnings, a Prediction's notes), not per window."""
    audio = np.asarray(audio, np.float32)
    bad = ~np.isfinite(audio)
    n = int(bad.sum())
    return (np.where(bad, np.float32(0.0), audio) if n else audio), n


def bad_audio_note(n: int) -> str:
    """The one line that says NaN/inf samples were replaced."""
    return f"{n} NaN/inf audio samples set to 0"


def clean_audio(audio: np.ndarray, where: str = "audio") -> np.ndarray:
    """`finite_audio` with a Python warning, for direct callers without a result to note it in."""
    audio, n = finite_audio(audio)
    if n:
        warnings.warn(f"{where}: {bad_audio_note(n)}", stacklevel=2)
    return audio


def _model():
    global _session
    if _session is None:
        spec = importlib.util.find_spec("silero_vad")
        path = Path(next(iter(spec.submodule_search_locations))) / "data" / MODEL_FILE if spec else None
        if path is None or not path.exists():
            raise EmoliteError("silero-vad is not installed (voice activity detection); run `pip install silero-vad`")
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        _session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return _session


def speech_probs(audio: np.ndarray) -> np.ndarray:
    """Per-32-ms-frame speech probability of 16 kHz mono float audio (the last frame zero-padded)."""
    audio = finite_audio(audio)[0]
    n = (audio.size + FRAME - 1) // FRAME
    if n == 0:
        return np.zeros(0, np.float32)
    frames = np.zeros((n, FRAME), np.float32)
    frames.reshape(-1)[:audio.size] = audio
    ctx = np.zeros((n, CONTEXT), np.float32)
    ctx[1:] = frames[:-1, -CONTEXT:]
    x = np.concatenate([ctx, frames], axis=1)
    h = np.zeros((1, 1, 128), np.float32)
    c = np.zeros((1, 1, 128), np.float32)
    out = []
    sess = _model()
    for i in range(0, n, BLOCK):
        p, h, c = sess.run(["speech_probs", "hn", "cn"], {"input": x[i:i + BLOCK], "h": h, "c": c})
        out.append(np.asarray(p, np.float32).reshape(-1))
    return np.concatenate(out)


def voice_activity(audio: np.ndarray | None) -> VoiceActivity:
    """How much speech a window's audio holds (none for missing, empty or silent audio; NaN/inf
    samples count as silence)."""
    if audio is None or np.asarray(audio).size == 0:
        return VoiceActivity(0.0, 0.0, False)
    audio = finite_audio(audio)[0]
    rms = float(np.sqrt(np.mean(audio.astype(np.float64) ** 2)))
    if rms < SILENT_RMS:
        return VoiceActivity(0.0, 0.0, False)
    p = speech_probs(audio * np.float32(LEVEL_RMS / rms))
    speech = int((p > SPEECH_PROB).sum())
    s = speech * FRAME / SAMPLE_RATE
    return VoiceActivity(round(s, 3), round(speech / max(len(p), 1), 3), s >= MIN_SPEECH_S)


def is_voiced(audio: np.ndarray | None) -> bool:
    """The one voice-activity rule of every path (analyze, serve, predict): a window's audio is
    a voice when it holds at least MIN_SPEECH_S of speech. Run once per window by emolite.core."""
    return voice_activity(audio).voiced
