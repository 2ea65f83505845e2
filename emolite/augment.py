"""On-the-fly augmentation of one clip: audio (gain, noise, pitch, time shift, reverberation,
band-limiting codec) and frames
(random resized crop, horizontal flip, colour jitter). numpy (+ OpenCV resize) only.

Every function takes an explicit `np.random.Generator`, so a sample's augmentation is a pure
function of (seed, epoch, index): identical across worker counts and after a resume.
Frame augmentations draw one set of parameters per clip and apply it to all T frames, so
the motion between frames stays real. Settings come from the config's [augment] table.
"""

from __future__ import annotations

import warnings

import numpy as np

from .media import SAMPLE_RATE

# The config's [augment] table (emolite.config takes its defaults from here).
AUGMENT_DEFAULTS = {
    "enabled": True, "prob": 0.5,                 # each augmentation fires with this probability
    "gain": True, "gain_db": 6.0,
    "noise": True, "noise_snr_db": 15.0,          # SNR drawn from [snr, snr + 25] dB
    "pitch": True, "pitch_semitones": 2.0, "pitch_method": "resample",   # resample | librosa
    "time_shift": True, "time_shift_s": 0.25,
    "reverb": False, "reverb_rt60": 0.9,          # synthetic room, RT60 drawn from [0.15, rt60] s
    "codec": False,                               # telephone band / 8-bit mu-law / 4-kHz low-pass
    "mixup": 0.0,                                 # Beta(a, a) mixup of whole batches in training; 0 = off
    "crop": True, "crop_scale": 0.8,              # random resized crop keeping >= scale of the area
    "flip": True,
    "jitter": True, "jitter_strength": 0.3,       # brightness / contrast / saturation
}
_warned_librosa = False


# ----------------------------------------------------------------------------- audio

def gain(wav: np.ndarray, rng: np.random.Generator, db: float) -> np.ndarray:
    """Random gain of ±db decibels (recording level varies between sessions)."""
    return wav * np.float32(10 ** (rng.uniform(-db, db) / 20))


def add_noise(wav: np.ndarray, rng: np.random.Generator, snr_db: float) -> np.ndarray:
    """White noise at an SNR drawn from [snr_db, snr_db + 25] dB (relative to the clip's power)."""
    power = float(np.mean(wav ** 2)) if wav.size else 0.0
    if power <= 1e-10:
        return wav
    snr = rng.uniform(snr_db, snr_db + 25.0)
    return wav + rng.normal(0.0, np.sqrt(power / 10 ** (snr / 10)), wav.shape).astype(np.float32)


def pitch_shift(wav: np.ndarray, rng: np.random.Generator, semitones: float, method: str = "resample") -> np.ndarray:
    """Shift pitch by up to ±semitones.

    "resample" (default, ~0.1 ms): linear-interpolation resampling, i.e. speed perturbation,
    which also changes tempo by the same factor; the result is cut/padded to the input length.
    "librosa": phase-vocoder pitch shift keeping tempo (much slower; optional dependency).
    """
    if wav.size < 2:
        return wav
    steps = rng.uniform(-semitones, semitones)
    if method == "librosa":
        try:
            import librosa
            return librosa.effects.pitch_shift(wav.astype(np.float32), sr=SAMPLE_RATE, n_steps=steps).astype(np.float32)
        except ImportError:
            global _warned_librosa
            if not _warned_librosa:
                warnings.warn("librosa not installed: using resample pitch shift")
                _warned_librosa = True
    factor = 2.0 ** (steps / 12.0)               # >1: higher pitch, shorter
    n_out = max(2, int(round(wav.size / factor)))
    pos = np.linspace(0, wav.size - 1, n_out)
    out = np.interp(pos, np.arange(wav.size), wav).astype(np.float32)
    return fit_length(out, wav.size)


def time_shift(wav: np.ndarray, rng: np.random.Generator, max_s: float) -> np.ndarray:
    """Shift by up to ±max_s seconds, filling with silence."""
    n = int(rng.uniform(-max_s, max_s) * SAMPLE_RATE)
    if n == 0 or wav.size == 0:
        return wav
    out = np.zeros_like(wav)
    if n > 0:
        out[n:] = wav[:-n] if n < wav.size else 0
    else:
        out[:n] = wav[-n:] if -n < wav.size else 0
    return out


def reverb(wav: np.ndarray, rng: np.random.Generator, max_rt60: float) -> np.ndarray:
    """A synthetic room: the dry signal convolved with exponentially decaying noise (RT60 drawn
    from [0.15, max_rt60] s) after a 1-10 ms direct path, mixed at a random direct-to-reverberant
    ratio; the level is kept. A statistical room model: no geometry, ~1 ms per second of audio."""
    from scipy.signal import fftconvolve

    if wav.size < 2:
        return wav
    rt60 = rng.uniform(0.15, max(0.15, max_rt60))
    n = int(rt60 * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    tail = (rng.normal(0.0, 1.0, n) * np.exp(-6.9078 * t / rt60)).astype(np.float32)   # -60 dB at rt60
    tail[: int(rng.uniform(0.001, 0.01) * SAMPLE_RATE)] = 0.0
    tail /= np.sqrt(np.sum(tail ** 2)) + 1e-9
    wet = fftconvolve(wav, tail)[: wav.size]
    drr = 10 ** (rng.uniform(-3.0, 10.0) / 20)                      # direct-to-reverberant, dB
    out = drr * wav + wet
    return (out * (np.sqrt(np.mean(wav ** 2)) / (np.sqrt(np.mean(out ** 2)) + 1e-9))).astype(np.float32)


TELEPHONE_HZ = (300, 3400)


def telephone(wav: np.ndarray) -> np.ndarray:
    """The telephone band (300-3400 Hz, 6th-order Butterworth band-pass)."""
    from scipy.signal import butter, sosfilt

    return sosfilt(butter(6, TELEPHONE_HZ, btype="bandpass", fs=SAMPLE_RATE, output="sos"), wav).astype(np.float32)


def codec(wav: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """What a phone line, a cheap codec or a band-limited stream leaves of the voice: one of
    telephone band (300-3400 Hz), 8-bit mu-law, or a 4-kHz low-pass."""
    from scipy.signal import butter, sosfilt

    kind = int(rng.integers(3))
    if kind == 0:
        return telephone(wav)
    if kind == 1:
        mu = 255.0
        y = np.sign(wav) * np.log1p(mu * np.minimum(np.abs(wav), 1.0)) / np.log1p(mu)
        y = np.round((y + 1) / 2 * mu) / mu * 2 - 1
        return (np.sign(y) * np.expm1(np.abs(y) * np.log1p(mu)) / mu).astype(np.float32)
    return sosfilt(butter(8, 4000, btype="lowpass", fs=SAMPLE_RATE, output="sos"), wav).astype(np.float32)


def fit_length(wav: np.ndarray, n: int) -> np.ndarray:
    """Cut or zero-pad audio to exactly n samples (model inputs have a fixed length)."""
    if wav.size >= n:
        return wav[:n]
    return np.pad(wav, (0, n - wav.size))


def augment_audio(wav: np.ndarray, rng: np.random.Generator, cfg: dict | None = None) -> np.ndarray:
    """Apply each enabled audio augmentation with probability cfg['prob']."""
    c = {**AUGMENT_DEFAULTS, **(cfg or {})}
    if not c["enabled"] or wav.size == 0:
        return wav
    p = c["prob"]
    wav = wav.astype(np.float32, copy=False)
    if c["pitch"] and rng.random() < p:
        wav = pitch_shift(wav, rng, c["pitch_semitones"], c["pitch_method"])
    if c["time_shift"] and rng.random() < p:
        wav = time_shift(wav, rng, c["time_shift_s"])
    if c["reverb"] and rng.random() < p:
        wav = reverb(wav, rng, c["reverb_rt60"])
    if c["codec"] and rng.random() < p:
        wav = codec(wav, rng)
    if c["gain"] and rng.random() < p:
        wav = gain(wav, rng, c["gain_db"])
    if c["noise"] and rng.random() < p:
        wav = add_noise(wav, rng, c["noise_snr_db"])
    return np.clip(wav, -1.0, 1.0).astype(np.float32)


# ----------------------------------------------------------------------------- frames

def resized_crop(frames: np.ndarray, rng: np.random.Generator, min_scale: float) -> np.ndarray:
    """One random crop (area in [min_scale, 1], aspect 3/4..4/3) for all frames, resized back."""
    import cv2

    n, h, w = frames.shape[:3]
    if n == 0:
        return frames
    area = rng.uniform(min_scale, 1.0) * h * w
    aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
    ch = int(round(min(h, np.sqrt(area / aspect))))
    cw = int(round(min(w, np.sqrt(area * aspect))))
    y0 = int(rng.integers(0, h - ch + 1))
    x0 = int(rng.integers(0, w - cw + 1))
    out = np.empty_like(frames)
    for i in range(n):
        out[i] = cv2.resize(np.ascontiguousarray(frames[i, y0:y0 + ch, x0:x0 + cw]), (w, h),
                            interpolation=cv2.INTER_LINEAR)
    return out


def hflip(frames: np.ndarray) -> np.ndarray:
    """Mirror frames left-right (faces are near-symmetric; the label does not change)."""
    return np.ascontiguousarray(frames[:, :, ::-1])


def color_jitter(frames: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Brightness, contrast and saturation factors in [1-s, 1+s], same for all frames.
    All-black frames (no face found) stay black."""
    if frames.size == 0:
        return frames
    b, c, s = rng.uniform(1 - strength, 1 + strength, 3)
    x = frames.astype(np.float32)
    x *= b
    gray = x @ np.array([0.299, 0.587, 0.114], np.float32)                    # N×H×W
    mean = gray.mean(axis=(1, 2), keepdims=True)[..., None]
    x = (x - mean) * c + mean
    gray = (x @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
    x = (x - gray) * s + gray
    return np.clip(x, 0, 255).astype(np.uint8)


def augment_frames(frames: np.ndarray, rng: np.random.Generator, cfg: dict | None = None) -> np.ndarray:
    """frames: T×H×W×3 uint8 -> same shape/dtype, augmented."""
    c = {**AUGMENT_DEFAULTS, **(cfg or {})}
    if not c["enabled"] or frames.shape[0] == 0:
        return frames
    p = c["prob"]
    if c["crop"] and rng.random() < p:
        frames = resized_crop(frames, rng, c["crop_scale"])
    if c["flip"] and rng.random() < 0.5:
        frames = hflip(frames)
    if c["jitter"] and rng.random() < p:
        frames = color_jitter(frames, rng, c["jitter_strength"])
    return frames
