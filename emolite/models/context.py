"""Context encoder: a small CNN on the whole (letterboxed) frame.

Scene cues (who else is there, body posture, setting) are coarse, so the frame is first
average-pooled to 56×56 (cheap anti-aliased downsample, exports as one ONNX op) and run
through a few depthwise-separable blocks: ~2 M MACs per frame.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

CONTEXT_SIZE = 56   # internal resolution
# (out channels, stride) of the depthwise-separable blocks after the stem
BLOCKS = ((48, 2), (48, 1), (96, 2), (128, 1))


def dw_sep(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cin),
                         nn.ReLU(inplace=True),
                         nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class ContextEncoder(nn.Module):
    """N×3×H×W in [0,1] -> N×out_dim."""

    def __init__(self, out_dim: int = 128, width: int = 24, blocks: tuple = BLOCKS, size: int = CONTEXT_SIZE):
        super().__init__()
        self.size = size
        layers = [nn.Conv2d(3, width, 3, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        cin = width
        for c, s in blocks:
            layers.append(dw_sep(cin, c, s))
            cin = c
        self.features = nn.Sequential(*layers)
        self.embed = nn.Linear(cin, out_dim)
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h == 2 * self.size and w == 2 * self.size:
            x = F.avg_pool2d(x, 2)
        elif h != self.size or w != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        x = self.features((x - 0.5) / 0.5)
        return self.embed(x.mean((2, 3)))
