"""Models: build by name, count cost, save/load, export to ONNX.

    model = build_model("attention", num_classes=7)           # full face+context+voice model
    model = build_model("audio", num_classes=6)               # voice only, same code
    model = build_model(NetConfig(fusion="gated"), 7)          # or from a typed config (emolite.arch)
    logits = model(example_batch(B=2))                         # B×C

Default model ("emolite", attention fusion, 2-D voice net) for one 4-s clip at T = 8 frames
(2 fps over the window; the cache stores 5 fps and training samples 8 of them):
0.84 M parameters, 0.24 G multiply-adds (face 0.08 G, context 0.02 G, voice 0.14 G), forward
~23 ms in PyTorch / ~19 ms in ONNX Runtime on 1 CPU thread (torch 2.13, a shared 2-core
machine; best-of-rounds median). `audio_kind="1d"` halves that (0.11 G, ~12 ms).
See `count_params`, `count_macs`, `example_batch`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import arch
from ..arch import FUSIONS, MODALITIES, NetConfig
from ..errors import EmoliteError
from ..faces import CONTEXT_SIZE, FACE_SIZE
from ..fsio import atomic_path
from ..inputs import FRAMES, SECONDS
from ..media import SAMPLE_RATE
from ..spec import InputSpec
from ..registry import MODELS, lookup, register_model
from . import face, late  # noqa: F401 (register face_cnn and late)
from .net import EmoNet

MAX_CLASSES = 10_000   # a head larger than this is a damaged record, not a model


@register_model("emolite")
def _emolite(cfg: NetConfig, num_classes: int) -> nn.Module:
    return EmoNet(cfg, num_classes)


for _name in (*FUSIONS, *MODALITIES):   # the same net; the kind name says its fusion or its one stream
    register_model(_name)(_emolite)


def model_config(name_or_cfg: Any = None, **table) -> Any:
    """A model's typed config (emolite.arch) from: a typed config (as is), a kind name plus keys
    of the flat [model] table (`model_config("audio", audio_kind="1d")`), or a stored config
    dict (rebuilt whole: checkpoints, `to_dict` output). A bad one is one EmoliteError."""
    if hasattr(name_or_cfg, "__dataclass_fields__"):
        if table:
            raise TypeError("a typed config takes no table overrides; use dataclasses.replace")
        return name_or_cfg
    try:
        if name_or_cfg is None or isinstance(name_or_cfg, str):
            return arch.from_table({**table, "name": name_or_cfg or "emolite"})
        if table:
            raise TypeError("a stored config takes no table overrides")
        return arch.from_dict(name_or_cfg)
    except ValueError as e:
        raise EmoliteError(str(e)) from None


def build_model(name_or_cfg: Any = None, num_classes: int = 7, **table) -> nn.Module:
    """Build a registered model (see `model_config` for what it takes); `model.cfg` is its typed
    config, saved whole in checkpoints."""
    cfg = model_config(name_or_cfg, **table)
    name = cfg.name if hasattr(cfg, "name") else cfg["name"]
    model = lookup(MODELS, name, "model")(cfg, num_classes)
    model.cfg = cfg
    return model


def example_batch(B: int = 1, T: int = FRAMES, seconds: float = SECONDS, size: int = FACE_SIZE,
                  seed: int = 0, context_size: int = CONTEXT_SIZE) -> dict:
    """A random input dict with every modality present."""
    g = torch.Generator().manual_seed(seed)
    return {
        "face": torch.rand(B, T, 3, size, size, generator=g),                        # B×T×3×H×W in [0, 1]
        "context": torch.rand(B, T, 3, context_size, context_size, generator=g),     # B×T×3×H×W in [0, 1]
        "audio": 0.1 * torch.randn(B, int(seconds * SAMPLE_RATE), generator=g),      # B×S, 16 kHz mono
        "face_mask": torch.ones(B, T, dtype=torch.bool),                             # B×T
        "context_mask": torch.ones(B, T, dtype=torch.bool),                          # B×T
        "audio_mask": torch.ones(B, dtype=torch.bool),                               # B
    }


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only trainable ones)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _rnn_macs(m: nn.RNNBase, inp: tuple, out) -> int:
    x = inp[0]
    b, t = (x.shape[0], x.shape[1]) if m.batch_first else (x.shape[1], x.shape[0])
    gates = {"LSTM": 4, "GRU": 3}.get(m.mode, 1)
    dirs = 2 if m.bidirectional else 1
    total, cin = 0, m.input_size
    for _ in range(m.num_layers):
        total += dirs * gates * (cin + m.hidden_size) * m.hidden_size * b * t
        cin = m.hidden_size * dirs
    return total


def count_macs(model: nn.Module, example: dict) -> int:
    """Multiply-adds of one forward pass, via forward hooks on Conv/Linear/LSTM/GRU (plus any
    module's own `extra_macs(inputs, output)`, e.g. the fixed DFT and attention products).
    Element-wise ops (BN, activations, pooling) are not counted, as is customary."""
    total = [0]

    def hook(m: nn.Module, inp: tuple, out) -> None:
        if isinstance(m, (nn.Conv1d, nn.Conv2d)):
            k = 1
            for s in m.kernel_size:
                k *= s
            total[0] += out.numel() * (m.in_channels // m.groups) * k
        elif isinstance(m, nn.Linear):
            total[0] += out.numel() * m.in_features
        elif isinstance(m, nn.RNNBase):
            total[0] += _rnn_macs(m, inp, out)
        if hasattr(m, "extra_macs"):
            total[0] += int(m.extra_macs(inp, out))

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(example)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return total[0]


def _jsonable(obj):
    return json.loads(json.dumps(obj, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


def save_checkpoint(path: str | Path, model: nn.Module, meta: dict | None = None) -> Path:
    """Plain torch.save of {"state_dict", "meta"}; meta is JSON-only (model config, classes, the
    InputSpec as "preprocess", ...), so `load_checkpoint` can use weights_only=True. Atomic."""
    path = Path(path)
    meta = _jsonable({**(meta or {}), "model": arch.to_dict(getattr(model, "cfg", {})),
                      "num_classes": int(getattr(model, "num_classes", 0) or (meta or {}).get("num_classes", 0))})
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save({"state_dict": state, "meta": meta}, tmp)
    return path


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[dict, dict]:
    """(state_dict, meta) of an emolite checkpoint (.pt) or of one of our Lightning checkpoints
    (.ckpt, meta from its "emolite" entry, which must hold the whole record: classes, model and
    "preprocess"). The one reader of checkpoint files: regular files only, weights_only."""
    path = Path(path)
    if not path.exists():
        raise EmoliteError("checkpoint not found", path)
    if not path.is_file():   # a FIFO or a device would block torch.load forever
        raise EmoliteError("not a regular file; give a checkpoint file", path)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:   # whatever an unreadable or malicious file makes the unpickler raise
        raise EmoliteError(f"not an emolite checkpoint ({type(e).__name__})", path) from None
    if isinstance(ckpt, dict) and "state_dict" in ckpt and "meta" in ckpt:
        sd, meta = ckpt["state_dict"], ckpt["meta"]
    elif isinstance(ckpt, dict) and "state_dict" in ckpt and "emolite" in ckpt:
        sd = ckpt["state_dict"]
        sd = {k[len("model."):]: v for k, v in sd.items() if k.startswith("model.")} if isinstance(sd, dict) else sd
        meta = ckpt["emolite"]
        if isinstance(meta, dict) and "preprocess" not in meta:
            raise EmoliteError("Lightning checkpoint without its input record (\"preprocess\"; written by an "
                               "older emolite train); use the run's best.pt, or train again", path)
    else:
        raise EmoliteError("not an emolite checkpoint (no state_dict/meta)", path)
    if not isinstance(sd, dict) or not isinstance(meta, dict):
        raise EmoliteError(f"damaged emolite checkpoint (its {'metadata' if isinstance(sd, dict) else 'state_dict'} "
                           "is not a mapping); use the file train wrote, or train again", path)
    return sd, meta


def read_spec(meta: dict, path: str | Path) -> InputSpec:
    """The checkpoint's input record, checked: a value no input can have (frames=1e9,
    window_seconds=0, an unknown detector) is one EmoliteError naming the model file."""
    try:
        return InputSpec.from_dict(meta.get("preprocess")).check()
    except (ValueError, TypeError) as e:
        raise EmoliteError(f"damaged input record (\"preprocess\"): {e}; use the file train or export wrote",
                           path) from None


def _fit_error(path: str | Path, e: Exception) -> EmoliteError:
    """A checkpoint whose weights do not fit the model its metadata describes, as one line."""
    detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    detail = detail if len(detail) <= 160 else detail[:157] + "..."
    return EmoliteError(f"weights do not fit the model its metadata describes (another architecture or class "
                        f"count?): {detail}; use the checkpoint train wrote with it, or train again", path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """(model in eval mode, meta). Never unpickles arbitrary objects; a checkpoint that does not
    fit its own metadata (architecture, class count) is one EmoliteError naming the file."""
    state, meta = read_checkpoint(path, map_location)
    classes = meta.get("classes")
    if classes is not None and (not isinstance(classes, list) or not all(isinstance(c, str) for c in classes)):
        raise EmoliteError("damaged metadata: 'classes' is not a list of names; use the file train wrote", path)
    try:
        num_classes = int(meta.get("num_classes") or len(classes or []))
        if not 1 <= num_classes <= MAX_CLASSES:
            raise EmoliteError(f"damaged metadata: num_classes={num_classes} (1..{MAX_CLASSES}); use the file train "
                               "wrote", path)
        if classes and num_classes != len(classes):
            raise ValueError(f"{num_classes} outputs for {len(classes)} class names")
        spec = read_spec(meta, path)
        model = build_model(meta.get("model"), num_classes)
        model.load_state_dict(state)
        model.input_sizes = {"face": spec.face_size, "context": spec.context_size}
    except EmoliteError as e:   # e.g. an unknown model name: already says what exists
        if e.path:
            raise
        raise EmoliteError(f"{e}; use the checkpoint train wrote", path) from None
    except (RuntimeError, ValueError, TypeError, KeyError) as e:
        raise _fit_error(path, e) from None
    return model.eval(), meta


INPUT_NAMES = ["face", "context", "audio", "face_mask", "context_mask", "audio_mask"]
OUTPUT_NAMES = ["logits", "probs"]


class OnnxWrapper(nn.Module):
    """Positional-input wrapper for export: (face, context, audio, masks...) -> (logits, probs)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, face, context, audio, face_mask, context_mask, audio_mask):
        # face, context: B×T×3×H×W float in [0,1]; audio: B×S float 16 kHz; masks: B×T, B×T, B bool
        logits = self.model({"face": face, "context": context, "audio": audio, "face_mask": face_mask,
                             "context_mask": context_mask, "audio_mask": audio_mask})
        return logits, torch.softmax(logits, dim=-1)


def export_onnx(model: nn.Module, path: str | Path, T: int = FRAMES, seconds: float = SECONDS,
                opset: int = 17, face_size: int = FACE_SIZE, context_size: int = CONTEXT_SIZE) -> Path:
    """Export to one ONNX graph (TorchScript exporter). Batch, T and audio length are dynamic axes;
    the crop sizes are fixed to the model's InputSpec (face_size, context_size)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    ex = example_batch(1, T, seconds, face_size, context_size=context_size)   # batch, T and S stay dynamic
    args = tuple(ex[k] for k in INPUT_NAMES)
    dyn = {"face": {0: "batch", 1: "frames"}, "context": {0: "batch", 1: "frames"}, "audio": {0: "batch", 1: "samples"},
           "face_mask": {0: "batch", 1: "frames"}, "context_mask": {0: "batch", 1: "frames"},
           "audio_mask": {0: "batch"}, "logits": {0: "batch"}, "probs": {0: "batch"}}
    kwargs = dict(input_names=INPUT_NAMES, output_names=OUTPUT_NAMES, opset_version=opset, dynamic_axes=dyn)
    import inspect
    import warnings

    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False
    wrapper = OnnxWrapper(model).eval()   # a train-mode wrapper would flip the model to train() after export
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapper, args, str(path), **kwargs)
    model.eval()
    return path


__all__ = ["FRAMES", "SECONDS", "build_model", "model_config", "example_batch", "count_params",
           "count_macs", "save_checkpoint", "read_checkpoint", "load_checkpoint", "export_onnx", "OnnxWrapper",
           "EmoNet"]
