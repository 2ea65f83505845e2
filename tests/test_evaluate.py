"""evaluate.run: JSON fields, confusion PNG, label-set mapping with dropped classes."""

import json

import pytest
import torch

from emolite import evaluate, metrics, models, train
from synthetic import make_synthetic_cache
from emolite.errors import EmoliteError

torch.set_num_threads(1)
TINY = dict(face_width=8, face_dim=32, context_width=8, context_dim=32, audio_dim=32, audio_channels=[8, 8, 16, 16],
            audio_hidden=32, n_mels=32, hidden=32, fusion_dim=32)
PRE = {"frames": 2, "audio_seconds": 0.5, "fps": 5.0, "face_size": 112}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """An untrained MELD-like model (7 classes incl. surprise)."""
    torch.manual_seed(0)
    classes = ["anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise"]
    m = models.build_model("attention", len(classes), **TINY)
    return models.save_checkpoint(tmp_path_factory.mktemp("ck") / "best.pt", m, {"classes": classes, "preprocess": PRE})


def test_metrics_json_and_png(ckpt, tmp_path):
    cache = make_synthetic_cache(tmp_path / "c", classes=("anger", "happiness", "neutral"),
                                       n_per_class={"test": 3})
    res = evaluate.run(ckpt, cache, split="test", out_dir=tmp_path / "out")
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert saved == json.loads(json.dumps(res))
    for k in ["accuracy", "f1_weighted", "f1_macro", "uar"]:
        assert 0.0 <= res[k] <= 1.0
    assert res["n"] == 9 and res["dropped_labels"] == [] and res["dropped_samples"] == 0
    assert set(res["per_class"]) == set(res["classes"]) and len(res["confusion_matrix"]) == 7
    assert res["per_class"]["anger"]["support"] == 3 and res["per_class"]["surprise"]["support"] == 0
    assert "surprise" in res["absent_classes"]
    assert sum(map(sum, res["confusion_matrix"])) == 9
    png = tmp_path / "out" / "confusion_matrix.png"
    assert png.exists() and png.read_bytes()[:4] == b"\x89PNG"
    assert len((tmp_path / "out" / "predictions.csv").read_text().splitlines()) == 10


def test_label_set_mapping_drops_unknown(ckpt, tmp_path, capsys):
    # RAVDESS-like data: "calm" has no counterpart in the MELD label set
    cache = make_synthetic_cache(tmp_path / "r", classes=("calm", "happiness", "sadness"),
                                       n_per_class={"test": 2})
    res = evaluate.run(ckpt, cache, split="test", out_dir=tmp_path / "o")
    assert res["dropped_labels"] == ["calm"] and res["dropped_samples"] == 2 and res["n"] == 4
    assert res["label_mapping"] == {"happiness": "happiness", "sadness": "sadness"}
    assert "calm" in capsys.readouterr().out
    # only unknown classes -> a clear error
    cache2 = make_synthetic_cache(tmp_path / "x", classes=("calm", "boredom"), n_per_class={"test": 1})
    with pytest.raises(EmoliteError, match="no sample's class"):
        evaluate.run(ckpt, cache2, split="test", out_dir=tmp_path / "o2")
    with pytest.raises(EmoliteError, match="splits here: test"):
        evaluate.run(ckpt, cache2, split="dev", out_dir=tmp_path / "o3")


def test_metric_registry():
    ms = metrics.build_metrics(["acc", "f1_weighted", "f1_macro", "uar"], 3)
    y = torch.tensor([0, 1, 2, 2])
    vals = metrics.metric_values(ms(torch.nn.functional.one_hot(y, 3).float(), y))
    assert all(v == pytest.approx(1.0) for v in vals.values())
    with pytest.raises(EmoliteError, match="unknown metric"):
        metrics.build_metrics(["nope"], 3)
