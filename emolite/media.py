"""Decode any file FFmpeg reads into time-aligned windows of frames + 16 kHz mono audio.

One demux pass over the file (PyAV), streaming: frames are sampled at `fps` and kept only
until the windows that need them are emitted, so memory is bounded by the window length,
not the file length (which windows: `spans`, from what decodes). Missing streams are not errors: a window says which modality it has.
Images (jpg/png/...) are one-frame inputs.
"""

from __future__ import annotations

from collections import deque
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from .errors import EmoliteError, shown
from .spans import HOP, MAX_CLIP, WINDOW, Spans, window_count, window_spans  # noqa: F401  (media.WINDOW etc.: public)
from .mediafiles import (AUDIO_EXTS, IMAGE_EXTS, MEDIA_EXTS, VIDEO_EXTS,  # noqa: F401  (media.X: public)
                         check_file, scan)
from .options import number, optional

SAMPLE_RATE = 16000      # Hz, mono float32 audio everywhere
FPS = 5.0                # frames sampled per second of video
MIN_WINDOW, MAX_WINDOW = 0.25, 600.0   # s: the window lengths analyze accepts
MIN_HOP = 0.1            # s: a smaller hop only multiplies the work
MAX_SKEW = 10.0          # s: a window waits at most this long past its end for a lagging stream, so a
                         # file whose video runs far ahead of its audio (or whose audio stops early)
                         # holds no more than this much of the other stream
MAX_SIDE = 640           # px: frames are downscaled so their longest side is at most this
MAX_FPS = 60.0           # frames sampled per second, at most (a video has no more to give)
MAX_PIXELS = 7680 * 4320  # per image or video frame (8K; a 12 or 24 MP photo fits), checked from the
                         # header before decoding: 631 bytes of JPEG can declare 16000x16000 (1.8 GB).
                         # decode_limits (--max-pixels) raises or lowers it; the server sets its own.
MIN_RATE, MAX_RATE = 4000, 768000   # Hz: audio sample rates that can be real; a header saying 1 Hz
                         # would resample 80 KB into hours of audio
EARLY_END = 1.0          # s: decoded data ending more than this before the length the file claims
                         # is a truncated file (or a lying header): windows stop at the data, with a warning


# (max seconds, max pixels) of `decode_limits`, per thread/context
_LIMITS: ContextVar[tuple[float | None, int | None]] = ContextVar("emolite_decode_limits", default=(None, MAX_PIXELS))


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


def image_size(path: str | Path) -> tuple[int, int] | None:
    """(width, height) from an image file's header, without decoding it; None when unreadable."""
    import warnings

    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with Image.open(path) as im:
                return im.size
        except Image.DecompressionBombError:   # over Pillow's own limit: read the header without it
            fmt = Image.registered_extensions().get(Path(path).suffix.lower())
            with open(path, "rb") as f:
                return Image.OPEN[fmt][0](f, str(path)).size if fmt in Image.OPEN else (1 << 16, 1 << 16)
        except Exception:   # not an image Pillow knows: OpenCV decides below
            return None


def read_image(path: str | Path) -> np.ndarray:
    """An image file as H×W×3 RGB uint8 (works with non-ASCII and non-UTF-8 paths); refused
    from its header when it is over the pixel limit (`decode_limits`, default MAX_PIXELS)."""
    import cv2

    p = check_file(path)
    size, limit = image_size(p), _LIMITS.get()[1]
    if size is not None and limit is not None and size[0] * size[1] > limit:
        raise EmoliteError(_over_pixels("image", *size, limit), p)
    img = cv2.imdecode(np.fromfile(p, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise EmoliteError("not an image OpenCV can read (corrupt or unsupported format)", p)
    return np.ascontiguousarray(img[..., ::-1])


@contextmanager
def _opened(p: Path):
    """The PyAV container of a file. A name that is not UTF-8 (legal on Linux: names are bytes)
    cannot be passed to FFmpeg as text, so such a file is handed over open."""
    import av

    try:
        str(p).encode("utf-8")
        f = None
    except UnicodeEncodeError:
        f = open(p, "rb")
    try:
        try:
            c = av.open(f if f is not None else str(p), metadata_errors="ignore")
        except av.error.FFmpegError as e:
            raise EmoliteError(f"not a media file FFmpeg can read, or truncated/corrupt ({e.strerror or e})",
                               p) from None
        try:
            yield c
        finally:
            c.close()
    finally:
        if f is not None:
            f.close()


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
    if p.suffix.lower() in IMAGE_EXTS:   # from the header: a pixel bomb is described, not decoded
        size = image_size(p)
        if size is None:
            size = read_image(p).shape[1::-1]
        return {"path": shown(p), "kind": "image", "width": size[0], "height": size[1],
                "duration": 0.0, "streams": [{"type": "image", "width": size[0], "height": size[1]}]}
    with _opened(p) as c:
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
    return {"path": shown(p), "kind": kind, "duration": round(duration, 3), "format": c.format.name,
            "has_video": video is not None, "has_audio": audio is not None, "streams": streams,
            **({"warnings": warnings} if warnings else {})}


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
def decode_limits(seconds: float | None = None, pixels: int | None = MAX_PIXELS) -> Iterator[None]:
    """Within this block (this thread), `iter_windows` and `read_image` refuse files that decode
    past `seconds` of media or hold images or frames over `pixels` (None: no limit): the server's
    upload limits and --max-pixels. Seconds are enforced on what is decoded rather than on what
    the container claims (a live-written file may claim no duration at all); pixels on the header
    first, then on each decoded frame."""
    token = _LIMITS.set((seconds, pixels))
    try:
        yield
    finally:
        _LIMITS.reset(token)


class WindowStream:
    """What `iter_windows` returns: an iterator of Windows, and `warnings` about the file learnt
    while decoding it (e.g. that it ended early), complete once the stream is exhausted."""

    def __init__(self, make: Callable[[list[str]], Iterator[Window]]):
        self.warnings: list[str] = []
        self._it = make(self.warnings)

    def __iter__(self) -> "WindowStream":
        return self

    def __next__(self) -> Window:
        return next(self._it)

    def close(self) -> None:
        """Stop decoding and close the file (also done when the stream is garbage-collected)."""
        close = getattr(self._it, "close", None)
        if close is not None:
            close()


def iter_windows(path: str | Path, fps: float = FPS, window: float | None = None, hop: float | None = None,
                 start: float | None = None, end: float | None = None, max_side: int | None = MAX_SIDE,
                 use_video: bool = True, use_audio: bool = True) -> WindowStream:
    """Stream the windows of a file (or of its [start, end) segment), in time order.

    Times in the windows are seconds from the start of the file. Frames are sampled at
    `fps` (each sample takes the first frame at or after its time). Bounded memory: a frame or
    audio sample is dropped as soon as no pending window needs it, also when the container
    does not say how long the file is. Windows come from what decodes, never from what the
    container claims: a truncated file (or one whose header lies) yields what decoded, like
    every player does, no window lies past the decoded data, a window without a decoded frame
    has no video and one past the last sample no audio, and `warnings` says the file ended
    early. Options and the file are checked here, at the call, not at the first window.
    """
    fps = number("fps", fps, 0, MAX_FPS, lo_open=True)
    window = optional("window", window, 0, lo_open=True)
    hop = optional("hop", hop, 0, lo_open=True)
    start = optional("start", start, 0)
    end = optional("end", end, 0)
    p = check_file(path)
    if p.suffix.lower() in IMAGE_EXTS:
        img = read_image(p)
        return WindowStream(lambda _: iter([Window(0.0, 0.0, img[None], np.zeros(1), None)]))
    limits = _LIMITS.get()
    return WindowStream(lambda warnings: _decode(p, fps, window, hop, start, end, max_side, use_video,
                                                 use_audio, limits, warnings))


class _Decoded:
    """What has decoded and is still needed: frames sampled at fps, resampled audio, how far
    each stream has got, and where the decoded data ends."""

    def __init__(self, t0: float, fps: float, max_side: int | None, video, audio):
        import av

        self.fps, self.max_side, self.next_t = fps, max_side, t0
        self.frames: deque[tuple[float, np.ndarray]] = deque()
        self.audio = _AudioBuffer()
        self.resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE) if audio is not None else None
        rate = video.average_rate or video.guessed_rate if video is not None else None
        self.frame_dt = 1.0 / float(rate) if rate else 1.0 / fps   # a frame's duration when it has none
        self.video_t = self.video_end = -1.0   # latest video frame's time, and its end
        self.v_done, self.a_done = video is None, audio is None
        self.has_video, self.has_audio = video is not None, audio is not None
        self.any = False           # anything decoded at all

    @property
    def latest(self) -> float:
        return max(self.video_t, self.audio.end)

    @property
    def end(self) -> float:
        """Where the decoded data ends (the later stream's last frame or sample)."""
        return max(self.video_end, self.audio.end)

    def add_video(self, frame, t: float) -> None:
        self.video_t = max(self.video_t, t)
        dt = float(frame.duration * frame.time_base) if frame.duration and frame.time_base else self.frame_dt
        self.video_end = max(self.video_end, t + dt)
        if t + 0.5 / self.fps < self.next_t:  # between samples: decode only, no conversion
            return
        img = _to_rgb(frame, self.max_side)
        self.any = True
        while self.next_t <= t + 0.5 / self.fps:
            self.frames.append((self.next_t, img))
            self.next_t += 1.0 / self.fps

    def add_audio(self, frame, t0: float) -> None:
        for out in self.resampler.resample(frame):
            self.audio.push(out.to_ndarray().reshape(-1).astype(np.float32, copy=False), t0)
        self.any = self.any or frame is not None

    def ready(self, b: float) -> bool:
        """Whether the data for a window ending at b has arrived (or the lagging stream is MAX_SKEW
        behind: its late data for the window is dropped)."""
        v_ok = self.v_done or self.video_t >= b - 1e-6
        a_ok = self.a_done or self.audio.end >= b - 1e-6
        return (v_ok and a_ok) or self.latest - b > MAX_SKEW

    def emit(self, spans: Spans, final: bool = False) -> Iterator[Window]:
        """Yield every pending window whose data has fully arrived, then free what is spent."""
        while spans.q and (final or self.ready(spans.q[0][1])):
            a, b = spans.q.popleft()
            spans.done_to = b
            spans.grow(self.latest)
            yield _cut(a, b, self.frames, self.audio, self.has_video, self.has_audio, self.fps)
        # free what no pending window needs, also data that arrived late for windows handed out
        keep = spans.keep_from(self.latest)
        while self.frames and self.frames[0][0] < keep - 0.5 / self.fps:
            self.frames.popleft()
        self.audio.drop_before(keep)


def _check_streams(p: Path, video, audio, max_pixels: int | None) -> None:
    """Refuse from the header, before anything is decoded, what would take far more memory or
    time than the file's size suggests: frames over the pixel limit, absurd sample rates."""
    if video is not None and max_pixels is not None:
        w, h = video.codec_context.width or 0, video.codec_context.height or 0
        if w * h > max_pixels:
            raise EmoliteError(_over_pixels("video", w, h, max_pixels), p)
    if audio is not None:
        _check_rate(p, audio.codec_context.sample_rate)


def _check_rate(p: Path, rate: int | None) -> None:
    if rate and not MIN_RATE <= rate <= MAX_RATE:
        raise EmoliteError(f"audio sample rate of {rate} Hz is outside {MIN_RATE}-{MAX_RATE} Hz: the "
                           "header is damaged; re-export the file", p)


def _over_pixels(kind: str, w: int, h: int, limit: int) -> str:
    return (f"{kind} of {w}x{h} pixels is over the limit of {limit} pixels; downscale it, or raise the "
            "limit (--max-pixels, or media.decode_limits(pixels=...) in Python)")


def _decode(p: Path, fps: float, window: float | None, hop: float | None, start: float | None,
            end: float | None, max_side: int | None, use_video: bool, use_audio: bool,
            limits: tuple[float | None, int | None], warnings: list[str]) -> Iterator[Window]:
    """The demux/decode loop of `iter_windows` (a generator: runs as windows are consumed)."""
    import av

    max_seconds, max_pixels = limits
    with _opened(p) as c:
        video, audio = _streams(c)
        video, audio = video if use_video else None, audio if use_audio else None
        if video is None and audio is None:
            raise EmoliteError("no audio or video stream FFmpeg can decode" if use_video and use_audio
                               else "no stream of the requested kind", p)
        _check_streams(p, video, audio, max_pixels)
        if video is not None:
            video.thread_type = "AUTO"
        origin = float(c.start_time) / 1e6 if c.start_time else 0.0
        t0 = float(start or 0.0)
        t_end = float(end) if end is not None else float(c.duration) / 1e6 if c.duration else None
        if t0 > 0:
            c.seek(int((t0 + origin) * 1e6), backward=True, any_frame=False)
        spans, d = Spans(t0, t_end, window, hop), _Decoded(t0, fps, max_side, video, audio)
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
                            raise EmoliteError(_over_pixels("video", frame.width, frame.height, max_pixels), p)
                        if t_end is not None and t >= t_end:
                            d.v_done = True
                        else:
                            d.add_video(frame, t)
                    else:
                        _check_rate(p, frame.sample_rate)
                        if d.audio.clock is None:
                            d.audio.clock = t
                        if t_end is not None and t >= t_end:
                            d.a_done = True
                        else:
                            d.add_audio(frame, t0)
                spans.grow(d.latest)
                yield from d.emit(spans)
                if d.v_done and d.a_done:
                    break
        except av.error.FFmpegError as e:
            if not d.any:
                raise EmoliteError(f"cannot decode ({e.strerror or e}); the file is corrupt or uses an "
                                   "unsupported codec", p) from None
            warnings.append(f"decoding stopped at {d.end:.1f} s ({e.strerror or e}): the rest of the file is damaged")
        if d.resampler is not None and d.audio.clock is not None:
            d.add_audio(None, t0)
        if not d.any and d.audio.n == 0:
            raise EmoliteError("no decodable frames or audio (empty, or shorter than one frame)", p)
        d.v_done = d.a_done = True
        last = d.end
        if t_end is not None and last >= t_end - EARLY_END:
            last = t_end   # the header's length, when the data reaches it
        elif t_end is not None:
            claim = "the requested end" if end is not None else "the length its header claims"
            warnings.append(f"the file ended early: decoded media stops at {last:.1f} s, before {claim} "
                            f"({t_end:.1f} s); truncated or a damaged header: no window past {last:.1f} s")
        spans.finish(last)
        yield from d.emit(spans, final=True)


def _cut(a: float, b: float, frames: deque, abuf: _AudioBuffer, has_video: bool, has_audio: bool,
         fps: float) -> Window:
    """Assemble one window from the buffers: frames sampled in [a, b) and audio samples in [a, b)."""
    sel = [(t, f) for t, f in frames if a - 1e-6 <= t < b - 1e-6]
    near = [(t, f) for t, f in frames if a - 1.0 / fps <= t < b + 1.0 / fps] if has_video and not sel else []
    if near:   # a window shorter than a frame interval: the nearest frame (never one from far away)
        sel = [min(near, key=lambda tf: abs(tf[0] - a))]
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
