"""Voice encoder after Zhao, Mao & Chen (2019), "Speech emotion recognition using deep 1D &
2D CNN LSTM networks": local feature learning blocks (LFLB = conv + BN + ELU + max-pool)
followed by an LSTM over time.

Two variants from the paper, both shrunk to fit a per-clip budget:
- "2d" (default): LFLBs over a log-mel spectrogram computed inside the model.
- "1d": a learned strided filterbank on the raw waveform, then 1-D LFLBs.

Why 2-D is the default — a quick measurement (1 CPU thread, torch 2.13; encoder + head only):
  cost per 4-s clip:  2-D 0.43 M params, 0.14 G MACs, ~6-9 ms;  1-D 0.31 M, 0.01 G, ~1.5 ms.
  synthetic prosody task (4 classes from pitch level × pitch slope, random speaker pitch
  ±40 %, random harmonic tilt, syllable gating, 5-25 dB SNR noise; 2-s clips, batch 16, AdamW
  one-cycle, 400 steps, 256 held-out clips): test accuracy after 100/200/300/400 steps was
  2-D .62/.70/.71/.71 vs 1-D .56/.53/.68/.71.
The 2-D net learns faster and was never worse here; on real speech Zhao et al. report a clear
gap (EmoDB speaker-dependent 95.3 % for 2-D vs 89.2 % for 1-D), and the whole default model
stays within budget (0.24 G MACs of 0.45 G). So accuracy wins; `audio_kind="1d"` remains for
when every millisecond counts (whole model ~0.11 G MACs).

Input normalisation ("audio_norm"): "band" (default) standardises each mel band of each
utterance over time (cepstral mean/variance normalisation), which removes the recording's
level and channel colouring before the CNN sees it; "batch" is one BatchNorm over the whole
log-mel (the first release; kept so its checkpoints load unchanged); "level" first brings each
clip to one RMS level (`set_level`), then does "band": exactly level-invariant, but measured on
the default model's held-out speakers it lost 7 UAR points clean to "band" and only won at
-20 dB gain (docs/benchmarks.md), so the default model keeps "band". Chosen by measurement
(benchmarks/audio_pilot.py, speaker-independent folds, 20 epochs, same seeds): pooled UAR on
EmoDB .679 band vs .642 batch vs .621 per-utterance global standardisation; on RAVDESS .583
band vs .552 batch. SpecAugment (`specaug`, off by default) did not help in that pilot.

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

from ..errors import EmoliteError
from ..media import SAMPLE_RATE
from ..registry import AUDIO_ENCODERS, lookup, register_audio_encoder

N_FFT = 400        # 25 ms window
HOP_LENGTH = 160   # samples between STFT frames: 10 ms -> 100 frames/s
N_MELS = 64
FMIN, FMAX = 50.0, 8000.0
LOG_EPS = 1e-6
LEVEL_RMS = 0.1       # audio_norm="level": clips are brought to -20 dBFS first (an option)
MIN_RMS = 1e-3        # ... but quieter than -60 dBFS is not raised further
PAD_MARGIN = 1.0      # a frame is padding when every band is within this of the log floor
NORM_EPS = 1e-5
NORMS = ("band", "level", "batch")
SPEC_MASKS = 2         # SpecAugment (training only): this many frequency and time masks per clip,
SPEC_MAX_BANDS = 8     # each up to this many mel bands
SPEC_MAX_TIME = 0.1    # or this fraction of the frames


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

    def __init__(self, n_mels: int = N_MELS, n_fft: int = N_FFT, hop: int = HOP_LENGTH):
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
        # fp32 even under mixed precision: power spectra of loud audio overflow fp16.
        with torch.autocast(device_type=wav.device.type, enabled=False):
            x = F.pad(wav.float()[:, None, :], (self.n_fft // 2, self.n_fft // 2))   # centred frames
            spec = F.conv1d(x, self.dft, stride=self.hop)                            # B×2F×frames
            re, im = spec.chunk(2, dim=1)
            power = re * re + im * im
            return torch.log(F.conv1d(power, self.mel) + LOG_EPS)                   # B×M×frames

    def extra_macs(self, inp: tuple, out: torch.Tensor) -> int:
        b, _, t = out.shape
        return b * t * (self.dft.shape[0] * self.n_fft + self.mel.shape[0] * self.mel.shape[1])


class MaxPool2x(nn.Module):
    """Max-pool by 2 over the last `dims` axes (floor, like nn.MaxPool) as strided maxima:
    same result, ~15× faster than nn.MaxPool2d on one CPU thread for these shapes."""

    def __init__(self, dims: int = 2):
        super().__init__()
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for d in range(-self.dims, 0):
            n = x.shape[d] // 2 * 2
            a = x.narrow(d, 0, n)
            idx = [slice(None)] * x.dim()
            idx[d] = slice(0, n, 2)
            even = a[tuple(idx)]
            idx[d] = slice(1, n, 2)
            x = torch.maximum(even, a[tuple(idx)])
        return x


def lflb2d(cin: int, cout: int) -> nn.Sequential:
    """Zhao's local feature learning block, 2-D (conv 3×3, BN, ELU, 2×2 max-pool)."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ELU(inplace=True), MaxPool2x(2))


def lflb1d(cin: int, cout: int) -> nn.Sequential:
    """Zhao's local feature learning block, 1-D (conv 3, BN, ELU, max-pool 2)."""
    return nn.Sequential(nn.Conv1d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm1d(cout),
                         nn.ELU(inplace=True), MaxPool2x(1))


def set_level(wav: torch.Tensor) -> torch.Tensor:
    """Each clip scaled to LEVEL_RMS over its non-zero samples (zero padding does not count), so
    quiet bands stay clear of the log floor whatever the recording level (band normalisation
    alone lost 7.5 UAR points at -20 dB gain; benchmarks/voice_robustness.py).
    Near-digital-silence (RMS < MIN_RMS) is not amplified past MIN_RMS."""
    live = (wav != 0).to(wav.dtype)
    rms = ((wav * wav).sum(1, keepdim=True) / live.sum(1, keepdim=True).clamp(min=1.0)).sqrt()
    return wav * (LEVEL_RMS / rms.clamp(min=MIN_RMS))


class BandNorm(nn.Module):
    """Per-utterance, per-mel-band mean/variance normalisation over time (B×1×M×T).

    Statistics come from frames that hold sound only: the zero padding that makes a short
    utterance the model's length (log-mel at the log floor in every band) would otherwise be
    averaged in and shift every band by how much padding there was. Padded frames come out 0
    (the band mean)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        valid = (x.amax(dim=-2, keepdim=True) > math.log(LOG_EPS) + PAD_MARGIN).to(x.dtype)   # B×1×1×T
        n = valid.sum(dim=-1, keepdim=True).clamp(min=1.0)
        mean = (x * valid).sum(dim=-1, keepdim=True) / n
        std = ((x - mean).pow(2) * valid).sum(dim=-1, keepdim=True).div(n).add(NORM_EPS).sqrt()
        return (x - mean) / std * valid


def spec_augment(x: torch.Tensor) -> torch.Tensor:
    """SpecAugment (Park et al. 2019) without time warping: zero random mel-band and time
    stripes of each clip of a B×1×M×T normalised log-mel (0 is the per-band mean)."""
    b, _, m, t = x.shape
    dev = x.device
    bands = torch.arange(m, device=dev)[None, None, :, None]
    frames = torch.arange(t, device=dev)[None, None, None, :]
    for _ in range(SPEC_MASKS):
        w = torch.randint(0, SPEC_MAX_BANDS + 1, (b, 1, 1, 1), device=dev)
        f0 = (torch.rand(b, 1, 1, 1, device=dev) * (m - w + 1)).long()
        x = x.masked_fill((bands >= f0) & (bands < f0 + w), 0.0)
        w = torch.randint(0, int(SPEC_MAX_TIME * t) + 1, (b, 1, 1, 1), device=dev)
        t0 = (torch.rand(b, 1, 1, 1, device=dev) * (t - w + 1)).long()
        x = x.masked_fill((frames >= t0) & (frames < t0 + w), 0.0)
    return x


class AudioEncoder2D(nn.Module):
    """log-mel -> 4 LFLBs (2-D) -> LSTM -> [last state, mean state] -> out_dim."""

    def __init__(self, out_dim: int = 128, n_mels: int = N_MELS, channels: tuple = (16, 32, 48, 64),
                 hidden: int = 128, norm: str = "band", specaug: bool = False):
        super().__init__()
        self.specaug = specaug
        self.logmel = LogMel(n_mels)
        self.level = norm == "level"
        self.norm = BandNorm() if norm in ("band", "level") else nn.BatchNorm2d(1)
        chans = (1,) + tuple(channels)
        self.cnn = nn.Sequential(*[lflb2d(chans[i], chans[i + 1]) for i in range(len(channels))])
        freq = n_mels // (2 ** len(channels))
        self.lstm = nn.LSTM(chans[-1] * freq, hidden, batch_first=True)
        self.proj = nn.Linear(2 * hidden, out_dim)
        self.out_dim = out_dim

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        # wav: B×S float, 16 kHz mono
        if self.level:
            wav = set_level(wav)
        x = self.norm(self.logmel(wav)[:, None])          # B×1×M×T
        if self.training and self.specaug:
            x = spec_augment(x)
        x = self.cnn(x)                                    # B×C×M'×T'
        b, c, m, t = x.shape
        x = x.permute(0, 3, 1, 2).reshape(b, t, c * m)     # B×T'×(C·M')
        out, (h, _) = self.lstm(x)
        return self.proj(torch.cat([h[-1], out.mean(1)], dim=1))


class AudioEncoder1D(nn.Module):
    """raw wave -> learned strided filterbank -> 1-D LFLBs -> LSTM -> out_dim."""

    def __init__(self, out_dim: int = 128, channels: tuple = (64, 64, 96, 128), hidden: int = 128):
        super().__init__()
        self.front = nn.Sequential(nn.Conv1d(1, channels[0], N_FFT, stride=HOP_LENGTH, padding=N_FFT // 2, bias=False),
                                   nn.BatchNorm1d(channels[0]), nn.ELU(inplace=True))
        self.cnn = nn.Sequential(*[lflb1d(channels[i], channels[i + 1]) for i in range(len(channels) - 1)])
        self.lstm = nn.LSTM(channels[-1], hidden, batch_first=True)
        self.proj = nn.Linear(2 * hidden, out_dim)
        self.out_dim = out_dim

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        x = self.cnn(self.front(wav[:, None]))             # B×C×T'
        out, (h, _) = self.lstm(x.transpose(1, 2))
        return self.proj(torch.cat([h[-1], out.mean(1)], dim=1))


@register_audio_encoder("2d")
def _encoder_2d(out_dim: int, n_mels: int, hidden: int, channels: tuple | None, norm: str,
                specaug: bool) -> nn.Module:
    return AudioEncoder2D(out_dim, n_mels, tuple(channels or (16, 32, 48, 64)), hidden, norm, specaug)


@register_audio_encoder("1d")
def _encoder_1d(out_dim: int, n_mels: int, hidden: int, channels: tuple | None, norm: str,
                specaug: bool) -> nn.Module:
    return AudioEncoder1D(out_dim, tuple(channels or (64, 64, 96, 128)), hidden)


def build_audio_encoder(kind: str = "2d", out_dim: int = 128, n_mels: int = N_MELS, hidden: int = 128,
                        channels: tuple | None = None, norm: str = "band", specaug: bool = False) -> nn.Module:
    """The voice encoder registered as `kind` (config model.audio_kind: 2d | 1d | a plugin's)."""
    if norm not in NORMS:
        raise EmoliteError(f"unknown audio_norm '{norm}'; choose {' or '.join(NORMS)}")
    return lookup(AUDIO_ENCODERS, kind, "audio encoder kind")(out_dim, n_mels, hidden, channels, norm, specaug)
