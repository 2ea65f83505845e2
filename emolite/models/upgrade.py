"""Convert a checkpoint written before typed model configs: `python -m emolite.models.upgrade OLD.pt NEW.pt`.

Old checkpoints stored one untyped dict per model: the EmoNet's 18 keys merged into every kind
(so a face_cnn expert carried audio keys), and configs saved before `audio_norm` and
`audio_specaug` existed meant "batch" and False. This reads such a dict the way that release
did, once and on request, and writes the typed config (emolite.arch); the weights are copied
unchanged. Loading never guesses: an old checkpoint is refused with a pointer here.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

from .. import arch
from ..errors import EmoliteError
from ..fsio import atomic_path

# What a saved (complete) config from before these keys existed meant.
LEGACY_DEFAULTS = {"audio_norm": "batch", "audio_specaug": False}


def upgrade_config(old: dict) -> Any:
    """An untyped model config (the old meta["model"]) -> its typed config."""
    name = old.get("name", "emolite")
    if name == "late":
        experts = {k: upgrade_config(v) for k, v in old.get("experts", {}).items()}
        return arch.LateConfig(experts=experts, weights={k: float(v) for k, v in old.get("weights", {}).items()},
                               temperatures={k: float(v) for k, v in old.get("temperatures", {}).items()},
                               per_frame=tuple(old.get("per_frame", ())))
    if name == "face_cnn":
        d = arch.FaceCNNConfig()
        return arch.FaceCNNConfig(width=int(old.get("cnn_width", d.width)), size=int(old.get("cnn_size", d.size)),
                                  dropout=float(old.get("dropout", d.dropout)),
                                  sharp_frac=float(old.get("sharp_frac", d.sharp_frac)))
    complete = all(k in old for k in arch.TABLE_DEFAULTS if k not in LEGACY_DEFAULTS)
    return arch.from_table({**(LEGACY_DEFAULTS if complete else {}), **old})


def upgrade_checkpoint(src: str | Path, dst: str | Path) -> Path:
    """Rewrite an old emolite checkpoint (.pt) with a typed model config; weights unchanged."""
    from . import load_checkpoint

    ck = torch.load(src, map_location="cpu", weights_only=True)
    meta = dict(ck["meta"])
    meta["model"] = arch.to_dict(upgrade_config(meta["model"]))
    with atomic_path(Path(dst)) as tmp:
        torch.save({"state_dict": ck["state_dict"], "meta": meta}, tmp)
    load_checkpoint(dst)   # the typed config must build a model the weights fit exactly
    return Path(dst)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m emolite.models.upgrade OLD.pt NEW.pt")
    try:
        print(upgrade_checkpoint(sys.argv[1], sys.argv[2]))
    except EmoliteError as e:
        sys.exit(f"error: {e}")
