"""The on-device mode in a real browser (Debian's chromium, skipped without it): the live page
runs the detector, the model and voice activity itself and sends nothing; `emolite export-web`'s
folder works from a plain static server; and the page's pipeline gives the Python path's answer
(boxes IoU >= 0.9, probabilities within 1e-3) for the default model and for a user's exported one.
"""

from __future__ import annotations

import base64
import functools
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest

from emolite import demo
from test_browser import CHROMIUM, H, W, browser_args, server_on, write_wav, write_y4m

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium "
                                                               "(apt-get install -y chromium)")
PARITY_FPS = 5.0
LIVE_WAIT = "() => Number(document.body.dataset.labels || 0) >= 3 && document.getElementById('overlay').dataset.box !== ''"


@pytest.fixture(scope="module", autouse=True)
def cache_dir(tmp_path_factory):
    """Exported graphs go to a temp cache, never the user's."""
    mp = pytest.MonkeyPatch()
    mp.setenv("EMOLITE_CACHE", str(tmp_path_factory.mktemp("cache")))
    yield
    mp.undo()


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> list[str]:
    d = tmp_path_factory.mktemp("fake")
    return browser_args(write_y4m(d / "clip.y4m"), write_wav(d / "clip.wav"))


def parity_window() -> tuple[np.ndarray, np.ndarray]:
    """15 frames (3 s at 5 fps) of the drifting face with two faceless frames (a gap the tracker
    fills), and 3 s of voice."""
    frames = np.stack([demo.frame_at(i / PARITY_FPS, W, H, face=i not in (6, 7)) for i in range(15)])
    return frames, demo.voice(3.0, 16000).astype(np.float32)


def reference(model, frames: np.ndarray, audio: np.ndarray, fps: float):
    """The Python path for one live window: window_features (detector, track, crops, VAD) +
    clip_inputs + the model."""
    from emolite import core
    from emolite.features import window_features
    from emolite.media import Window

    s = model.spec
    n = len(frames)
    w = Window(0.0, n / fps, frames, np.arange(n) / fps, audio)
    f = window_features(w, model.detector, s.face_size, s.context_size, s.margin, s.align, fps=fps)
    row = core.face_row(s, model.modalities, f)
    probs = model.predict_inputs(core.stack([core.window_inputs(s, f, voice=bool(row.uses["audio"]))]))[0]
    return probs, f.boxes, bool(row.uses["audio"])


PAGE_WINDOW = """async ([frames, w, h, audio, fps]) => {
  const dev = window.emoliteDevice;
  const dec = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
  const imgs = frames.map((s) => ({ data: new Uint8ClampedArray(dec(s).buffer), width: w, height: h }));
  const a = new Float32Array(dec(audio).buffer);
  const r = await dev.engine.predictWindow(imgs, a, fps);
  return { probs: r.probs, voiced: r.voiced, tracks: r.tracks.map((t) => (t ? t.box : null)),
           dets: r.dets.map((d) => d.map((f) => f.box)) };
}"""


def rgba_b64(frame: np.ndarray) -> str:
    rgba = np.concatenate([frame, np.full(frame.shape[:2] + (1,), 255, np.uint8)], -1)
    return base64.b64encode(rgba.tobytes()).decode()


def check_parity(page, model) -> dict:
    """The page's pipeline and the Python path on the same window; returns the figures."""
    from emolite.faces import iou

    frames, audio = parity_window()
    ref, ref_boxes, ref_voiced = reference(model, frames, audio, PARITY_FPS)
    got = page.evaluate(PAGE_WINDOW, [[rgba_b64(f) for f in frames], W, H,
                                      base64.b64encode(audio.tobytes()).decode(), PARITY_FPS])
    assert got["voiced"] is True and ref_voiced is True
    for i, f in enumerate(frames):   # raw detections, frame by frame
        py = [d.box for d in model.detector(f)]
        assert len(got["dets"][i]) == len(py), (i, got["dets"][i], py)
        for a, b in zip(got["dets"][i], py):
            assert iou(np.array(a), b) >= 0.9
    ious = []
    for i, box in enumerate(got["tracks"]):   # the followed face, gap filled and smoothed
        assert (box is None) == bool(np.isnan(ref_boxes[i]).all()), i
        if box is not None:
            ious.append(iou(np.array(box), ref_boxes[i]))
    assert ious and min(ious) >= 0.9, ious
    diff = float(np.abs(np.array(got["probs"]) - ref).max())
    assert diff <= 1e-3, (got["probs"], ref.tolist())
    # the detector on a frame the page must shrink first (longest side above detect_side)
    big = demo.frame_at(0.5, 2 * W, 2 * H)
    det = page.evaluate("""async ([s, w, h]) => {
      const d = Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
      return (await window.emoliteDevice.engine.detect({ data: new Uint8ClampedArray(d.buffer), width: w, height: h }))
        .map((f) => f.box); }""", [rgba_b64(big), 2 * W, 2 * H])
    py = [d.box for d in model.detector(big)]
    assert len(det) == len(py) == 1 and iou(np.array(det[0]), py[0]) >= 0.9
    # voice activity on silence and on noise
    for x, want in ((np.zeros(16000, np.float32), False),):
        assert page.evaluate("async (s) => window.emoliteDevice.engine.voiced(new Float32Array("
                             "Uint8Array.from(atob(s), (c) => c.charCodeAt(0)).buffer))",
                             base64.b64encode(x.tobytes()).decode()) is want
    return {"max_abs_prob_diff": diff, "min_iou": min(ious)}


def models_only(browser, url: str):
    """A page with the on-device engine loaded and no camera running (start=0)."""
    page = browser.new_page()
    page.goto(url)
    page.wait_for_function("() => document.body.dataset.deviceReady !== undefined", timeout=30_000)
    return page


def watch(page, origin: str) -> dict:
    """Record every request and WebSocket the page makes, and page errors."""
    seen = {"requests": [], "sockets": [], "errors": []}
    page.on("request", lambda r: seen["requests"].append((r.method, r.url, r.post_data_buffer)))
    page.on("websocket", lambda ws: seen["sockets"].append(ws.url))
    page.on("pageerror", lambda e: seen["errors"].append(str(e)))
    page.on("console", lambda m: seen["errors"].append(m.text) if m.type == "error" else None)
    return seen


def no_media_left(seen: dict, origin: str, loaded_at: int) -> None:
    """After the models loaded: no request at all, and never a WebSocket or a request body."""
    assert not seen["sockets"], seen["sockets"]
    assert all(url.startswith((origin, "data:", "blob:")) for _, url, _ in seen["requests"]), seen["requests"]
    assert all(m == "GET" and not body for m, _, body in seen["requests"]), seen["requests"]
    assert not seen["requests"][loaded_at:], seen["requests"][loaded_at:]


def test_ondevice_live_page_sends_nothing_and_matches_python(tmp_path, media):
    """emolite serve's page in on-device mode: labels, box and history from the fake camera and
    microphone, with no WebSocket and no request once the models are in; then the parity check
    for the default model."""
    from playwright.sync_api import sync_playwright

    from emolite.inference import load_model

    model = load_model(None)
    with server_on(load_model(None)) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=media, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            seen = watch(page, url)
            page.goto(f"{url}/?mode=device")
            page.wait_for_function("() => document.body.dataset.deviceReady !== undefined", timeout=30_000)
            loaded_at = len(seen["requests"])
            page.wait_for_function(LIVE_WAIT, timeout=30_000)
            label, shown = page.evaluate("() => { const e = document.getElementById('label'); "
                                         "return [e.textContent, e.dataset.label]; }")   # one read: labels keep coming
            assert label in model.classes and shown == label
            x1, y1, x2, y2 = map(float, page.get_attribute("#overlay", "data-box").split(","))
            assert 0 <= x1 < x2 <= W and 0 <= y1 < y2 <= H and x2 - x1 > 20
            assert int(page.get_attribute("#history", "data-count")) >= 2
            assert "nothing leaves this page" in page.text_content("#status")
            assert page.get_attribute("body", "data-mode") == "device" and page.is_hidden("section.upload")
            assert "voice" in page.inner_text("#confidence")      # the microphone reached the page's VAD
            page.screenshot(path=str(tmp_path / "ondevice.png"))
            no_media_left(seen, url, loaded_at)
            assert not seen["errors"], seen["errors"]
            page.close()
            check_parity(models_only(browser, f"{url}/?mode=device&start=0"), model)
        finally:
            browser.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory, checkpoint) -> tuple[Path, Path]:
    """export-web's folder for a user's model (a face + context + voice net, exported with
    `emolite export`), and that ONNX file."""
    from emolite.export import export
    from emolite.web import export_web

    d = tmp_path_factory.mktemp("site")
    onnx = d / "mine.onnx"
    export(checkpoint, onnx, check=False)
    export_web(d / "www", onnx)
    return d / "www", onnx


def static_server(folder: Path):
    """`python -m http.server` in a thread: no emolite behind the page."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def test_export_web_folder_works_from_a_static_server(site, media):
    """The exported folder from a plain file server: on-device only (no mode switch, no upload),
    labels from the fake camera, nothing sent; the user's model gives the Python answer."""
    from playwright.sync_api import sync_playwright

    from emolite.inference import load_model

    www, onnx = site
    httpd = static_server(www)
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=media, headless=True)
            try:
                page = browser.new_page()
                seen = watch(page, url)
                page.goto(f"{url}/")
                page.wait_for_function("() => document.body.dataset.deviceReady !== undefined", timeout=30_000)
                loaded_at = len(seen["requests"])
                page.wait_for_function(LIVE_WAIT, timeout=30_000)
                assert page.is_hidden("#mode-pick") and page.is_hidden("section.upload")
                assert page.text_content("#label") in load_model(onnx).classes
                no_media_left(seen, url, loaded_at)
                assert not seen["errors"], seen["errors"]
                page.close()
                check_parity(models_only(browser, f"{url}/?start=0"), load_model(onnx))
            finally:
                browser.close()
    finally:
        httpd.shutdown()
