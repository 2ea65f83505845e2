"""The shipped model's recipes (emolite.recipes) start and finish on a tiny data tree made in
code, laid out as the staged research data is (fer2013, faces_mux, ckplus48, emodb, ravdess labels.csv):
`emolite train-default` runs every stage (voice, three face cycles, calibration, fusion) and
writes a model that loads; `python -m emolite.recipes.face` runs alone."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import soundfile as sf

from emolite.demo import face_image, voice
from emolite.labels import EMOTIONS


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([header, *rows])


def _faces(root: Path, rel: str, n: int, rng: np.random.Generator) -> list[tuple[str, str]]:
    """n 48×48 grey faces (the astronaut, shifted and tinted per class) as (file, emotion)."""
    base = cv2.resize(cv2.cvtColor(face_image(), cv2.COLOR_RGB2GRAY), (48, 48), interpolation=cv2.INTER_AREA)
    out = []
    for i in range(n):
        k = i % len(EMOTIONS)
        img = np.clip(base.astype(np.int16) + 12 * k - 36 + rng.integers(-8, 9, base.shape), 0, 255).astype(np.uint8)
        f = f"{rel}/{EMOTIONS[k]}_{i:03d}.png"
        (root / f).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / f), img)
        out.append((f, EMOTIONS[k]))
    return out


def _voices(root: Path, n_speakers: int) -> list[tuple[str, str, int]]:
    """One 1.2-s voice-like file per (speaker, class), f0 by class, as (file, emotion, speaker)."""
    out = []
    for s in range(n_speakers):
        for k, emo in enumerate(EMOTIONS):
            f = f"wav/s{s}_{emo}.flac"
            (root / f).parent.mkdir(parents=True, exist_ok=True)
            sf.write(root / f, voice(1.2, f0=120.0 + 30 * k, seed=s * 10 + k), 16000)
            out.append((f, emo, s))
    return out


@pytest.fixture(scope="module")
def data_tree(tmp_path_factory) -> Path:
    """The five corpora the recipes read, a few files each (130 FER2013 train images: one batch)."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    train = _faces(root / "fer2013", "train", 130, rng)
    public = _faces(root / "fer2013", "public_test", 14, rng)
    _write_csv(root / "fer2013" / "labels.csv", ["file", "usage", "emotion"],
               [[f, "Training", e] for f, e in train] + [[f, "PublicTest", e] for f, e in public])
    _write_csv(root / "faces_mux" / "labels.csv", ["file", "emotion"], [list(r) for r in _faces(root / "faces_mux", "images", 21, rng)])
    ck = _faces(root / "ckplus48", "img", 21, rng)
    _write_csv(root / "ckplus48" / "labels.csv", ["file", "subject", "sequence", "emotion"],
               [[f, f"S{i:03d}", "001", e] for i, (f, e) in enumerate(ck)])
    _write_csv(root / "emodb" / "labels.csv", ["file", "speaker", "text", "emotion", "seconds"],
               [[f, f"{s:02d}", "a01", e, 1.2] for f, e, s in _voices(root / "emodb", 5)])
    _write_csv(root / "ravdess" / "labels.csv", ["file", "modality", "emotion", "intensity", "actor"],
               [[f, "audio", e, "01", f"{s:02d}"] for f, e, s in _voices(root / "ravdess", 5)])
    return root


def _run(*args: str) -> str:
    r = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


def test_train_default_runs_every_stage_small(data_tree, tmp_path):
    out, report = tmp_path / "model.pt", tmp_path / "report.json"
    _run("emolite", "train-default", str(data_tree), "--work", str(tmp_path / "work"), "--out", str(out),
         "--report", str(report), "--face-epochs", "1", "--voice-epochs", "1")
    rep = json.loads(report.read_text())
    assert rep["classes"] == list(EMOTIONS) and 0.0 <= rep["fusion"]["weights"]["face"] <= 1.0
    assert rep["test"]["voice"]["n"] == len(EMOTIONS)   # one test speaker, one file per class
    for name in ("face", "face2", "face3"):   # the three face cycles, each from the previous best
        assert (tmp_path / "work" / name / "summary.json").exists()
    assert json.loads((tmp_path / "work" / "face3" / "summary.json").read_text())["args"]["init"].endswith("face2/best.pt")

    from emolite.models import load_checkpoint
    from emolite.spec import InputSpec

    model, meta = load_checkpoint(out)
    assert set(model.experts) == {"face", "audio"}
    spec = InputSpec.from_dict(meta["preprocess"])
    assert (spec.audio_seconds, spec.window_seconds, spec.frames, spec.face_size) == (3.0, 3.0, 8, 48)


def test_train_face_alone(data_tree, tmp_path):
    out = _run("emolite.recipes.face", str(data_tree), "--work", str(tmp_path), "--epochs", "2", "--batch", "64",
               "--mixup", "0.4", "--exclude", "ckplus48")
    summary = json.loads(out[out.index("{\n"):])
    assert summary["best_epoch"] in (1, 2) and summary["final"]["dev/fer2013"]["n"] == 14
    log = [json.loads(line) for line in (tmp_path / "face" / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2] and 0.0 <= log[-1]["dev/fer2013"]["f1"] <= 1.0
    assert (tmp_path / "face" / "best.pt").exists() and (tmp_path / "crops_m0.npz").exists()


def test_smoke_config_cache_command(tmp_path):
    """configs/smoke.toml's first line, `python tests/synthetic.py cache/smoke`, writes the cache it reads."""
    import tomllib

    from emolite import cache

    root = Path(__file__).resolve().parents[1]
    assert "python tests/synthetic.py cache/smoke" in (root / "configs" / "smoke.toml").read_text()
    assert tomllib.loads((root / "configs" / "smoke.toml").read_text())["data"]["cache_dir"] == "cache/smoke"
    r = subprocess.run([sys.executable, str(root / "tests" / "synthetic.py"), "cache/smoke"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = cache.read_index(tmp_path / "cache" / "smoke")
    assert len(rows) == 3 * (8 + 3 + 3) and {r["split"] for r in rows} == {"train", "dev", "test"}


def test_recipe_commands_in_the_cli(tmp_path, capsys):
    from emolite.cli import main

    with pytest.raises(SystemExit) as e:
        main(["train-face", "--help"])
    assert e.value.code == 0 and "--exclude" in capsys.readouterr().out   # the recipe's own options
    assert main(["train-default", str(tmp_path / "nowhere"), "--stage", "face", "--work", str(tmp_path / "w")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "fer2013" in err[0]   # one line, no traceback
