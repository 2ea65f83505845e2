"""Fixtures made in code: clips with a real face (NASA's public-domain astronaut portrait,
shipped in emolite/assets) and a voice-like tone, in several containers, plus broken files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from emolite.demo import make_clip

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def clip(media_dir) -> Path:
    """3 s, 320×240 H.264 + AAC with a face."""
    return make_clip(media_dir / "face clip.mp4", seconds=3.0, width=320, height=240)


@pytest.fixture(scope="session")
def clips(media_dir) -> dict[str, Path]:
    """The same content in each container we promise to read."""
    out = {}
    for ext in (".mp4", ".avi", ".flv", ".mkv", ".webm"):
        out[ext] = make_clip(media_dir / f"c{ext}", seconds=1.5, width=160, height=120)
    return out


@pytest.fixture(scope="session")
def audio_only(media_dir) -> Path:
    return make_clip(media_dir / "voice.wav", seconds=2.0)


@pytest.fixture(scope="session")
def video_only(media_dir) -> Path:
    return make_clip(media_dir / "silent.mp4", seconds=1.5, width=160, height=120, audio=False)


@pytest.fixture(scope="session")
def no_face(media_dir) -> Path:
    return make_clip(media_dir / "noface.mp4", seconds=1.0, width=160, height=120, face=False)


@pytest.fixture(scope="session")
def face_png(media_dir) -> Path:
    import cv2

    from emolite.demo import face_image

    p = media_dir / "face.png"
    cv2.imwrite(str(p), face_image()[..., ::-1])
    return p


@pytest.fixture(scope="session")
def bad_files(media_dir, clip) -> dict[str, Path]:
    """One file for each way a user's input goes wrong."""
    d = media_dir / "bad"
    d.mkdir()
    data = clip.read_bytes()
    files = {"empty": d / "empty.mp4", "text": d / "notes.mp4", "truncated": d / "truncated.mp4",
             "garbage": d / "garbage.mkv"}
    files["empty"].write_bytes(b"")
    files["text"].write_text("this is not a video\n")
    files["truncated"].write_bytes(data[: len(data) // 3])
    files["garbage"].write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    # A video-only file whose codec tag FFmpeg does not know: no decodable stream at all.
    vo = make_clip(d / "vo.mp4", seconds=0.5, width=64, height=64, audio=False).read_bytes()
    files["codec"] = d / "unknown_codec.mp4"
    files["codec"].write_bytes(vo.replace(b"avc1", b"zzz1"))
    (d / "vo.mp4").unlink()
    # Shorter than one frame interval at 5 fps: a single 25-fps frame.
    files["tiny"] = make_clip(d / "one frame.mp4", seconds=0.04, width=64, height=64, audio=False)
    return files


CLASSES = ["anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise"]


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> Path:
    """A full face+context+voice model with random (seeded) weights, saved as an emolite checkpoint."""
    import torch

    from emolite.models import build_model, save_checkpoint

    torch.manual_seed(0)
    model = build_model("attention", num_classes=len(CLASSES))
    return save_checkpoint(tmp_path_factory.mktemp("model") / "random.pt", model, {"classes": CLASSES})
