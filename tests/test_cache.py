import json

import numpy as np
import pytest

from emolite import cache
from emolite.errors import EmoliteError


def _arrays(n=4):
    rng = np.random.default_rng(0)
    img = np.zeros((n, 112, 112, 3), np.uint8)
    img[:, 30:80, 30:80] = rng.integers(0, 255, 3, dtype=np.uint8)
    return {"face": img, "context": img, "face_mask": np.array([True, False, True, True][:n]),
            "audio": (0.5 * np.sin(np.arange(16000) / 5)).astype(np.float32),
            "boxes": np.ones((n, 4), np.float32)}


def test_round_trip(tmp_path):
    d = cache.cache_dir(tmp_path, {"fps": 5})
    a = _arrays()
    f = cache.write_entry(d, "clip_1", a, {"label": "anger", "speaker": "s1", "split": "train", "duration": 1.0})
    e = cache.load_entry(f)
    assert e["face"].shape == (4, 112, 112, 3) and e["face_mask"].tolist() == [True, False, True, True]
    assert e["face"][1].max() == 0  # frames without a face are not stored, they decode to zeros
    assert np.abs(e["face"][0].astype(int) - a["face"][0]).mean() < 3  # JPEG, near-lossless at q90
    assert np.abs(e["audio"] - a["audio"]).max() < 1e-4
    assert e["has_video"] and e["has_audio"] and e["meta"]["label"] == "anger"
    rows = cache.read_index(tmp_path)  # the root resolves to its only config folder
    assert rows[0]["key"] == "clip_1" and rows[0]["label"] == "anger" and rows[0]["split"] == "train"


def test_config_key_changes_with_config(tmp_path):
    assert cache.config_key({"fps": 5}) == cache.config_key({"fps": 5})
    assert cache.config_key({"fps": 5}) != cache.config_key({"fps": 4})
    d = cache.cache_dir(tmp_path, {"fps": 5})
    assert json.loads((d / "config.json").read_text())["fps"] == 5


def test_entries_are_readable_without_pyav(tmp_path):
    d = cache.cache_dir(tmp_path, {})
    f = cache.write_entry(d, "k", _arrays(), {})
    with np.load(f, allow_pickle=False) as z:  # plain npz, no pickled objects
        assert z["audio"].dtype == np.int16


def test_atomic_write_leaves_no_partial_file(tmp_path, monkeypatch):
    d = cache.cache_dir(tmp_path, {})

    class Boom(Exception):
        pass

    from emolite import fsio

    real = fsio.os.replace

    def fail(*a):
        raise Boom()

    monkeypatch.setattr(fsio.os, "replace", fail)
    with pytest.raises(Boom):
        cache.write_entry(d, "k", _arrays(), {})
    monkeypatch.setattr(fsio.os, "replace", real)
    assert list((d / "entries").iterdir()) == []


def test_moved_cache_still_resolves(tmp_path):
    import shutil

    d = cache.cache_dir(tmp_path / "a", {})
    cache.write_entry(d, "k", _arrays(), {"label": "joy"})
    cache.rebuild_index(d)
    shutil.move(str(tmp_path / "a"), str(tmp_path / "b"))
    rows = cache.read_index(tmp_path / "b")
    assert cache.load_entry(rows[0]["file"])["meta"]["label"] == "joy"


def test_missing_cache_is_a_clear_error(tmp_path):
    with pytest.raises(EmoliteError, match="emolite preprocess"):
        cache.read_index(tmp_path)
