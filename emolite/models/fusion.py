"""Fusion of per-modality embeddings into one vector, chosen by name (`emolite.registry.FUSIONS`).

Every fusion gets the same inputs: a list of B×D_m embeddings and a B×M "present" mask. An
absent modality's embedding is replaced by a learned per-modality "missing" token before
fusion (so its garbage never leaks in, and the net learns what "no voice" means); attention
and gated fusion additionally mask it out of their weights. One code path for any subset.
"""

from __future__ import annotations

import torch
from torch import nn

from ..registry import FUSIONS, lookup, register_fusion

NEG = -1e4   # finite "minus infinity": stays finite in fp16 and in ONNX


class _Base(nn.Module):
    """Project each modality to d, swap absent ones for their learned missing token."""

    def __init__(self, in_dims: list[int], d: int, dropout: float = 0.1):
        super().__init__()
        self.proj = nn.ModuleList([nn.Sequential(nn.Linear(k, d), nn.LayerNorm(d)) for k in in_dims])
        self.missing = nn.Parameter(torch.zeros(len(in_dims), d))
        nn.init.normal_(self.missing, std=0.02)
        self.out_dim = d

    def tokens(self, embs: list[torch.Tensor], present: torch.Tensor) -> torch.Tensor:
        xs = [torch.where(present[:, i, None], p(e), self.missing[i])
              for i, (p, e) in enumerate(zip(self.proj, embs))]
        return torch.stack(xs, dim=1)   # B×M×d


@register_fusion("concat")
class ConcatFusion(_Base):
    """Baseline: concatenate the modality vectors, two FC layers."""

    def __init__(self, in_dims: list[int], d: int, dropout: float = 0.1):
        super().__init__(in_dims, d, dropout)
        self.mlp = nn.Sequential(nn.Linear(len(in_dims) * d, d), nn.ReLU(inplace=True), nn.Dropout(dropout),
                                 nn.Linear(d, d), nn.ReLU(inplace=True))

    def forward(self, embs: list[torch.Tensor], present: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.tokens(embs, present).flatten(1))


@register_fusion("gated")
class GatedFusion(_Base):
    """Softmax gate over modality vectors (absent ones get ~zero weight)."""

    def __init__(self, in_dims: list[int], d: int, dropout: float = 0.1):
        super().__init__(in_dims, d, dropout)
        self.score = nn.Sequential(nn.Linear(d, d // 2), nn.Tanh(), nn.Linear(d // 2, 1))
        self.out = nn.Sequential(nn.Dropout(dropout), nn.Linear(d, d), nn.ReLU(inplace=True))

    def forward(self, embs: list[torch.Tensor], present: torch.Tensor) -> torch.Tensor:
        x = self.tokens(embs, present)
        s = torch.where(present, self.score(x).squeeze(-1), torch.full_like(present, NEG, dtype=x.dtype))
        w = torch.softmax(s, dim=1)
        return self.out((w[..., None] * x).sum(1))


@register_fusion("attention")
class AttentionFusion(_Base):
    """One pre-norm transformer layer over [CLS, modality tokens], absent tokens masked out of
    the keys; the CLS output is the fused vector. CLS is always a valid key, so the softmax is
    defined even when every modality is missing."""

    def __init__(self, in_dims: list[int], d: int, dropout: float = 0.1, heads: int = 4):
        super().__init__(in_dims, d, dropout)
        self.heads = heads
        self.type_emb = nn.Parameter(torch.zeros(len(in_dims), d))
        self.cls = nn.Parameter(torch.zeros(1, 1, d))
        nn.init.normal_(self.type_emb, std=0.02)
        nn.init.normal_(self.cls, std=0.02)
        self.ln1, self.ln2, self.ln_out = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.o = nn.Linear(d, d)
        self.ffn = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
        self.drop = nn.Dropout(dropout)

    def forward(self, embs: list[torch.Tensor], present: torch.Tensor) -> torch.Tensor:
        x = self.tokens(embs, present) + self.type_emb
        b, m, d = x.shape
        x = torch.cat([self.cls.expand(b, 1, d), x], dim=1)                       # B×(M+1)×d
        keep = torch.cat([torch.ones_like(present[:, :1]), present], dim=1)      # B×(M+1)
        q, k, v = self.qkv(self.ln1(x)).chunk(3, dim=-1)
        dh = d // self.heads
        q, k, v = (t.reshape(b, m + 1, self.heads, dh).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-1, -2)) * dh ** -0.5                               # B×H×n×n
        att = torch.where(keep[:, None, None, :], att, torch.full_like(att, NEG))
        y = (self.drop(torch.softmax(att, dim=-1)) @ v).transpose(1, 2).reshape(b, m + 1, d)
        x = x + self.drop(self.o(y))
        x = x + self.drop(self.ffn(self.ln2(x)))
        return self.ln_out(x[:, 0])

    def extra_macs(self, inp: tuple, out: torch.Tensor) -> int:
        b = out.shape[0]
        n = self.type_emb.shape[0] + 1
        return 2 * b * n * n * self.type_emb.shape[1]   # q·k and att·v


def build_fusion(name: str, in_dims: list[int], d: int, dropout: float = 0.1) -> nn.Module:
    """The fusion registered as `name`, for modalities of the given embedding sizes."""
    return lookup(FUSIONS, name, "fusion")(in_dims, d, dropout)
