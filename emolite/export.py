"""`emolite export`: a checkpoint -> one ONNX graph (opset 17) carrying its metadata, optional
int8 dynamic quantization, and a parity check against torch on the same inputs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from . import inputs as I
from .errors import EmoliteError
from .fsio import atomic_path
from .inference import ONNX_META_KEY, load_model

OPSET = 17
PARITY_SAMPLES = 16


def _stamp(path: Path, meta: dict) -> None:
    """Store the checkpoint's metadata (classes, the InputSpec as "preprocess", ...) inside the ONNX file."""
    import onnx

    m = onnx.load(str(path))
    del m.metadata_props[:]
    p = m.metadata_props.add()
    p.key, p.value = ONNX_META_KEY, json.dumps(meta)
    with atomic_path(path) as tmp:
        onnx.save(m, str(tmp))


def random_inputs(model, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Inputs spanning the cases that matter: all modalities, no face, no audio, audio only."""
    rng = np.random.default_rng(seed)
    spec = model.spec
    T, S = spec.frames, int(spec.audio_seconds * spec.sample_rate)
    fs, cs = spec.face_size, spec.context_size
    items = []
    for i in range(n):
        x = {"face": rng.random((T, 3, fs, fs), np.float32), "context": rng.random((T, 3, cs, cs), np.float32),
             "audio": (0.1 * rng.standard_normal(S)).astype(np.float32), "face_mask": np.ones(T, bool),
             "context_mask": np.ones(T, bool), "audio_mask": np.array(True)}
        case = i % 4
        if case == 1:
            x["face_mask"][:] = False
        elif case == 2:
            x["audio_mask"] = np.array(False)
        elif case == 3:
            x["face_mask"][:] = False
            x["context_mask"][:] = False
        items.append(x)
    return I.stack(items)


def _check_out(out: Path) -> Path:
    """`-o` must name a file whose folder exists or can be made (checked before any work)."""
    if out.is_dir():
        raise EmoliteError("is a folder; give the ONNX file to write, e.g. -o model.onnx", out)
    if out.exists() and not out.is_file():
        raise EmoliteError("is not a regular file; give the ONNX file to write", out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise EmoliteError(f"cannot create its folder ({e.strerror or type(e).__name__})", out) from None
    if not os.access(out.parent, os.W_OK):
        raise EmoliteError("its folder is not writable", out)
    return out


def export(checkpoint: str | Path | None, out: str | Path, quantize: bool = False, check: bool = True) -> dict:
    """Export; returns a report with the parity figures (and int8 top-1 agreement)."""
    from .models import export_onnx

    out = _check_out(Path(out))
    model = load_model(checkpoint)
    meta = {**model.meta, "preprocess": model.spec.to_dict()}   # every field written out, defaults included
    with atomic_path(out) as tmp:
        export_onnx(model.net, tmp, T=model.frames, seconds=model.seconds, opset=OPSET,
                    face_size=model.spec.face_size, context_size=model.spec.context_size)
        _stamp(tmp, meta)
    report = {"onnx": str(out), "opset": OPSET, "bytes": out.stat().st_size}
    x = random_inputs(model, PARITY_SAMPLES) if check or quantize else None
    ref = model.predict_inputs(x) if x is not None else None
    if check:
        got = load_model(out).predict_inputs(x)
        report["max_abs_prob_diff"] = float(np.abs(got - ref).max())
    if quantize:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        q = out.with_name(out.stem + ".int8.onnx")
        import logging

        level = logging.getLogger().level
        logging.getLogger().setLevel(logging.ERROR)  # onnxruntime's advisory warnings, not errors
        try:
            with atomic_path(q) as qtmp:
                quantize_dynamic(str(out), str(qtmp), weight_type=QuantType.QInt8)
                _stamp(qtmp, meta)
        finally:
            logging.getLogger().setLevel(level)
        got = load_model(q).predict_inputs(x)
        report.update(int8=str(q), int8_bytes=q.stat().st_size,
                      int8_top1_agreement=float(np.mean(got.argmax(1) == ref.argmax(1))),
                      int8_max_abs_prob_diff=float(np.abs(got - ref).max()))
    return report
