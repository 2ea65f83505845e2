import csv
import json

import numpy as np
import pytest

from emolite import analyze
from emolite.cli import main
from emolite.inference import load_model


@pytest.fixture(scope="module")
def model(checkpoint):
    return load_model(checkpoint)


def test_timeline_for_a_video(model, clip):
    r = model.analyze(clip)
    assert [(w.start, w.end) for w in r.windows] == [(0.0, 2.0), (1.0, 3.0)]
    for w in r.windows:
        assert w.face_found and len(w.face_box) == 4 and w.has_audio
        assert abs(sum(w.probs.values()) - 1) < 1e-4 and w.label == max(w.probs, key=w.probs.get)
        x1, y1, x2, y2 = w.face_box
        assert 0 <= x1 < x2 <= 320 and 0 <= y1 < y2 <= 240  # pixels of the original 320×240 video
    assert r.label in model.classes and r.modalities == {"video": True, "audio": True} and r.faces_found == 1.0
    df = r.to_dataframe()
    assert len(df) == 2 and "p_anger" in df.columns


def test_audio_only_image_and_no_face_report_missing_modality(model, audio_only, face_png, no_face):
    r = model.analyze(audio_only)
    assert not r.windows[0].has_video and "voice only" in r.warnings[0]
    r = model.analyze(face_png)
    assert len(r.windows) == 1 and r.windows[0].face_found and "no audio" in r.warnings[0]
    r = model.analyze(no_face)
    assert not any(w.face_found for w in r.windows) and "no face" in r.warnings[0]


def test_face_boxes_follow_original_resolution(model, media_dir):
    from emolite.demo import make_clip

    p = make_clip(media_dir / "hd.mp4", seconds=2.0, width=1280, height=720, audio=False)
    r = model.analyze(p)
    x1, y1, x2, y2 = r.windows[0].face_box
    # frames are analysed at 640×360; the face box (~68 px wide there) is reported in 720p pixels
    assert x2 - x1 > 110 and x2 <= 1280 and y2 <= 720


def test_cli_batch_outputs_and_exit_code(checkpoint, clip, audio_only, bad_files, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["analyze", str(clip), str(audio_only), str(bad_files["empty"]), str(tmp_path / "missing.mp4"),
                 "--model", str(checkpoint), "-o", str(out), "--plot", "-q"])
    assert code == 2  # some inputs failed, the others were analysed
    rows = list(csv.DictReader(open(out / "emotions.csv")))
    assert {r["file"] for r in rows} == {str(clip), str(audio_only)}
    data = json.loads((out / "emotions.json").read_text())
    assert data["analyzed"] == 2 and len(data["failed"]) == 2
    assert (out / f"{clip.name}.png").stat().st_size > 5000
    err = capsys.readouterr().out
    assert "file is empty" in err and "no such file or folder" in err


def test_cli_table_and_glob(checkpoint, clips, capsys):
    folder = clips[".mp4"].parent
    assert main(["analyze", str(folder / "c.*"), "--model", str(checkpoint), "-q"]) == 0
    assert main(["analyze", str(clips[".mkv"]), "--model", str(checkpoint)]) == 0
    out = capsys.readouterr().out
    assert "overall:" in out and "start" in out


def test_expand_inputs_reports_problems(tmp_path):
    (tmp_path / "empty").mkdir()
    files, problems = analyze.expand_inputs([str(tmp_path / "empty"), str(tmp_path / "*.zzz")])
    assert files == [] and len(problems) == 2


def test_predict_from_arrays(model):
    from emolite.demo import face_image

    face = face_image()
    p = model.predict(face=face)
    assert p.label in model.classes and abs(sum(p.probs.values()) - 1) < 1e-4
    from emolite.demo import voice

    p = model.predict(audio=voice(2.0))
    assert p.label in model.classes
    p = model.predict(audio=np.zeros(16000, np.float32) + 0.01)   # DC, no voice: no label, and why
    assert p.label is None and p.confidence is None and "no voice" in p.notes[0]
    from emolite.errors import EmoliteError

    with pytest.raises(EmoliteError, match="nothing to predict"):
        model.predict()


def test_bad_model_path_is_clear(tmp_path):
    from emolite.errors import EmoliteError

    with pytest.raises(EmoliteError, match="model file not found"):
        load_model(tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(EmoliteError, match="not an emolite checkpoint"):
        load_model(tmp_path / "junk.pt")
