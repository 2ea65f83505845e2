"""Dataset loaders on small fixture trees built in tmp_path (never the real data folder).

The MELD rows and CREMA-D names below are copied from the real metadata so the parsers
see the real format (CRLF, quoted commas, doubled quotes, curly quotes, accents).
"""

from __future__ import annotations

import csv
import os
import re
import shutil
from pathlib import Path

import pytest

from emolite import labels
from emolite.demo import make_clip
from emolite.media import probe
from emolite.data import Item, load_dataset
from emolite.data import manifest as manifest_mod
from emolite.data.splits import fold_split, speaker_folds, split_by_speaker
from emolite.errors import EmoliteError
from emolite.registry import DATASETS

KEY_OK = re.compile(r"^[A-Za-z0-9._-]+$")

MELD_HEADER = "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,StartTime,EndTime"
MELD_ROWS = {
    "train": [
        '1,also I was the point person on my company’s transition from the KL-5 to GR-6 system.,Chandler,neutral,neutral,0,0,8,21,"00:16:16,059","00:16:21,731"',
        '2,You must’ve had your hands full.,The Interviewer,neutral,neutral,0,1,8,21,"00:16:21,940","00:16:23,442"',
        '11,No don’t I beg of you!,Chandler,fear,negative,0,10,8,21,"00:17:02,856","00:17:04,858"',
        '30,Just coffee! Where are we gonna hang out now?,Chandler,disgust,negative,2,6,3,6,"00:06:02,362","00:06:07,157"',
        '71,"Oh no-no-no, give me some specifics.",Joey,anger,negative,6,5,8,22,"00:12:36,368","00:12:38,746"',
        '6100,Nestlé Toll House?,Monica,neutral,neutral,613,6,7,3,"00:18:37,491","00:18:39,867"',
        '7787,What about my children Drake?! Huh!?  No!! No!! No! God!,Phoebe/Waitress,anger,negative,785,1,9,11,"00:22:53,121","00:23:03,756"',
    ],
    "dev": [
        '1,"Oh my God, he’s lost it. He’s totally lost it.",Phoebe,sadness,negative,0,0,4,7,"00:20:57,256","00:21:00,049"',
        '2,What?,Monica,surprise,negative,0,1,4,7,"00:21:01,927","00:21:03,261"',
        '4,You’re a genius!,Chandler,joy,positive,1,1,4,4,"00:12:32,334","00:12:33,960"',
        '96,"""Wanted. Female roommate, non-smoker, non-ugly."" Nice!",Chandler,joy,positive,9,3,6,3,"00:05:30,872","00:05:34,291"',
    ],
    "test": [
        '2,"Oh. That’s so Monica can keep track. That way if one on them is missing, she can be like, ‘Where’s number 27?!’",Rachel,anger,negative,0,1,3,19,"00:14:40,629","00:14:47,385"',
        '229,"I just came over to drop off…nothing. So that weekend kinda sucked, huh?",Chandler,neutral,neutral,22,2,5,5,"00:18:21,100","00:18:31,109"',
    ],
}
MELD_DIRS = {"train": "train_splits", "dev": "dev_splits_complete", "test": "output_repeated_splits_test"}

# Real clip names from CREMA-D's SentenceFilenames.csv (12 actors) and VideoDemographics.csv.
CREMAD_NAMES = [
    "1001_IEO_NEU_XX", "1001_IEO_HAP_LO", "1001_DFA_ANG_XX", "1002_IEO_SAD_HI", "1003_ITS_FEA_XX",
    "1007_IEO_ANG_MD", "1011_IEO_DIS_MD", "1012_IWW_HAP_XX", "1013_MTI_FEA_XX", "1014_DFA_HAP_XX",
    "1015_TSI_FEA_XX", "1017_IEO_ANG_LO", "1018_IOM_NEU_XX", "1019_TAI_ANG_XX", "1019_TAI_SAD_XX",
    "1020_DFA_NEU_XX", "1021_TSI_ANG_XX", "1023_IEO_SAD_HI",
]
CREMAD_DEMOGRAPHICS = '''"ActorID","Age","Sex","Race","Ethnicity"
1001,51,"Male","Caucasian","Not Hispanic"
1002,21,"Female","Caucasian","Not Hispanic"
1003,21,"Female","Caucasian","Not Hispanic"
1011,32,"Male","Caucasian","Not Hispanic"
1012,23,"Female","Caucasian","Not Hispanic"
'''


# ----------------------------------------------------------------------------- media fixtures

def write_media(path: Path, seconds: float = 0.5, size: int = 64, video: bool = True) -> Path:
    """A real, decodable clip (64×64 frames + a voice-like tone; audio only for .wav/.flac)."""
    return make_clip(path, seconds=seconds, width=size, height=size, fps=5, video=video, face=False)


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    """One real generated file per extension, copied wherever a fixture tree needs media."""
    folder = tmp_path_factory.mktemp("media")
    return {".mp4": write_media(folder / "clip.mp4"), ".flv": write_media(folder / "clip.flv"),
            ".wav": write_media(folder / "tone.wav", video=False),
            ".flac": write_media(folder / "tone.flac", video=False)}


def put(media: dict[str, Path], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(media[path.suffix.lower()], path)
    return path


def meld_tree(root: Path, media: dict[str, Path], skip: set[str] = frozenset(), empty: set[str] = frozenset()) -> Path:
    """MELD layout: the three CSVs (CRLF, as published) and one clip per row."""
    root.mkdir(parents=True, exist_ok=True)
    for split, rows in MELD_ROWS.items():
        (root / f"{split}_sent_emo.csv").write_bytes("\r\n".join([MELD_HEADER, *rows, ""]).encode("utf-8"))
        for row in rows:
            dia, utt = next(csv.reader([row]))[5:7]
            name = f"dia{dia}_utt{utt}.mp4"
            clip = root / MELD_DIRS[split] / name
            if f"{split}/{name}" in skip:
                continue
            if f"{split}/{name}" in empty:
                clip.parent.mkdir(parents=True, exist_ok=True)
                clip.write_bytes(b"")
            else:
                put(media, clip)
    return root


def check_items(items: list[Item], dataset: str) -> None:
    keys = [it.key for it in items]
    assert len(keys) == len(set(keys))
    for it in items:
        assert it.dataset == dataset and KEY_OK.match(it.key) and os.path.isabs(it.path)
        assert it.label in labels.EMOTIONS + labels.EXTRA


def speakers_by_split(items: list[Item]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for it in items:
        out.setdefault(it.split, set()).add(it.speaker)
    return out


def assert_disjoint(items: list[Item]) -> None:
    groups = list(speakers_by_split(items).values())
    for i, a in enumerate(groups):
        for b in groups[i + 1:]:
            assert not a & b


# ----------------------------------------------------------------------------- MELD

def test_meld_reads_real_rows_and_counts_missing_clips(tmp_path, media):
    root = meld_tree(tmp_path / "MELD", media, skip={"dev/dia9_utt3.mp4"}, empty={"test/dia22_utt2.mp4"})
    items, problems = load_dataset("meld", root)
    check_items(items, "meld")
    assert len(items) == 13 - 2 and len(problems) == 2
    reasons = {Path(p).name: r for p, r in problems}
    assert "missing file" in reasons["dia9_utt3.mp4"] and "empty" in reasons["dia22_utt2.mp4"]
    by_key = {it.key: it for it in items}
    assert by_key["meld_dev_dia1_utt1"].label == "happiness"  # joy
    assert by_key["meld_train_dia785_utt1"].speaker == "Phoebe/Waitress"
    assert by_key["meld_test_dia0_utt1"].split == "test"
    assert by_key["meld_train_dia0_utt0"].path == str(root / "train_splits" / "dia0_utt0.mp4")
    info = probe(by_key["meld_train_dia0_utt0"].path)  # the fixture media is real
    assert info["has_video"] and info["has_audio"]


def test_meld_split_filter_nested_layout_and_no_media_check(tmp_path, media):
    root = tmp_path / "dl"
    meld_tree(root / "MELD.Raw", media)
    shutil.rmtree(root / "MELD.Raw" / "dev_splits_complete")
    items, problems = load_dataset("meld", root, splits=["val"], check_media=False)
    assert {it.split for it in items} == {"dev"} and len(items) == 4 and not problems
    items, problems = load_dataset("meld", root, splits="dev")
    assert not items and len(problems) == 4 and "no clip folder" in problems[0][1]


def test_meld_errors_name_file_and_columns(tmp_path):
    with pytest.raises(EmoliteError, match="train_sent_emo.csv"):
        load_dataset("meld", tmp_path)
    (tmp_path / "dev_sent_emo.csv").write_text("Sr No.,Utterance,Speaker,Dialogue_ID\n1,Hi,Ross,0\n")
    with pytest.raises(EmoliteError, match=r"dev_sent_emo\.csv.*Emotion, Utterance_ID"):
        load_dataset("meld", tmp_path)
    with pytest.raises(EmoliteError, match="test_sent_emo.csv not found"):
        load_dataset("meld", tmp_path, splits="test")


# ----------------------------------------------------------------------------- CREMA-D

def cremad_tree(root: Path, media: dict[str, Path], folder: str = "VideoFlash", ext: str = ".flv") -> Path:
    for name in CREMAD_NAMES:
        put(media, root / folder / f"{name}{ext}")
    (root / folder / f"1001_XYZ_ANG{ext}").write_bytes(b"x")  # malformed name
    (root / "VideoDemographics.csv").write_text(CREMAD_DEMOGRAPHICS)
    return root


def test_cremad_video_split_by_actor(tmp_path, media):
    root = cremad_tree(tmp_path / "CREMA-D", media)
    items, problems = load_dataset("cremad", root)
    check_items(items, "cremad")
    assert len(items) == len(CREMAD_NAMES)
    assert [Path(p).name for p, _ in problems] == ["1001_XYZ_ANG.flv"]
    item = next(it for it in items if it.key == "cremad_video_1001_DFA_ANG_XX")
    assert item.label == "anger" and item.speaker == "1001" and item.path.endswith(".flv")
    assert {it.split for it in items} == {"train", "dev", "test"}
    assert_disjoint(items)
    again, _ = load_dataset("cremad", root)
    assert [(it.key, it.split) for it in again] == [(it.key, it.split) for it in items]
    other, _ = load_dataset("cremad", root, seed=1, fractions=(0.5, 0.25, 0.25))
    assert [it.split for it in other] != [it.split for it in items]
    assert_disjoint(other)


def test_cremad_audio_fallback_and_modality(tmp_path, media):
    root = tmp_path / "cremad"
    for name in CREMAD_NAMES[:6]:
        put(media, root / "AudioWAV" / f"{name}.wav")
    (root / "AudioWAV" / "1076_MTI_SAD_XX.wav").write_bytes(b"RIFF" + bytes(40))  # header-only, as in the real set
    items, problems = load_dataset("cremad", root, splits=("train", "dev", "test"))
    assert len(items) == 6 and all(it.key.startswith("cremad_audio_") for it in items)
    assert problems == [(str(root / "AudioWAV" / "1076_MTI_SAD_XX.wav"), "WAV header only, no samples")]
    with pytest.raises(EmoliteError, match="VideoFlash"):
        load_dataset("cremad", root, modality="video")


# ----------------------------------------------------------------------------- RAVDESS

def test_ravdess_any_depth_song_modality_and_folds(tmp_path, media):
    root = tmp_path / "RAVDESS"
    for actor in range(1, 9):
        put(media, root / "Audio_Speech" / f"Actor_{actor:02d}" / f"03-01-05-02-01-01-{actor:02d}.wav")
        put(media, root / "Audio_Speech" / f"Actor_{actor:02d}" / f"03-01-08-01-02-02-{actor:02d}.flac")
    put(media, root / "video" / "deep" / "01-01-07-02-02-01-01.mp4")
    put(media, root / "song" / "03-02-03-01-01-01-02.wav")
    put(media, root / "flac_copy" / "03-01-05-02-01-01-01.flac")  # same recording as the .wav
    put(media, root / "misc" / "01-01-07-02-02-01-01_1.mp4")  # not a RAVDESS name
    items, problems = load_dataset("ravdess", root)
    check_items(items, "ravdess")
    assert len(items) == 17 and len(problems) == 2
    assert {it.label for it in items} == {"anger", "surprise", "disgust"}
    assert next(it for it in items if it.key == "ravdess_01-01-07-02-02-01-01").speaker == "01"
    assert_disjoint(items)
    with_song, _ = load_dataset("ravdess", root, include_song=True, modality="audio")
    assert len(with_song) == 17 and "happiness" in {it.label for it in with_song}
    folds = [load_dataset("ravdess", root, folds=4, fold=f)[0] for f in range(4)]
    tests = [speakers_by_split(f)["test"] for f in folds]
    assert set().union(*tests) == {f"{a:02d}" for a in range(1, 9)} and sum(map(len, tests)) == 8
    for fold in folds:
        assert_disjoint(fold)


# ----------------------------------------------------------------------------- manifest and folder

def test_manifest_paths_segments_and_bad_rows(tmp_path, media):
    root = tmp_path / "my data ü"
    clip = put(media, root / "clips" / "café 1.mp4")
    outside = put(media, tmp_path / "elsewhere" / "tone.wav")
    (root / "manifest.csv").write_text(
        "Path,Label,split,start,end,speaker\n"
        f"clips/café 1.mp4,joy,train,0.1,0.4,s1\n"
        f"{outside},Angry,val,,,s2\n"
        f"clips/café 1.mp4,sad,test,00:00:00,00:00:00.300,s3\n"
        "clips/missing.mp4,happy,train,,,s1\n"
        "clips/café 1.mp4,happy,train,abc,,s1\n"
        "clips/café 1.mp4,happy,train,0.5,0.2,s1\n"
        "clips/café 1.mp4,happy,holdout,,,s1\n", encoding="utf-8-sig")  # BOM, as Excel writes
    items, problems = load_dataset("manifest", root)
    check_items(items, "manifest")
    assert [(it.label, it.split, it.start, it.end) for it in items] == [
        ("happiness", "train", 0.1, 0.4), ("anger", "dev", None, None), ("sadness", "test", 0.0, 0.3)]
    assert items[0].path == str(clip) and items[1].path == str(outside)
    assert len(problems) == 4 and problems[0][0] == str(root / "clips" / "missing.mp4")
    assert all(":" in p for p, _ in problems[1:])  # csv:line for malformed rows
    resplit, _ = load_dataset("manifest", root / "manifest.csv", fractions=(0.4, 0.3, 0.3), seed=3)
    assert_disjoint(resplit)


def test_manifest_missing_columns_names_csv_and_columns(tmp_path):
    (tmp_path / "list.csv").write_text("name,emotion_id\na.mp4,1\n")
    with pytest.raises(EmoliteError) as err:
        load_dataset("manifest", tmp_path / "list.csv")
    assert "list.csv" in str(err.value) and "path" in str(err.value) and "label" in str(err.value)


def test_folder_per_class_and_stratified_split(tmp_path, media):
    root = tmp_path / "faces"
    for cls, n in (("happy", 6), ("Angry", 4), ("surprise", 2)):
        for i in range(n):
            put(media, root / cls / f"päth {i}.wav")
    (root / "happy" / "notes.txt").write_text("ignored")
    items, problems = load_dataset("folder", root)
    check_items(items, "folder")
    assert not problems and len(items) == 12 and {it.split for it in items} == {""}
    assert {it.label for it in items} == {"happiness", "anger", "surprise"}
    split, _ = load_dataset("folder", root, fractions=(0.5, 0.0, 0.5), seed=7)
    for label in ("happiness", "anger", "surprise"):
        assert {it.split for it in split if it.label == label} == {"train", "test"}
    layout = tmp_path / "byssplit"
    put(media, layout / "train" / "sad" / "a.wav")
    put(media, layout / "val" / "sad" / "b.wav")
    items, _ = load_dataset("folder", layout)
    assert sorted((it.split, it.label) for it in items) == [("dev", "sadness"), ("train", "sadness")]


def test_unreadable_subfolder_is_a_problem_not_silence(tmp_path, media, monkeypatch):
    """folder and ravdess walk the tree: a subfolder they cannot read is reported, never skipped."""
    put(media, tmp_path / "faces" / "happy" / "a.wav")
    (tmp_path / "faces" / "happy" / "locked").mkdir()
    put(media, tmp_path / "rav" / "Actor_01" / "03-01-05-02-01-01-01.wav")
    (tmp_path / "rav" / "locked").mkdir()
    real = os.scandir

    def scandir(p="."):
        if Path(p).name == "locked":
            raise PermissionError(13, "Permission denied", str(p))
        return real(p)

    monkeypatch.setattr(os, "scandir", scandir)
    for name, root in (("folder", tmp_path / "faces"), ("ravdess", tmp_path / "rav")):
        items, problems = load_dataset(name, root)
        assert len(items) == 1
        assert [(Path(p).name, "cannot read folder" in why) for p, why in problems] == [("locked", True)]


# ----------------------------------------------------------------------------- roots, options, splits, labels

@pytest.mark.parametrize("name", ["meld", "cremad", "ravdess", "manifest", "folder"])
def test_bad_roots_raise_emolite_error(tmp_path, monkeypatch, name):
    with pytest.raises(EmoliteError, match="not found"):
        load_dataset(name, tmp_path / "nope")
    locked = tmp_path / "locked"
    locked.mkdir()
    real_listdir = os.listdir

    def deny(path="."):
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied")
        return real_listdir(path)

    monkeypatch.setattr(manifest_mod.os, "listdir", deny)
    with pytest.raises(EmoliteError, match="cannot read") as err:
        load_dataset(name, locked)
    assert err.value.path == str(locked)


def test_unknown_dataset_and_option(tmp_path):
    assert {"meld", "cremad", "ravdess", "manifest", "folder"} <= set(DATASETS)
    with pytest.raises(EmoliteError, match="unknown dataset"):
        load_dataset("nosuch", tmp_path)
    with pytest.raises(EmoliteError, match="fractons"):
        load_dataset("ravdess", tmp_path, fractons=(1, 0, 0))


def test_split_helpers_are_seeded_and_speaker_independent():
    items = [Item(path=f"/x/{s}_{i}.wav", label="anger", speaker=f"spk{s}", key=f"k{s}_{i}")
             for s in range(20) for i in range(3)]
    first = split_by_speaker(items, seed=5)
    assert [it.split for it in first] == [it.split for it in split_by_speaker(items, seed=5)]
    assert [it.split for it in first] != [it.split for it in split_by_speaker(items, seed=6)]
    assert_disjoint(first)
    assert {s: len(v) for s, v in speakers_by_split(first).items()} == {"train": 14, "dev": 3, "test": 3}
    folds = speaker_folds(items, 5, seed=1)
    assert sorted(sum(folds, [])) == sorted({it.speaker for it in items}) and {len(f) for f in folds} == {4}
    assert_disjoint(fold_split(items, 5, 2, seed=1))
    with pytest.raises(EmoliteError):
        split_by_speaker(items, fractions=(0.8, 0.3, 0.1))
    with pytest.raises(EmoliteError):
        speaker_folds(items, 21)


def test_label_mappings_between_meld_and_cremad():
    assert labels.DATASET_LABELS["meld"]["joy"] == "happiness"
    assert labels.DATASET_LABELS["cremad"]["ANG"] == "anger"
    meld, cremad = labels.dataset_classes("meld"), labels.dataset_classes("cremad")
    assert labels.dropped_labels(meld, cremad) == ["surprise"] and labels.dropped_labels(cremad, meld) == []
    mapping = labels.map_labels(meld, cremad)
    assert len(mapping) == 6 and all(meld[i] == cremad[j] for i, j in mapping.items())
    assert labels.map_labels(["Joy", "ANG"], cremad) == {0: cremad.index("happiness"), 1: cremad.index("anger")}


def test_speaker_folds_mix_strata_for_even_k():
    from emolite.data.splits import speaker_folds

    items = [Item(f"/x/{a}.wav", "anger", speaker=f"{a:02d}", key=str(a)) for a in range(1, 19)]
    strata = {f"{a:02d}": "male" if a % 2 else "female" for a in range(1, 19)}
    folds = speaker_folds(items, 6, 0, strata)
    assert sorted(sum(folds, [])) == sorted(strata) and all(len(f) == 3 for f in folds)
    assert all({strata[s] for s in f} == {"male", "female"} for f in folds)


def _fer_tree(root: Path) -> Path:
    """FER2013 as shared: labels.csv (file, usage, emotion) + 48×48 grey PNGs under train/ and public_test/."""
    import cv2
    import numpy as np

    from emolite.demo import face_image

    face = cv2.resize(cv2.cvtColor(face_image(), cv2.COLOR_RGB2GRAY), (48, 48), interpolation=cv2.INTER_AREA)
    rows = [("train/angry/Training_1.png", "Training", "anger"), ("train/happy/Training_2.png", "Training", "happiness"),
            ("public_test/sad/PublicTest_3.png", "PublicTest", "sadness"),
            ("private_test/neutral/PrivateTest_4.png", "PrivateTest", "neutral"),
            ("train/angry/Training_5.png", "Training", "anger")]           # listed, but missing on disk
    for f, _, _ in rows[:-1]:
        (root / f).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / f), face)
    with open(root / "labels.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "usage", "emotion"])
        w.writerows(rows + [("train/x.png", "Validation", "anger")])
    return root


def test_fer2013_usage_names_the_split_and_missing_rows_are_problems(tmp_path):
    items, problems = load_dataset("fer2013", _fer_tree(tmp_path))
    assert [(Path(i.path).name, i.split, i.label) for i in items] == [
        ("Training_1.png", "train", "anger"), ("Training_2.png", "train", "happiness"),
        ("PublicTest_3.png", "dev", "sadness"), ("PrivateTest_4.png", "test", "neutral")]
    assert len(problems) == 2 and "missing" in problems[0][1] and "usage" in problems[1][1]
    assert len({i.key for i in items}) == 4 and all(i.dataset == "fer2013" for i in items)
    dev, _ = load_dataset("fer2013", tmp_path / "labels.csv", splits="dev")
    assert [Path(i.path).name for i in dev] == ["PublicTest_3.png"]


def test_fer2013_csv_without_usage_is_one_clear_error(tmp_path):
    (tmp_path / "labels.csv").write_text("file,emotion\na.png,anger\n")
    with pytest.raises(EmoliteError, match="usage"):
        load_dataset("fer2013", tmp_path)


def test_own_face_folder_of_images_is_a_labelled_dataset(tmp_path):
    """The generic labelled-images path: root/<emotion>/<images> (any face folder of a user)."""
    _fer_tree(tmp_path / "src")
    for cls in ("angry", "happy"):
        (tmp_path / "mine" / cls).mkdir(parents=True)
        shutil.copy(tmp_path / "src" / "train" / "angry" / "Training_1.png", tmp_path / "mine" / cls / "a.png")
    items, problems = load_dataset("folder", tmp_path / "mine")
    assert sorted(i.label for i in items) == ["anger", "happiness"] and not problems
