"""serve's protocol and session without a socket or a model: message parsing and limits, the
newest-frame slot and its drop count, the frame and audio windows, the model cadence, face
following, and the settings read from the model."""

from __future__ import annotations

import dataclasses
import json
import struct
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from emolite import demo
from emolite.errors import EmoliteError
from emolite.faces import Face
from emolite.serve import protocol as P
from emolite.grid import frame_key
from emolite.serve import session as S
from emolite.serve.follow import FaceFollower, follow_faces
from emolite.spec import InputSpec

SR = P.SAMPLE_RATE
SETTINGS = S.LiveSettings(InputSpec(face_size=48, context_size=32), ("face", "context", "audio"))
BOX = np.array([100, 60, 200, 180], np.float32)


def jpeg(w: int = 320, h: int = 240, t: float = 0.0) -> bytes:
    return cv2.imencode(".jpg", demo.frame_at(t, w, h)[..., ::-1])[1].tobytes()


def frame_msg(i: int, image: bytes, t: float = 0.0) -> bytes:
    return bytes([P.T_FRAME]) + struct.pack("<Id", i, t) + image


def fixed_detector(box=BOX):
    calls = []

    def detect(frame):
        calls.append(frame.shape)
        return [Face(np.asarray(box, np.float32).copy(), 0.99)]
    detect.calls = calls
    return detect


def session(detector=None, settings=SETTINGS, **kw) -> S.Session:
    return S.Session("test", detector or fixed_detector(), settings, now=0.0, **kw)


def job(i: int, image: bytes | None, received: float, size=(320, 240)) -> S.Job:
    """A frame captured (client clock) and received at `received` s."""
    return S.Job(i, 1000.0 * received, image, size if image is not None else (0, 0), received)


# ---------------------------------------------------------------- protocol


def test_image_size_reads_headers_without_decoding():
    assert P.image_size(jpeg(320, 240)) == (320, 240)
    assert P.image_size(cv2.imencode(".png", np.zeros((7, 9, 3), np.uint8))[1].tobytes()) == (9, 7)
    assert P.image_size(b"not an image at all") is None
    bomb = b"\xff\xd8\xff\xc0" + struct.pack(">HBHH", 17, 8, 20000, 30000) + bytes(64)
    assert P.image_size(bomb) == (30000, 20000)
    with pytest.raises(P.BadInput, match="over the limit"):
        P.check_image(bomb, P.MAX_FRAME_PIXELS)


def test_parse_binary_frame_and_audio():
    img = jpeg()
    m = P.parse_binary(frame_msg(7, img, 12.5), P.Limits())
    assert m == P.FrameMsg(7, 12.5, img, (320, 240))
    a = P.parse_binary(bytes([P.T_PCM16]) + np.array([16384, -32768], "<i2").tobytes(), P.Limits())
    assert isinstance(a, P.AudioMsg) and a.samples.dtype == np.float32 and a.samples.tolist() == [0.5, -1.0]
    f = P.parse_binary(bytes([P.T_PCM32]) + np.array([2.0, -0.25], "<f4").tobytes(), P.Limits())
    assert f.samples.tolist() == [1.0, -0.25]  # clipped to [-1, 1]


@pytest.mark.parametrize("data, expect", [
    (b"", "empty binary"),
    (b"\x7f", "unknown message type 0x7f"),
    (b"\x01abc", "too short"),
    (b"\x01" + struct.pack("<Id", 1, float("inf")) + bytes(20), "finite"),
    (b"\x02\x00", "whole number of int16"),
    (b"\x02", "empty audio"),
    (b"\x03" + np.array([np.nan], "<f4").tobytes(), "NaN"),
])
def test_parse_binary_refuses(data, expect):
    with pytest.raises(P.BadInput, match=expect):
        P.parse_binary(data, P.Limits())


def test_audio_chunk_limit_is_a_limit():
    chunk = bytes([P.T_PCM16]) + bytes(2 * 101)
    assert P.parse_binary(chunk, P.Limits(max_audio_chunk=101)).samples.size == 101
    with pytest.raises(P.BadInput, match="too long: 101 samples, at most 100"):
        P.parse_binary(chunk, P.Limits(max_audio_chunk=100))


def test_parse_text():
    assert P.parse_text('{"type": "ping", "t": [1]}') == P.Ping([1])
    assert P.parse_text('{"type": "audio_only", "id": 4, "t": 2}') == P.AudioOnlyMsg(4, 2.0)
    assert P.parse_text('{"type": "audio_only"}') == P.AudioOnlyMsg(0, 0.0)
    assert P.parse_text('{"type": "predict", "id": 4, "t": 2}') == P.AudioOnlyMsg(4, 2.0)   # its former name
    for text, expect in [("{oops", "not valid JSON"), ("[1]", "must be an object"), ("[" * 100000, "JSON"),
                         ('{"type": "launch"}', "unknown message type 'launch'"),
                         ('{"type": "audio_only", "id": 1.5}', "integer"), ('{"type": "audio_only", "t": NaN}', "number"),
                         ('{"type": "audio_only", "id": true}', "integer"), ('{"type": "audio_only", "id": -1}', "integer")]:
        with pytest.raises(P.BadInput, match=expect):
            P.parse_text(text)


HUGE = "1" * 5000   # over Python's int-parsing limit of 4300 digits: json.loads raises a plain ValueError


@pytest.mark.parametrize("text", [f'{{"type": "ping", "t": {HUGE}}}', f'{{"type": "audio_only", "id": {HUGE}}}',
                                  f'[{HUGE}]', f'{{"type": {HUGE}}}'], ids=["ping t", "id", "array", "type"])
def test_huge_integers_are_bad_input(text):
    with pytest.raises(P.BadInput, match="too many digits"):
        P.parse_text(text)


@pytest.mark.parametrize("field", ["id", "t"])
def test_integers_too_large_for_an_id_or_a_time_are_bad_input(field):
    big = "9" * 400   # parses, but is no u32 id and overflows a float
    with pytest.raises(P.BadInput, match="audio_only needs"):
        P.parse_text(f'{{"type": "audio_only", "{field}": {big}}}')


def test_size_limit_comes_before_parsing():
    limits = P.Limits(max_message=100)
    with pytest.raises(P.BadInput, match="message of 101 bytes is over the limit of 100"):
        P.parse_message({"text": "x" * 101}, limits)
    with pytest.raises(P.BadInput, match="over the limit"):
        P.parse_message({"bytes": b"\x09" * 101}, limits)
    assert P.parse_message({"text": '{"type": "ping"}'}, limits) == P.Ping(None)


def test_decode_refuses_a_truncated_image():
    img = jpeg()
    assert P.decode_image(img, (320, 240)).shape == (240, 320, 3)
    with pytest.raises(P.BadInput, match="could not be decoded"):
        P.decode_image(img[: len(img) // 3], (320, 240))


def test_server_messages():
    h = P.hello("abc", ["a", "b"], ["audio"], 2.0, P.Limits(max_fps=3))
    assert h["type"] == "hello" and h["limits"]["max_fps"] == 3 and h["limits"]["sample_rate"] == SR
    json.dumps(h)
    assert P.label_fields(None) == {"label": None, "confidence": None, "probs": None, "main_person": None,
                                    "label_frame_id": None}
    assert P.error("no", frame_id=3) == {"type": "error", "message": "no", "frame_id": 3}
    assert P.ms(0.01234) == 12.3


# ---------------------------------------------------------------- settings from the model


def test_live_settings_come_from_the_model():
    spec = InputSpec(face_size=64, context_size=96, margin=0.4, align=True, fps=4.0, window_seconds=3.0)
    model = SimpleNamespace(spec=spec, modalities=["face", "audio"])
    s = S.live_settings(model)
    assert s.spec is spec and (s.rate, s.window, s.window_samples) == (8 / 3.0, 3.0, 3 * SR)   # T per window
    assert s.use_video and s.use_audio and not S.LiveSettings(spec, ("audio",)).use_video
    model.spec = spec.replace(sample_rate=8000)
    with pytest.raises(EmoliteError, match="8000 Hz"):
        S.live_settings(model)


# ---------------------------------------------------------------- the newest-frame slot, rate, cadence


def test_newest_frame_only_and_drops_counted():
    s = session()
    assert s.take(0.0) is None
    for i in range(4):
        s.offer(job(i, b"x", i * 0.01))
    assert s.stats["dropped"] == 3
    j = s.take(1.0)
    assert j.frame_id == 3 and s.last_start == 1.0 and s.take(1.0) is None
    assert s.offer(job(5, b"x", 1.1)) is False and s.stats["dropped"] == 3


def test_frames_start_at_most_max_fps():
    s = session(max_fps=10.0)
    s.offer(job(0, b"x", 5.0))
    s.take(5.0)
    assert s.start_in(5.04) == pytest.approx(0.06) and s.start_in(5.2) < 0


def test_message_rate_bucket():
    s = session(max_message_rate=5.0)
    for _ in range(5):
        s.check_rate(0.0)
    with pytest.raises(P.BadInput, match="at most 5 per second"):
        s.check_rate(0.0)
    s.check_rate(0.25)        # 1.25 tokens back
    with pytest.raises(P.BadInput):
        s.check_rate(0.25)


def test_model_runs_on_every_kth_frame_when_there_is_room():
    s = session(model_every=3)
    due = [s.model_due(False, False, 0, 2) for _ in range(7)]
    assert due == [True, False, False, True, False, False, True]   # the first frame runs it
    assert not s.model_due(False, True, 0, 2) and not s.model_due(False, True, 0, 2)  # its last run is busy
    assert s.model_due(False, False, 0, 2)
    assert s.model_due(True, False, 0, 2)                            # audio-only requests always get one
    # a full model pool: labels come less often, but a client waiting MODEL_MAX_WAIT frames gets its run
    waits = [s.model_due(False, False, 2, 2) for _ in range(S.MODEL_MAX_WAIT)]
    assert waits == [False] * (S.MODEL_MAX_WAIT - 1) + [True]
    assert S.model_capacity(2) == 2 * (1 + S.MODEL_QUEUE)


# ---------------------------------------------------------------- windows


def test_audio_window_is_recent_and_bounded():
    s = session()
    chunk = np.full(SR // 4, 0.1, np.float32)
    for i in range(40):                      # 10 s of audio in 0.25-s chunks
        s.add_audio(chunk * (i + 1) / 40, i * 0.25)
    assert s.stats["audio_chunks"] == 40
    assert s.audio_samples <= 2 * SETTINGS.window_samples + chunk.size
    w = s.audio_window(39 * 0.25)
    assert w.size == SETTINGS.window_samples and w[-1] == pytest.approx(0.1)
    assert s.audio_window(39 * 0.25 + SETTINGS.window + S.AUDIO_GRACE + 0.01).size == 0  # a muted mic drops out


def test_frame_window_is_the_models_grid_and_resets_on_a_new_size():
    s = session(max_fps=10.0)
    frames = [np.full((24, 32, 3), i, np.uint8) for i in range(30)]
    for i, f in enumerate(frames):            # 10 frames per second for 3 s
        s.add_frame(f, i * 0.1)
    # the model's grid: T = 8 frames per 2-s window (4 per second), each the first frame at or
    # after its time less half a step, as media samples a file
    times = [g for g, _ in s.frames]
    assert times == pytest.approx([1.25 + k / 4 for k in range(8)]) and SETTINGS.rate == 4.0
    assert [int(f[0, 0, 0]) for _, f in s.frames] == [12, 14, 17, 19, 22, 24, 27, 29]
    s.memo[1.0], s.prev_box = ([], None), BOX
    s.label = {"label": "joy", "people": [P.person(1, [0, 0, 9, 9], None, False)], "main_person": 1}
    s.add_frame(np.zeros((48, 64, 3), np.uint8), 3.0)   # the client changed resolution
    assert len(s.frames) == 1 and not s.memo and s.prev_box is None
    assert s.label == {"label": "joy", "people": [], "main_person": None}   # person ids start again


def test_a_slow_client_repeats_its_frame_and_a_pause_or_a_clock_reset_is_bounded():
    s = session()
    s.add_frame(np.zeros((24, 32, 3), np.uint8), 0.0)
    s.add_frame(np.ones((24, 32, 3), np.uint8), 1.0)          # 1 fps: frame 2 fills 4 grid times
    assert [g for g, _ in s.frames] == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0]) \
        and [int(f[0, 0, 0]) for _, f in s.frames] == [0, 1, 1, 1, 1]
    s.add_frame(np.ones((24, 32, 3), np.uint8), 1e9)           # an hour-long pause: one window, not 4e9 samples
    assert len(s.frames) == SETTINGS.spec.frames
    j = S.Job(9, 5.0, jpeg(32, 24), (32, 24), 7.0)            # the client's clock went back: a new window
    assert s.frame_time(j) == 0.005 and not s.frames


def test_nothing_to_predict_and_audio_only_windows():
    s = session()
    with pytest.raises(P.BadInput, match="nothing to predict"):
        s.window(False, np.zeros(0, np.float32))
    s.add_frame(np.zeros((24, 32, 3), np.uint8), 0.0)
    w = s.window(False, np.ones(100, np.float32))    # a predict request: the audio alone
    assert not w.has_video and w.has_audio
    w = s.window(True, np.zeros(0, np.float32))
    assert w.has_video and not w.has_audio and w.times.tolist() == [0.0]
    video_only = dataclasses.replace(SETTINGS, modalities=("face",))   # audio is ignored
    with pytest.raises(P.BadInput, match="nothing to predict"):
        session(settings=video_only).window(False, np.ones(10, np.float32))


# ---------------------------------------------------------------- a frame end to end (no model)


def test_process_answers_with_the_box_in_client_pixels():
    det = fixed_detector()
    s = session(det)
    out, work = s.process(job(0, jpeg(1280, 720), 0.0, (1280, 720)), np.zeros(0, np.float32))
    feats = work.feats
    assert out["type"] == "prediction" and out["frame_id"] == 0 and out["t"] == 0.0
    assert out["frame_size"] == [1280, 720] and det.calls == [(360, 640, 3)]  # downscaled to max_side
    assert out["face_box"] == [200.0, 120.0, 400.0, 360.0]                      # back in the client's pixels
    assert out["label"] is None and out["label_frame_id"] is None and out["dropped"] == 0
    assert out["people"] == [] and out["voice_alone"] is None   # a face is a person from its 2nd detection
    assert set(out["timings"]) == {"queue_ms", "decode_ms", "detect_ms", "model_ms"} and not out["has_audio"]
    assert feats.face.shape == (1, 48, 48, 3) and feats.context.shape == (1, 32, 32, 3)  # the model's sizes
    assert feats.face_mask.all() and feats.step == 1 / SETTINGS.rate and feats.times.tolist() == [0.0]
    s.set_label(SimpleNamespace(label="joy", confidence=0.61234, probs={"joy": 0.61234, "sad": 0.38766}), 0, 12.34)
    out, work = s.process(job(1, None, 0.2), np.ones(SR, np.float32) * 0.1)
    assert out["face_box"] is None and out["frame_size"] is None and out["has_audio"] and out["people"] == []
    assert work.crowd is None
    assert (out["label"], out["confidence"], out["label_frame_id"], out["timings"]["model_ms"]) == ("joy", 0.6123, 0, 12.3)
    assert s.stats["labels"] == 1


def test_memo_holds_only_the_window():
    s = session(detect_every=1)
    for i in range(25):
        s.process(job(i, jpeg(160, 120, i / 5), i * 0.2, (160, 120)), np.zeros(0, np.float32))
    keys = sorted(s.memo)
    assert len(keys) == len(s.frames) and keys == [frame_key(g) for g, _ in s.frames]


def test_box_jumps_with_the_face():
    """A jump breaks the track: the newest frame's own face is shown, not the older track's end."""
    boxes = [BOX] * 6 + [BOX + 150]

    calls: list = []

    def detect(frame):
        calls.append(1)
        return [Face(boxes[min(len(calls), len(boxes)) - 1].copy(), 0.9)]
    s = session(detect, detect_every=1)
    for i in range(len(boxes)):
        out, work = s.process(job(i, jpeg(480, 360, i / 5), i * 0.2, (480, 360)), np.zeros(0, np.float32))
    assert not work.feats.face_mask[-1]
    assert out["face_box"] == [float(v) for v in boxes[-1]]


def test_detector_runs_on_the_grid_and_every_kth_shown_frame_and_boxes_follow_between():
    det = fixed_detector()
    s = session(det, detect_every=3, max_people=1)
    for i in range(6):
        s.process(job(i, jpeg(320, 240, 0.0), i * 0.2), np.zeros(0, np.float32))
    # the grid (4 per second) takes frames 0, 1, 2, 3 and 5; analyze's rule detects on every 2nd
    # grid sample (frames 0, 2, 5), shared with the box shown; the follower moves the box on the
    # others and detects on its own 3rd call (frame 4): one detector run per frame at most
    assert [g for g, _ in s.frames] == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])
    assert len(det.calls) == 4 and s.detect.calls == 3
    s = session(fixed_detector(), detect_every=3)     # tracking every person: every grid sample
    for i in range(6):
        s.process(job(i, jpeg(320, 240, 0.0), i * 0.2), np.zeros(0, np.float32))
    assert [r for _, _, r in s.memo.values()] == [True] * 5


def test_follow_faces_moves_a_box_with_the_image():
    a = demo.frame_at(0.0, 320, 240)
    b = np.roll(a, (3, 5), (0, 1))       # 5 px right, 3 px down
    moved = follow_faces(a, b, [Face(BOX.copy(), 0.9, np.zeros((5, 2), np.float32))])
    assert np.allclose(moved[0].box, BOX + [5, 3, 5, 3]) and np.allclose(moved[0].landmarks, [5, 3])
    assert follow_faces(a, np.zeros_like(a), [Face(BOX.copy(), 0.9)]) is None   # a poor match: detect again
    f = FaceFollower(fixed_detector(), every=5)
    f(a), f(b), f(np.zeros((10, 10, 3), np.uint8))   # a new frame size always detects
    assert f.detector_calls == 2


# ---------------------------------------------------------------- every person (issue 14)

CLASSES = ["anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise"]
LEFT, RIGHT = (lambda t: (170 + 25 * t, 230)), (lambda t: (470 - 25 * t, 250))


def scene(speaker=None, people=2) -> demo.Scene:
    """Two copies of the shipped face side by side on a 640×480 canvas (the left one talks
    when `speaker` is 0: its mouth, where the detector's landmarks put it, opens and closes)."""
    face = demo.face_image()
    mouth = (0.47, 0.46, 0.17)     # centre x, y and width as fractions of the photo (landmarks 3 and 4)
    actors = [demo.Actor(face, LEFT, mouth=mouth), demo.Actor(face, RIGHT, shirt=(150, 70, 60), mouth=mouth)][:people]
    return demo.Scene(actors, face_px=180, speaker=lambda t: speaker,
                      envelope=lambda t: 0.5 + 0.5 * np.sin(2 * np.pi * 2.3 * t))


def scene_jpeg(sc: demo.Scene, t: float) -> bytes:
    return cv2.imencode(".jpg", sc(t)[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


class FakeModel:
    """The model's interface: every call recorded; row i of a batch says class i (so each
    person's label tells which batch row it came from)."""

    classes = CLASSES
    modalities = ["face", "context", "audio"]

    def __init__(self):
        self.batches: list[dict] = []

    def predict_inputs(self, batch: dict) -> np.ndarray:
        self.batches.append(batch)
        n = len(batch["face"])
        probs = np.full((n, len(CLASSES)), 0.1 / (len(CLASSES) - 1), np.float32)
        probs[np.arange(n), np.arange(n) % len(CLASSES)] = 0.9
        return probs

    def to_prediction(self, probs: np.ndarray):
        i = int(np.argmax(probs))
        return SimpleNamespace(label=CLASSES[i], confidence=float(probs[i]),
                               probs={c: float(p) for c, p in zip(CLASSES, probs)})


@pytest.fixture(scope="module")
def detector():
    from emolite.faces import get_detector

    return get_detector()


def run_scene(s: S.Session, sc: demo.Scene, n: int, audio: np.ndarray | None = None, start: int = 0) -> list:
    """Frames 0.2 s apart through the session; the answers and the last frame's model work."""
    outs = []
    for i in range(start, start + n):
        out, work = s.process(job(i, scene_jpeg(sc, i * 0.2), i * 0.2, (640, 480)),
                              np.zeros(0, np.float32) if audio is None else audio)
        outs.append(out)
    return outs, work


def _inside(box, truth) -> bool:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return truth[0] <= cx <= truth[2] and truth[1] <= cy <= truth[3]


def test_two_people_get_stable_ids_and_their_own_boxes(detector):
    sc = scene()
    s = session(detector, settings=S.LiveSettings(InputSpec(face_size=48, context_size=32), ("face", "context")))
    outs, work = run_scene(s, sc, 8)
    assert outs[0]["people"] == [] and outs[0]["face_box"] is not None   # ids from the second detection
    side = {}
    for i, out in enumerate(outs[1:], 1):
        people = out["people"]
        assert [p["id"] for p in people] == [1, 2], (i, people)
        truth = sc.boxes(i * 0.2)
        for p in people:
            where = "left" if _inside(p["box"], truth[0]) else "right" if _inside(p["box"], truth[1]) else None
            assert where is not None, (i, p["box"], truth)
            assert side.setdefault(p["id"], where) == where        # an id stays with its person
            assert p["label"] is None and p["speaker"] is False    # no model run yet
    assert set(side.values()) == {"left", "right"}
    assert s.detect.detector_calls < 8                              # followed between detections
    assert work.crowd.ids == [1, 2] and len(work.crowd.window.times) == len(s.frames)
    json.dumps(outs)


def test_people_are_labelled_in_one_batch_and_the_voice_stands_alone(detector):
    """Nobody's mouth moves: the voice is not given to anyone; it is labelled on its own."""
    voice = demo.voice(2.0)
    s = session(detector)
    _, work = run_scene(s, scene(), 6, voice)
    model = FakeModel()
    res, ms = S.infer(model, SETTINGS, work)
    assert len(model.batches) == 1 and ms > 0
    b = model.batches[0]
    assert b["face"].shape[:2] == (3, SETTINGS.spec.frames)              # person 1, person 2, the voice
    assert b["face_mask"][:2].any(1).all() and not b["face_mask"][2].any()
    assert b["audio_mask"].tolist() == [False, False, True]              # the voice in its own row only
    assert b["context_mask"][:2].all() and not b["context_mask"][2].any()
    assert [(p, pr.label, spoke) for p, _, pr, spoke in res.people] == [(1, "anger", False), (2, "disgust", False)]
    assert res.voice_alone.label == "fear" and res.main is dict(zip((1, 2), [r[2] for r in res.people]))[res.main_id]
    label = s.set_label(res.main, 5, ms, res.people, res.voice_alone, res.main_id)
    msg = P.label_message(5, 1005.0, label, True, True, {}, voice=True)
    assert msg["main_person"] == res.main_id and msg["label"] == res.main.label
    assert [p["id"] for p in msg["people"]] == [1, 2] and msg["voice_alone"]["label"] == "fear"
    assert all(len(p["box"]) == 4 for p in msg["people"]) and json.dumps(msg)
    # the next answers carry each person's label with their box in the newest frame
    outs, _ = run_scene(s, scene(), 1, voice, start=6)
    people = outs[0]["people"]
    assert [(p["id"], p["label"], p["speaker"]) for p in people] == [(1, "anger", False), (2, "disgust", False)]
    assert outs[0]["voice_alone"]["label"] == "fear" and outs[0]["label"] == res.main.label


def test_the_voice_goes_to_the_person_whose_mouth_moves(detector):
    voice = demo.voice(2.0)
    sc = scene(speaker=0)
    s = session(detector)
    outs, work = run_scene(s, sc, 10, voice)
    left = next(p["id"] for p in outs[-1]["people"] if _inside(p["box"], sc.boxes(9 * 0.2)[0]))
    model = FakeModel()
    res, _ = S.infer(model, SETTINGS, work)
    assert len(model.batches) == 1 and model.batches[0]["face"].shape[0] == 2   # no row for the voice alone
    assert [p for p, _, _, spoke in res.people if spoke] == [left] and res.voice_alone is None
    assert model.batches[0]["audio_mask"].tolist() == [p == left for p in (1, 2)]


def test_one_person_is_served_as_before(detector):
    """One face: one model call on the main face and the voice; the person's entry repeats it."""
    s = session(detector)
    _, work = run_scene(s, scene(people=1), 4, demo.voice(2.0))
    model = FakeModel()
    res, _ = S.infer(model, SETTINGS, work)
    b = model.batches[0]
    assert len(model.batches) == 1 and b["face"].shape[0] == 1 and b["audio_mask"].tolist() == [True]
    assert [(p, pr, spoke) for p, _, pr, spoke in res.people] == [(1, res.main, True)] and res.voice_alone is None
    assert res.main_id == 1


def test_people_are_bounded(detector):
    s = session(detector, max_people=1)
    outs, work = run_scene(s, scene(), 4)
    assert all(len(o["people"]) <= 1 for o in outs) and outs[-1]["people"] and len(work.crowd.ids) == 1
