"""Built-in examples: a short clip with a real face and a voice-like tone, and a tiny
synthetic training cache.

The face is a crop of NASA's public-domain astronaut portrait (as in scikit-image), shipped
in emolite/assets/face.jpg, so the demo, the tests and the benchmarks need no data download.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from .media import FPS, SAMPLE_RATE

FACE_IMAGE = Path(__file__).parent / "assets" / "face.jpg"

# container extension -> (video codec, audio codec, pixel format)
CODECS = {
    ".mp4": ("libx264", "aac", "yuv420p"),
    ".mkv": ("libx264", "aac", "yuv420p"),
    ".mov": ("libx264", "aac", "yuv420p"),
    ".avi": ("mpeg4", "mp3", "yuv420p"),
    ".flv": ("flv", "mp3", "yuv420p"),
    ".webm": ("libvpx", "libopus", "yuv420p"),
}


def face_image() -> np.ndarray:
    """The shipped face photo as H×W×3 RGB uint8."""
    from .media import read_image

    return read_image(FACE_IMAGE)


def frame_at(t: float, width: int, height: int, face: bool = True) -> np.ndarray:
    """A frame at time t: a textured background with the face drifting slowly across it."""
    yy, xx = np.mgrid[0:height, 0:width]
    bg = np.stack([(xx * 255 // max(width, 1)), (yy * 255 // max(height, 1)),
                   np.full_like(xx, int(96 + 64 * np.sin(t)))], -1).astype(np.uint8)
    if not face:
        return bg
    import cv2

    img = face_image()
    fh = max(16, int(height * 0.6))
    fw = int(img.shape[1] * fh / img.shape[0])
    img = cv2.resize(img, (fw, fh), interpolation=cv2.INTER_AREA)
    x = int((width - fw) / 2 + (width - fw) / 4 * np.sin(t * 0.8))
    y = int((height - fh) / 2 + (height - fh) / 4 * np.cos(t * 0.6))
    x, y = max(0, min(width - fw, x)), max(0, min(height - fh, y))
    bg[y:y + fh, x:x + fw] = img[: height - y, : width - x]
    return bg


def voice(seconds: float, sr: int = SAMPLE_RATE, f0: float = 180.0, seed: int = 0) -> np.ndarray:
    """A voice-like signal: harmonics of a gliding f0, syllable-rate amplitude modulation, a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f = f0 * (1 + 0.1 * np.sin(2 * np.pi * 0.7 * t))
    phase = 2 * np.pi * np.cumsum(f) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 6))
    env = 0.5 * (1 + np.sin(2 * np.pi * 4 * t)) ** 2 / 4
    return (0.3 * x * env + 0.005 * rng.standard_normal(t.size)).astype(np.float32)


def make_clip(path: str | Path, seconds: float = 4.0, width: int = 640, height: int = 480, fps: int = 25,
              audio: bool = True, video: bool = True, face: bool = True, sr: int = SAMPLE_RATE,
              rotate: int = 0, sound: np.ndarray | None = None) -> Path:
    """Write a test/demo clip. The container and codecs follow the extension (see CODECS);
    .wav/.flac/.mp3 write audio only. `rotate` tags the video with a display rotation.
    `sound` replaces the voice-like signal (float32 mono at the stream's rate, e.g. zeros)."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ext = path.suffix.lower()
    vcodec, acodec, pix = CODECS.get(ext, ("libx264", "aac", "yuv420p"))
    if ext in (".wav", ".flac", ".mp3", ".ogg"):
        video, acodec = False, {".wav": "pcm_s16le", ".flac": "flac", ".mp3": "mp3", ".ogg": "libvorbis"}[ext]
    with av.open(str(path), "w") as out:
        vs = as_ = None
        if video:
            vs = out.add_stream(vcodec, rate=fps)
            vs.width, vs.height, vs.pix_fmt = width, height, pix
        if audio:
            as_ = out.add_stream(acodec, rate=sr if acodec not in ("mp3", "libopus") else 48000 if acodec == "libopus" else 44100)
            as_.layout = "mono"
        n = int(round(seconds * fps))
        if vs is not None:
            for i in range(n):
                frame = av.VideoFrame.from_ndarray(frame_at(i / fps, width, height, face), format="rgb24")
                for pkt in vs.encode(frame):
                    out.mux(pkt)
            for pkt in vs.encode():
                out.mux(pkt)
        if as_ is not None:
            rate = as_.codec_context.sample_rate
            x = voice(seconds, rate) if sound is None else np.asarray(sound, np.float32)
            fmt = as_.codec_context.format.name
            hop = as_.codec_context.frame_size or 1024
            for k, i in enumerate(range(0, x.size, hop)):
                chunk = x[i:i + hop]
                if fmt.startswith("s16"):
                    arr = (chunk * 32767).astype(np.int16)[None]
                    af = av.AudioFrame.from_ndarray(arr, format="s16", layout="mono")
                else:
                    af = av.AudioFrame.from_ndarray(chunk[None].astype(np.float32), format="fltp", layout="mono")
                af.sample_rate = rate
                af.pts = i
                af.time_base = Fraction(1, rate)
                for pkt in as_.encode(af):
                    out.mux(pkt)
            for pkt in as_.encode():
                out.mux(pkt)
    if rotate and ext in (".mp4", ".mov"):
        _set_mp4_rotation(path, rotate)
    return path


def _set_mp4_rotation(path: Path, degrees: int) -> None:
    """Write a display matrix into the video track header, as phones do for portrait video."""
    import struct

    data = bytearray(path.read_bytes())
    pos = data.find(b"tkhd")
    if pos < 0 or data[pos + 4] != 0:  # only version-0 headers (what FFmpeg writes)
        return
    one, zero, m1 = 0x00010000, 0, 0xFFFF0000
    cos, sin = {90: (zero, one), 180: (m1, zero), 270: (zero, m1)}[degrees % 360]
    neg_sin = {one: m1, m1: one, zero: zero}[sin]
    struct.pack_into(">9I", data, pos + 44, cos, sin, 0, neg_sin, cos, 0, 0, 0, 0x40000000)
    path.write_bytes(bytes(data))


def make_synthetic_cache(out_dir: str | Path, classes: tuple[str, ...] = ("anger", "happiness", "neutral"),
                         n_per_class: dict | None = None, seconds: float = 2.0, fps: float = FPS,
                         dataset: str = "synthetic", seed: int = 0) -> Path:
    """A tiny learnable cache without any media decoding (tests, smoke runs): class k has a
    tinted face/context and a tone at 220·(k+1) Hz. Mixes full clips, audio-only clips,
    video-only clips, still images and clips where the face is found in only some frames.
    n_per_class: {split: count}, default {"train": 8, "dev": 3, "test": 3}."""
    from . import cache
    from .faces import FACE_SIZE

    rng = np.random.default_rng(seed)
    out = Path(out_dir)
    (out / cache.ENTRIES).mkdir(parents=True, exist_ok=True)
    n_per_class = n_per_class or {"train": 8, "dev": 3, "test": 3}
    i = 0
    for split, n in n_per_class.items():
        for k, label in enumerate(classes):
            for j in range(n):
                kind = ["full", "full", "audio", "video", "image", "partial"][(j + k) % 6]
                nf = 1 if kind == "image" else (0 if kind == "audio" else int(seconds * fps))
                tint = np.zeros(3)
                tint[k % 3] = 90.0
                base = rng.integers(0, 120, (nf, FACE_SIZE, FACE_SIZE, 3)).astype(np.float32)
                face = np.clip(base + tint + 40, 0, 255).astype(np.uint8)
                context = np.clip(base[:, ::-1] + tint / 2, 0, 255).astype(np.uint8)
                face_mask = np.ones(nf, bool)
                if kind == "partial":
                    face_mask[::2] = False
                    face[~face_mask] = 0
                has_audio = kind not in ("video", "image")
                tt = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
                f0 = 220.0 * (k + 1) * rng.uniform(0.95, 1.05)
                audio = (0.3 * np.sin(2 * np.pi * f0 * tt) + 0.02 * rng.normal(size=tt.size)).astype(np.float32) \
                    if has_audio else np.zeros(0, np.float32)
                key = f"{dataset}_{split}_{label}_{j:03d}"
                meta = {"label": label, "speaker": f"spk{j % 4 if split == 'train' else 10 + j % 2}", "split": split,
                        "dataset": dataset, "duration": 0.0 if kind == "image" else seconds, "fps": fps,
                        "has_video": nf > 0, "has_audio": has_audio,
                        "valence": float(k) / max(1, len(classes) - 1), "arousal": float(j % 2)}
                cache.write_entry(out, key, {"face": face, "context": context, "face_mask": face_mask,
                                             "audio": audio}, meta)
                i += 1
    cache.rebuild_index(out)
    return out
