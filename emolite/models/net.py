"""The emolite network: per-modality encoders -> masked temporal model -> fusion -> head.

Input (a dict of tensors, see `emolite.models.example_batch`):
  face, context  B×T×3×H×W float in [0,1]     face_mask, context_mask  B×T bool
  audio          B×S float, 16 kHz mono        audio_mask               B bool
Output: logits B×C.

Missing data is only ever a mask: masked frames are skipped by the GRU (valid frames are
gathered to the front, the state is read at the last valid one), a modality with no valid
input is swapped for a learned "missing" token in fusion. The graph is the same for every
subset of modalities, which keeps ONNX export and batching simple. During training, whole
modalities are dropped at random (`modality_dropout`) so the model learns to use what it gets.
"""

from __future__ import annotations

import torch
from torch import nn

from .audio import build_audio_encoder
from .context import ContextEncoder
from .face import FaceEncoder
from .fusion import build_fusion

MODALITIES = ("face", "context", "audio")
VISUAL = ("face", "context")


def masked_gru(gru: nn.GRU, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Run `gru` over the valid steps of x (B×T×D) only; return [last state, mean output].

    Valid steps are moved to the front (stable order) so trailing invalid steps cannot
    affect the state read at index n_valid-1. Exact, and exports as Sort/Gather + ONNX GRU.
    """
    b, t, _ = x.shape
    ar = torch.arange(t, device=x.device)
    key = (~mask).long() * t + ar
    order = torch.argsort(key, dim=1)
    x = torch.gather(x, 1, order[..., None].expand_as(x))
    out, _ = gru(x)
    n = mask.long().sum(1)
    last = torch.gather(out, 1, (n.clamp(min=1) - 1)[:, None, None].expand(b, 1, out.shape[-1])).squeeze(1)
    valid = (ar[None, :] < n[:, None]).to(out.dtype)[..., None]
    mean = (out * valid).sum(1) / n.clamp(min=1)[:, None].to(out.dtype)
    return torch.cat([last, mean], dim=1)


def drop_modalities(present: torch.Tensor, p: float) -> torch.Tensor:
    """Randomly hide whole modalities (prob p each), never all of a sample's present ones."""
    drop = torch.rand(present.shape, device=present.device) < p
    kept = present & ~drop
    return torch.where(kept.any(1, keepdim=True), kept, present)


class EmoNet(nn.Module):
    """Encoders per modality -> masked GRUs over time (visual streams) -> fusion -> linear head."""

    def __init__(self, cfg: dict, num_classes: int):
        super().__init__()
        self.cfg = dict(cfg)
        self.modalities = [m for m in MODALITIES if m in cfg["modalities"]]
        self.modality_dropout = float(cfg.get("modality_dropout", 0.0))
        self.encoders = nn.ModuleDict()
        self.temporal = nn.ModuleDict()
        dims = []
        h = int(cfg["hidden"])
        if "face" in self.modalities:
            self.encoders["face"] = FaceEncoder(int(cfg["face_dim"]), int(cfg["face_width"]))
        if "context" in self.modalities:
            self.encoders["context"] = ContextEncoder(int(cfg["context_dim"]), int(cfg["context_width"]))
        if "audio" in self.modalities:
            self.encoders["audio"] = build_audio_encoder(cfg["audio_kind"], int(cfg["audio_dim"]), int(cfg["n_mels"]),
                                                         int(cfg["audio_hidden"]), tuple(cfg["audio_channels"]),
                                                         cfg.get("audio_norm", "batch"), bool(cfg.get("audio_specaug", False)))
        for m in self.modalities:
            if m in VISUAL:
                self.temporal[m] = nn.GRU(self.encoders[m].out_dim, h, batch_first=True)
                dims.append(2 * h)
            else:
                dims.append(self.encoders[m].out_dim)
        d = int(cfg["fusion_dim"])
        self.fusion = build_fusion(cfg["fusion"], dims, d, float(cfg["dropout"]))
        self.head = nn.Sequential(nn.Dropout(float(cfg["dropout"])), nn.Linear(d, num_classes))
        self.num_classes = num_classes

    def embed(self, batch: dict) -> torch.Tensor:
        """Fused B×d vector (before the head)."""
        # batch["face"], batch["context"]: B×T×3×H×W float in [0,1]; batch["face_mask"], ["context_mask"]: B×T bool
        # batch["audio"]: B×S float, 16 kHz mono; batch["audio_mask"]: B bool
        embs, present = [], []
        for m in self.modalities:
            if m in VISUAL:
                x = batch[m]
                mask = batch[f"{m}_mask"].bool()
                b, t = x.shape[:2]
                f = self.encoders[m](x.reshape(b * t, *x.shape[2:])).reshape(b, t, -1)
                embs.append(masked_gru(self.temporal[m], f, mask))
                present.append(mask.any(1))
            else:
                embs.append(self.encoders[m](batch["audio"]))
                present.append(batch["audio_mask"].bool().reshape(-1))
        present = torch.stack(present, dim=1)
        if self.training and self.modality_dropout > 0:
            present = drop_modalities(present, self.modality_dropout)
        return self.fusion(embs, present)

    def forward(self, batch: dict) -> torch.Tensor:
        """Input dict (see `embed`) -> logits B×C."""
        return self.head(self.embed(batch))
