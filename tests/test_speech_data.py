"""Labelled speech folders (emolite.data.speech), the pooled label rule, corpus-balanced sampling
weights and leave-one-corpus-out splits (emolite.data.splits), on fixture trees made here:
tiny Ogg/Opus (what nemo/, ased/, turev/ hold) and WAV files written by PyAV."""

from __future__ import annotations

import csv
import math
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from emolite import labels
from emolite.data import Item, load_dataset
from emolite.data.speech import SPEECH_CORPORA
from emolite.data.splits import balance_weights, loco_folds
from emolite.demo import make_clip
from emolite.errors import EmoliteError
from emolite.media import load_audio
from emolite.registry import DATASETS

SR = 16000


def write_opus(path: Path, seconds: float = 0.3, freq: float = 220.0) -> Path:
    """A real 16 kHz mono Ogg/Opus file (a tone), as the staged corpora store speech."""
    import av

    x = (0.3 * np.sin(2 * np.pi * freq * np.arange(int(seconds * SR)) / SR)).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="ogg") as out:
        stream = out.add_stream("libopus", rate=SR)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(x[None, :], format="flt", layout="mono")
        frame.sample_rate = SR
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    return path


@pytest.fixture(scope="module")
def sounds(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("sounds")
    return {".opus": write_opus(folder / "tone.opus"), ".wav": make_clip(folder / "tone.wav", seconds=0.3)}


def speech_tree(root: Path, sounds: dict[str, Path], rows: list[dict], header: list[str] | None = None,
                missing: set[str] = frozenset()) -> Path:
    """root/labels.csv with `rows`, and a copy of a real clip (by extension) for every file not in `missing`."""
    root.mkdir(parents=True, exist_ok=True)
    header = header or list(rows[0])
    with open(root / "labels.csv", "w", newline="") as f:
        w = csv.DictWriter(f, header)
        w.writeheader()
        w.writerows(rows)
    for r in rows:
        if r["file"] not in missing and Path(r["file"]).suffix in sounds:
            (root / r["file"]).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(sounds[Path(r["file"]).suffix], root / r["file"])
    return root


def grid(speakers: list[str], emotions: list[str], ext: str = ".opus", per: int = 1) -> list[dict]:
    return [{"file": f"audio/{s}_{e}_{i}{ext}", "speaker": s, "emotion": e, "text": "a b"}
            for s in speakers for e in emotions for i in range(per)]


# ----------------------------------------------------------------------------- the loader

def test_speech_folder_reads_opus_prefixes_speakers_and_splits_by_speaker(tmp_path, sounds):
    rows = grid(["01", "02", "03", "04", "05", "06"], ["Happy", "angry", "neutral"])
    root = speech_tree(tmp_path / "My Corpus", sounds, rows)
    items, problems = load_dataset("speech", root)
    assert problems == []
    assert len(items) == 18
    assert {it.dataset for it in items} == {"my_corpus"}
    assert {it.speaker for it in items} == {f"my_corpus_0{i}" for i in range(1, 7)}
    assert Counter(it.label for it in items) == {"happiness": 6, "anger": 6, "neutral": 6}
    assert all(it.key.startswith("my_corpus_audio_") for it in items) and len({it.key for it in items}) == 18
    split_of = {}
    for it in items:
        assert split_of.setdefault(it.speaker, it.split) == it.split   # a speaker never straddles splits
    assert set(split_of.values()) == {"train", "dev", "test"}
    assert load_audio(items[0].path).size > 0   # the fixture is real, decodable Opus
    again, _ = load_dataset("speech", root / "labels.csv", corpus="Other")
    assert {it.dataset for it in again} == {"other"} and all(it.speaker.startswith("other_") for it in again)
    folds = [load_dataset("speech", root, folds=3, fold=k, splits="test")[0] for k in range(3)]
    assert sorted(it.key for f in folds for it in f) == sorted(it.key for it in items)


def test_speech_problems_are_path_reason_pairs_and_never_abort(tmp_path, sounds):
    rows = grid(["a", "b"], ["sadness"]) + [
        {"file": "audio/gone.opus", "speaker": "a", "emotion": "anger", "text": ""},
        {"file": "audio/empty.wav", "speaker": "a", "emotion": "anger", "text": ""},
        {"file": "audio/odd.opus", "speaker": "a", "emotion": "excited", "text": ""},
        {"file": "audio/nospk.opus", "speaker": "", "emotion": "anger", "text": ""},
        {"file": "audio/notes.txt", "speaker": "b", "emotion": "anger", "text": ""},
    ]
    root = speech_tree(tmp_path / "c", sounds, rows, missing={"audio/gone.opus"})
    (root / "audio" / "empty.wav").write_bytes(b"")
    (root / "audio" / "notes.txt").write_text("x")
    items, problems = load_dataset("speech", root)
    assert [Path(it.path).name for it in sorted(items, key=lambda i: i.key)] == ["a_sadness_0.opus", "b_sadness_0.opus"]
    why = {Path(p).name: reason for p, reason in problems}
    assert set(why) == {"gone.opus", "empty.wav", "odd.opus", "nospk.opus", "notes.txt"}
    assert why["gone.opus"].startswith("missing file") and "labels.csv:" in why["gone.opus"]
    assert why["empty.wav"].startswith("empty file")
    assert "unknown emotion 'excited'" in why["odd.opus"]
    assert "empty speaker" in why["nospk.opus"]
    assert "not an audio or video file" in why["notes.txt"]
    kept, _ = load_dataset("speech", root, classes=["excited", "sadness"])   # a user's own class
    assert Counter(it.label for it in kept) == {"sadness": 2, "excited": 1}


def test_speech_header_errors_and_options(tmp_path, sounds):
    root = speech_tree(tmp_path / "c", sounds, [{"file": "x.opus", "emotion": "anger"}])
    with pytest.raises(EmoliteError, match="speaker"):
        load_dataset("speech", root)
    with pytest.raises(EmoliteError, match="unknown option"):
        load_dataset("speech", root, speakers="x")
    with pytest.raises(EmoliteError, match="sets its own corpus"):
        load_dataset("nemo", root, corpus="x")


def test_named_corpora_map_their_labels_and_pool(tmp_path, sounds):
    assert set(SPEECH_CORPORA) <= set(DATASETS)
    nemo = speech_tree(tmp_path / "nemo", sounds, grid(["EB0", "KS0"], ["surprised", "fear", "disgust"]))
    items, problems = load_dataset("nemo", nemo)
    assert Counter(it.label for it in items) == {"surprise": 2, "fear": 2}
    assert {it.speaker for it in items} == {"nemo_EB0", "nemo_KS0"} and {it.dataset for it in items} == {"nemo"}
    assert len(problems) == 2 and all("unknown emotion 'disgust' for nemo" in r for _, r in problems)
    turev = speech_tree(tmp_path / "turev", sounds, grid(["1157", "1234"], ["calm", "kz", "happiness"]))
    raw, _ = load_dataset("turev", turev)
    assert Counter(it.label for it in raw) == {"calm": 2, "anger": 2, "happiness": 2}
    pooled, _ = load_dataset("turev", turev, pool=True)
    assert Counter(it.label for it in pooled) == {"neutral": 2, "anger": 2, "happiness": 2}
    emodb = speech_tree(tmp_path / "emodb", sounds, grid(["03", "08"], ["boredom", "anger"], ".wav"))
    assert Counter(it.label for it in load_dataset("emodb", emodb)[0]) == {"boredom": 2, "anger": 2}
    assert Counter(it.label for it in load_dataset("emodb", emodb, pool=True)[0]) == {"anger": 2}


def test_pooling_rule():
    assert labels.pool_label("calm") == "neutral"
    assert labels.pool_label("boredom") is None
    assert [labels.pool_label(c) for c in labels.EMOTIONS] == list(labels.EMOTIONS)


def test_pooled_csv_with_corpus_column_keeps_speakers_apart(tmp_path, sounds):
    rows = [{**r, "corpus": c} for c in ("ased", "mine") for r in grid(["01", "02", "03"], ["anger", "fear"])]
    for r in rows:
        r["file"] = f"{r['corpus']}/{r['file']}"
        r["split"] = "test" if r["speaker"] == "03" else "train"
    root = speech_tree(tmp_path / "pool", sounds, rows)
    items, problems = load_dataset("speech", root)
    assert problems == []
    assert Counter(it.dataset for it in items) == {"ased": 6, "mine": 6}
    assert len({it.speaker for it in items}) == 6   # "01" of ased and of mine are two speakers
    assert {it.speaker for it in items if it.split == "test"} == {"ased_03", "mine_03"}   # the CSV's splits
    resplit, _ = load_dataset("speech", root, fractions=(0.5, 0.0, 0.5), seed=3)
    assert {it.split for it in resplit} == {"train", "test"}
    assert all(len({it.dataset for it in resplit if it.split == s}) == 2 for s in ("train", "test"))


# ----------------------------------------------------------------------------- balanced weights

def items_of(spec: dict[str, dict[str, int]], label_cycle: tuple[str, ...] = ("anger", "neutral")) -> list[Item]:
    """{corpus: {speaker: n items}} -> Items (labels cycled)."""
    out = []
    for corpus, speakers in spec.items():
        for spk, n in speakers.items():
            out += [Item(path=f"/{corpus}/{spk}/{i}.opus", label=label_cycle[i % len(label_cycle)], speaker=spk,
                         dataset=corpus, key=f"{corpus}_{spk}_{i}") for i in range(n)]
    return out


def test_balance_weights_give_each_corpus_then_speaker_an_equal_share():
    items = items_of({"big": {"01": 3000, "02": 1000}, "small": {"01": 100, "02": 200, "03": 200}})
    w = np.array(balance_weights(items))
    corpus = np.array([it.dataset for it in items])
    speaker = np.array([f"{it.dataset}/{it.speaker}" for it in items])
    assert math.isclose(w.sum(), 1.0)
    assert math.isclose(w[corpus == "big"].sum(), 0.5) and math.isclose(w[corpus == "small"].sum(), 0.5)
    assert math.isclose(w[speaker == "big/01"].sum(), 0.25) and math.isclose(w[speaker == "big/02"].sum(), 0.25)
    for s in ("small/01", "small/02", "small/03"):   # speaker "01" of each corpus is its own speaker
        assert math.isclose(w[speaker == s].sum(), 1 / 6)
    rows = [it.to_dict() for it in items]            # cache index rows work too
    assert np.allclose(balance_weights(rows), w)
    by_label = np.array(balance_weights(items_of({"a": {"x": 9}}, ("anger", "anger", "fear")),
                                        ("dataset", "speaker", "label")))
    assert math.isclose(by_label[[0, 1, 3, 4, 6, 7]].sum(), 0.5) and math.isclose(by_label[[2, 5, 8]].sum(), 0.5)
    with pytest.raises(EmoliteError):
        balance_weights(items, ())


# ----------------------------------------------------------------------------- LOCO

def loco_items() -> list[Item]:
    a = items_of({"a": {f"s{i}": 4 for i in range(10)}}, ("anger", "neutral", "surprise", "disgust"))
    b = items_of({"b": {f"s{i}": 4 for i in range(4)}}, ("anger", "neutral"))
    c = items_of({"c": {"s0": 6, "s1": 6}}, ("anger", "neutral", "fear"))
    return a + b + c


def test_loco_holds_each_corpus_out_over_its_classes():
    items = loco_items()
    folds = {f.held_out: f for f in loco_folds(items)}
    assert list(folds) == ["a", "b", "c"]
    for name, f in folds.items():
        own = {it.label for it in items if it.dataset == name}
        assert {it.dataset for it in f.test} == {name} and {it.split for it in f.test} == {"test"}
        assert name not in {it.dataset for it in f.train + f.dev}          # never seen, not even for stopping
        assert set(f.classes) <= own and {it.label for it in f.train + f.dev} <= set(f.classes)
        assert {it.split for it in f.train} == {"train"} and {it.split for it in f.dev} == {"dev"}
        assert not {it.key for it in f.train} & {it.key for it in f.dev}
        for corpus in {it.dataset for it in f.dev}:                         # dev = whole speakers
            dev_spk = {it.speaker for it in f.dev if it.dataset == corpus}
            assert not dev_spk & {it.speaker for it in f.train if it.dataset == corpus}
    assert folds["b"].classes == ("anger", "neutral") and len(folds["b"].test) == 16
    assert folds["a"].classes == ("anger", "neutral") and folds["a"].dropped_classes == ("disgust", "surprise")
    assert len(folds["a"].test) == 20                                       # its anger and neutral items
    assert folds["c"].dropped_classes == ("fear",)
    assert {it.dataset for it in folds["c"].dev} == {"a", "b"}              # a share of each corpus's speakers
    assert len(folds["c"].items()) == len(folds["c"].train) + len(folds["c"].dev) + len(folds["c"].test)


def test_loco_inner_corpus_and_errors():
    items = loco_items()
    folds = {f.held_out: f for f in loco_folds(items, inner="corpus")}
    assert {it.dataset for it in folds["a"].dev} == {"b"} and {it.dataset for it in folds["a"].train} == {"c"}
    assert {it.dataset for it in folds["c"].dev} == {"a"}
    only = list(loco_folds(items, held_out=["b"]))
    assert [f.held_out for f in only] == ["b"]
    with pytest.raises(EmoliteError, match="not among"):
        list(loco_folds(items, held_out=["z"]))
    with pytest.raises(EmoliteError, match="at least two corpora"):
        list(loco_folds([it for it in items if it.dataset == "a"]))
    with pytest.raises(EmoliteError, match="inner"):
        list(loco_folds(items, inner="random"))
