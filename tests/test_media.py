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
