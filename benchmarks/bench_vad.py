"""Voice activity on real speech and on generated non-speech: what `emolite.vad` calls voiced.

    python benchmarks/bench_vad.py ../shared/data        # JSON on stdout and in docs/results/vad.json

Speech: every EmoDB and RAVDESS speech file, whole and as the 2-s windows analyze cuts
(windows at 1-s hop; a window of an utterance's leading/trailing silence may rightly be
unvoiced), also at -30 dB and +20 dB gain (level must not matter). Non-speech, 3 s each,
generated with seeded numpy: digital zero, white and pink noise at -60/-40/-20 dBFS, mains
hum (50/60 Hz + harmonics), synthetic music (harmonic notes with envelopes, chords, a noise-
burst drum track) and a pure tone. The rule: voiced when >= MIN_SPEECH_S of 32-ms frames
have speech probability > SPEECH_PROB. Prints JSON and saves docs/results/<name>.json.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import common
from emolite import vad
from emolite.media import iter_windows

SR = vad.SAMPLE_RATE


def tone(f: float, s: float, rng) -> np.ndarray:
    t = np.arange(int(s * SR)) / SR
    return np.sin(2 * np.pi * f * t + rng.uniform(0, 6.28))


def at_dbfs(x: np.ndarray, db: float) -> np.ndarray:
    return (x / (np.sqrt(np.mean(x ** 2)) + 1e-12) * 10 ** (db / 20)).astype(np.float32)


def pink(n: int, rng) -> np.ndarray:
    spec = np.fft.rfft(rng.normal(size=n))
    spec /= np.sqrt(np.maximum(np.arange(len(spec)), 1))
    return np.fft.irfft(spec, n)


def music(s: float, rng, drums: bool = True) -> np.ndarray:
    """Notes of a harmonic instrument (5 partials, attack/decay), 3-note chords, optional drums."""
    out = np.zeros(int(s * SR))
    step = int(0.25 * SR)
    for i in range(0, len(out) - step, step):
        for semi in rng.choice([0, 4, 7, 12, -5], 3, replace=False):
            f = 220 * 2 ** ((semi + rng.integers(-2, 3)) / 12)
            n = np.arange(step * 2)[: len(out) - i]
            env = np.minimum(n / (0.01 * SR), 1) * np.exp(-n / (0.3 * SR))
            out[i:i + len(n)] += sum(np.sin(2 * np.pi * f * k * n / SR) / k for k in range(1, 6)) * env
        if drums and (i // step) % 2 == 0:
            n = np.arange(int(0.08 * SR))
            out[i:i + len(n)] += rng.normal(size=len(n)) * np.exp(-n / (0.02 * SR)) * 2
    return out


def non_speech(rng) -> dict[str, np.ndarray]:
    s = 3.0
    n = int(s * SR)
    cases = {"digital_zero": np.zeros(n, np.float32)}
    for db in (-60, -40, -20):
        cases[f"white_noise_{db}dBFS"] = at_dbfs(rng.normal(size=n), db)
        cases[f"pink_noise_{db}dBFS"] = at_dbfs(pink(n, rng), db)
    for mains in (50, 60):
        cases[f"hum_{mains}Hz"] = at_dbfs(sum(tone(mains * k, s, rng) / k for k in (1, 2, 3, 5)), -20)
    for db in (-30, -15):
        cases[f"music_{db}dBFS"] = at_dbfs(music(s, rng), db)
        cases[f"music_no_drums_{db}dBFS"] = at_dbfs(music(s, rng, drums=False), db)
    cases["tone_440Hz"] = at_dbfs(tone(440, s, rng), -20)
    return cases


def speech_files(data: Path) -> list[Path]:
    return sorted((data / "emodb" / "wav").glob("*.flac")) + sorted((data / "ravdess" / "speech").glob("*.flac"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data", type=Path)
    ap.add_argument("--limit", type=int, default=0, help="speech files to use (0 = all)")
    ap.add_argument("--name", default="vad", help="docs/results/<name>.json")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    res = {"rule": {"speech_prob": vad.SPEECH_PROB, "min_speech_s": vad.MIN_SPEECH_S, "silent_rms": vad.SILENT_RMS, "level_rms": vad.LEVEL_RMS},
           "non_speech": {}, "speech": {}}
    for name, x in non_speech(rng).items():
        a = vad.voice_activity(x)
        res["non_speech"][name] = {"voiced": a.voiced, "speech_s": a.speech_s}
    res["non_speech_voiced"] = sum(v["voiced"] for v in res["non_speech"].values())
    res["non_speech_cases"] = len(res["non_speech"])
    files = speech_files(args.data)
    if args.limit:
        files = files[:: max(1, len(files) // args.limit)][: args.limit]
    t0, secs = time.time(), 0.0
    for gain in (0, -30, 20):
        whole, wins, wins_voiced = 0, 0, 0
        for f in files:
            w = next(iter_windows(f))
            audio = np.clip(w.audio * 10 ** (gain / 20), -1, 1) if gain > 0 else w.audio * 10 ** (gain / 20)
            whole += vad.voice_activity(audio).voiced
            secs += audio.size / SR
            for a in range(0, max(1, audio.size - 2 * SR + 1), SR):
                wins += 1
                wins_voiced += vad.voice_activity(audio[a:a + 2 * SR]).voiced
        res["speech"][f"gain_{gain:+d}dB"] = {"files": len(files), "files_voiced": round(whole / len(files), 4),
                                             "windows_2s": wins, "windows_voiced": round(wins_voiced / wins, 4)}
    res["x_real_time_1_thread"] = round(secs / (time.time() - t0), 1)
    common.emit(args.name, res)


if __name__ == "__main__":
    main()
