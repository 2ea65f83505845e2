"""`emolite serve` through FastAPI's TestClient: live predictions with a face box from real face
frames, per-client isolation, stale-frame dropping, every kind of hostile message, uploads."""

from __future__ import annotations

import base64
import re
import struct
import time

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from emolite import demo
from emolite.inference import load_model
from emolite.serve import app as S
from emolite.serve import protocol as P
from emolite.serve import create_app

LOCAL = "http://localhost"   # the Host the server answers to (a foreign one is refused)


def host(**headers) -> dict:
    """WebSocket headers: TestClient names the host "testserver" there, which the server refuses."""
    return {"host": "localhost", **headers}


@pytest.fixture(scope="module")
def model(checkpoint):
    return load_model(checkpoint)


@pytest.fixture(scope="module")
def client(model):
    with TestClient(create_app(model), base_url=LOCAL) as c:
        yield c


def jpeg(t: float = 0.0, w: int = 320, h: int = 240, face: bool = True) -> bytes:
    return cv2.imencode(".jpg", demo.frame_at(t, w, h, face)[..., ::-1])[1].tobytes()


def frame_msg(i: int, image: bytes | None = None, t: float | None = None) -> bytes:
    t = time.perf_counter() * 1000 if t is None else t
    return bytes([P.T_FRAME]) + struct.pack("<Id", i, t) + (jpeg(i / 5) if image is None else image)


def pcm_msg(seconds: float = 0.25) -> bytes:
    return bytes([P.T_PCM16]) + (demo.voice(seconds) * 32767).astype("<i2").tobytes()


def hello(ws) -> dict:
    m = ws.receive_json()
    assert m["type"] == "hello" and len(m["classes"]) == 7
    return m


class Inbox:
    """Messages of one socket by type: labels arrive whenever the model is done, between answers."""

    def __init__(self, ws):
        self.ws, self.kept = ws, []

    def next(self, kind: str) -> dict:
        for i, m in enumerate(self.kept):
            if m["type"] == kind:
                return self.kept.pop(i)
        while True:
            m = self.ws.receive_json()
            if m["type"] == kind:
                return m
            self.kept.append(m)


def next_of(ws, kind: str) -> dict:
    return Inbox(ws).next(kind)


def test_health_page_and_nothing_external(client):
    h = client.get("/health").json()
    assert h["status"] == "ok" and h["classes"][0] == "anger" and h["sessions"] == 0
    assert h["limits"]["max_message"] == P.MAX_MESSAGE
    r = client.get("/")
    assert r.status_code == 200 and "app.js" in r.text
    assert "default-src 'self'" in r.headers["content-security-policy"]
    for name in ("index.html", "app.js", "style.css", "pcm-worklet.js"):
        text = (S.STATIC / name).read_text()
        assert not re.search(r"https?://|//cdn|@import", text), name  # nothing loads from elsewhere
        assert client.get(f"/static/{name}").status_code == 200


def test_live_prediction_tracks_the_face(client, model):
    with client.websocket_connect("/ws", headers=host()) as ws:
        hello(ws)
        box = Inbox(ws)
        ws.send_bytes(pcm_msg(1.0))
        det = model.detector
        for i in range(S.MODEL_EVERY + 1):
            t = 1234.5 + 200 * i          # captured at 5 fps (the frames are drawn at i / 5 s)
            if i:   # audio streams on, as from a page (a slow first model run must not leave it stale)
                ws.send_bytes(pcm_msg(0.25))
            ws.send_bytes(frame_msg(i, t=t))
            m = box.next("prediction")
            assert m["frame_id"] == i and m["t"] == t and m["frame_size"] == [320, 240] and m["has_audio"]
            assert set(m["timings"]) == {"queue_ms", "decode_ms", "detect_ms", "model_ms", "total_ms"}
            truth = det(demo.frame_at(i / 5, 320, 240))[0].box
            assert _iou(m["face_box"], truth) > 0.5, (m["face_box"], truth)
            # one face: one person from its second detection, with the main face's box and label
            assert [p["id"] for p in m["people"]] == ([] if i == 0 else [1]) and m["voice_alone"] is None
            if i > 0:
                assert _iou(m["people"][0]["box"], m["face_box"]) > 0.8   # the main box is smoothed
            if i == 0:  # the first frame's answer comes before any label; its model run follows
                assert m["label"] is None and m["label_frame_id"] is None
                lab = box.next("label")
                assert lab["frame_id"] == 0 and lab["t"] == t and lab["face_found"] and lab["has_audio"]
                assert lab["label"] in model.classes and abs(sum(lab["probs"].values()) - 1) < 1e-3
                assert lab["label"] == max(lab["probs"], key=lab["probs"].get) and lab["timings"]["model_ms"] > 0
            else:  # later answers carry the latest label
                assert m["label"] in model.classes and m["label_frame_id"] == 0
                assert lab["people"] == [] and m["people"][0]["label"] is None   # frame 0 had no person yet
        lab = box.next("label")
        assert lab["frame_id"] == S.MODEL_EVERY  # the model runs on every k-th frame
        assert [(p["id"], p["label"], p["speaker"]) for p in lab["people"]] == [(1, lab["label"], True)]
        assert lab["main_person"] == 1 and lab["voice_alone"] is None
        # a bigger frame from the same client: a new window, the box comes back in its own pixels
        ws.send_bytes(frame_msg(9, jpeg(0.0, 1280, 720)))
        m = box.next("prediction")
        x1, y1, x2, y2 = m["face_box"]
        assert m["frame_size"] == [1280, 720] and 100 < x2 - x1 and x2 <= 1280 and y2 <= 720
        ws.send_text('{"type": "audio_only", "id": 77, "t": 5}')  # no camera: from the voice alone
        m = box.next("prediction")
        assert m["frame_id"] == 77 and m["face_box"] is None and m["frame_size"] is None and m["has_audio"]
        lab = box.next("label")
        assert lab["frame_id"] == 77 and not lab["face_found"] and lab["has_audio"]


def test_every_person_gets_an_id_box_and_label(client, model):
    """Two faces side by side: each a person with a stable id, a box and a label of their own."""
    face = demo.face_image()
    sc = demo.Scene([demo.Actor(face, lambda t: (170 + 25 * t, 230)), demo.Actor(face, lambda t: (470 - 25 * t, 250))],
                    face_px=180)
    with client.websocket_connect("/ws", headers=host()) as ws:
        hello(ws)
        box = Inbox(ws)
        ws.send_bytes(pcm_msg(1.0))
        where = {}
        for i in range(2 * S.MODEL_EVERY + 1):
            img = cv2.imencode(".jpg", sc(i / 5)[..., ::-1])[1].tobytes()
            ws.send_bytes(frame_msg(i, img))
            m = box.next("prediction")
            if i == 0:
                continue
            assert [p["id"] for p in m["people"]] == [1, 2] and m["frame_size"] == [640, 480]
            for p in m["people"]:      # each id stays on its side of the picture
                assert where.setdefault(p["id"], p["box"][0] < 320) == (p["box"][0] < 320)
        assert set(where.values()) == {True, False}
        lab = box.next("label")
        while lab["frame_id"] == 0:    # frame 0's run saw nobody yet
            lab = box.next("label")
        assert [p["id"] for p in lab["people"]] == [1, 2] and lab["main_person"] in (1, 2)
        for p in lab["people"]:
            assert p["label"] in model.classes and abs(sum(p["probs"].values()) - 1) < 1e-3 and len(p["box"]) == 4
        spoke = [p["id"] for p in lab["people"] if p["speaker"]]
        # nobody's mouth moves: no speaker can be told, so the voice (if heard) is labelled on its own
        assert spoke == [] and (lab["voice_alone"] is None or lab["voice_alone"]["label"] in model.classes)
        main = next(p for p in lab["people"] if p["id"] == lab["main_person"])
        assert (lab["label"], lab["probs"]) == (main["label"], main["probs"])


def test_box_follows_a_face_that_jumps(client, model):
    """A jump breaks the frame-to-frame track; the box must still be on the face now, not vanish."""
    with client.websocket_connect("/ws", headers=host()) as ws:
        hello(ws)
        box = Inbox(ws)
        for i, t in enumerate([8.0 + k / 5 for k in range(10)] + [0.0, 0.2]):
            ws.send_bytes(frame_msg(i, jpeg(t)))
            m = box.next("prediction")
            truth = model.detector(demo.frame_at(t, 320, 240))[0].box
            assert m["face_box"] is not None and _iou(m["face_box"], truth) > 0.5, (t, m["face_box"], truth)


def _iou(a, b) -> float:
    from emolite.faces import iou

    return iou(np.asarray(a, np.float32), np.asarray(b, np.float32))


def test_two_clients_are_isolated(client):
    with client.websocket_connect("/ws", headers=host()) as a, client.websocket_connect("/ws", headers=host()) as b:
        hello(a), hello(b)
        ia, ib = Inbox(a), Inbox(b)
        assert client.get("/health").json()["sessions"] == 2
        for i in range(3):
            a.send_bytes(frame_msg(i))
            b.send_bytes(b"\x01garbage")
            b.send_bytes(frame_msg(100 + i, jpeg(i / 5, 160, 120, face=False)))
            ma = ia.next("prediction")
            assert ma["face_box"] is not None and ma["frame_id"] == i
            assert ib.next("error")["message"].startswith("frame message too short")
            mb = ib.next("prediction")
            assert mb["face_box"] is None and mb["frame_size"] == [160, 120] and mb["frame_id"] == 100 + i
        assert ia.next("label")["face_found"] and not ib.next("label")["face_found"]
        a.send_text('{"type": "ping", "t": 1}')
        assert ia.next("pong") == {"type": "pong", "t": 1}
        assert not [m for m in ia.kept if m["type"] == "error"]  # a never saw b's errors
    assert client.get("/health").json()["sessions"] == 0


def test_stale_frames_are_dropped_newest_kept(client):
    before = client.get("/health").json()["stats"]["dropped"]
    with client.websocket_connect("/ws", headers=host()) as ws:
        hello(ws)
        n = 30
        for i in range(n):  # far faster than the server answers
            ws.send_bytes(frame_msg(i))
        got, box = [], Inbox(ws)
        while not got or got[-1]["frame_id"] != n - 1:
            got.append(box.next("prediction"))
    ids = [m["frame_id"] for m in got]
    assert ids == sorted(ids) and len(got) < n / 2
    assert got[-1]["dropped"] + len(got) == n  # every frame was either answered or dropped
    assert client.get("/health").json()["stats"]["dropped"] - before == got[-1]["dropped"]


def _sof(w: int, h: int) -> bytes:
    """A JPEG header that declares a w×h image (a decompression bomb's first bytes)."""
    return b"\xff\xd8\xff\xc0" + struct.pack(">HBHH", 17, 8, h, w) + b"\x03" + b"\x01\x22\x00" * 3 + bytes(64)


GARBAGE = np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes()
HOSTILE = {
    "unknown type byte": (b"\x7fhello", "unknown message type 0x7f"),
    "empty binary": (b"", "empty binary"),
    "bad JSON": ("{oops", "not valid JSON"),
    "JSON not an object": ("[1, 2]", "must be an object"),
    "unknown JSON type": ('{"type": "launch"}', "unknown message type"),
    "bad audio_only": ('{"type": "audio_only", "id": "x"}', "integer"),
    "huge integer": ('{"type": "ping", "t": ' + "7" * 5000 + "}", "too many digits"),
    "huge id": ('{"type": "audio_only", "id": ' + "7" * 4000 + "}", "integer"),
    "huge payload": (b"\x01" + bytes(P.MAX_MESSAGE), "over the limit"),
    "garbage frame": (b"\x01" + struct.pack("<Id", 1, 0.0) + GARBAGE, "not a JPEG or PNG"),
    "text as a frame": (b"\x01" + struct.pack("<Id", 1, 0.0) + b"this is not an image, honest", "not a JPEG or PNG"),
    "short frame": (b"\x01abc", "too short"),
    "NaN client time": (b"\x01" + struct.pack("<Id", 1, float("nan")) + bytes(100), "finite"),
    "pixel bomb": (b"\x01" + struct.pack("<Id", 1, 0.0) + _sof(20000, 20000), "over the limit"),
    "truncated JPEG": (None, "could not be decoded"),
    "odd int16 PCM": (b"\x02\x00\x01\x02", "whole number of int16"),
    "ragged float32 PCM": (b"\x03" + bytes(6), "whole number of float32"),
    "NaN float32 PCM": (b"\x03" + np.array([0.1, np.nan], "<f4").tobytes(), "NaN"),
    "too long PCM": (b"\x02" + bytes(2 * (P.MAX_AUDIO_CHUNK + 1)), "too long"),
    "audio_only with nothing yet": ('{"type": "audio_only", "id": 3, "t": 1}', "nothing to predict"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_message_gets_an_error_and_the_session_goes_on(client, case):
    msg, expect = HOSTILE[case]
    if msg is None:
        good = jpeg()
        msg = b"\x01" + struct.pack("<Id", 1, 0.0) + good[: len(good) // 2]
    with client.websocket_connect("/ws", headers=host()) as ws:
        hello(ws)
        ws.send_text(msg) if isinstance(msg, str) else ws.send_bytes(msg)
        m = ws.receive_json()
        assert m["type"] == "error" and expect in m["message"], m
        ws.send_bytes(frame_msg(2))  # the same client carries on
        m = next_of(ws, "prediction")
        assert m["frame_id"] == 2 and m["face_box"] is not None


def test_error_budget_and_session_limit(model):
    with TestClient(create_app(model, S.Limits(max_errors=3, max_sessions=1)), base_url=LOCAL) as c:
        with c.websocket_connect("/ws", headers=host()) as ws:
            hello(ws)
            with c.websocket_connect("/ws", headers=host()) as extra:  # over max_sessions
                m = extra.receive_json()
                assert m["type"] == "error" and "server full" in m["message"]
                with pytest.raises(WebSocketDisconnect) as e:
                    extra.receive_json()
                assert e.value.code == 1013
            for _ in range(3):
                ws.send_bytes(b"\x09")
            assert [ws.receive_json()["type"] for _ in range(3)] == ["error"] * 3
            with pytest.raises(WebSocketDisconnect) as e:
                ws.receive_json()
            assert e.value.code == 1008
        with c.websocket_connect("/ws", headers=host()) as ws:  # the server itself carries on
            hello(ws)


def test_message_floods_are_refused(model):
    with TestClient(create_app(model, S.Limits(max_message_rate=5)), base_url=LOCAL) as c, c.websocket_connect("/ws", headers=host()) as ws:
        hello(ws)
        for i in range(12):
            ws.send_text(f'{{"type": "ping", "t": {i}}}')
        got = [ws.receive_json() for _ in range(12)]
        errors = [m for m in got if m["type"] == "error"]
        assert 3 <= len(errors) <= 7 and all("too many messages" in m["message"] for m in errors)
        time.sleep(0.5)
        ws.send_text('{"type": "ping", "t": "later"}')
        assert ws.receive_json() == {"type": "pong", "t": "later"}


def test_upload_returns_the_analyze_timeline_and_plot(client, clip):
    r = client.post("/analyze", files={"file": (clip.name, clip.read_bytes(), "video/mp4")})
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["file"] == clip.name and [(w["start"], w["end"]) for w in j["windows"]] == [(0.0, 2.0), (1.0, 3.0)]
    assert all(w["face_found"] and w["face_box"] for w in j["windows"]) and "p_anger" in j["windows"][0]
    assert "rows" not in j   # one name for the same rows in both responses
    png = base64.b64decode(j["plot_png"].split(",", 1)[1])
    assert j["plot_png"].startswith("data:image/png;base64,") and png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_classify_for_programs(client, face_png, audio_only, clip):
    j = client.post("/classify", files={"file": ("me.png", face_png.read_bytes())}).json()
    assert j["face_box"] is not None and j["modalities"] == {"video": True, "audio": False}
    assert j["label"] == max(j["probs"], key=j["probs"].get)
    j = client.post("/classify", files={"file": ("voice.wav", audio_only.read_bytes())}).json()
    assert j["face_box"] is None and j["modalities"] == {"video": False, "audio": True}
    j = client.post("/classify", files={"file": (clip.name, clip.read_bytes())}).json()
    old = client.post("/predict", files={"file": (clip.name, clip.read_bytes())}).json()   # its former name
    assert [w["start"] for w in j["windows"]] == [0.0, 1.0] and old["windows"] == j["windows"]


def test_bad_uploads_are_refused(model, client, bad_files, clip):
    def post(c, name, data):
        return c.post("/classify", files={"file": (name, data)})

    assert post(client, "notes.txt", b"hello").status_code == 415
    assert post(client, "pic.bmp", b"BM....").status_code == 415
    assert post(client, "empty.mp4", b"").status_code == 400
    r = post(client, "garbage.mkv", bad_files["garbage"].read_bytes())
    assert r.status_code == 400 and "garbage.mkv" in r.json()["detail"] and "/tmp" not in r.json()["detail"]
    r = post(client, "bomb.jpg", _sof(30000, 30000))
    assert r.status_code == 400 and "over the limit" in r.json()["detail"]
    assert client.get("/health").json()["status"] == "ok"
    with TestClient(create_app(model, S.Limits(max_upload=10_000, max_upload_seconds=1.0)), base_url=LOCAL) as small:
        r = post(small, "big.mp4", bytes(200_000))
        assert r.status_code == 413 and "over the limit" in r.json()["error"]
    with TestClient(create_app(model, S.Limits(max_upload_seconds=1.0)), base_url=LOCAL) as short:
        r = post(short, clip.name, clip.read_bytes())
        assert r.status_code == 400 and "over the limit of 1 s" in r.json()["detail"]


def test_served_with_the_models_own_input_settings(model, monkeypatch):
    """A model trained with other crops, frame rate and input length is fed exactly those live."""
    import dataclasses

    from emolite.serve import session as SS

    pre = {**model.meta.get("preprocess", {}), "face_size": 64, "context_size": 80, "margin": 0.4, "align": True,
           "fps": 4.0, "frames": 6, "audio_seconds": 3.0, "window_seconds": 2.5}
    other = dataclasses.replace(model, meta={**model.meta, "preprocess": pre})
    shapes, crops = [], []

    def predict_inputs(batch):
        shapes.append({k: v.shape for k, v in batch.items()})
        return np.full((1, len(other.classes)), 1 / len(other.classes), np.float32)

    def window_features(window, detector, *args, **kw):
        crops.append((*args, kw["fps"]))
        return real(window, detector, *args, **kw)

    real = SS.window_features
    monkeypatch.setattr(SS, "window_features", window_features)
    other.predict_inputs = predict_inputs
    with TestClient(create_app(other), base_url=LOCAL) as c, c.websocket_connect("/ws", headers=host()) as ws:
        assert hello(ws)["window_s"] == 2.5
        ws.send_bytes(pcm_msg(1.0))
        ws.send_bytes(frame_msg(0))
        assert Inbox(ws).next("label")["face_found"]
    assert crops[0] == (64, 80, 0.4, True, 6 / 2.5)     # frames on the model's grid: T per window
    assert shapes[0]["face"] == (1, 6, 3, 64, 64) and shapes[0]["context"] == (1, 6, 3, 80, 80)
    assert shapes[0]["audio"] == (1, 3 * P.SAMPLE_RATE)


# ---------------------------------------------------------------- who may connect (issue 13)


def test_foreign_origin_and_host_are_refused(model):
    with TestClient(create_app(model, allow_origins=["https://friend.example"]), base_url=LOCAL) as c:
        with pytest.raises(WebSocketDisconnect) as e:   # any page the user visits: refused at the handshake
            with c.websocket_connect("/ws", headers=host(origin="http://evil.example")) as ws:
                ws.receive_json()
        assert e.value.code == 1008 and c.get("/health").json()["sessions"] == 0
        with c.websocket_connect("/ws", headers=host(origin="http://localhost")) as ws:   # its own page
            hello(ws)
        with c.websocket_connect("/ws", headers=host(origin="https://friend.example")) as ws:   # --allow-origin
            hello(ws)
        r = c.post("/predict", headers={"origin": "http://evil.example"}, files={"file": ("a.wav", b"x", "audio/wav")})
        assert r.status_code == 403 and "other pages" in r.json()["error"]
        # DNS rebinding: the attacker's name in Host reaches nothing, /health included
        assert c.get("/health", headers={"host": "evil.example:8000"}).status_code == 421
        with pytest.raises(WebSocketDisconnect):
            with c.websocket_connect("/ws", headers={"host": "evil.example"}) as ws:
                ws.receive_json()
        assert c.get("/health", headers={"host": "127.0.0.1:8000"}).status_code == 200   # an address is fine


def test_idle_client_loses_its_slot_and_health_hides_clients(model):
    with TestClient(create_app(model, S.Limits(max_sessions=1, idle_timeout=0.3)), base_url=LOCAL) as c:
        with c.websocket_connect("/ws", headers=host()) as ws:
            hello(ws)
            assert "clients" not in c.get("/health").json()   # asked from elsewhere than this machine
            m = ws.receive_json()                              # silent past idle_timeout
            assert m["type"] == "error" and "no message" in m["message"]
            with pytest.raises(WebSocketDisconnect) as e:
                ws.receive_json()
            assert e.value.code == 1001
        with c.websocket_connect("/ws", headers=host()) as ws:   # the slot is free again
            hello(ws)


def test_stale_upload_folders_are_cleaned_at_start(model, tmp_path, monkeypatch):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    monkeypatch.setattr(S.tempfile, "tempdir", str(tmp_path))
    stale = tmp_path / f"emolite-upload-{dead.stdout.strip()}-abc"
    live = tmp_path / f"emolite-upload-{__import__('os').getpid()}-def"
    for d in (stale, live):
        d.mkdir()
        (d / "upload.mp4").write_bytes(b"x")
    create_app(model)
    assert not stale.exists() and live.exists()


def test_duration_less_upload_is_refused_by_what_decodes(model, tmp_path):
    from test_robustness import live_mkv

    f = live_mkv(tmp_path / "live.mkv", seconds=3.0)
    with TestClient(create_app(model, S.Limits(max_upload_seconds=1.0)), base_url=LOCAL) as c:
        r = c.post("/predict", files={"file": (f.name, f.read_bytes(), "video/x-matroska")})
    assert r.status_code == 400 and "longer than the limit" in r.json()["detail"]


def test_max_people_reaches_the_session_and_hello(model):
    with TestClient(create_app(model, S.Limits(max_people=2)), base_url=LOCAL) as c:
        with c.websocket_connect("/ws", headers=host()) as ws:
            assert hello(ws)["limits"]["max_people"] == 2
            (session,) = c.app.state.server.sessions.values()
            assert session.people.max_people == 2 and session.people.tracker.max_people == 2


# ---------------------------------------------------------------- slots (issue 24)


def test_one_address_cannot_take_every_session_slot(model):
    app = create_app(model, S.Limits(max_sessions=16, max_sessions_per_address=2))
    with TestClient(app, base_url=LOCAL) as c:   # TestClient's address: "testclient"
        with c.websocket_connect("/ws", headers=host()) as a, c.websocket_connect("/ws", headers=host()) as b:
            hello(a), hello(b)
            with c.websocket_connect("/ws", headers=host()) as third:
                m = third.receive_json()
                assert m["type"] == "error" and "2 sessions from your address" in m["message"]
                with pytest.raises(WebSocketDisconnect) as e:
                    third.receive_json()
                assert e.value.code == 1013
            other = TestClient(app, base_url=LOCAL, client=("10.0.0.7", 40000))   # another address: served
            with other.websocket_connect("/ws", headers=host()) as ws:
                hello(ws)
                ws.send_text('{"type": "ping", "t": 1}')
                assert ws.receive_json()["type"] == "pong"
        with c.websocket_connect("/ws", headers=host()) as ws:   # its slots come back when it closes
            hello(ws)


def test_pings_alone_do_not_keep_a_session(model):
    idle = 0.6
    with TestClient(create_app(model, S.Limits(idle_timeout=idle)), base_url=LOCAL) as c:
        with c.websocket_connect("/ws", headers=host()) as ws:   # audio keeps a session, pings answered meanwhile
            hello(ws)
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < 2.5 * idle:
                ws.send_bytes(pcm_msg(0.1))
                ws.send_text('{"type": "ping", "t": 0}')
                assert ws.receive_json()["type"] == "pong"
                time.sleep(idle / 5)
        with c.websocket_connect("/ws", headers=host()) as ws:   # one ping every idle/5 s and nothing else
            hello(ws)
            t0, got = time.perf_counter(), []
            while time.perf_counter() - t0 < 6 * idle:
                ws.send_text('{"type": "ping", "t": 0}')
                got.append(ws.receive_json())
                if got[-1]["type"] != "pong":
                    break
                time.sleep(idle / 5)
            assert got[-1]["type"] == "error" and "pings do not count" in got[-1]["message"], got[-3:]
            assert len(got) > 3 and time.perf_counter() - t0 < 4 * idle
            with pytest.raises(WebSocketDisconnect) as e:
                ws.receive_json()
            assert e.value.code == 1001


# ---------------------------------------------------------------- the address (issue 24)


def test_unknown_host_is_one_line_before_anything_else(monkeypatch, capsys):
    from emolite import cli, inference

    def no_model(*a, **k):
        raise AssertionError("the model was loaded before the address was checked")

    monkeypatch.setattr(inference, "load_model", no_model)
    assert cli.main(["serve", "--host", "nonexistent.invalid", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nonexistent.invalid" in err and "127.0.0.1" in err and "open" not in err


def test_port_0_prints_the_port_actually_bound(checkpoint, monkeypatch, capsys):
    import uvicorn

    bound = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: bound.extend(
        s.getsockname()[1] for s in sockets or ()))
    S.serve(str(checkpoint), host="127.0.0.1", port=0)
    err = capsys.readouterr().err
    assert len(bound) == 1 and bound[0] != 0 and f"open http://localhost:{bound[0]}/ in a browser" in err
