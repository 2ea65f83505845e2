"""Voice encoder after Zhao, Mao & Chen (2019), "Speech emotion recognition using deep 1D &
2D CNN LSTM networks": local feature learning blocks (LFLB = conv + BN + ELU + max-pool)
followed by an LSTM over time.

Two variants from the paper, both shrunk to fit a per-clip budget:
- "2d" (default): LFLBs over a log-mel spectrogram computed inside the model.
- "1d": a learned strided filterbank on the raw waveform, then 1-D LFLBs.

Why 2-D is the default (measured with scripts in the report, 4-s clip, 1 CPU thread, torch 2.13):
the 2-D net costs ~0.14 G MACs / ~6 ms vs ~0.03 G / ~2 ms for 1-D, but on a synthetic
prosody task (pitch level, pitch contour, spectral tilt, under random speaker pitch and
noise) it reached clearly higher accuracy in the same number of steps, matching the paper's
finding (2-D 95 % vs 1-D 89 % on EmoDB). The whole model stays well inside its budget with
2-D, so accuracy wins.

The log-mel front end is a fixed conv1d DFT (cos/sin rows times a Hann window) followed by a
1×1 conv mel filterbank: plain Conv ops, so the model exports to ONNX opset 17 as one graph
without STFT/complex support, and runs the same on any backend.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

SAMPLE_RATE = 16000
N_FFT = 400        # 25 ms window
HOP = 160          # 10 ms hop -> 100 frames/s
N_MELS = 64
FMIN, FMAX = 50.0, 8000.0
LOG_EPS = 1e-6


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)


def mel_filterbank(n_mels: int = N_MELS, n_fft: int = N_FFT, sr: int = SAMPLE_RATE,
                   fmin: float = FMIN, fmax: float = FMAX) -> np.ndarray:
    """HTK-style triangular mel filters, n_mels × (n_fft//2+1), area-normalised (Slaney)."""
    freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    hz = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    fb = np.zeros((n_mels, len(freqs)), np.float32)
    for i in range(n_mels):
        lo, c, hi = hz[i], hz[i + 1], hz[i + 2]
        up = (freqs - lo) / max(c - lo, 1e-6)
        down = (hi - freqs) / max(hi - c, 1e-6)
        fb[i] = np.maximum(0.0, np.minimum(up, down)) * (2.0 / (hi - lo))
    return fb


class LogMel(nn.Module):
    """Waveform B×S -> log-mel B×n_mels×frames, with Conv ops only (ONNX-friendly)."""

    def __init__(self, n_mels: int = N_MELS, n_fft: int = N_FFT, hop: int = HOP):
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        n_bins = n_fft // 2 + 1
        n = np.arange(n_fft)
        k = np.arange(n_bins)[:, None]
        window = 0.5 - 0.5 * np.cos(2 * math.pi * n / n_fft)  # periodic Hann
        ang = 2 * math.pi * k * n / n_fft
        dft = np.concatenate([np.cos(ang) * window, -np.sin(ang) * window]).astype(np.float32)
        # Buffers, not parameters: fixed, rebuilt at init, not stored in checkpoints.
        self.register_buffer("dft", torch.from_numpy(dft)[:, None, :], persistent=False)
        self.register_buffer("mel", torch.from_numpy(mel_filterbank(n_mels, n_fft))[:, :, None], persistent=False)

    def n_frames(self, n_samples: int) -> int:
        return n_samples // self.hop + 1

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        x = F.pad(wav[:, None, :], (self.n_fft // 2, self.n_fft // 2))   # centred frames
        spec = F.conv1d(x, self.dft, stride=self.hop)                    # B×2F×frames
        re, im = spec.chunk(2, dim=1)
        power = re * re + im * im
        return torch.log(F.conv1d(power, self.mel) + LOG_EPS)           # B×M×frames

    def extra_macs(self, inp: tuple, out: torch.Tensor) -> int:
        b, _, t = out.shape
        return b * t * (self.dft.shape[0] * self.n_fft + self.mel.shape[0] * self.mel.shape[1])


def lflb2d(cin: int, cout: int, pool: tuple[int, int]) -> nn.Sequential:
    """Zhao's local feature learning block, 2-D."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ELU(inplace=True), nn.MaxPool2d(pool))


def lflb1d(cin: int, cout: int, pool: int) -> nn.Sequential:
    """Zhao's local feature learning block, 1-D."""
    return nn.Sequential(nn.Conv1d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm1d(cout),
                         nn.ELU(inplace=True), nn.MaxPool1d(pool))


class AudioEncoder2D(nn.Module):
    """log-mel -> 4 LFLBs (2-D) -> LSTM -> [last state, mean state] -> out_dim."""

    def __init__(self, out_dim: int = 128, n_mels: int = N_MELS, channels: tuple = (16, 32, 48, 64),
                 hidden: int = 128):
        super().__init__()
        self.logmel = LogMel(n_mels)
        self.norm = nn.BatchNorm2d(1)
        chans = (1,) + tuple(channels)
        self.cnn = nn.Sequential(*[lflb2d(chans[i], chans[i + 1], (2, 2)) for i in range(len(channels))])
        freq = n_mels // (2 ** len(channels))
        self.lstm = nn.LSTM(chans[-1] * freq, hidden, batch_first=True)
        self.proj = nn.Linear(2 * hidden, out_dim)
        self.out_dim = out_dim

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.logmel(wav)[:, None])          # B×1×M×T
        x = self.cnn(x)                                    # B×C×M'×T'
        b, c, m, t = x.shape
        x = x.permute(0, 3, 1, 2).reshape(b, t, c * m)     # B×T'×(C·M')
        out, (h, _) = self.lstm(x)
        return self.proj(torch.cat([h[-1], out.mean(1)], dim=1))


class AudioEncoder1D(nn.Module):
    """raw wave -> learned strided filterbank -> 1-D LFLBs -> LSTM -> out_dim."""

    def __init__(self, out_dim: int = 128, channels: tuple = (64, 64, 96, 128), hidden: int = 128):
        super().__init__()
        self.front = nn.Sequential(nn.Conv1d(1, channels[0], N_FFT, stride=HOP, padding=N_FFT // 2, bias=False),
                                   nn.BatchNorm1d(channels[0]), nn.ELU(inplace=True))
        self.cnn = nn.Sequential(*[lflb1d(channels[i], channels[i + 1], 2) for i in range(len(channels) - 1)])
        self.lstm = nn.LSTM(channels[-1], hidden, batch_first=True)
        self.proj = nn.Linear(2 * hidden, out_dim)
        self.out_dim = out_dim

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        x = self.cnn(self.front(wav[:, None]))             # B×C×T'
        out, (h, _) = self.lstm(x.transpose(1, 2))
        return self.proj(torch.cat([h[-1], out.mean(1)], dim=1))


def build_audio_encoder(kind: str = "2d", out_dim: int = 128, n_mels: int = N_MELS, hidden: int = 128,
                        channels: tuple | None = None) -> nn.Module:
    if kind == "2d":
        return AudioEncoder2D(out_dim, n_mels, tuple(channels or (16, 32, 48, 64)), hidden)
    if kind == "1d":
        return AudioEncoder1D(out_dim, tuple(channels or (64, 64, 96, 128)), hidden)
    from ..errors import EmoliteError
    raise EmoliteError(f"unknown audio encoder kind '{kind}'; choose 2d or 1d")
