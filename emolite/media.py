"""Decode any file FFmpeg reads into time-aligned windows of frames + 16 kHz mono audio.

One demux pass over the file (PyAV), streaming: frames are sampled at `fps` and kept only
until the windows that need them are emitted, so memory is bounded by the window length,
not the file length. Missing streams are not errors: a window says which modality it has.
Images (jpg/png/...) are one-frame inputs.
"""

from __future__ import annotations

import math
import os
from collections import deque
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from .errors import EmoliteError
from .options import number, optional

SAMPLE_RATE = 16000      # Hz, mono float32 audio everywhere
FPS = 5.0                # frames sampled per second of video
MAX_CLIP = 12.0          # s: files up to this long are one window ("utterance-level", MELD has 12-s ones);
                         # longer ones are windowed. The one place this is decided (see window_spans).
WINDOW = 2.0             # s: window length for long files (and for analyze)
HOP = 1.0                # s: hop between windows
MIN_WINDOW, MAX_WINDOW = 0.25, 600.0   # s: the window lengths analyze accepts
MIN_HOP = 0.1            # s: a smaller hop only multiplies the work
MAX_SKEW = 10.0          # s: a window waits at most this long past its end for a lagging stream, so a
                         # file whose video runs far ahead of its audio (or whose audio stops early)
                         # holds no more than this much of the other stream
MAX_SIDE = 640           # px: frames are downscaled so their longest side is at most this
MAX_FPS = 60.0           # frames sampled per second, at most (a video has no more to give)

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
AUDIO_EXTS = {".wav", ".flac", ".mp3", ".ogg", ".m4a", ".aac", ".opus", ".wma"}
VIDEO_EXTS = {".mp4", ".avi", ".mkv", ".webm", ".flv", ".mov", ".m4v", ".mpg", ".mpeg", ".wmv", ".3gp", ".ts",
              ".gif"}   # an animated GIF decodes as a video without audio
MEDIA_EXTS = IMAGE_EXTS | AUDIO_EXTS | VIDEO_EXTS

# (max seconds, max pixels) of `decode_limits`, per thread/context
_LIMITS: ContextVar[tuple[float | None, int | None]] = ContextVar("emolite_decode_limits", default=(None, None))


@dataclass
class Window:
    """A span of a file: frames sampled at fps (N×H×W×3 RGB uint8) and the matching audio."""

    start: float
    end: float
    frames: np.ndarray | None = None      # None when the file has no video
    times: np.ndarray = field(default_factory=lambda: np.zeros(0))
    audio: np.ndarray | None = None       # float32 at SAMPLE_RATE; None when the file has no audio

    @property
    def has_video(self) -> bool:
        """Whether the window holds at least one frame."""
        return self.frames is not None and len(self.frames) > 0

    @property
    def has_audio(self) -> bool:
        """Whether the window holds at least one audio sample."""
        return self.audio is not None and self.audio.size > 0


def check_file(path: str | Path) -> Path:
    """Fail early, with the fix, on the errors users hit most: missing, empty, unreadable."""
    p = Path(path)
    if not p.exists():
        raise EmoliteError("no such file; check the path", p)
    if p.is_dir():
        raise EmoliteError("is a folder, not a media file", p)
    if not os.access(p, os.R_OK):
        raise EmoliteError("permission denied; make the file readable", p)
    if p.stat().st_size == 0:
        raise EmoliteError("file is empty (0 bytes); re-export or re-download it", p)
    return p


def scan(folder: str | Path, exts: Iterable[str] = MEDIA_EXTS) -> tuple[list[Path], list[tuple[str, str]]]:
    """Files with one of `exts` under `folder` (recursively, sorted; hidden files and folders
    skipped) and a problem for each subfolder that cannot be read, so that none is skipped silently."""
    exts = {e.lower() for e in exts}
    problems: list[tuple[str, str]] = []

    def unreadable(e: OSError) -> None:
        problems.append((str(e.filename or folder), f"cannot read folder ({e.strerror}); check its permissions"))

    files = []
    for root, dirs, names in os.walk(folder, onerror=unreadable):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        files += [Path(root) / n for n in names if not n.startswith(".") and Path(n).suffix.lower() in exts]
    return sorted(files), problems


def read_image(path: str | Path) -> np.ndarray:
    """An image file as H×W×3 RGB uint8 (works with non-ASCII paths)."""
    import cv2

    p = check_file(path)
    img = cv2.imdecode(np.fromfile(p, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise EmoliteError("not an image OpenCV can read (corrupt or unsupported format)", p)
    return np.ascontiguousarray(img[..., ::-1])


def _open(p: Path):
    import av

    try:
        return av.open(str(p), metadata_errors="ignore")
    except av.error.FFmpegError as e:
        raise EmoliteError(f"not a media file FFmpeg can read, or truncated/corrupt ({e.strerror or e})", p) from None


def _streams(container) -> tuple[object | None, object | None]:
    """The first decodable video and audio streams; data streams and unknown codecs are skipped."""
    video = audio = None
    for s in container.streams:
        if getattr(s, "codec_context", None) is None:
            continue
        if s.type == "video" and video is None and getattr(s.codec_context, "name", None):
            video = s
        elif s.type == "audio" and audio is None and getattr(s.codec_context, "name", None):
            audio = s
    return video, audio


def probe(path: str | Path) -> dict:
    """What a media file holds: streams, duration, fps, sample rate, size, rotation."""
    p = check_file(path)
    if p.suffix.lower() in IMAGE_EXTS:
        img = read_image(p)
        return {"path": str(p), "kind": "image", "width": img.shape[1], "height": img.shape[0],
                "duration": 0.0, "streams": [{"type": "image", "width": img.shape[1], "height": img.shape[0]}]}
    with _open(p) as c:
        streams = []
        for s in c.streams:
            cc = getattr(s, "codec_context", None)
            d = {"index": s.index, "type": s.type, "codec": getattr(cc, "name", None) if cc else None}
            if s.duration is not None and s.time_base is not None:
                d["duration"] = round(float(s.duration * s.time_base), 3)
            if s.type == "video" and cc is not None:
                rate = s.average_rate or s.guessed_rate
                d.update(width=cc.width, height=cc.height, fps=round(float(rate), 3) if rate else None,
                         frames=s.frames or None)
            elif s.type == "audio" and cc is not None:
                d.update(sample_rate=cc.sample_rate, channels=cc.channels)
            streams.append(d)
        video, audio = _streams(c)
        duration = float(c.duration) / 1e6 if c.duration else max((s.get("duration", 0) for s in streams), default=0.0)
    kind = "video" if video is not None else "audio" if audio is not None else "unknown"
    warnings = [f"stream {s['index']} ({s['type']}): codec not supported by this FFmpeg build; ignored"
                for s in streams if s["type"] in ("video", "audio") and not s["codec"]]
    return {"path": str(p), "kind": kind, "duration": round(duration, 3), "format": c.format.name,
            "has_video": video is not None, "has_audio": audio is not None, "streams": streams,
            **({"warnings": warnings} if warnings else {})}


def window_spans(duration: float, window: float | None, hop: float | None) -> list[tuple[float, float]]:
    """Window [start, end) spans covering [0, duration]; the last one is aligned to the end.

    window=None means 'auto': the whole clip when it is at most MAX_CLIP long, else WINDOW/HOP.
    """
    if window is None:
        if duration <= MAX_CLIP:
            return [(0.0, duration)]
        window, hop = WINDOW, hop or HOP
    hop = hop or window
    if duration <= window:
        return [(0.0, duration)]
    spans = [(k * hop, k * hop + window) for k in range(int(math.floor((duration - window) / hop + 1e-9)) + 1)]
    if spans[-1][1] < duration - 1e-6:
        spans.append((duration - window, duration))
    return spans


def _to_rgb(frame, max_side: int | None) -> np.ndarray:
    w, h = frame.width, frame.height
    if max_side and max(w, h) > max_side:
        s = max_side / max(w, h)
        w, h = max(2, int(round(w * s / 2) * 2)), max(2, int(round(h * s / 2) * 2))
    img = frame.to_ndarray(format="rgb24", width=w, height=h)
    rot = int(getattr(frame, "rotation", 0) or 0) % 360  # phone video: display matrix rotation
    if rot:
        img = np.ascontiguousarray(np.rot90(img, k=rot // 90))
    return img


class _AudioBuffer:
    """Resampled audio held for pending windows: a deque of chunks and the time of its first sample."""

    def __init__(self) -> None:
        self.chunks: deque[np.ndarray] = deque()
        self.t: float | None = None   # time of the first held sample
        self.n = 0                    # samples held
        self.clock: float | None = None  # time of the next sample to arrive

    @property
    def end(self) -> float:
        return -1.0 if self.t is None else self.t + self.n / SAMPLE_RATE

    def push(self, x: np.ndarray, t0: float) -> None:
        """Append samples at `clock`, dropping any that fall before t0 (a segment's start)."""
        if self.clock is not None and self.clock < t0:
            skip = min(x.size, int(round((t0 - self.clock) * SAMPLE_RATE)))
            self.clock += skip / SAMPLE_RATE
            x = x[skip:]
        if not x.size:
            return
        if self.t is None:
            self.t = self.clock
        self.chunks.append(x)
        self.n += x.size
        self.clock += x.size / SAMPLE_RATE

    def cut(self, a: float, b: float) -> np.ndarray:
        if self.t is None or not self.chunks:
            return np.zeros(0, np.float32)
        buf = np.concatenate(list(self.chunks))
        i, j = int(round((a - self.t) * SAMPLE_RATE)), int(round((b - self.t) * SAMPLE_RATE))
        return buf[max(i, 0):max(j, 0)].copy()

    def drop_before(self, t: float) -> None:
        while self.chunks and self.t + len(self.chunks[0]) / SAMPLE_RATE <= t:
            k = len(self.chunks.popleft())
            self.t += k / SAMPLE_RATE
            self.n -= k


@contextmanager
def decode_limits(seconds: float | None = None, pixels: int | None = None) -> Iterator[None]:
    """Within this block (this thread), `iter_windows` refuses files that decode past `seconds` of
    media or hold frames over `pixels`: the server's upload limits, enforced on what is decoded
    rather than on what the container claims (a live-written file may claim no duration at all)."""
    token = _LIMITS.set((seconds, pixels))
    try:
        yield
    finally:
        _LIMITS.reset(token)


def iter_windows(path: str | Path, fps: float = FPS, window: float | None = None, hop: float | None = None,
                 start: float | None = None, end: float | None = None, max_side: int | None = MAX_SIDE,
                 use_video: bool = True, use_audio: bool = True) -> Iterator[Window]:
    """Stream the windows of a file (or of its [start, end) segment), in time order.

    Times in the windows are seconds from the start of the file. Frames are sampled at
    `fps` (each sample takes the first frame at or after its time). Bounded memory: a frame or
    audio sample is dropped as soon as no pending window needs it, also when the container
    does not say how long the file is. A truncated file yields what decoded, like every player
    does. Options and the file are checked here, at the call, not at the first window.
    """
    fps = number("fps", fps, 0, MAX_FPS, lo_open=True)
    window = optional("window", window, 0, lo_open=True)
    hop = optional("hop", hop, 0, lo_open=True)
    start = optional("start", start, 0)
    end = optional("end", end, 0)
    p = check_file(path)
    if p.suffix.lower() in IMAGE_EXTS:
        return iter([Window(0.0, 0.0, read_image(p)[None], np.zeros(1), None)])
    return _decode(p, fps, window, hop, start, end, max_side, use_video, use_audio, _LIMITS.get())


class _Spans:
    """The pending windows. Known up front when the duration is; otherwise made as media arrives:
    the whole clip while at most MAX_CLIP has decoded, then (or at once, for a given window)
    WINDOW/HOP windows streamed like a file of known length, the last one aligned to the end."""

    def __init__(self, t0: float, t_end: float | None, window: float | None, hop: float | None):
        self.t0, self.window, self.hop = t0, window, hop
        self.q: deque[tuple[float, float]] | None = None
        self.k = 0                 # next streamed window's index
        self.streaming = False
        self.done_to = t0          # end of the last window handed out
        if t_end:
            self.q = deque((t0 + a, t0 + b) for a, b in window_spans(t_end - t0, window, hop))
        elif window is not None:
            self._stream(window, hop)

    def _stream(self, window: float, hop: float | None) -> None:
        self.window, self.hop, self.streaming, self.q = window, hop or window, True, deque()

    def grow(self, latest: float) -> None:
        """Queue the streamed windows that start by `latest` (decoded up to), at least one ahead."""
        if self.q is None and self.window is None and latest - self.t0 > MAX_CLIP:
            self._stream(WINDOW, self.hop or HOP)
        if not self.streaming:
            return
        while not self.q or self.q[-1][0] <= latest:
            a = self.t0 + self.k * self.hop
            self.q.append((a, a + self.window))
            self.k += 1

    def keep_from(self, latest: float) -> float:
        """Earliest time still needed: the next window's start (and, while streaming, the last
        window's worth before `latest`, for the end-aligned window)."""
        nxt = self.q[0][0] if self.q else math.inf
        return min(nxt, latest - self.window) if self.streaming else nxt

    def finish(self, last: float) -> None:
        """The length is known now (`last`): the final windows."""
        if self.q is None:
            self.q = deque((self.t0 + a, self.t0 + b) for a, b in window_spans(max(last - self.t0, 0.0),
                                                                              self.window, self.hop))
        elif self.streaming:
            self.q = deque(s for s in self.q if s[1] <= last + 1e-6)
            final = self.q[-1][1] if self.q else self.done_to
            if final < last - 1e-6 or (not self.q and self.done_to == self.t0):
                self.q.append((max(self.t0, last - self.window), last))
        self.streaming = False


def _decode(p: Path, fps: float, window: float | None, hop: float | None, start: float | None,
            end: float | None, max_side: int | None, use_video: bool, use_audio: bool,
            limits: tuple[float | None, int | None]) -> Iterator[Window]:
    """The demux/decode loop of `iter_windows` (a generator: runs as windows are consumed)."""
    import av

    max_seconds, max_pixels = limits
    c = _open(p)
    try:
        video, audio = _streams(c)
        video = video if use_video else None
        audio = audio if use_audio else None
        if video is None and audio is None:
            raise EmoliteError("no audio or video stream FFmpeg can decode" if use_video and use_audio
                               else "no stream of the requested kind", p)
        if video is not None:
            video.thread_type = "AUTO"
        origin = float(c.start_time) / 1e6 if c.start_time else 0.0
        duration = float(c.duration) / 1e6 if c.duration else None
        t0 = float(start or 0.0)
        t_end = float(end) if end is not None else duration
        if t0 > 0:
            c.seek(int((t0 + origin) * 1e6), backward=True, any_frame=False)
        spans = _Spans(t0, t_end, window, hop)
        frames: deque[tuple[float, np.ndarray]] = deque()
        abuf = _AudioBuffer()
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE) if audio is not None else None
        state = {"video_t": -1.0, "v_done": video is None, "a_done": audio is None}
        next_t, decoded_any = t0, False

        def latest() -> float:
            return max(state["video_t"], abuf.end)

        def emit(final: bool = False) -> Iterator[Window]:
            """Yield every pending window whose data has fully arrived, then free what is spent."""
            while spans.q:
                a, b = spans.q[0]
                v_ok = state["v_done"] or state["video_t"] >= b - 1e-6
                a_ok = state["a_done"] or abuf.end >= b - 1e-6
                stale = latest() - b > MAX_SKEW   # the lagging stream's late data for it is dropped
                if not final and not (v_ok and a_ok) and not stale:
                    break
                spans.q.popleft()
                spans.done_to = b
                spans.grow(latest())
                yield _cut(a, b, frames, abuf, video is not None, audio is not None, fps)
            # free what no pending window needs, also data that arrived late for windows handed out
            keep = spans.keep_from(latest())
            while frames and frames[0][0] < keep - 0.5 / fps:
                frames.popleft()
            abuf.drop_before(keep)

        try:
            for packet in c.demux([s for s in (video, audio) if s is not None]):
                for frame in packet.decode():
                    if frame.time is None:
                        continue
                    t = float(frame.time) - origin
                    if max_seconds is not None and t - t0 > max_seconds:
                        raise EmoliteError(f"media longer than the limit of {max_seconds:.0f} s", p)
                    if packet.stream is video:
                        if max_pixels is not None and frame.width * frame.height > max_pixels:
                            raise EmoliteError(f"video of {frame.width}x{frame.height} pixels is over the "
                                               f"limit of {max_pixels}", p)
                        if t_end is not None and t >= t_end:
                            state["v_done"] = True
                            continue
                        state["video_t"] = max(state["video_t"], t)
                        if t + 0.5 / fps < next_t:  # between samples: decode only, no conversion
                            continue
                        img = _to_rgb(frame, max_side)
                        decoded_any = True
                        while next_t <= t + 0.5 / fps:
                            frames.append((next_t, img))
                            next_t += 1.0 / fps
                    else:
                        if abuf.clock is None:
                            abuf.clock = t
                        if t_end is not None and t >= t_end:
                            state["a_done"] = True
                            continue
                        for out in resampler.resample(frame):
                            abuf.push(out.to_ndarray().reshape(-1).astype(np.float32, copy=False), t0)
                        decoded_any = True
                spans.grow(latest())
                if spans.q is not None:
                    yield from emit()
                if state["v_done"] and state["a_done"]:
                    break
        except av.error.FFmpegError as e:
            if not decoded_any:
                raise EmoliteError(f"cannot decode ({e.strerror or e}); the file is corrupt or uses an "
                                   "unsupported codec", p) from None
        if resampler is not None and abuf.clock is not None:
            for out in resampler.resample(None):
                abuf.push(out.to_ndarray().reshape(-1).astype(np.float32, copy=False), t0)
        if not frames and abuf.n == 0 and not decoded_any:
            raise EmoliteError("no decodable frames or audio (empty, or shorter than one frame)", p)
        state["v_done"] = state["a_done"] = True
        if t_end is None:  # the length is known only now (some streamed formats)
            spans.finish(max(state["video_t"] + 1.0 / fps if frames else 0.0, abuf.end))
        yield from emit(final=True)
    finally:
        c.close()


def _cut(a: float, b: float, frames: deque, abuf: _AudioBuffer, has_video: bool, has_audio: bool,
         fps: float) -> Window:
    """Assemble one window from the buffers: frames sampled in [a, b) and audio samples in [a, b)."""
    sel = [(t, f) for t, f in frames if a - 1e-6 <= t < b - 1e-6]
    if has_video and not sel and frames:  # window shorter than a frame interval: the nearest frame
        sel = [min(frames, key=lambda tf: abs(tf[0] - a))]
    v = None
    if has_video and sel:
        h, w = sel[0][1].shape[:2]
        if any(f.shape[:2] != (h, w) for _, f in sel):  # resolution change mid-stream
            import cv2
            sel = [(t, f if f.shape[:2] == (h, w) else cv2.resize(f, (w, h))) for t, f in sel]
        v = np.stack([f for _, f in sel])
    times = np.array([t for t, _ in sel]) if sel else np.zeros(0)
    x = abuf.cut(a, b) if has_audio else None
    return Window(a, b, v, times, x)


def load_audio(path: str | Path, start: float | None = None, end: float | None = None) -> np.ndarray:
    """The whole audio track (or a segment) as float32 16 kHz mono; empty when there is none."""
    parts = [w.audio for w in iter_windows(path, window=1e9, start=start, end=end, use_video=False)
             if w.audio is not None]
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)
