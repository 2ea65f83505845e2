"""The input shapes a model takes, asserted at its entry (as whisper asserts its audio shape).

A wrongly shaped input (frames without their time axis, a crop of another size than the model's
InputSpec, a mask that does not match its frames) would otherwise broadcast or be resized into
a plausible-looking wrong answer, or fail deep inside a conv with a message about weights.
"""

from __future__ import annotations

from typing import Iterable, Mapping


def check_inputs(x: Mapping, modalities: Iterable[str], sizes: Mapping[str, int] | None = None) -> None:
    """face/context B×T×3×H×W (H = W = `sizes[m]` when given: the spec's crop side) with masks
    B×T; audio B×S with audio_mask B; one batch size B throughout."""
    batch = None
    for m in modalities:
        if m == "audio":
            a, am = x["audio"], x["audio_mask"]
            assert a.ndim == 2, f"audio must be B×S (16 kHz mono), got shape {tuple(a.shape)}"
            assert tuple(am.shape) == tuple(a.shape[:1]), \
                f"audio_mask must be B={a.shape[0]}, got shape {tuple(am.shape)}"
        else:
            a, am = x[m], x[f"{m}_mask"]
            assert a.ndim == 5 and a.shape[2] == 3, f"{m} must be B×T×3×H×W, got shape {tuple(a.shape)}"
            side = (sizes or {}).get(m)
            assert side is None or a.shape[3] == a.shape[4] == side, \
                f"{m} crops must be {side}×{side} (the model's InputSpec), got {a.shape[3]}×{a.shape[4]}"
            assert tuple(am.shape) == tuple(a.shape[:2]), \
                f"{m}_mask must be B×T={tuple(a.shape[:2])}, got shape {tuple(am.shape)}"
        assert batch is None or a.shape[0] == batch, f"{m} has batch size {a.shape[0]}, other inputs {batch}"
        batch = a.shape[0]
