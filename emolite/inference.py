"""A loaded model, ready to use: `emolite.load_model()` returns an `EmotionModel`.

It wraps either a torch checkpoint or an ONNX file (run by onnxruntime) behind one
`predict_inputs` call, and carries what inference needs besides weights: the class names and
the model's `InputSpec` (frames per window, audio seconds, fps, crop sizes, detector, margin,
alignment), read from the checkpoint's or the ONNX file's metadata. analyze and serve only
talk to this object.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import inputs as I
from .errors import EmoliteError
from .spec import InputSpec

ASSETS = Path(__file__).parent / "assets"
DEFAULT_MODEL = ASSETS / "default.pt"
ONNX_META_KEY = "emolite"


@dataclass
class Prediction:
    """One answer: the top label, its probability, and every class's probability."""

    label: str
    confidence: float
    probs: dict[str, float]


@dataclass
class EmotionModel:
    """Inference wrapper. `backend` is "torch" or "onnx"; `meta` is the checkpoint's metadata."""

    classes: list[str]
    meta: dict
    backend: str
    net: object = None           # torch.nn.Module or onnxruntime.InferenceSession
    device: str = "cpu"
    _detector: object = field(default=None, repr=False)

    @property
    def spec(self) -> InputSpec:
        """The inputs the model was trained on (metadata "preprocess"; fields an older
        checkpoint lacks take the defaults)."""
        return InputSpec.from_dict(self.meta.get("preprocess"))

    @property
    def preprocessing(self) -> InputSpec:
        """Same record as `spec`, kept for code that reads it like a dict (`p["face_size"]`)."""
        return self.spec

    @property
    def frames(self) -> int:
        """T: frames per model input."""
        return self.spec.frames

    @property
    def seconds(self) -> float:
        """Audio seconds per model input."""
        return self.spec.audio_seconds

    @property
    def modalities(self) -> list[str]:
        """The streams the model uses (face, context, audio)."""
        return list(self.meta.get("model", {}).get("modalities", ["face", "context", "audio"]))

    @property
    def detector(self):
        """The face detector of the model's spec, made on first use."""
        if self._detector is None:
            from .faces import get_detector

            p = self.spec
            self._detector = get_detector(p.detector, side=p.detect_side)
        return self._detector

    def predict_inputs(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        """Batched inputs (see emolite.inputs) -> class probabilities B×C."""
        if self.backend == "onnx":
            names = {i.name for i in self.net.get_inputs()}
            feed = {k: v for k, v in batch.items() if k in names}
            return self.net.run(["probs"], feed)[0]
        import torch

        with torch.inference_mode():
            t = {k: torch.from_numpy(np.ascontiguousarray(v)).to(self.device) for k, v in batch.items()}
            return torch.softmax(self.net(t).float(), -1).cpu().numpy()

    def to_prediction(self, probs: np.ndarray) -> Prediction:
        """One row of class probabilities -> a Prediction."""
        i = int(np.argmax(probs))
        return Prediction(self.classes[i], float(probs[i]), {c: float(p) for c, p in zip(self.classes, probs)})

    def predict(self, face: np.ndarray | None = None, context: np.ndarray | None = None,
                audio: np.ndarray | None = None, face_mask: np.ndarray | None = None) -> Prediction:
        """Predict from arrays: face/context N×H×W×3 uint8 RGB crops (or one H×W×3 image),
        audio float32 16 kHz mono. Any of them may be None (that modality is missing)."""
        from .faces import letterbox

        p = self.spec
        fs, cs = p.face_size, p.context_size

        def frames(x, size):
            if x is None:
                return None
            x = np.asarray(x)
            if x.ndim == 3:
                x = x[None]
            if x.dtype != np.uint8:
                x = np.clip(x * (I.PIXEL_MAX if x.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
            return np.stack([f if f.shape[:2] == (size, size) else letterbox(f, size) for f in x])

        f, c = frames(face, fs), frames(context, cs)
        n = len(f) if f is not None else len(c) if c is not None else 0
        if f is None:
            f = np.zeros((n, fs, fs, 3), np.uint8)
            face_mask = np.zeros(n, bool)
        if c is None:
            c = np.zeros((n, cs, cs, 3), np.uint8)
        mask = np.ones(n, bool) if face_mask is None else np.asarray(face_mask, bool)
        x = I.clip_inputs(f, mask, c, audio, p.frames, p.audio_seconds, has_video=n > 0, face_size=fs, context_size=cs)
        if context is None and n > 0:
            x["context_mask"][:] = False
        if face is None:
            x["face_mask"][:] = False
        if not (x["face_mask"].any() or x["context_mask"].any() or x["audio_mask"]):
            raise EmoliteError("nothing to predict from: give a face, a context image or audio")
        return self.to_prediction(self.predict_inputs(I.stack([x]))[0])

    def analyze(self, path: str | os.PathLike, **kwargs):
        """Emotions over time for one media file; see `emolite.analyze.analyze_file`."""
        from .analyze import analyze_file

        return analyze_file(self, path, **kwargs)


def load_model(name_or_path: str | os.PathLike | None = None, device: str = "cpu", threads: int | None = None) -> EmotionModel:
    """Load the packaged default model (no download), an emolite checkpoint (.pt) or an ONNX export."""
    path = Path(name_or_path) if name_or_path not in (None, "default") else DEFAULT_MODEL
    if not path.exists():
        hint = "the package was installed without its model; reinstall emolite" if path == DEFAULT_MODEL \
            else "check the path, or omit --model for the default model"
        raise EmoliteError(f"model file not found; {hint}", path)
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise EmoliteError("--device cuda asked for, but torch sees no CUDA GPU; use --device cpu")
    if path.suffix.lower() == ".onnx":
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device.startswith("cuda") else ["CPUExecutionProvider"]
        try:
            sess = ort.InferenceSession(str(path), opts, providers=[p for p in providers if p in ort.get_available_providers()])
        except Exception as e:
            raise EmoliteError(f"not a loadable ONNX model ({type(e).__name__})", path) from None
        raw = sess.get_modelmeta().custom_metadata_map.get(ONNX_META_KEY)
        if raw is None:
            raise EmoliteError("ONNX file has no emolite metadata; export it with `emolite export`", path)
        meta = json.loads(raw)
        return EmotionModel(list(meta["classes"]), meta, "onnx", sess, device)
    from .models import load_checkpoint

    if threads:
        import torch

        torch.set_num_threads(threads)
    net, meta = load_checkpoint(path, map_location=device)
    if not meta.get("classes"):
        raise EmoliteError("checkpoint has no class names in its metadata", path)
    return EmotionModel(list(meta["classes"]), meta, "torch", net.to(device).eval(), device)
