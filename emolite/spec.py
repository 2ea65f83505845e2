"""`InputSpec`: the one record of what a model sees, from the cache to the checkpoint to the answer.

`preprocess` writes it into the cache's config, `train` copies it into every checkpoint's
metadata ("preprocess"), `export` carries that metadata into the ONNX file, and `analyze`,
`predict`, `evaluate` and `serve` read it back from the model (`EmotionModel.spec`). Nothing
downstream rebuilds it by hand. Each default is the constant of the module that owns it.
(whisper's ModelDimensions and nanoGPT's GPTConfig, saved with the weights, are the pattern.)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Iterator, Mapping

from . import faces, inputs, media


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
        keys it has that are not fields (jpeg_quality, version) are ignored."""
        d = dict(d or {})
        kw = {}
        for f in fields(cls):
            if d.get(f.name) is not None:
                default = getattr(cls, f.name)
                kw[f.name] = type(default)(d[f.name])
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, as stored in cache configs, checkpoints and ONNX metadata."""
        return asdict(self)

    def replace(self, **changes: Any) -> "InputSpec":
        """A copy with some fields changed (e.g. train's frames and audio_seconds)."""
        return replace(self, **changes)

    # Mapping-style read access, for code written against the old `model.preprocessing` dict.
    def __getitem__(self, key: str) -> Any:
        if key not in self.keys():
            raise KeyError(key)
        return getattr(self, key)

    def keys(self) -> list[str]:
        """Field names (with __getitem__, `dict(spec)` and `**spec` work)."""
        return [f.name for f in fields(self)]

    def get(self, key: str, default: Any = None) -> Any:
        """Like dict.get."""
        return getattr(self, key) if key in self.keys() else default

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())


# The fields `emolite preprocess` may set: they change what the cache stores.
CACHE_FIELDS = ("fps", "face_size", "context_size", "detector", "detect_side", "margin", "align")
