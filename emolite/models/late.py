"""Late fusion of single-modality experts: how the default model combines face and voice.

The real data we can ship a model from is not paired (face photos: CK+, the face pool; speech:
EmoDB, RAVDESS), so each modality is trained on its own and combined here as a weighted
product of experts: fused log-probabilities = sum over present modalities of
weight_m * log_softmax(logits_m / temperature_m). Temperatures calibrate each expert on its
held-out split; weights are chosen on held-out pseudo-pairs (a face and a voice sample of the
same class). A missing modality simply drops out of the sum. End-to-end fused models come
from `emolite train` on audio-visual data and load the same way.
"""

from __future__ import annotations

import torch
from torch import nn

from ..arch import MODALITIES, LateConfig
from ..errors import EmoliteError
from ..registry import register_model
from .checks import check_inputs


def presence(name: str, x: dict) -> torch.Tensor:
    """B-vector: whether the expert's modality has any valid input in each sample."""
    if name == "audio":
        return x["audio_mask"].to(torch.float32)
    return x[f"{name}_mask"].any(1).to(torch.float32)


class LateFusion(nn.Module):
    def __init__(self, cfg: LateConfig, num_classes: int):
        super().__init__()
        from . import build_model

        self.cfg = cfg
        self.num_classes = num_classes
        self.modalities = list(cfg.modalities)
        self.names = list(cfg.experts)
        if not self.names or any(n not in MODALITIES for n in self.names):
            raise EmoliteError(f"late fusion needs experts named by modality ({', '.join(MODALITIES)}), "
                               f"got: {', '.join(self.names) or 'none'}")
        self.experts = nn.ModuleDict({n: build_model(cfg.experts[n], num_classes) for n in self.names})
        w = [float(cfg.weights.get(n, 1.0)) for n in self.names]
        t = [float(cfg.temperatures.get(n, 1.0)) for n in self.names]
        self.register_buffer("weights", torch.tensor(w))
        self.register_buffer("temperatures", torch.tensor(t))

    def expert_log_probs(self, n: str, x: dict, temperature: torch.Tensor | float = 1.0) -> torch.Tensor:
        """B×C log-probabilities of one expert. A per-frame expert (trained on still images)
        sees each frame alone; its log-probabilities are averaged over the valid frames."""
        if n not in self.cfg.per_frame:
            return torch.log_softmax(self.experts[n](x) / temperature, -1)
        b, t = x[f"{n}_mask"].shape
        frames = {k: v.reshape(b * t, 1, *v.shape[2:]) for k, v in x.items() if k in (n, f"{n}_mask")}
        lp = torch.log_softmax(self.experts[n](frames) / temperature, -1).reshape(b, t, -1)
        m = x[f"{n}_mask"].to(lp.dtype)[..., None]
        return (lp * m).sum(1) / m.sum(1).clamp(min=1.0)

    def forward(self, x: dict) -> torch.Tensor:
        check_inputs(x, self.modalities, getattr(self, "input_sizes", None))
        out = 0.0
        for i, n in enumerate(self.names):
            lp = self.expert_log_probs(n, x, self.temperatures[i])
            out = out + (self.weights[i] * presence(n, x))[:, None] * lp
        return out  # all modalities missing -> zeros -> uniform probabilities


@register_model("late")
def _late(cfg: LateConfig, num_classes: int) -> nn.Module:
    return LateFusion(cfg, num_classes)
