"""`InputSpec`: the one record of what a model sees, from the cache to the checkpoint to the answer.

`preprocess` writes it into the cache's config, `train` copies it into every checkpoint's
metadata ("preprocess"), `export` carries that metadata into the ONNX file, and `analyze`,
`predict`, `evaluate` and `serve` read it back from the model (`EmotionModel.spec`). Nothing
downstream rebuilds it by hand. Each default is the constant of the module that owns it.
(whisper's ModelDimensions and nanoGPT's GPTConfig, saved with the weights, are the pattern.)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Mapping

from . import faces, inputs, media
from .registry import DETECTORS


@dataclass(frozen=True)
class InputSpec:
    """Preprocessing and input settings a model was trained with (and must be fed with)."""

    sample_rate: int = media.SAMPLE_RATE       # Hz, mono audio
    fps: float = media.FPS                     # frames per second stored in the cache
    frames: int = inputs.FRAMES                # T: frames per model input
    audio_seconds: float = inputs.SECONDS      # audio per model input (cropped or zero-padded)
    window_seconds: float = media.WINDOW       # analysis window (analyze, serve)
    hop_seconds: float = media.HOP             # hop between analysis windows
    face_size: int = faces.FACE_SIZE           # px, square face crop
    context_size: int = faces.CONTEXT_SIZE     # px, letterboxed whole frame
    detector: str = faces.DETECTOR             # face detector registry name
    detect_side: int = faces.DETECT_SIDE       # px, longest side given to the detector
    margin: float = faces.MARGIN               # crop side = (1 + margin) × box side
    align: bool = False                        # 5-landmark alignment of the face crop

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> "InputSpec":
        """Read a stored record; fields it lacks (older checkpoints and caches) take the defaults,
        keys it has that are not fields (jpeg_quality, version) are ignored. A value that is not
        of its field's type (frames="banana", align="yes") is a ValueError naming the field."""
        d = dict(d or {})
        return cls(**{f.name: _convert(f.name, d[f.name], getattr(cls, f.name))
                      for f in fields(cls) if d.get(f.name) is not None})

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, as stored in cache configs, checkpoints and ONNX metadata."""
        return asdict(self)

    def replace(self, **changes: Any) -> "InputSpec":
        """A copy with some fields changed."""
        return replace(self, **changes)

    def trained_on(self, frames: int, seconds: float) -> "InputSpec":
        """The record of a model trained on this cache with `frames` frames over `seconds`-s inputs:
        the analysis window is the length it was trained on, the hop at most that window."""
        return replace(self, frames=int(frames), audio_seconds=float(seconds), window_seconds=float(seconds),
                       hop_seconds=min(self.hop_seconds, float(seconds)))

    def check(self) -> "InputSpec":
        """Every field in the range a model can be fed with (a record saying frames=1e9 or
        window_seconds=0 must not reach an allocation or a division); ValueError naming the field."""
        for name, (lo, hi) in LIMITS.items():
            v = getattr(self, name)
            if not (math.isfinite(v) and lo <= v <= hi):
                raise ValueError(f"{name}={v!r} is outside {lo:g}..{hi:g}")
        if self.detector not in DETECTORS:
            raise ValueError(f"detector={self.detector!r} is not one of: {', '.join(sorted(DETECTORS))}")
        return self


def _convert(name: str, v: Any, default: Any) -> Any:
    """One stored value as its field's type (bools only from bools; ints from whole numbers)."""
    try:
        if isinstance(default, bool):
            if isinstance(v, bool):
                return v
        elif isinstance(default, (int, float)) and isinstance(v, (int, float, str)) and not isinstance(v, bool):
            x = float(v)
            if isinstance(default, float):
                return x
            if math.isfinite(x) and x == int(x):
                return int(x)
        elif isinstance(default, str) and isinstance(v, str):
            return v
    except ValueError:
        pass
    raise ValueError(f"{name}={v!r} is not a {type(default).__name__}")


CROP_SIZES = (16, 512)      # px: smallest and largest face/context crop
DETECT_SIDES = (32, 2048)   # px: longest side given to the detector
MAX_MARGIN = 2.0            # crop side at most 3× the face box
MAX_FRAMES = 256            # T: frames per model input, at most
LIMITS = {"sample_rate": (4000, 768000), "fps": (1e-3, media.MAX_FPS), "frames": (1, MAX_FRAMES),
          "audio_seconds": (media.MIN_WINDOW, media.MAX_WINDOW),
          "window_seconds": (media.MIN_WINDOW, media.MAX_WINDOW), "hop_seconds": (media.MIN_HOP, media.MAX_WINDOW),
          "face_size": CROP_SIZES, "context_size": CROP_SIZES, "detect_side": DETECT_SIDES, "margin": (0.0, MAX_MARGIN)}


# The fields `emolite preprocess` may set: they change what the cache stores.
CACHE_FIELDS = ("fps", "face_size", "context_size", "detector", "detect_side", "margin", "align")
