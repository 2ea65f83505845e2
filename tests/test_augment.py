"""Augmentations: shapes/dtypes kept, deterministic per seed, each does what it says."""

import sys

import numpy as np
import pytest

from emolite import augment as A

SR = 16000


def tone(f=440.0, sec=1.0):
    t = np.arange(int(sec * SR)) / SR
    return (0.5 * np.sin(2 * np.pi * f * t)).astype(np.float32)


def peak_hz(w):
    spec = np.abs(np.fft.rfft(w * np.hanning(w.size)))
    return np.fft.rfftfreq(w.size, 1 / SR)[spec.argmax()]


def frames(n=4, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def test_audio_shape_dtype_and_determinism():
    w = tone()
    cfg = {"prob": 1.0}
    a = A.augment_audio(w, np.random.default_rng(1), cfg)
    b = A.augment_audio(w, np.random.default_rng(1), cfg)
    c = A.augment_audio(w, np.random.default_rng(2), cfg)
    assert a.shape == w.shape and a.dtype == np.float32 and np.abs(a).max() <= 1.0
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert A.augment_audio(np.zeros(0, np.float32), np.random.default_rng(0), cfg).size == 0


def test_disabled_is_identity():
    w, f = tone(), frames()
    off = {"enabled": False}
    assert np.array_equal(A.augment_audio(w, np.random.default_rng(0), off), w)
    assert np.array_equal(A.augment_frames(f, np.random.default_rng(0), off), f)
    none = {k: False for k in ("gain", "noise", "pitch", "time_shift", "crop", "flip", "jitter")}
    assert np.array_equal(A.augment_audio(w, np.random.default_rng(0), {**none, "prob": 1.0}), w)


def test_pitch_shift_moves_frequency():
    w = tone(440.0)
    for seed in range(4):
        out = A.pitch_shift(w, np.random.default_rng(seed), 3.0)
        expect = 440.0 * 2 ** (np.random.default_rng(seed).uniform(-3.0, 3.0) / 12)   # same draw
        assert out.shape == w.shape
        assert peak_hz(out[: SR // 2]) == pytest.approx(expect, abs=4.0)


def test_time_shift_gain_noise():
    w = tone()
    s = A.time_shift(w, np.random.default_rng(3), 0.25)
    n = int(np.random.default_rng(3).uniform(-0.25, 0.25) * SR)
    assert np.array_equal(s[n:] if n > 0 else s[:n], w[:-n] if n > 0 else w[-n:])
    g = A.gain(w, np.random.default_rng(0), 6.0)
    ratio = np.abs(g).max() / np.abs(w).max()
    assert 10 ** (-6 / 20) - 1e-6 <= ratio <= 10 ** (6 / 20) + 1e-6
    noisy = A.add_noise(w, np.random.default_rng(0), 20.0)
    snr = 10 * np.log10(np.mean(w ** 2) / np.mean((noisy - w) ** 2))
    assert 19.0 <= snr <= 46.0
    silent = np.zeros(100, np.float32)
    assert np.array_equal(A.add_noise(silent, np.random.default_rng(0), 10.0), silent)


def test_librosa_method_optional(monkeypatch):
    monkeypatch.setitem(sys.modules, "librosa", None)          # as if not installed
    monkeypatch.setattr(A, "_warned_librosa", False)
    w = tone(sec=0.5)
    with pytest.warns(UserWarning, match="librosa"):
        out = A.pitch_shift(w, np.random.default_rng(0), 2.0, method="librosa")
    assert np.array_equal(out, A.pitch_shift(w, np.random.default_rng(0), 2.0))


def test_frames_ops():
    f = frames()
    assert np.array_equal(A.hflip(f)[:, :, 0], f[:, :, -1])
    c = A.resized_crop(f, np.random.default_rng(0), 0.5)
    assert c.shape == f.shape and c.dtype == np.uint8
    j = A.color_jitter(f, np.random.default_rng(0), 0.4)
    assert j.shape == f.shape and j.dtype == np.uint8 and not np.array_equal(j, f)
    black = np.zeros_like(f)
    assert not A.color_jitter(black, np.random.default_rng(0), 0.4).any()
    assert not A.augment_frames(black, np.random.default_rng(0), {"prob": 1.0}).any()
    # one crop/flip for the whole clip: identical frames stay identical
    same = np.repeat(f[:1], 4, axis=0)
    out = A.augment_frames(same, np.random.default_rng(5), {"prob": 1.0})
    assert all(np.array_equal(out[0], o) for o in out)
    assert A.augment_frames(f[:0], np.random.default_rng(0), {"prob": 1.0}).shape == (0, 32, 32, 3)


def test_reverb_spreads_a_click_and_keeps_length_and_level():
    click = np.zeros(SR, np.float32)
    click[100] = 1.0
    out = A.reverb(click, np.random.default_rng(0), 0.9)
    assert out.shape == click.shape and out.dtype == np.float32
    assert np.isclose(np.sqrt(np.mean(out ** 2)), np.sqrt(np.mean(click ** 2)), rtol=1e-3)
    assert np.abs(out[2000:]).sum() > 0.05 * np.abs(out).sum()     # energy after the click: a tail
    assert np.array_equal(A.reverb(click, np.random.default_rng(0), 0.9), out)


def test_codec_is_one_of_three_band_or_quantisation_losses():
    low, high = tone(100.0), tone(6000.0)
    kinds = set()
    for seed in range(12):
        lo, hi = A.codec(low, np.random.default_rng(seed)), A.codec(high, np.random.default_rng(seed))
        assert lo.shape == low.shape and lo.dtype == np.float32
        lo_kept, hi_kept = np.std(lo[4000:]) / np.std(low), np.std(hi[4000:]) / np.std(high)
        if lo_kept < 0.2:
            kinds.add("telephone")                 # 100 Hz removed (and 6 kHz too)
            assert hi_kept < 0.2
        elif hi_kept < 0.2:
            kinds.add("low-pass")                  # 6 kHz removed, 100 Hz kept
        else:
            kinds.add("mu-law")                    # both kept, quantised
            assert np.abs(lo - low).max() > 0 and np.abs(lo - low).max() < 0.05
    assert kinds == {"telephone", "low-pass", "mu-law"}


def test_reverb_and_codec_are_off_by_default_and_used_when_asked():
    w = tone()
    only = {k: False for k in ("gain", "noise", "pitch", "time_shift")}
    assert np.array_equal(A.augment_audio(w, np.random.default_rng(0), {**only, "prob": 1.0}), w)
    out = A.augment_audio(w, np.random.default_rng(0), {**only, "prob": 1.0, "reverb": True, "codec": True})
    assert out.shape == w.shape and not np.array_equal(out, w)
