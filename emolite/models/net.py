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

from ..arch import MODALITIES, NetConfig
from ..errors import EmoliteError
from .audio import build_audio_encoder
from .checks import check_inputs
from .context import ContextEncoder
from .face import FaceEncoder
from .fusion import build_fusion

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

    def __init__(self, cfg: NetConfig, num_classes: int):
        super().__init__()
        self.cfg = cfg
        self.modalities = list(cfg.modalities)
        if not self.modalities:
            raise EmoliteError("an EmoNet needs at least one of face, context, audio")
        self.modality_dropout = float(cfg.modality_dropout)
        self.encoders = nn.ModuleDict()
        self.temporal = nn.ModuleDict()
        dims = []
        if cfg.face is not None:
            self.encoders["face"] = FaceEncoder(cfg.face.dim, cfg.face.width)
        if cfg.context is not None:
            self.encoders["context"] = ContextEncoder(cfg.context.dim, cfg.context.width)
        if cfg.audio is not None:
            a = cfg.audio
            self.encoders["audio"] = build_audio_encoder(a.kind, a.dim, a.n_mels, a.hidden, a.channels, a.norm, a.specaug)
        for m in self.modalities:
            if m in VISUAL:
                h = getattr(cfg, m).hidden
                self.temporal[m] = nn.GRU(self.encoders[m].out_dim, h, batch_first=True)
                dims.append(2 * h)
            else:
                dims.append(self.encoders[m].out_dim)
        self.fusion = build_fusion(cfg.fusion, dims, cfg.fusion_dim, cfg.dropout)
        self.head = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(cfg.fusion_dim, num_classes))
        self.num_classes = num_classes

    def embed(self, batch: dict) -> torch.Tensor:
        """Fused B×d vector (before the head)."""
        # batch["face"], batch["context"]: B×T×3×H×W float in [0,1]; batch["face_mask"], ["context_mask"]: B×T bool
        # batch["audio"]: B×S float, 16 kHz mono; batch["audio_mask"]: B bool
        check_inputs(batch, self.modalities, getattr(self, "input_sizes", None))
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
                present.append(batch["audio_mask"].bool())
        present = torch.stack(present, dim=1)
        if self.training and self.modality_dropout > 0:
            present = drop_modalities(present, self.modality_dropout)
        return self.fusion(embs, present)

    def forward(self, batch: dict) -> torch.Tensor:
        """Input dict (see `embed`) -> logits B×C."""
        return self.head(self.embed(batch))
