"""Voice activity: speech-like audio is voiced at any level; silence, noise, hum and tones are not."""

import numpy as np
import pytest

from emolite import vad
from emolite.demo import voice

SR = vad.SAMPLE_RATE


def test_voice_like_audio_is_voiced_at_any_level():
    x = voice(3.0)
    for gain_db in (0, -30, 10):
        a = vad.voice_activity(x * np.float32(10 ** (gain_db / 20)))
        assert a.voiced and a.speech_s >= vad.MIN_SPEECH_S, gain_db


@pytest.mark.parametrize("case", ["zero", "dither", "white", "hum", "tone"])
def test_non_speech_is_not_voiced(case):
    rng = np.random.default_rng(0)
    t = np.arange(3 * SR) / SR
    x = {"zero": np.zeros(t.size), "dither": rng.normal(0, 1e-5, t.size), "white": rng.normal(0, 0.1, t.size),
         "hum": sum(0.2 / k * np.sin(2 * np.pi * 50 * k * t) for k in (1, 2, 3)),
         "tone": 0.3 * np.sin(2 * np.pi * 440 * t)}[case].astype(np.float32)
    a = vad.voice_activity(x)
    assert not a.voiced and a.speech_s < vad.MIN_SPEECH_S


def test_missing_or_empty_audio_is_not_voiced():
    assert not vad.voice_activity(None).voiced
    assert not vad.voice_activity(np.zeros(0, np.float32)).voiced


def test_nan_and_inf_are_cleaned_with_a_warning():
    x = voice(2.0)
    x[::100] = np.nan
    x[5] = np.inf
    with pytest.warns(UserWarning, match="NaN/inf"):
        y = vad.clean_audio(x, "clip.wav")
    assert np.isfinite(y).all() and y.dtype == np.float32
    assert vad.voice_activity(x).voiced     # NaN/inf count as silence, quietly (results say it once)
    y, n = vad.finite_audio(x)
    assert n == 1 + len(range(0, x.size, 100)) and np.isfinite(y).all()


def test_speech_probs_has_one_value_per_32ms_frame():
    p = vad.speech_probs(voice(1.0))
    assert p.shape == (int(np.ceil(SR / vad.FRAME)),) and ((p >= 0) & (p <= 1)).all()
