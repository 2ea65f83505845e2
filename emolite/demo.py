"""Built-in examples: a short clip with a real face and a voice-like tone, and generated
scenes with several people. (The tiny synthetic training cache the tests and
configs/smoke.toml use is a test fixture: tests/synthetic.py.)

The face is a crop of NASA's public-domain astronaut portrait (as in scikit-image), shipped
in emolite/assets/face.jpg, so the demo, the tests and the benchmarks need no data download.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np

from .media import SAMPLE_RATE

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


@dataclass
class Actor:
    """One person in a generated scene: a face photo on a coloured torso, moving along `path`
    (time -> face centre in px), on screen in [enter, leave), covered during `hidden` spans;
    `mouth` locates the mouth in the photo (it opens when this person speaks)."""

    face: np.ndarray
    path: Callable[[float], tuple[float, float]]
    shirt: tuple[int, int, int] = (60, 90, 160)
    enter: float = 0.0
    leave: float = float("inf")
    hidden: tuple[tuple[float, float], ...] = ()
    mouth: tuple[float, float, float] = (0.5, 0.72, 0.2)   # centre x, y and width, as fractions of the face


@dataclass
class Scene:
    """Several people in one 640×480-style picture, for tracking tests and benchmarks. The face
    of whoever `speaker(t)` names opens and closes its mouth with `envelope(t)` (0..1). Calling it gives the frame at t; `boxes(t)` the
    drawn face boxes of the visible people (the ground truth)."""

    actors: list[Actor]
    width: int = 640
    height: int = 480
    face_px: int = 110
    speaker: Callable[[float], int | None] = lambda t: None
    envelope: Callable[[float], float] = lambda t: 0.0
    _faces: list[np.ndarray] = field(default_factory=list)

    def __post_init__(self) -> None:
        import cv2

        self._faces = [cv2.resize(a.face if a.face.ndim == 3 else np.repeat(a.face[..., None], 3, -1),
                                  (self.face_px, self.face_px), interpolation=cv2.INTER_AREA) for a in self.actors]

    def visible(self, k: int, t: float) -> bool:
        a = self.actors[k]
        return a.enter <= t < a.leave and not any(s <= t < e for s, e in a.hidden)

    def boxes(self, t: float) -> dict[int, tuple[float, float, float, float]]:
        out = {}
        for k, a in enumerate(self.actors):
            if self.visible(k, t):
                cx, cy = a.path(t)
                h = self.face_px / 2
                out[k] = (cx - h, cy - h, cx + h, cy + h)
        return out

    def __call__(self, t: float) -> np.ndarray:
        import cv2

        yy, xx = np.mgrid[0:self.height, 0:self.width]
        img = np.stack([90 + 40 * xx // self.width, 110 + 30 * yy // self.height,
                        np.full_like(xx, 120)], -1).astype(np.uint8)
        p, talk = self.face_px, self.speaker(t)
        # draw far (small y) first so lower people pass in front when paths cross
        order = sorted(range(len(self.actors)), key=lambda k: self.actors[k].path(t)[1])
        for k in order:
            a = self.actors[k]
            if not a.enter <= t < a.leave:
                continue
            cx, cy = (int(v) for v in a.path(t))
            cv2.ellipse(img, (cx, cy + int(1.15 * p)), (int(0.75 * p), int(0.6 * p)), 0, 0, 360, a.shirt, -1)
            face = self._faces[k]
            if talk == k:   # the mouth opens with the voice
                face = face.copy()
                mx, my, mw = (int(v * p) for v in a.mouth)
                cv2.ellipse(face, (mx, my), (mw // 2, max(1, int(0.3 * mw * self.envelope(t)))), 0, 0, 360,
                            (60, 25, 30), -1)
            x0, y0 = cx - p // 2, cy - p // 2
            xa, ya, xb, yb = max(x0, 0), max(y0, 0), min(x0 + p, self.width), min(y0 + p, self.height)
            if xb > xa and yb > ya:
                img[ya:yb, xa:xb] = face[ya - y0:yb - y0, xa - x0:xb - x0]
            if any(s <= t < e for s, e in a.hidden):   # something passes in front of this face
                cv2.rectangle(img, (x0 - 10, y0 - 10), (x0 + p + 10, y0 + p + 10), (40, 40, 40), -1)
        return img


def make_clip(path: str | Path, seconds: float = 4.0, width: int = 640, height: int = 480, fps: int = 25,
              audio: bool = True, video: bool = True, face: bool = True, sr: int = SAMPLE_RATE,
              rotate: int = 0, sound: np.ndarray | None = None,
              frames: Callable[[float], np.ndarray] | None = None) -> Path:
    """Write a test/demo clip. The container and codecs follow the extension (see CODECS);
    .wav/.flac/.mp3 write audio only. `rotate` tags the video with a display rotation.
    `sound` replaces the voice-like signal (float32 mono at the stream's rate, e.g. zeros);
    `frames(t)` replaces the drifting face (e.g. a `Scene`, several people)."""
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
                img = frames(i / fps) if frames is not None else frame_at(i / fps, width, height, face)
                frame = av.VideoFrame.from_ndarray(img, format="rgb24")
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
