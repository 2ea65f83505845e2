"""The input record (InputSpec) travels from the cache to the checkpoint to the ONNX file and
is what analyze and predict use: a model trained on non-default crops is fed those crops."""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from emolite import analyze, config, faces, preprocess, train
from emolite.export import export
from emolite.inference import load_model
from emolite.spec import InputSpec

ROOT = Path(__file__).resolve().parents[1]
CUSTOM = {"face_size": 64, "context_size": 48, "margin": 0.4, "align": True, "fps": 2.0}


def test_record_round_trip_and_old_checkpoints():
    spec = InputSpec(face_size=64, margin=0.4, align=True, detector="whole")
    assert InputSpec.from_dict({**spec.to_dict(), "jpeg_quality": 90, "version": 1}) == spec
    old = InputSpec.from_dict({"frames": 8, "audio_seconds": 3.0})   # a checkpoint from before the record
    assert (old.frames, old.audio_seconds) == (8, 3.0)
    assert (old.face_size, old.detector, old.margin, old.align) == (112, faces.DETECTOR, faces.MARGIN, False)
    m = load_model()   # the shipped model carries its record: 48-px faces cut at the detector box, 3-s windows
    assert (m.frames, m.seconds, m.spec.window_seconds) == (8, 3.0, 3.0)
    assert (m.spec.face_size, m.spec.margin, m.spec.detector) == (48, 0.0, faces.DETECTOR)


@pytest.fixture(scope="module")
def custom_model(tmp_path_factory, clip):
    """A tiny model trained on a cache made with face 64 px, context 48 px, margin 0.4, aligned."""
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("custom")
    for split in ("train", "dev"):
        for label in ("anger", "happiness"):
            (tmp / "data" / split / label).mkdir(parents=True)
            shutil.copy(clip, tmp / "data" / split / label / f"{label}.mp4")
    s = preprocess.run("folder", tmp / "data", tmp / "cache", workers=1, progress=False, **CUSTOM)
    assert s["done"] == 4 and s["failed"] == 0
    cfg = config.load_config(ROOT / "configs" / "smoke.toml", [
        f'data.cache_dir="{s["cache"]}"', f'trainer.out_dir="{tmp / "runs"}"', 'trainer.name="custom"',
        "optim.epochs=1", "data.batch_size=2", "augment.enabled=false"])
    res = train.run(cfg)
    return Path(res["best_checkpoint"])


def test_train_copies_the_record_into_the_checkpoint(custom_model):
    spec = load_model(custom_model).spec
    assert spec == InputSpec(frames=4, audio_seconds=1.0, window_seconds=1.0, hop_seconds=1.0, **CUSTOM)


def test_analyze_and_predict_use_the_record(custom_model, clip, monkeypatch):
    model = load_model(custom_model)
    calls, shapes = [], []
    real_features, real_predict = analyze.window_features, model.predict_inputs

    def spy_features(w, detector, face_size, context_size, margin, align, **kw):
        calls.append((face_size, context_size, margin, align))
        return real_features(w, detector, face_size, context_size, margin, align, **kw)

    def spy_predict(batch):
        shapes.append((batch["face"].shape[-1], batch["context"].shape[-1]))
        return real_predict(batch)

    monkeypatch.setattr(analyze, "window_features", spy_features)
    model.predict_inputs = spy_predict
    r = model.analyze(clip)
    assert r.windows and set(calls) == {(64, 48, 0.4, True)} and set(shapes) == {(64, 48)}
    assert any(w.face_found for w in r.windows)
    shapes.clear()
    model.predict(face=np.zeros((120, 100, 3), np.uint8), audio=np.zeros(8000, np.float32))
    assert shapes == [(64, 48)]


def test_onnx_export_keeps_the_record(custom_model, clip, tmp_path):
    rep = export(custom_model, tmp_path / "m.onnx")
    assert rep["max_abs_prob_diff"] <= 1e-4
    onnx_model, torch_model = load_model(tmp_path / "m.onnx"), load_model(custom_model)
    assert onnx_model.spec == torch_model.spec and onnx_model.spec.face_size == 64
    a, b = torch_model.analyze(clip), onnx_model.analyze(clip)
    for wa, wb in zip(a.windows, b.windows):
        assert max(abs(wa.probs[c] - wb.probs[c]) for c in wa.probs) <= 1e-4


def test_files_dataset_loads_in_a_fresh_interpreter(tmp_path, audio_only):
    shutil.copy(audio_only, tmp_path / "v.wav")
    code = ("import sys; from emolite.data import load_dataset; "
            "items, _ = load_dataset('files', sys.argv[1]); print(len(items))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"


@pytest.fixture(scope="module")
def four_second_run(tmp_path_factory):
    """`emolite train` as a new user runs it, on 4-s inputs (data.audio_seconds=4.0), kept tiny."""
    from synthetic import make_synthetic_cache

    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("four")
    cache_dir = make_synthetic_cache(tmp / "cache", n_per_class={"train": 3, "dev": 1}, seconds=4.0)
    cfg = config.load_config(ROOT / "configs" / "smoke.toml", [
        f'data.cache_dir="{cache_dir}"', f'trainer.out_dir="{tmp / "runs"}"', 'trainer.name="four"',
        "data.audio_seconds=4.0", "optim.epochs=1", "optim.max_steps=2", 'data.test_split=""',
        "augment.enabled=false", "trainer.ckpt_every_n_steps=1"])
    return Path(train.run(cfg)["run_dir"])


def test_a_model_trained_on_4s_inputs_records_4s_windows_everywhere(four_second_run, tmp_path):
    run = four_second_run
    paths = [run / "best.pt", run / "checkpoints" / "last.ckpt", run / "checkpoints" / "best.ckpt"]
    rep = export(paths[0], tmp_path / "four.onnx")
    for p in paths + [Path(rep["onnx"])]:
        spec = load_model(p).spec
        assert (spec.audio_seconds, spec.window_seconds, spec.frames) == (4.0, 4.0, 4), p
        assert spec.hop_seconds <= spec.window_seconds


def test_analyze_serve_and_predict_use_the_trained_length(four_second_run, tmp_path):
    from emolite.demo import make_clip, voice
    from emolite.serve.session import live_settings

    for p in (four_second_run / "best.pt", four_second_run / "checkpoints" / "last.ckpt"):
        model = load_model(p)
        r = model.analyze(make_clip(tmp_path / "nine.mp4", seconds=9.0))
        assert r.windows and all(w.end - w.start == pytest.approx(4.0, abs=0.05) for w in r.windows)
        assert live_settings(model).window == 4.0 and live_settings(model).window_samples == 64000
        seen, real = [], model.predict_inputs
        model.predict_inputs = lambda batch: seen.append(batch["audio"].shape[-1]) or real(batch)
        model.predict(audio=voice(6.0))
        assert seen and set(seen) == {64000}


def test_a_lightning_checkpoint_without_its_record_is_refused(four_second_run, tmp_path, capsys):
    from emolite.cli import main

    ck = torch.load(four_second_run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ck["emolite"]["preprocess"]["window_seconds"] == 4.0 and ck["emolite"]["model"]["face"]["dim"] == 32
    del ck["emolite"]["preprocess"]
    torch.save(ck, tmp_path / "old.ckpt")
    assert main(["export", "--model", str(tmp_path / "old.ckpt"), "-o", str(tmp_path / "x.onnx")]) == 1
    err = capsys.readouterr().err.strip()
    assert "old.ckpt" in err and "input record" in err and "\n" not in err


def test_record_values_are_typed_and_in_range():
    with pytest.raises(ValueError, match="frames='banana'"):
        InputSpec.from_dict({"frames": "banana"})
    with pytest.raises(ValueError, match="align='yes'"):
        InputSpec.from_dict({"align": "yes"})
    for bad in ({"frames": 1e9}, {"window_seconds": 0}, {"hop_seconds": -1}, {"fps": float("nan")},
                {"face_size": 10 ** 6}, {"detector": "banana"}, {"sample_rate": 1}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            InputSpec.from_dict(bad).check()
    assert InputSpec().trained_on(4, 0.5) == InputSpec(frames=4, audio_seconds=0.5, window_seconds=0.5, hop_seconds=0.5)
