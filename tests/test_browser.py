"""The live page in a real browser: Chromium's fake camera plays a .y4m of frames with a real face
and its fake microphone a voice-like .wav; labels and the face box must reach the page.

Needs Debian's chromium (`apt-get install -y chromium`); skipped when /usr/bin/chromium is absent.
Set EMOLITE_SCREENSHOT=docs/serve.png to refresh the README's screenshot (with the default model).
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
import wave
from contextlib import contextmanager
from pathlib import Path

import pytest

from emolite import demo
from emolite.inference import DEFAULT_MODEL

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = os.environ.get("EMOLITE_SCREENSHOT")  # e.g. docs/serve.png; unset: a temp file
W, H, FPS, SECONDS = 320, 240, 5, 6

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium "
                                                               "(apt-get install -y chromium)")


def write_y4m(path: Path, frames=lambda t: demo.frame_at(t, W, H)) -> Path:
    """YUV4MPEG2 4:2:0: a header line, then per frame 'FRAME\\n' + the Y, U and V planes."""
    import cv2

    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{W} H{H} F{FPS}:1 Ip A1:1 C420jpeg\n".encode())
        for i in range(SECONDS * FPS):
            yuv = cv2.cvtColor(frames(i / FPS), cv2.COLOR_RGB2YUV_I420)  # Y, U, V planes stacked
            f.write(b"FRAME\n" + yuv.tobytes())
    return path


def write_wav(path: Path, sr: int = 16000) -> Path:
    x = (demo.voice(SECONDS, sr) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(x.tobytes())
    return path


@contextmanager
def server_on(model, web_model=None):
    """emolite serve's app for `model` under uvicorn in a thread, on a free port (web_model: the
    on-device page's model file; None: the loaded model, exported)."""
    import uvicorn

    from emolite.serve import Limits, create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(create_app(model, web_model=web_model), host="127.0.0.1", port=port, log_level="warning",
                                        ws_max_size=Limits().ws_max_size, ws_per_message_deflate=False))
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    deadline = time.time() + 20
    while not srv.started and time.time() < deadline:
        time.sleep(0.05)
    assert srv.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        t.join(timeout=10)


@pytest.fixture(scope="module")
def server(checkpoint):
    """The app under uvicorn in a thread, on a free port."""
    from emolite.inference import load_model

    # The README screenshot shows the shipped model; the test itself needs only some model.
    with server_on(load_model(None if SCREENSHOT and DEFAULT_MODEL.exists() else checkpoint)) as url:
        yield url


def browser_args(y4m: Path, wav: Path) -> list[str]:
    """Headless Chromium whose fake camera and microphone play these files."""
    return ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={y4m}",
            f"--use-file-for-fake-audio-capture={wav}", "--autoplay-policy=no-user-gesture-required"]


def test_live_page_shows_labels_and_face_box(server, clip, tmp_path):
    import httpx
    from playwright.sync_api import sync_playwright

    args = browser_args(write_y4m(tmp_path / "clip.y4m"), write_wav(tmp_path / "clip.wav"))
    classes = httpx.get(f"{server}/health").json()["classes"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=args, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            problems: list[str] = []
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("request", lambda r: None if r.url.startswith((server, "data:", "blob:"))
                    else problems.append(f"external request {r.url}"))
            page.goto(server)
            page.wait_for_function("() => Number(document.body.dataset.predictions || 0) >= 6 && "
                                   "Number(document.body.dataset.labels || 0) >= 2 && "
                                   "document.getElementById('overlay').dataset.box !== ''", timeout=30_000)
            assert page.get_attribute("#overlay", "data-people") in ("", "1")   # one face: drawn as before
            assert page.is_hidden("#people")
            label = page.text_content("#label")
            assert label in classes and page.get_attribute("#label", "data-label") == label
            x1, y1, x2, y2 = map(float, page.get_attribute("#overlay", "data-box").split(","))
            assert 0 <= x1 < x2 <= W and 0 <= y1 < y2 <= H and x2 - x1 > 20
            assert int(page.get_attribute("#history", "data-count")) >= 2
            assert re.fullmatch(r"box \d+ ms · label \d+ ms \(median\)", page.inner_text("#latency"))
            # the microphone reached the server as 16 kHz PCM
            clients = httpx.get(f"{server}/health").json()["clients"]
            assert clients and clients[0]["audio_chunks"] > 0 and clients[0]["errors"] == 0
            assert "voice" in page.inner_text("#confidence")
            # the upload form: the analyze timeline and its plot
            page.set_input_files("#file", str(clip))
            page.click("#upload-form button")
            page.wait_for_selector("#plot:not([hidden])", timeout=30_000)
            assert page.locator("#rows tr").count() == 3  # header + two windows
            page.screenshot(path=str(SCREENSHOT or tmp_path / "serve.png"), full_page=True)
            assert not problems, problems
        finally:
            browser.close()


def test_live_page_draws_every_person(server, tmp_path):
    """Two faces side by side: two boxes, one per person id, and the people list beside the label."""
    from playwright.sync_api import sync_playwright

    face = demo.face_image()
    sc = demo.Scene([demo.Actor(face, lambda t: (85 + 5 * t, 120)), demo.Actor(face, lambda t: (235 - 5 * t, 125))],
                    width=W, height=H, face_px=110)
    args = browser_args(write_y4m(tmp_path / "two.y4m", sc), write_wav(tmp_path / "two.wav"))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=args, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            problems: list[str] = []
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(server)
            page.wait_for_function("() => document.getElementById('overlay').dataset.people === '1,2' && "
                                   "Number(document.body.dataset.labels || 0) >= 2 && "
                                   "document.querySelectorAll('#people li[data-id]').length === 2", timeout=30_000)
            items = page.locator("#people li[data-id]")
            assert [items.nth(i).get_attribute("data-id") for i in range(2)] == ["1", "2"]
            texts = [items.nth(i).inner_text() for i in range(2)]
            assert texts[0].startswith("person 1: ") and texts[1].startswith("person 2: "), texts
            assert page.inner_text("#face-state") == "2 people"
            page.screenshot(path=str(tmp_path / "people.png"))
            assert not problems, problems
        finally:
            browser.close()
