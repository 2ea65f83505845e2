"""The on-device page's files without a browser: the vendored runtime matches its manifest, the
vendor script copies only the plain WebAssembly build, serve hands out the graphs from the
package, and export-web writes a self-contained folder whose model carries its InputSpec."""

from __future__ import annotations

import io
import json
import re
import shutil
import tarfile

import pytest
from fastapi.testclient import TestClient

from emolite import web
from emolite.cli import main
from emolite.errors import EmoliteError
from emolite.inference import load_model

LOCAL = "http://127.0.0.1:8000"


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOLITE_CACHE", str(tmp_path / "cache"))


def test_vendored_runtime_matches_its_manifest(tmp_path):
    m = web.check_runtime()
    assert m["package"] == "onnxruntime-web" and m["version"] == web.RUNTIME_VERSION and m["license"] == "MIT"
    assert sorted(m["files"]) == sorted(web.RUNTIME_FILES)
    assert sorted(p.name for p in web.RUNTIME_DIR.iterdir()) == sorted([*web.RUNTIME_FILES, web.MANIFEST.name])
    copy = tmp_path / "ort"
    shutil.copytree(web.RUNTIME_DIR, copy)
    wasm = copy / "ort-wasm-simd-threaded.wasm"
    data = bytearray(wasm.read_bytes())
    data[100] ^= 1
    wasm.write_bytes(bytes(data))
    with pytest.raises(EmoliteError, match="sha256"):
        web.check_runtime(copy)


def fake_package(path, version=web.RUNTIME_VERSION, extra=("ort.webgpu.min.mjs", "ort-wasm-simd-threaded.jsep.wasm")):
    with tarfile.open(path, "w:gz") as tar:
        def add(name, data: bytes):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        add("package/package.json", json.dumps({"name": "onnxruntime-web", "version": version, "license": "MIT"}).encode())
        for name in (*web.RUNTIME_FILES, *extra):
            add(f"package/dist/{name}", name.encode() * 10)
    return path


def test_vendor_copies_only_the_plain_wasm_build_and_records_sha256(tmp_path):
    out = tmp_path / "ort"
    m = web.vendor(fake_package(tmp_path / "ort.tgz"), out)
    assert sorted(p.name for p in out.iterdir()) == sorted([*web.RUNTIME_FILES, "manifest.json"])
    assert m["files"]["ort.wasm.bundle.min.mjs"]["sha256"] == web.sha256(out / "ort.wasm.bundle.min.mjs")
    assert web.check_runtime(out)["version"] == web.RUNTIME_VERSION
    with pytest.raises(EmoliteError, match="npm pack onnxruntime-web@"):
        web.vendor(fake_package(tmp_path / "old.tgz", version="1.0.0"), tmp_path / "old")


def test_serve_hands_out_the_runtime_and_graphs(checkpoint):
    from emolite.serve import create_app

    model = load_model(checkpoint)
    with TestClient(create_app(model, web_model=checkpoint), base_url=LOCAL) as c:
        r = c.get("/")
        assert "'wasm-unsafe-eval'" in r.headers["content-security-policy"]
        r = c.get("/static/ort/ort-wasm-simd-threaded.wasm")
        assert r.status_code == 200 and r.headers["content-type"] == "application/wasm"
        assert r.content[:4] == b"\0asm"
        onnx = c.get("/ondevice/model.onnx")
        assert onnx.status_code == 200
        assert c.get("/ondevice/detector.onnx").content == web.detector_bytes()
        assert c.get("/ondevice/vad.onnx").content == web.vad_path().read_bytes()
        assert c.get("/ondevice/other.onnx").status_code == 404
    for name in ("ondevice.js", "pipeline.js"):   # nothing loads from elsewhere
        assert not re.search(r"https?://|//cdn", (web.STATIC / name).read_text()), name


def test_checkpoint_is_exported_once_into_the_cache(checkpoint, tmp_path):
    a = web.model_onnx(checkpoint)
    assert a.is_relative_to(tmp_path / "cache") and a.suffix == ".onnx"
    mtime = a.stat().st_mtime_ns
    assert web.model_onnx(checkpoint) == a and a.stat().st_mtime_ns == mtime
    assert load_model(a).spec == load_model(checkpoint).spec


def test_export_web_writes_a_self_contained_folder(tmp_path, checkpoint, capsys):
    out = tmp_path / "www"
    assert main(["export-web", str(out), "--model", str(checkpoint)]) == 0
    assert json.loads(capsys.readouterr().out)["runtime"] == f"onnxruntime-web {web.RUNTIME_VERSION}"
    page = (out / "index.html").read_text()
    assert '<meta name="emolite-server" content="0">' in page and 'src="static/app.js"' in page
    for name in web.PAGE_FILES:
        assert (out / "static" / name).read_bytes() == (web.STATIC / name).read_bytes()
    web.check_runtime(out / "static" / "ort")
    assert (out / "ondevice" / "detector.onnx").read_bytes() == web.detector_bytes()
    m = load_model(out / "ondevice" / "model.onnx")          # the spec travels in the ONNX metadata
    assert m.spec == load_model(checkpoint).spec and m.classes == load_model(checkpoint).classes


def test_export_web_bad_model_is_one_line(tmp_path, capsys):
    assert main(["export-web", str(tmp_path / "www"), "--model", str(tmp_path / "nope.pt")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "nope.pt" in err and "Traceback" not in err
