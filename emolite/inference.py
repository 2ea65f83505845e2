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
from functools import cached_property
from pathlib import Path

import numpy as np

from . import inputs as I
from .core import audio_windows  # noqa: F401  (public: the audio windows predict cuts)
from .errors import EmoliteError
from .spec import InputSpec

ASSETS = Path(__file__).parent / "assets"
DEFAULT_MODEL = ASSETS / "default.pt"
ONNX_META_KEY = "emolite"


@dataclass
class Prediction:
    """One answer: the top label, its probability, and every class's probability. `label` is
    None when there was nothing to read (no face found in a face-only call, no voice in the
    audio); `face_found` says whether the detector found a face in the image (None: not
    asked); `notes` say what was missing or replaced."""

    label: str | None
    confidence: float | None
    probs: dict[str, float | None]
    face_found: bool | None = None
    notes: list[str] = field(default_factory=list)


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
        """The inputs the model was trained on (metadata "preprocess", checked when the model
        loaded; fields an older .pt checkpoint lacks take the defaults)."""
        return InputSpec.from_dict(self.meta.get("preprocess"))

    @property
    def frames(self) -> int:
        """T: frames per model input."""
        return self.spec.frames

    @property
    def seconds(self) -> float:
        """Audio seconds per model input."""
        return self.spec.audio_seconds

    @cached_property
    def modalities(self) -> list[str]:
        """The streams the model uses (face, context, audio), from its typed config."""
        from .arch import from_dict, modalities_of

        cfg = self.meta.get("model", {})
        try:
            return list(modalities_of(from_dict(cfg)))
        except ValueError:   # a plugin model whose module is not imported here (e.g. ONNX)
            return list(modalities_of(cfg))

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

    def face_crops(self, image: np.ndarray, detect: bool = True) -> tuple[np.ndarray, bool]:
        """One RGB image -> (1×S×S×3 face crop as analyze cuts it, whether a face was found).
        With `detect`, the model's detector and crop geometry (spec: margin, alignment, the
        small-still rule) are used; when no face is found, or with detect=False (pre-cropped
        faces), the whole image is taken, letterboxed to a square (a small still, up to
        faces.SMALL_IMAGE px, is cut as analyze cuts it and reported as not found)."""
        from .faces import letterbox
        from .features import still_features

        img = as_uint8_rgb(check_pixels("face", image, frames=False))
        p = self.spec
        if detect:
            f = still_features(img, self.detector, p.face_size, p.context_size, p.margin, p.align)
            if f.face_mask[0]:   # found, or a small still taken whole as a face crop (not "found")
                whole = np.allclose(f.boxes[0], [0, 0, img.shape[1], img.shape[0]])
                return f.face[:1], not whole
        return letterbox(img, p.face_size)[None], False

    def predict(self, face: np.ndarray | list | None = None, context: np.ndarray | None = None,
                audio: np.ndarray | None = None, face_mask: np.ndarray | None = None,
                detect: bool = True) -> Prediction | list[Prediction]:
        """Predict from arrays: the array API (`analyze` reads files, serve's routes take uploads
        and live streams); the same inference core (`emolite.core`) as both.

        face: one RGB image (H×W×3 or H×W grey; the face is found in it first, as `analyze`
        does, unless detect=False for pre-cropped faces), a list of images (-> a list of
        Predictions, one per image), or N×H×W×3 crops of one clip's frames (one Prediction; not
        detected). context: the scene, one image or N frames. audio: float 16 kHz samples of any
        length, mono (stereo, samples×channels, is mixed down), cut into the model's windows as
        analyze cuts a file and averaged; silence, noise and music count as no voice. Any of
        them may be None (that modality is missing). A wrong shape is one ValueError naming the
        argument and the shapes it takes."""
        if isinstance(face, (list, tuple)):
            return [self.predict(face=f, context=context, audio=audio, detect=detect) for f in face]
        from . import core
        from .vad import bad_audio_note, finite_audio

        p = self.spec
        notes: list[str] = []
        found = None
        face = None if face is None else check_pixels("face", face)
        if face is not None and face.ndim < 4:
            face, found = self.face_crops(face, detect)
            if detect and not found:
                notes.append("no face found in the image: the whole image was used")
        f = None if face is None else clip_frames(face, p.face_size)
        c = None if context is None else clip_frames(check_pixels("context", context), p.context_size)
        if f is not None and c is not None and len(f) != len(c) and 1 not in (len(f), len(c)):
            raise ArrayError(f"face has {len(f)} frames and context {len(c)}; give them the same N frames")
        if f is not None and c is not None and len(f) != len(c):
            f, c = (np.repeat(f, len(c), 0), c) if len(f) == 1 else (f, np.repeat(c, len(f), 0))
        if audio is not None:
            audio, bad = finite_audio(check_audio(audio))
            if bad:
                notes.append(bad_audio_note(bad))
        if f is None and c is None and audio is None:
            raise EmoliteError("nothing to predict from: give a face, a context image or audio")
        rows = core.array_rows(p, self.modalities, f, face_mask, c, audio)
        pred, voiced = core.mean_answer(self, rows)
        if audio is not None and not voiced and "audio" in self.modalities:
            notes.append("no voice in the audio (silence, noise or music): the voice was not used")
        if pred is None:
            return Prediction(None, None, dict.fromkeys(self.classes), found, notes)
        pred.face_found, pred.notes = found, notes
        return pred

    def analyze(self, path: str | os.PathLike, **kwargs):
        """Emotions over time for one media file; see `emolite.analyze.analyze_file`."""
        from .analyze import analyze_file

        return analyze_file(self, path, **kwargs)


class ArrayError(EmoliteError, ValueError):
    """An array given to the Python API has a shape it does not take (a ValueError)."""


IMAGE_SHAPES = "H×W×3 RGB or H×W grey (one image), or N×H×W×3 (N frames)"
MAX_CHANNELS = 8      # a 2-D audio array with at most this many rows or columns is channels × samples


def check_pixels(name: str, x: object, frames: bool = True) -> np.ndarray:
    """`x` as an array of pixels of a shape the API takes (one image, or N frames with
    `frames`); else one ArrayError naming `name`, the shape given and the shapes it takes."""
    a = np.asarray(x)
    takes = IMAGE_SHAPES if frames else "H×W×3 RGB or H×W grey"
    if a.dtype.kind not in "biuf":
        raise ArrayError(f"{name} must be an array of numbers ({takes}); got dtype {a.dtype}")
    ok = a.ndim == 2 or (a.ndim == 3 and a.shape[-1] in (1, 3)) or (frames and a.ndim == 4 and a.shape[-1] in (1, 3))
    if not ok or 0 in a.shape:
        raise ArrayError(f"{name} takes {takes}; got an array of shape {'×'.join(map(str, a.shape)) or 'scalar'}")
    return a


def check_audio(x: object) -> np.ndarray:
    """Audio as 1-D float32 samples: stereo (or more channels; samples×channels or
    channels×samples) is mixed down; any other shape is one ArrayError naming `audio`."""
    a = np.asarray(x)
    if a.dtype.kind not in "biuf":
        raise ArrayError(f"audio must be an array of numbers (float samples at 16 kHz); got dtype {a.dtype}")
    if a.ndim == 2 and min(a.shape) <= MAX_CHANNELS and a.size:
        a = a.astype(np.float32).mean(axis=int(np.argmin(a.shape)))
    if a.ndim != 1:
        raise ArrayError("audio takes 1-D samples (mono, 16 kHz) or samples×channels; got an array of shape "
                         f"{'×'.join(map(str, a.shape)) or 'scalar'}")
    return a.astype(np.float32, copy=False)


def as_uint8_rgb(image: np.ndarray) -> np.ndarray:
    """H×W×3 (or H×W / H×W×1 grey) uint8 RGB from uint8 or float ([0, 1] or [0, 255]) pixels."""
    x = np.asarray(image)
    if x.ndim == 3 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim == 2:
        x = np.repeat(x[..., None], 3, -1)
    if x.dtype != np.uint8:
        x = np.nan_to_num(x.astype(np.float32))
        x = np.clip(x * (I.PIXEL_MAX if x.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(x)


def clip_frames(x: np.ndarray, size: int) -> np.ndarray:
    """One image or N frames -> N×size×size×3 uint8, letterboxed where not square at `size`."""
    from .faces import letterbox

    x = np.asarray(x)
    frames = [as_uint8_rgb(fr) for fr in ([x] if x.ndim <= 3 else x)]   # one image (H×W[×3]) or N frames
    return np.stack([fr if fr.shape[:2] == (size, size) else letterbox(fr, size) for fr in frames])


def load_model(name_or_path: str | os.PathLike | None = None, device: str = "cpu", threads: int | None = None) -> EmotionModel:
    """Load the packaged default model (no download), an emolite checkpoint (.pt) or an ONNX export.

    Every fault of the model file (damaged metadata, weights of another architecture or class
    count, an ONNX whose inputs or outputs do not fit) is one EmoliteError naming the file, raised
    here: one probe input runs through the model, so no video is ever blamed for the model."""
    from .options import OptionError, device as check_device, number

    device = check_device(device)
    threads = None if threads is None else number("threads", threads, 1, 1024, integer=True)
    path = Path(name_or_path) if name_or_path not in (None, "default") else DEFAULT_MODEL
    if not path.exists():
        hint = "the package was installed without its model; reinstall emolite" if path == DEFAULT_MODEL \
            else "check the path, or omit --model for the default model"
        raise EmoliteError(f"model file not found; {hint}", path)
    if not path.is_file():   # a FIFO or a device would block the reader forever
        raise EmoliteError("not a regular file; give a checkpoint (.pt, .ckpt) or an ONNX file", path)
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise OptionError("--device cuda asked for, but torch sees no CUDA GPU; use --device cpu")
    model = _load_onnx(path, device, threads) if path.suffix.lower() == ".onnx" else _load_torch(path, device, threads)
    _probe(model, path)
    return model


def _load_onnx(path: Path, device: str, threads: int | None) -> EmotionModel:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device.startswith("cuda") else ["CPUExecutionProvider"]
    try:
        sess = ort.InferenceSession(str(path), opts, providers=[p for p in providers if p in ort.get_available_providers()])
    except Exception as e:   # onnxruntime's own error types for a file it cannot parse
        raise EmoliteError(f"not a loadable ONNX model ({type(e).__name__})", path) from None
    raw = sess.get_modelmeta().custom_metadata_map.get(ONNX_META_KEY)
    if raw is None:
        raise EmoliteError("ONNX file has no emolite metadata; export it with `emolite export`", path)
    try:
        meta = json.loads(raw)
    except ValueError:
        raise EmoliteError("ONNX file's emolite metadata is not valid JSON; export it again with "
                           "`emolite export`", path) from None
    if not isinstance(meta, dict):
        raise EmoliteError("ONNX file's emolite metadata is not a mapping; export it again with "
                           "`emolite export`", path)
    from .models import read_spec

    read_spec(meta, path)
    return EmotionModel(meta.get("classes"), meta, "onnx", sess, device)


def _load_torch(path: Path, device: str, threads: int | None) -> EmotionModel:
    from .models import load_checkpoint

    if threads:
        import torch

        torch.set_num_threads(threads)
    net, meta = load_checkpoint(path, map_location=device)
    return EmotionModel(meta.get("classes"), meta, "torch", net.to(device).eval(), device)


def _probe_errors(backend: str) -> tuple[type, ...]:
    """What a model that does not take its own record's inputs raises: torch's shape errors
    (RuntimeError), our input-shape assertions, onnxruntime's input checks (ValueError and its
    own error types). Anything else (a TypeError, an AttributeError) is a bug, and surfaces."""
    errors: tuple[type, ...] = (RuntimeError, ValueError, AssertionError, IndexError)
    if backend != "onnx":
        return errors
    try:
        from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

        errors += tuple(getattr(ort_state, n) for n in ("Fail", "InvalidArgument", "InvalidGraph", "NotImplemented",
                                                         "RuntimeException") if hasattr(ort_state, n))
    except ImportError:
        pass
    return errors


def _probe(model: EmotionModel, path: Path) -> None:
    """One input of the record's shape through the model, so no video is ever blamed for the model."""
    fix = "export it again with `emolite export`" if model.backend == "onnx" else "use the checkpoint train wrote"
    classes = model.classes
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        raise EmoliteError(f"no list of class names in the model's metadata; {fix}", path)
    spec = model.spec
    fs, cs = spec.face_size, spec.context_size
    probe = I.clip_inputs(spec, np.zeros((1, fs, fs, 3), np.uint8), np.ones(1, bool),
                          np.zeros((1, cs, cs, 3), np.uint8), np.zeros(spec.sample_rate, np.float32))
    try:
        out = np.asarray(model.predict_inputs(I.stack([probe])))
    except _probe_errors(model.backend) as e:
        detail = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise EmoliteError(f"the model does not take the inputs its metadata describes ({type(e).__name__}: "
                           f"{detail}); {fix}", path) from None
    if out.shape != (1, len(classes)):
        raise EmoliteError(f"the model gives {out.shape[-1] if out.ndim else 0} outputs for {len(classes)} class "
                           f"names; {fix}", path)
