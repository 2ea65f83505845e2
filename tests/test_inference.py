"""EmotionModel.predict: faces are found in images first (or taken whole, and it says so),
lists of images give lists of answers, audio without voice gives no label; analyze gives no
label to windows with neither a face nor voice, and NaN audio never reaches the answer."""

import json
import math

import numpy as np
import pytest

from emolite.demo import face_image, make_clip, voice
from emolite.errors import EmoliteError
from emolite.inference import audio_windows, load_model
from emolite.spec import InputSpec


@pytest.fixture(scope="module")
def model(checkpoint):
    return load_model(checkpoint)


def test_predict_finds_the_face_in_a_photo(model):
    photo = face_image()
    p = model.predict(face=photo)
    assert p.face_found is True and p.label in model.classes and not p.notes
    crop, found = model.face_crops(photo)
    assert found and crop.shape == (1, model.spec.face_size, model.spec.face_size, 3)
    # the crop analyze would take differs from squashing the whole portrait
    whole, found = model.face_crops(photo, detect=False)
    assert not found and np.abs(crop.astype(int) - whole.astype(int)).mean() > 10


def test_predict_falls_back_to_the_whole_image_and_says_so(model):
    p = model.predict(face=np.full((400, 300, 3), 90, np.uint8))
    assert p.face_found is False and "whole image" in p.notes[0] and p.label in model.classes
    p = model.predict(face=face_image(), detect=False)       # pre-cropped faces: no detection asked
    assert p.face_found is False and not p.notes


def test_a_list_of_images_gives_a_list_of_predictions(model):
    imgs = [face_image(), face_image()[:, ::-1], np.zeros((64, 64, 3), np.uint8)]
    out = model.predict(face=imgs)
    assert isinstance(out, list) and len(out) == 3
    assert [p.label for p in out[:2]] == [model.predict(face=imgs[0]).label, model.predict(face=imgs[1]).label]


def test_audio_without_voice_gets_no_label(model):
    for silent in (np.zeros(48000, np.float32), 0.1 * np.sin(np.arange(48000) / 16000 * 2 * np.pi * 50).astype(np.float32)):
        p = model.predict(audio=silent)
        assert p.label is None and p.confidence is None and all(v is None for v in p.probs.values())
        assert "no voice" in p.notes[0]
    assert model.predict(audio=voice(3.0)).label in model.classes


def test_long_audio_is_cut_into_the_models_windows():
    spec = InputSpec(audio_seconds=3.0, hop_seconds=1.0)
    w = audio_windows(np.arange(16000 * 7, dtype=np.float32), spec)
    assert [len(x) for x in w] == [48000] * 5 and w[-1][-1] == 16000 * 7 - 1
    assert len(audio_windows(np.zeros(16000, np.float32), spec)) == 1


def test_silent_file_gets_no_label_and_says_why(model, tmp_path):
    wav = make_clip(tmp_path / "silence.wav", seconds=3.0, sound=np.zeros(48000, np.float32))
    r = model.analyze(wav)
    assert r.label is None and r.confidence is None and all(w.label is None and not w.voice for w in r.windows)
    assert "no face and no voice" in r.warnings[0]
    spoken = model.analyze(make_clip(tmp_path / "voice.wav", seconds=3.0))
    assert spoken.label in model.classes and all(w.voice for w in spoken.windows)


def test_silence_cli_outputs_are_valid_json_with_nulls(tmp_path):
    from emolite.cli import main

    wav = make_clip(tmp_path / "silence.wav", seconds=3.0, sound=np.zeros(48000, np.float32))
    assert main(["analyze", str(wav), "-o", str(tmp_path / "out"), "--plot"]) == 0
    doc = json.loads((tmp_path / "out" / "emotions.json").read_text())
    res = doc["results"][0]
    assert res["label"] is None and res["windows"][0]["label"] is None
    row = (tmp_path / "out" / "emotions.csv").read_text().splitlines()[1]
    assert ",," in row      # empty label/confidence cells, not "nan"


def float_wav(path, x: np.ndarray, sr: int = 16000):
    """A 32-bit float WAV (format 3), which can hold NaN and inf samples."""
    import struct

    data = np.asarray(x, "<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, sr, sr * 4, 4, 32)
    path.write_bytes(b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(data)) + b"WAVE"
                     + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data)
    return path


def test_nan_audio_is_cleaned_never_propagated(model, tmp_path):
    x = voice(3.0)
    x[1000:3000] = np.nan
    x[5000] = np.inf
    wav = float_wav(tmp_path / "nan.wav", x)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")      # no Python warning (no "features.py:50: UserWarning" line)
        r = model.analyze(wav)
    assert [w for w in r.warnings if "NaN/inf" in w] == ["2001 NaN/inf audio samples set to 0"]   # said once
    assert r.label in model.classes
    assert all(math.isfinite(v) for w in r.windows for v in w.probs.values())
    json.dumps(r.to_dict(), allow_nan=False)   # strict JSON: no bare NaN


def _with_meta(checkpoint, tmp_path, name, **changes):
    import torch

    ck = torch.load(checkpoint, weights_only=True)
    meta = dict(ck["meta"])
    for key, value in changes.items():
        where, field_ = key.split("__")
        meta[where] = {**(meta.get(where) or {}), field_: value} if field_ else value
    ck["meta"] = meta
    torch.save(ck, tmp_path / name)
    return tmp_path / name


@pytest.mark.parametrize("changes, words", [
    ({"preprocess__frames": 1e9}, "frames=1000000000 is outside"),
    ({"preprocess__window_seconds": 0}, "window_seconds=0.0 is outside"),
    ({"preprocess__hop_seconds": -1}, "hop_seconds=-1.0 is outside"),
    ({"preprocess__detector": "banana"}, "detector='banana'"),
    ({"preprocess__face_size": "big"}, "face_size='big'"),
    ({"preprocess__audio_seconds": float("inf")}, "audio_seconds=inf"),
    ({"num_classes__": 10 ** 9}, "num_classes=1000000000"),
    ({"model__fusion_dim": 10 ** 9}, "fusion_dim"),
])
def test_a_record_no_input_can_have_is_refused_at_load(changes, words, checkpoint, tmp_path, clip, capsys):
    """Checked when the model loads (one line naming the model file, exit 1), before any
    allocation of the record's sizes or a division by its lengths."""
    import resource

    from emolite.cli import main

    path = _with_meta(checkpoint, tmp_path, "bad.pt", **changes)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert main(["analyze", str(clip), "-q", "--model", str(path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {path}") and words in err and "\n" not in err, err
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 1_000_000   # KiB: no GiB buffer


def test_a_model_path_that_is_not_a_regular_file_is_refused_at_once(tmp_path):
    import os
    import time

    fifo = tmp_path / "model.pt"
    os.mkfifo(fifo)
    t = time.time()
    for p in (fifo, tmp_path):
        with pytest.raises(EmoliteError, match="not a regular file"):
            load_model(p)
    assert time.time() - t < 5


def test_the_probe_reports_bad_files_and_lets_bugs_surface(checkpoint, monkeypatch):
    from emolite import inference

    def shape_error(self, batch):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")
    monkeypatch.setattr(inference.EmotionModel, "predict_inputs", shape_error)
    with pytest.raises(EmoliteError, match="does not take the inputs"):
        load_model(checkpoint)

    def bug(self, batch):
        raise TypeError("unsupported operand type(s)")   # a library bug, not the model file's fault
    monkeypatch.setattr(inference.EmotionModel, "predict_inputs", bug)
    with pytest.raises(TypeError):
        load_model(checkpoint)

def test_stereo_audio_is_mixed_down(model):
    x = voice(3.0)
    mono = model.predict(audio=x)
    for stereo in (np.stack([x, x], 1), np.stack([x, x], 0)):          # samples×channels or channels×samples
        p = model.predict(audio=stereo)
        assert p.label == mono.label and abs(p.confidence - mono.confidence) < 1e-5


@pytest.mark.parametrize("arg, value, shape", [
    ("face", np.zeros((0, 0, 3), np.uint8), "0×0×3"),              # a 0×0 image
    ("face", np.zeros(100, np.uint8), "100"),                      # a 1-D array as a face
    ("face", np.zeros((1, 2, 8, 8, 3), np.uint8), "1×2×8×8×3"),    # 5-D
    ("context", np.zeros((2, 2, 8, 8, 3), np.uint8), "2×2×8×8×3"),
    ("face", np.zeros((4, 8, 8, 5), np.uint8), "4×8×8×5"),         # five colour channels
    ("audio", np.zeros((3, 16000, 2), np.float32), "3×16000×2"),
    ("audio", np.zeros((100, 100), np.float32), "100×100"),        # no channel axis
])
def test_bad_array_shapes_are_one_value_error_naming_the_argument(model, arg, value, shape):
    with pytest.raises(ValueError, match=rf"^{arg} takes .*got an array of shape {shape}$") as e:
        model.predict(**{arg: value})
    assert isinstance(e.value, EmoliteError)             # and one line on the CLI


def test_strings_are_not_pixels(model):
    with pytest.raises(ValueError, match="face must be an array of numbers"):
        model.predict(face=np.array([["a"]]))


def test_nan_audio_in_predict_is_a_note_not_a_warning(model):
    import warnings

    x = voice(3.0)
    x[:100] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = model.predict(audio=x)
    assert p.label in model.classes and p.notes == ["100 NaN/inf audio samples set to 0"]


@pytest.mark.parametrize("window", [0, 0.0, 0.01, -1.0, float("nan")])
def test_analyze_window_out_of_range_names_window(model, clip, window):
    with pytest.raises(EmoliteError, match=r"^window must be a number >= 0\.25"):
        model.analyze(clip, window=window)
    with pytest.raises(EmoliteError, match=r"^hop must be"):
        model.analyze(clip, hop=0)
