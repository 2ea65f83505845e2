"""Typed model configs: what a model *is*, written whole into its checkpoint and rebuilt from it.

One frozen dataclass per model kind, holding only the keys that kind uses (whisper's
ModelDimensions and nanoGPT's GPTConfig are the pattern):

    NetConfig      the EmoNet (emolite / concat / attention / gated / face / context / audio):
                   one `VisualConfig` or `AudioConfig` per modality it has, fusion and head
    FaceCNNConfig  the per-frame face expert of the default model (models/face.py)
    LateConfig     late fusion of experts, each with its own config (models/late.py)

`to_dict` gives the JSON form stored in checkpoints (meta["model"]) and ONNX metadata;
`from_dict` rebuilds it and refuses anything that is not a whole config of a known kind, so no
key is ever filled in by guessing. `from_table` reads the flat [model] table of a training
config (configs/*.toml, `--set model.x=...`), taking only the keys the chosen kind uses.
Checkpoints from before typed configs are converted explicitly (`python -m emolite.models.upgrade`).
Torch-free, so an ONNX model's record is read without torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Any, Mapping, Union

from .registry import MODELS

MODALITIES = ("face", "context", "audio")
FUSIONS = ("concat", "attention", "gated")   # EmoNet kinds that name their fusion
MAX_DIM = 4096      # widths, dims and channels above this are a damaged record, not a model
UPGRADE_HINT = "convert it with `python -m emolite.models.upgrade OLD.pt NEW.pt`"


@dataclass(frozen=True)
class VisualConfig:
    """A visual stream: per-frame CNN encoder (models/face.py, models/context.py) -> GRU."""

    dim: int = 128       # encoder output
    width: int = 16      # channels of the encoder's first stage
    hidden: int = 128    # GRU width; the stream gives 2 × hidden (last state, mean)


@dataclass(frozen=True)
class AudioConfig:
    """The voice encoder (models/audio.py)."""

    dim: int = 128
    kind: str = "2d"                         # 2d (log-mel CNN) | 1d (learned filterbank)
    n_mels: int = 64
    hidden: int = 128                        # LSTM width
    channels: tuple[int, ...] = (16, 32, 48, 64)
    norm: str = "band"                       # band | level | batch
    specaug: bool = False                    # training-only SpecAugment masks


@dataclass(frozen=True)
class NetConfig:
    """EmoNet: the streams it has (None: absent), their fusion and the head."""

    name: str = "emolite"
    fusion: str = "attention"                # concat | attention | gated (models/fusion.py)
    face: VisualConfig | None = VisualConfig(width=16)
    context: VisualConfig | None = VisualConfig(width=24)
    audio: AudioConfig | None = AudioConfig()
    fusion_dim: int = 128
    dropout: float = 0.2
    modality_dropout: float = 0.15           # training-only: prob. of hiding each modality

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(m for m in MODALITIES if getattr(self, m) is not None)


@dataclass(frozen=True)
class FaceCNNConfig:
    """The per-frame face expert (48×48 grey FER CNN, sharpest-frames mean over the window)."""

    name: str = "face_cnn"
    width: int = 24            # channels of the first stage; stages double it
    size: int = 48             # side of the grey crop the CNN sees
    dropout: float = 0.3
    sharp_frac: float = 0.1    # frames less sharp than this fraction of the window's sharpest are dropped

    @property
    def modalities(self) -> tuple[str, ...]:
        return ("face",)


@dataclass(frozen=True)
class LateConfig:
    """Late fusion: a weighted product of experts, each a whole config of its own."""

    name: str = "late"
    experts: dict[str, "ModelConfig"] = field(default_factory=dict)   # modality -> expert config
    weights: dict[str, float] = field(default_factory=dict)
    temperatures: dict[str, float] = field(default_factory=dict)
    per_frame: tuple[str, ...] = ()          # experts that see each frame alone

    @property
    def modalities(self) -> tuple[str, ...]:
        have = {m for e in self.experts.values() for m in modalities_of(e)}
        return tuple(m for m in MODALITIES if m in have)


ModelConfig = Union[NetConfig, FaceCNNConfig, LateConfig]
KINDS: dict[str, type] = {**{n: NetConfig for n in ("emolite", *FUSIONS, *MODALITIES)},
                          "face_cnn": FaceCNNConfig, "late": LateConfig}
NESTED = {"face": VisualConfig, "context": VisualConfig, "audio": AudioConfig}

# The flat [model] table of a training config: its defaults are the NetConfig defaults.
_NET = NetConfig()
TABLE_DEFAULTS: dict = {
    "name": _NET.name, "fusion": _NET.fusion, "modalities": list(MODALITIES),
    "face_dim": _NET.face.dim, "face_width": _NET.face.width,
    "context_dim": _NET.context.dim, "context_width": _NET.context.width,
    "audio_dim": _NET.audio.dim, "audio_kind": _NET.audio.kind, "n_mels": _NET.audio.n_mels,
    "audio_hidden": _NET.audio.hidden, "audio_channels": list(_NET.audio.channels),
    "audio_norm": _NET.audio.norm, "audio_specaug": _NET.audio.specaug,
    "hidden": _NET.face.hidden, "fusion_dim": _NET.fusion_dim,
    "dropout": _NET.dropout, "modality_dropout": _NET.modality_dropout,
}


def modalities_of(cfg: Any) -> tuple[str, ...]:
    """The streams a model of this config reads (a plugin's dict config: its 'modalities', else all)."""
    if hasattr(cfg, "modalities"):
        return tuple(cfg.modalities)
    mods = cfg.get("modalities") if isinstance(cfg, Mapping) else None
    return tuple(m for m in MODALITIES if m in mods) if isinstance(mods, (list, tuple)) else MODALITIES


def to_dict(cfg: Any) -> Any:
    """JSON form of a config (absent streams left out; a plugin's dict config as it is)."""
    if isinstance(cfg, LateConfig):
        return {"name": cfg.name, "experts": {k: to_dict(v) for k, v in cfg.experts.items()},
                "weights": dict(cfg.weights), "temperatures": dict(cfg.temperatures), "per_frame": list(cfg.per_frame)}
    if hasattr(cfg, "__dataclass_fields__"):
        out = {}
        for f in fields(cfg):
            v = getattr(cfg, f.name)
            if v is None and f.name in NESTED:
                continue
            out[f.name] = to_dict(v) if hasattr(v, "__dataclass_fields__") else list(v) if isinstance(v, tuple) else v
        return out
    return dict(cfg)


def _typed(cls: type, d: Mapping, where: str) -> Any:
    """cls(**d) with every field present and of its type, or a ValueError naming the key."""
    nested = NESTED if cls is NetConfig else {}
    unknown = sorted(set(d) - {f.name for f in fields(cls)})
    if unknown:
        raise ValueError(f"model config {where} has keys its kind does not use: {', '.join(unknown)}")
    ref, kw = cls(), {}
    for f in fields(cls):
        if f.name in nested:   # a stream the net does not have is left out
            v = d.get(f.name)
            kw[f.name] = None if v is None else _typed(nested[f.name], _mapping(v, f"{where}.{f.name}"),
                                                       f"{where}.{f.name}")
        elif f.name not in d:
            raise ValueError(f"model config {where} lacks '{f.name}' (a config is stored whole)")
        else:
            kw[f.name] = _value(f.name, d[f.name], getattr(ref, f.name), where)
    return cls(**kw)


def _mapping(v: Any, where: str) -> Mapping:
    if not isinstance(v, Mapping):
        raise ValueError(f"model config {where} is not a mapping")
    return v


def _value(name: str, v: Any, default: Any, where: str) -> Any:
    """One stored value checked against the type of its default."""
    bad = ValueError(f"model config {where}.{name}={v!r} is not a {type(default).__name__}")
    if isinstance(default, bool):
        if not isinstance(v, bool):
            raise bad
    elif isinstance(default, int):
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_DIM:
            raise ValueError(f"model config {where}.{name}={v!r} is not a whole number in 0..{MAX_DIM}")
    elif isinstance(default, float):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"model config {where}.{name}={v!r} is not a finite number")
        v = float(v)
    elif isinstance(default, str):
        if not isinstance(v, str):
            raise bad
    elif isinstance(default, tuple):
        if not isinstance(v, (list, tuple)) or not all(
                isinstance(x, str) or isinstance(x, int) and not isinstance(x, bool) and 0 < x <= MAX_DIM for x in v):
            raise bad
        v = tuple(v)
    elif isinstance(default, dict) and not isinstance(v, Mapping):
        raise bad
    return v


def from_dict(d: Any) -> Any:
    """A stored config -> its typed config (a registered plugin kind keeps its dict). A ValueError
    says what is wrong; an untyped config of an older emolite says how to convert it."""
    d = _mapping(d, "")
    name = d.get("name")
    if not isinstance(name, str):
        raise ValueError(f"model config has no kind name (name={name!r})")
    if name in KINDS and (KINDS[name] is NetConfig and {"modalities", "face_dim", "audio_kind"} & set(d)
                          or KINDS[name] is FaceCNNConfig and "cnn_width" in d
                          or KINDS[name] is LateConfig and "modalities" in d):
        raise ValueError(f"untyped model config of an older emolite; {UPGRADE_HINT}")
    if name == "late" or KINDS.get(name) is LateConfig:
        experts = _mapping(d.get("experts"), "'late'.experts")
        cfg = _typed(LateConfig, {**d, "experts": {}}, "'late'")
        return replace(cfg, experts={k: from_dict(v) for k, v in experts.items()},
                       weights={k: float(_value(k, v, 0.0, "'late'.weights")) for k, v in cfg.weights.items()},
                       temperatures={k: float(_value(k, v, 0.0, "'late'.temperatures"))
                                     for k, v in cfg.temperatures.items()})
    if name in KINDS:
        cfg = _typed(KINDS[name], d, f"'{name}'")
        if isinstance(cfg, NetConfig) and (name in MODALITIES and cfg.modalities != (name,)
                                           or name in FUSIONS and cfg.fusion != name or not cfg.modalities):
            raise ValueError(f"model config '{name}' does not describe a '{name}' net (streams: "
                             f"{', '.join(cfg.modalities) or 'none'}; fusion: {cfg.fusion})")
        return cfg
    if name in MODELS:   # a plugin's model: its config is its own dict
        return dict(d)
    known = sorted(set(KINDS) | set(MODELS))
    raise ValueError(f"unknown model kind {name!r}; known: {', '.join(known)}")


def from_table(table: Mapping) -> Any:
    """The flat [model] table of a training config -> the typed config of the kind it names,
    with only the keys that kind uses (a plugin kind gets the table as a dict)."""
    t = {**TABLE_DEFAULTS, **{k: v for k, v in table.items() if k != "init"}}
    name = t["name"]
    if name == "face_cnn":
        return FaceCNNConfig(dropout=float(t["dropout"]))
    if name not in KINDS or name == "late":
        if name == "late":
            raise ValueError("model 'late' combines trained experts; build it from their checkpoints "
                             "(emolite.arch.LateConfig), not from a [model] table")
        return dict(t)
    single = name in MODALITIES
    mods = [name] if single else [m for m in MODALITIES if m in t["modalities"]]
    h = int(t["hidden"])
    visual = lambda m: VisualConfig(int(t[f"{m}_dim"]), int(t[f"{m}_width"]), h) if m in mods else None
    audio = AudioConfig(int(t["audio_dim"]), str(t["audio_kind"]), int(t["n_mels"]), int(t["audio_hidden"]),
                        tuple(int(c) for c in t["audio_channels"]), str(t["audio_norm"]),
                        bool(t["audio_specaug"])) if "audio" in mods else None
    return NetConfig(name=name, fusion=name if name in FUSIONS else str(t["fusion"]), face=visual("face"),
                     context=visual("context"), audio=audio, fusion_dim=int(t["fusion_dim"]),
                     dropout=float(t["dropout"]), modality_dropout=0.0 if single else float(t["modality_dropout"]))
