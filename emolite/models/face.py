"""Face encoder: a MobileFaceNet-style CNN (Chen et al. 2018) shrunk for per-frame use.

Same recipe as MobileFaceNet (stride-2 stem, depthwise-separable inverted bottlenecks with
PReLU, a global depthwise "GDConv" instead of average pooling so the embedding keeps where in
the face a feature fired, linear 1×1 embedding), but with ~1/10 of the width and expansion 2:
~10 M MACs, ~0.1 M parameters and ~1 ms (1 CPU thread) per 112×112 crop, so 8 frames per
clip stay cheap. Depthwise convs and BN/PReLU on the 56×56 stage are memory-bound on CPU, so
the stage at that resolution is kept thin (no dw-only stem block, no expansion).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..arch import FaceCNNConfig
from ..registry import register_model
from .checks import check_inputs

FACE_SIZE = 112
# (expansion, out channels, repeats, first stride) — MobileFaceNet's table, thinner. The first
# block does not expand (as in MobileNetV2): expanding at 56×56 doubled the CPU time
# (memory-bound BN/PReLU on the widest tensor) for no parameter gain.
BLOCKS = ((1, 24, 1, 2), (2, 24, 1, 1), (2, 40, 2, 2), (2, 64, 2, 2))


def conv_bn(cin: int, cout: int, k: int = 1, s: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.PReLU(cout))
    return nn.Sequential(*layers)


class Bottleneck(nn.Module):
    """Inverted residual: 1×1 expand -> 3×3 depthwise -> 1×1 linear project (+ skip)."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        self.block = nn.Sequential(conv_bn(cin, mid), conv_bn(mid, mid, 3, stride, groups=mid),
                                   conv_bn(mid, cout, act=False))
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return x + y if self.skip else y


class FaceEncoder(nn.Module):
    """N×3×112×112 in [0,1] -> N×out_dim."""

    def __init__(self, out_dim: int = 128, width: int = 16, blocks: tuple = BLOCKS, final: int = 256,
                 size: int = FACE_SIZE):
        super().__init__()
        self.size = size
        layers = [conv_bn(3, width, 3, 2)]   # (MobileFaceNet's extra 3×3 dw at 56×56 cost 30 % of the time)
        cin = width
        for t, c, n, s in blocks:
            for i in range(n):
                layers.append(Bottleneck(cin, c, s if i == 0 else 1, t))
                cin = c
        layers.append(conv_bn(cin, final))
        self.features = nn.Sequential(*layers)
        k = size // 2 ** (1 + sum(b[3] == 2 for b in blocks))   # spatial side before GDConv (7 at 112)
        self.gdconv = conv_bn(final, final, k, groups=final, act=False)
        self.gdconv[0].padding = (0, 0)
        self.embed = nn.Sequential(nn.Conv2d(final, out_dim, 1, bias=False), nn.BatchNorm2d(out_dim))
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        x = self.features((x - 0.5) / 0.5)
        return self.embed(self.gdconv(x)).flatten(1)


# ----------------------------------------------------------------------------- per-frame expert
FER_SIZE = FaceCNNConfig.size     # FER2013's native side: the face expert sees grey 48×48 crops
FER_WIDTH = FaceCNNConfig.width   # channels of the first stage; stages double it (24-48-96-192)
GREY = (0.299, 0.587, 0.114)   # ITU-R BT.601 luma, as OpenCV's RGB2GRAY


def conv_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class FaceCNN(nn.Module):
    """Per-frame face classifier trained at FER2013 scale: N×3×H×W RGB in [0,1] -> N×C logits.

    A plain VGG-style stack (one conv at full resolution, then two per stage, max-pool between,
    global average pool): on 2 CPU cores plain 3×3 convs train ~3× faster per MAC than
    depthwise blocks, and at 48×48 grey (FER2013's native form) 0.66 M parameters and ~56 M
    MACs per face suffice. Input is turned grey and resized here, so any RGB crop works."""

    def __init__(self, num_classes: int, width: int = FER_WIDTH, size: int = FER_SIZE, dropout: float = 0.3):
        super().__init__()
        w = width
        self.size = size
        self.register_buffer("grey", torch.tensor(GREY).view(1, 3, 1, 1), persistent=False)
        self.features = nn.Sequential(
            conv_relu(1, w), nn.MaxPool2d(2),
            conv_relu(w, 2 * w), conv_relu(2 * w, 2 * w), nn.MaxPool2d(2),
            conv_relu(2 * w, 4 * w), conv_relu(4 * w, 4 * w), nn.MaxPool2d(2),
            conv_relu(4 * w, 8 * w), conv_relu(8 * w, 8 * w), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(8 * w, num_classes))
        # channels-last conv weights: 2.7 -> 1.9 ms per face at batch 1 on one CPU thread
        # (1.7 -> 1.2 in a window's batch of 8); load_state_dict keeps the layout
        self.features.to(memory_format=torch.channels_last)

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """N×3×H×W (RGB) or N×1×H×W (grey) in [0,1] -> N×1×size×size grey."""
        if x.shape[1] == 3:
            x = (x * self.grey).sum(1, keepdim=True)
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)   # spec crops are `size` already
        return x

    def classify(self, g: torch.Tensor) -> torch.Tensor:
        """Prepared grey faces -> logits."""
        return self.head(self.features((g - 0.5) / 0.25))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: N×3×H×W (RGB) or N×1×H×W (grey), float in [0,1]
        return self.classify(self.prepare(x))


LAPLACE = ((0.0, 1.0, 0.0), (1.0, -4.0, 1.0), (0.0, 1.0, 0.0))


class FrameFaceModel(nn.Module):
    """The model-dict interface around FaceCNN: x["face"] B×T×3×H×W, x["face_mask"] B×T ->
    B×C logits: the mean of the per-frame logits over the window's valid frames, leaving out
    frames much blurrier than its sharpest (variance of the Laplacian < sharp_frac × the max:
    motion blur, a tiny face upscaled). Measured on 8-frame clips made from FER2013
    public_test faces (benchmarks/face_frames.py): +0.9 accuracy points over the plain mean;
    mean of probabilities or of log-probabilities and majority vote were no better. The rule
    is in the model, so analyze, serve and ONNX all apply it."""

    def __init__(self, cfg: FaceCNNConfig, num_classes: int):
        super().__init__()
        self.cfg = cfg
        self.modalities = list(cfg.modalities)
        self.net = FaceCNN(num_classes, cfg.width, cfg.size, cfg.dropout)
        self.sharp_frac = cfg.sharp_frac
        self.register_buffer("laplace", torch.tensor(LAPLACE).view(1, 1, 3, 3), persistent=False)

    def forward(self, x: dict) -> torch.Tensor:
        check_inputs(x, self.modalities, getattr(self, "input_sizes", None))
        face, mask = x["face"], x["face_mask"]          # B×T×3×H×W float [0,1], B×T bool
        b, t = mask.shape
        g = self.net.prepare(face.reshape(b * t, *face.shape[2:]))
        logits = self.net.classify(g).reshape(b, t, -1)
        m = mask.to(logits.dtype)
        if self.sharp_frac > 0:
            sharp = F.conv2d(g, self.laplace).flatten(1).var(1).reshape(b, t) * m
            m = m * (sharp >= self.sharp_frac * sharp.amax(1, keepdim=True)).to(m.dtype)
        m = m[..., None]
        return (logits * m).sum(1) / m.sum(1).clamp(min=1.0)


@register_model("face_cnn")
def _face_cnn(cfg: FaceCNNConfig, num_classes: int) -> nn.Module:
    return FrameFaceModel(cfg, num_classes)
