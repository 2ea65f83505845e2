import os

import numpy as np
import pytest

from emolite import media
from emolite.demo import make_clip
from emolite.errors import EmoliteError


def test_containers_decode_to_aligned_windows(clips):
    for ext, path in clips.items():
        (w,) = list(media.iter_windows(path))
        assert w.has_video and w.has_audio, ext
        assert w.frames.dtype == np.uint8 and w.frames.shape[1:] == (120, 160, 3), ext
        # 5 fps over ~1.5 s -> 7-8 frames; 16 kHz mono audio spanning the window
        assert 7 <= len(w.frames) <= 9, (ext, len(w.frames))
        assert abs(w.audio.size / media.SAMPLE_RATE - (w.end - w.start)) < 0.1, ext
        assert np.all(np.diff(w.times) > 0)


def test_probe_reports_streams(clip):
    info = media.probe(clip)
    assert info["has_video"] and info["has_audio"] and abs(info["duration"] - 3.0) < 0.1
    v = [s for s in info["streams"] if s["type"] == "video"][0]
    a = [s for s in info["streams"] if s["type"] == "audio"][0]
    assert (v["width"], v["height"], round(v["fps"])) == (320, 240, 25)
    assert a["sample_rate"] == 16000


def test_window_spans_cover_the_file():
    assert media.window_spans(3.0, None, None) == [(0.0, 3.0)]
    spans = media.window_spans(25.0, None, None)  # long file -> 2 s windows, 1 s hop
    assert spans[0] == (0.0, 2.0) and spans[1] == (1.0, 3.0) and spans[-1][1] == 25.0
    spans = media.window_spans(5.5, 2.0, 2.0)
    assert spans == [(0.0, 2.0), (2.0, 4.0), (3.5, 5.5)]


def test_long_file_streams_in_windows(media_dir):
    p = make_clip(media_dir / "long.mp4", seconds=14.0, width=160, height=120)
    ws = list(media.iter_windows(p))  # longer than media.MAX_CLIP: 2-s windows, 1-s hop
    assert len(ws) == 13 and all(w.end - w.start == pytest.approx(2.0) for w in ws)
    for w in ws:
        assert len(w.frames) == 10 and abs(w.audio.size - 32000) <= 400
        assert w.times[0] >= w.start - 1e-6 and w.times[-1] < w.end


def test_segment_seek(media_dir):
    p = make_clip(media_dir / "seg.mp4", seconds=6.0, width=160, height=120)
    (w,) = list(media.iter_windows(p, start=2.0, end=4.5))
    assert w.start == 2.0 and w.end == 4.5
    assert w.times[0] == pytest.approx(2.0) and len(w.frames) in (12, 13)
    assert abs(w.audio.size - 2.5 * 16000) < 800


def test_audio_only_and_video_only(audio_only, video_only):
    (w,) = list(media.iter_windows(audio_only))
    assert not w.has_video and w.has_audio and w.frames is None
    (w,) = list(media.iter_windows(video_only))
    assert w.has_video and not w.has_audio and w.audio is None


def test_image_is_one_frame(face_png):
    (w,) = list(media.iter_windows(face_png))
    assert w.frames.shape[0] == 1 and not w.has_audio


def test_rotated_phone_video(media_dir):
    p = make_clip(media_dir / "rot.mp4", seconds=0.6, width=160, height=96, audio=False, rotate=90)
    (w,) = list(media.iter_windows(p))
    assert w.frames.shape[1:3] == (160, 96)  # displayed upright: width and height swap


def test_max_side_bounds_frame_size(media_dir):
    p = make_clip(media_dir / "big.mp4", seconds=0.4, width=1280, height=720, audio=False)
    (w,) = list(media.iter_windows(p))
    assert max(w.frames.shape[1:3]) == media.MAX_SIDE


@pytest.mark.parametrize("kind,message", [
    ("empty", "empty (0 bytes)"), ("text", "not a media file"), ("truncated", "truncated"),
    ("garbage", "not a media file"), ("codec", "no audio or video stream"),
])
def test_bad_files_raise_one_clear_error(bad_files, kind, message):
    with pytest.raises(EmoliteError) as e:
        list(media.iter_windows(bad_files[kind]))
    assert message in str(e.value) and str(bad_files[kind]) in str(e.value)


def test_clip_shorter_than_one_frame(bad_files):
    (w,) = list(media.iter_windows(bad_files["tiny"]))
    assert w.has_video and len(w.frames) == 1


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(EmoliteError, match="no such file"):
        media.probe(tmp_path / "nope.mp4")
    with pytest.raises(EmoliteError, match="is a folder"):
        media.probe(tmp_path)


def test_load_audio(audio_only):
    x = media.load_audio(audio_only)
    assert x.dtype == np.float32 and abs(x.size - 32000) < 200 and np.abs(x).max() > 0.05


def _short_audio_clip(path, video_s: float = 40.0, audio_s: float = 1.0, fps: int = 10):
    """A video whose audio track stops after audio_s: the audio stream lags for the rest."""
    import av

    with av.open(str(path), "w") as c:
        v = c.add_stream("mpeg4", rate=fps)
        v.width = v.height = 64
        v.pix_fmt = "yuv420p"
        a = c.add_stream("aac", rate=16000)
        a.layout = "mono"
        a.format = "fltp"
        n, pts = 1024, 0
        while pts < audio_s * 16000:
            f = av.AudioFrame.from_ndarray(np.zeros((1, n), np.float32), format="fltp", layout="mono")
            f.sample_rate, f.pts = 16000, pts
            pts += n
            for p in a.encode(f):
                c.mux(p)
        for p in a.encode(None):
            c.mux(p)
        for i in range(int(video_s * fps)):
            img = np.full((64, 64, 3), i % 255, np.uint8)
            for p in v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in v.encode(None):
            c.mux(p)


def test_lagging_stream_does_not_hold_the_other(tmp_path, monkeypatch):
    """Audio that stops early (or trails the video) holds at most MAX_SKEW of frames."""
    path = tmp_path / "short_audio.mkv"
    _short_audio_clip(path)
    converted = []
    real = media._to_rgb
    monkeypatch.setattr(media, "_to_rgb", lambda f, s: converted.append(1) or real(f, s))
    it = media.iter_windows(path, fps=2, window=2.0, hop=2.0)
    first = next(it)
    assert first.start == 0.0 and 16000 <= first.audio.size < 32000   # the 1 s there is (AAC pads)
    assert len(converted) <= (2.0 + media.MAX_SKEW + 1.0) * 2 + 2   # not all 40 s first
    rest = list(it)
    assert len(rest) == 19 and all(w.frames is not None and len(w.frames) == 4 for w in rest)
    assert rest[0].audio.size == 0


# ---------------------------------------------------------------- what the file does not hold (issue 24)


def interleaved_mkv(path, seconds: float = 60.0, fps: int = 10, size: tuple[int, int] = (96, 72)):
    """A Matroska file with a face and a voice, its video and audio packets interleaved in time
    order (as cameras and ffmpeg write them), so that cutting its bytes cuts both streams."""
    import av

    from emolite.demo import frame_at, voice

    wav = voice(seconds)
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
        v.width, v.height, v.pix_fmt = *size, "yuv420p"
        a = c.add_stream("aac", rate=16000)
        a.layout, a.format = "mono", "fltp"
        step = 16000 // fps
        for i in range(int(seconds * fps)):
            for p in v.encode(av.VideoFrame.from_ndarray(frame_at(i / fps, *size), format="rgb24")):
                c.mux(p)
            f = av.AudioFrame.from_ndarray(wav[None, i * step:(i + 1) * step], format="fltp", layout="mono")
            f.sample_rate, f.pts = 16000, i * step
            for p in a.encode(f):
                c.mux(p)
        for s in (v, a):
            for p in s.encode(None):
                c.mux(p)
    return path


def claim_duration(path, seconds: float):
    """Rewrite a Matroska file's Duration element (Segment Info, float64 in milliseconds) so that its
    header claims `seconds`: a lying header over the same data."""
    import struct

    data = path.read_bytes()
    i = data.index(b"\x44\x89\x88")   # Duration, 8-byte float
    path.write_bytes(data[:i + 3] + struct.pack(">d", seconds * 1000.0) + data[i + 11:])
    return path


def wav_claiming(path, seconds_of_data: float, claimed_seconds: float | None = None, rate: int | None = None):
    """A 16 kHz 16-bit WAV whose header may claim a longer data chunk or another sample rate."""
    import struct

    n = int(seconds_of_data * 16000)
    pcm = (np.sin(np.arange(n) / 5.0) * 8000).astype("<i2").tobytes()
    size = len(pcm) if claimed_seconds is None else int(claimed_seconds * 16000 * 2)
    r = rate or 16000
    hdr = b"RIFF" + struct.pack("<I", 36 + size) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, r, r * 2, 2, 16)
    path.write_bytes(hdr + b"data" + struct.pack("<I", size) + pcm)
    return path


@pytest.fixture(scope="module")
def truncated_mkv(tmp_path_factory):
    """60 s interleaved, its bytes cut at 25 %: the data ends near 15 s, the header says 60 s."""
    d = tmp_path_factory.mktemp("trunc")
    full = interleaved_mkv(d / "full.mkv")
    data = full.read_bytes()
    (d / "cut.mkv").write_bytes(data[: len(data) // 4])
    return d / "cut.mkv"


def test_truncated_file_has_no_windows_past_its_data(truncated_mkv):
    assert media.probe(truncated_mkv)["duration"] > 59
    ws = media.iter_windows(truncated_mkv, fps=16 / 3, window=3.0, hop=1.0)
    got = list(ws)
    last_frame = max(float(w.times.max()) for w in got if w.has_video)
    assert 10 < last_frame < 20 and got[-1].end < last_frame + 2
    assert len(got) < 20     # not 59 windows to the claimed 60 s
    assert any("ended early" in x for x in ws.warnings)
    for w in got:            # every frame a window holds was sampled inside it
        assert all(w.start - 0.2 <= t < w.end + 0.2 for t in w.times)


def test_window_without_decoded_frames_has_no_video(tmp_path):
    """Video that stops at 4 s while the audio goes on to 12 s: windows after 4 s hold no frame
    (no stale last frame), and audio that stops early leaves later windows without audio."""
    import av

    p = tmp_path / "short_video.mkv"
    with av.open(str(p), "w") as c:
        v = c.add_stream("mpeg4", rate=10)
        v.width = v.height = 64
        v.pix_fmt = "yuv420p"
        a = c.add_stream("aac", rate=16000)
        a.layout, a.format = "mono", "fltp"
        for i in range(120):
            if i < 40:
                for pk in v.encode(av.VideoFrame.from_ndarray(np.full((64, 64, 3), 100, np.uint8), format="rgb24")):
                    c.mux(pk)
            f = av.AudioFrame.from_ndarray(np.full((1, 1600), 0.1, np.float32), format="fltp", layout="mono")
            f.sample_rate, f.pts = 16000, i * 1600
            for pk in a.encode(f):
                c.mux(pk)
        for s in (v, a):
            for pk in s.encode(None):
                c.mux(pk)
    ws = list(media.iter_windows(p, fps=5, window=2.0, hop=1.0))
    assert ws[-1].end == pytest.approx(12.0, abs=0.2)
    assert all(w.has_audio for w in ws)
    assert [w.has_video for w in ws if w.start >= 4.2] and not any(w.has_video for w in ws if w.start >= 4.2)
    ws = list(media.iter_windows(p, fps=5, window=0.3, hop=0.3))   # shorter than a frame interval: still none after 4 s
    assert not any(w.has_video for w in ws if w.start >= 4.5) and all(w.has_video for w in ws if w.end < 3.8)


@pytest.mark.parametrize("claimed", [10_000.0, 1e8])
def test_lying_header_gets_windows_of_its_data_only(tmp_path, claimed):
    """A 3-s Matroska file whose header claims 10,000 s (or 1e8 s: windows built up front took 3.5 GB)."""
    p = claim_duration(interleaved_mkv(tmp_path / "short.mkv", seconds=3.0, size=(64, 48)), claimed)
    assert media.probe(p)["duration"] == pytest.approx(claimed, rel=1e-3)
    ws = media.iter_windows(p, fps=5, window=2.0, hop=1.0)
    got = list(ws)
    # 2-s windows up to where the data ends (3 s, and an end-aligned one for the audio's padding)
    assert len(got) in (2, 3) and got[-1].end == pytest.approx(3.0, abs=0.15) and "ended early" in ws.warnings[0]
    ws = media.iter_windows(p)   # auto: the 3 s decoded are one clip
    assert len(list(ws)) == 1 and ws.warnings
    assert media.window_count(claimed, 2.0, 1.0) == int(claimed) - 1   # the progress bar's count, not a list


def test_wav_header_claiming_more_data(tmp_path):
    p = wav_claiming(tmp_path / "long.wav", 3.0, claimed_seconds=10_000)
    ws = media.iter_windows(p, window=2.0, hop=1.0)
    got = list(ws)
    assert len(got) == 2 and got[-1].end <= 3.01 and all(w.has_audio for w in got)   # (FFmpeg clamps it to the file)


def test_healthy_file_has_no_warning_and_keeps_its_windows(clip):
    ws = media.iter_windows(clip, fps=16 / 3, window=3.0, hop=1.0)
    got = list(ws)
    assert ws.warnings == [] and [(w.start, w.end) for w in got] == [(0.0, 3.0)]


@pytest.mark.parametrize("rate", [1, 1000, 2_000_000])
def test_absurd_sample_rate_is_refused(tmp_path, rate):
    p = wav_claiming(tmp_path / "rate.wav", 1.0, rate=rate)
    with pytest.raises(EmoliteError, match=f"sample rate of {rate} Hz is outside 4000-768000"):
        list(media.iter_windows(p))


def _jpeg_declaring(path, w: int, h: int):
    """A small real JPEG whose SOF header is patched to declare w×h (a 'pixel bomb')."""
    import struct

    import cv2

    ok, buf = cv2.imencode(".jpg", np.zeros((16, 16, 3), np.uint8))
    data = bytearray(buf.tobytes())
    i = data.index(b"\xff\xc0")
    data[i + 5:i + 9] = struct.pack(">HH", h, w)
    path.write_bytes(bytes(data))
    return path


def test_pixel_bomb_image_is_refused_from_its_header(tmp_path):
    p = _jpeg_declaring(tmp_path / "bomb.jpg", 16000, 16000)
    assert p.stat().st_size < 1000
    assert media.probe(p)["width"] == 16000          # described from the header, not decoded
    with pytest.raises(EmoliteError, match="16000x16000 pixels is over the limit.*--max-pixels"):
        media.iter_windows(p)
    small = _jpeg_declaring(tmp_path / "ok.jpg", 16, 16)
    with media.decode_limits(pixels=100), pytest.raises(EmoliteError, match="over the limit of 100"):
        media.read_image(small)
    with media.decode_limits(pixels=None):
        assert media.read_image(small).shape == (16, 16, 3)


def test_video_over_the_pixel_limit_is_refused_before_decoding(clip, monkeypatch):
    converted = []
    real = media._to_rgb
    monkeypatch.setattr(media, "_to_rgb", lambda f, s: converted.append(1) or real(f, s))
    with media.decode_limits(pixels=320 * 240 - 1), pytest.raises(EmoliteError, match="320x240 pixels"):
        list(media.iter_windows(clip))
    assert not converted


def test_non_utf8_file_name_decodes(tmp_path, clip, face_png):
    name = os.fsdecode(b"caf\xe9 clip.mp4")
    p = tmp_path / name
    p.write_bytes(clip.read_bytes())
    (w,) = list(media.iter_windows(p))
    assert w.has_video and w.has_audio
    assert media.probe(p)["path"].endswith("caf\\xe9 clip.mp4")
    img = tmp_path / os.fsdecode(b"\xff.png")
    img.write_bytes(face_png.read_bytes())
    assert media.read_image(img).ndim == 3
    with pytest.raises(EmoliteError) as e:
        media.probe(tmp_path / os.fsdecode(b"gone\xe9.mp4"))
    str(e.value).encode("utf-8")   # printable: no surrogate left in the message
