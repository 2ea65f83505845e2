import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from emolite import cache, preprocess
from emolite.demo import make_clip
from emolite.errors import EmoliteError


@pytest.fixture()
def folder(tmp_path, clip, audio_only, video_only, no_face, face_png, bad_files):
    d = tmp_path / "my videos"
    d.mkdir()
    for p in (clip, audio_only, video_only, no_face, face_png, bad_files["empty"], bad_files["text"],
              bad_files["truncated"]):
        shutil.copy(p, d / p.name)
    shutil.copy(clip, d / "naïve café.mp4")  # non-ASCII and spaces
    return d


def test_folder_run_summary_and_resume(folder, tmp_path):
    s = preprocess.run("files", folder, tmp_path / "cache", workers=2, progress=False)
    assert (s["items"], s["done"], s["failed"], s["no_face"]) == (9, 6, 3, 1)
    reasons = " ".join(p["reason"] for p in s["problems"])
    assert "empty (0 bytes)" in reasons and "not a media file" in reasons
    rows = cache.read_index(s["cache"])
    assert len(rows) == 6
    by = {r["key"]: r for r in rows}
    voice = cache.load_entry(by["voice.wav"]["file"])
    assert not voice["has_video"] and voice["has_audio"] and voice["face"].shape[0] == 0
    silent = cache.load_entry(by["silent.mp4"]["file"])
    assert silent["has_video"] and not silent["has_audio"] and silent["face_mask"].all()
    img = cache.load_entry(by["face.png"]["file"])
    assert img["face"].shape == (1, 112, 112, 3) and img["face_mask"][0]
    assert s["kb_per_second"] < 100
    # second run: everything reused, nothing redone
    s2 = preprocess.run("files", folder, tmp_path / "cache", workers=1, progress=False)
    assert (s2["done"], s2["reused"], s2["failed"]) == (0, 6, 3)
    # another config: a new cache folder, entries rebuilt
    s3 = preprocess.run("files", folder, tmp_path / "cache", workers=1, progress=False, fps=2.0)
    assert s3["cache"] != s["cache"] and s3["done"] == 6


def test_long_file_is_stored_as_windows(tmp_path):
    p = make_clip(tmp_path / "talk.mp4", seconds=14.0, width=160, height=120)
    s = preprocess.run("files", p, tmp_path / "c", workers=1, progress=False)
    rows = cache.read_index(s["cache"])
    assert len(rows) == 7 and all(abs(r["duration"] - 2.0) < 1e-6 for r in rows)
    assert (s["items"], s["done"], s["windows"], s["entries"]) == (1, 1, 7, 7)  # items and windows apart
    # a run killed after some windows of a long file: the file is redone, not taken as finished
    (Path(s["cache"]) / "entries" / "talk.mp4.windows").unlink()
    for f in sorted((Path(s["cache"]) / "entries").glob("*-w000[3-6].npz")):
        f.unlink()
    s2 = preprocess.run("files", p, tmp_path / "c", workers=1, progress=False)
    assert (s2["reused"], s2["done"], s2["windows"]) == (0, 1, 7) and len(cache.read_index(s2["cache"])) == 7


def _audio_seconds(cdir) -> float:
    return sum(cache.load_entry(r["file"])["audio"].size for r in cache.read_index(cdir)) / 16000


def test_clip_between_10_and_12_seconds_keeps_all_of_it(tmp_path):
    """An 11-s item once kept only its last 2 s: its windows were written under one key."""
    p = make_clip(tmp_path / "eleven.wav", seconds=11.0)
    s = preprocess.run("files", p, tmp_path / "c", workers=1, progress=False, detector="none")
    assert s["done"] == 1 and s["failed"] == 0
    assert abs(_audio_seconds(s["cache"]) - 11.0) < 0.1
    assert abs(sum(r["duration"] for r in cache.read_index(s["cache"])) - 11.0) < 0.1


def _without_duration(src: Path, out: Path) -> Path:
    """Remux to Matroska through a non-seekable writer, as a live recorder does: no duration field."""
    import io

    import av

    class Pipe(io.RawIOBase):
        def __init__(self, f):
            self.f = f

        def writable(self) -> bool:
            return True

        def write(self, b) -> int:
            return self.f.write(b)

    with open(out, "wb") as raw, av.open(str(src)) as inp, av.open(Pipe(raw), "w", format="matroska") as dst:
        streams = {s.index: dst.add_stream_from_template(s) for s in inp.streams}
        for pkt in inp.demux():
            if pkt.dts is not None:
                pkt.stream = streams[pkt.stream.index]
                dst.mux(pkt)
    return out


def test_stream_without_duration_keeps_every_window(tmp_path):
    from emolite import media

    src = make_clip(tmp_path / "src.mkv", seconds=14.0, width=64, height=48, fps=10)
    live = _without_duration(src, tmp_path / "live.mkv")
    assert media.probe(live)["duration"] == 0  # the container says nothing about its length
    s = preprocess.run("files", live, tmp_path / "c", workers=1, progress=False, detector="none")
    rows = cache.read_index(s["cache"])
    n = len(list(media.iter_windows(src, window=None, hop=media.WINDOW, use_video=False)))
    assert n >= 7 and len(rows) == n == s["windows"]
    assert len({r["key"] for r in rows}) == n
    assert _audio_seconds(s["cache"]) > 13.5


def test_stray_temp_file_is_ignored_and_cleaned(tmp_path, audio_only):
    s = preprocess.run("files", audio_only, tmp_path / "c", workers=1, progress=False, detector="none")
    entries = Path(s["cache"]) / "entries"
    real = next(entries.glob("*.npz"))
    stray = entries / ".tmp-abc123.npz"   # a complete entry a kill left between write and rename
    shutil.copy(real, stray)
    assert [r["key"] for r in cache.rebuild_index(s["cache"])] == [real.stem]
    s2 = preprocess.run("files", audio_only, tmp_path / "c", workers=1, progress=False, detector="none")
    assert s2["reused"] == 1 and s2["entries"] == 1 and not stray.exists()


def test_bad_option_and_empty_folder(tmp_path):
    with pytest.raises(EmoliteError, match="unknown preprocessing option"):
        preprocess.preprocess_config(fsp=3)
    (tmp_path / "empty").mkdir()
    with pytest.raises(EmoliteError, match="no files items found"):
        preprocess.run("files", tmp_path / "empty", tmp_path / "c", progress=False)
    with pytest.raises(EmoliteError, match="unknown dataset"):
        preprocess.run("nope", tmp_path, tmp_path / "c", progress=False)


def test_unreadable_folder_is_a_clear_error(tmp_path, monkeypatch):
    from pathlib import Path

    (tmp_path / "locked").mkdir()

    def denied(self, pattern):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "rglob", denied)  # tests run as root, where chmod blocks nothing
    with pytest.raises(EmoliteError, match="cannot read folder"):
        preprocess.run("files", tmp_path / "locked", tmp_path / "c", progress=False)


def _preprocess_until_first_entry(src, out, workers: int, stderr) -> subprocess.Popen:
    """`emolite preprocess` in its own process group, returned once its first cache entry exists."""
    cmd = [sys.executable, "-m", "emolite", "preprocess", str(src), "-o", str(out), "--workers", str(workers), "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list(out.glob("*/entries/*.npz")):
        time.sleep(0.05)
    return proc


def test_killed_run_leaves_no_partial_entry_and_resumes(tmp_path):
    src = tmp_path / "src"
    for i in range(6):
        make_clip(src / f"c{i}.mp4", seconds=2.0, width=320, height=240)
    out = tmp_path / "cache"
    proc = _preprocess_until_first_entry(src, out, workers=1, stderr=subprocess.DEVNULL)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = {p.name for p in out.glob("*/entries/*.npz")}
    assert 1 <= len(done_before) < 6
    for p in out.glob("*/entries/*"):  # nothing half-written: every file present is a full entry
        assert p.suffix == ".npz" and not p.name.startswith(".tmp"), p
        cache.load_entry(p)
    s = preprocess.run("files", src, out, workers=1, progress=False)
    assert s["reused"] == len(done_before) and s["done"] == 6 - len(done_before) and s["failed"] == 0


def test_meld_and_cremad_layout_trees(tmp_path, clips):
    """The dataset layouts end to end: loader -> preprocess -> cache index with labels and splits."""
    import csv

    from test_data import MELD_ROWS, cremad_tree, meld_tree

    media = {".mp4": clips[".mp4"], ".flv": clips[".flv"]}
    dia, utt = next(csv.reader([MELD_ROWS["dev"][0]]))[5:7]
    root = meld_tree(tmp_path / "MELD.Raw", media, empty={f"dev/dia{dia}_utt{utt}.mp4"})
    s = preprocess.run("meld", root, tmp_path / "cache", workers=2, progress=False)
    n_rows = sum(len(r) for r in MELD_ROWS.values())
    assert s["skipped"] == 1 and s["done"] == n_rows - 1 and s["failed"] == 0
    rows = cache.read_index(s["cache"])
    assert {r["split"] for r in rows} == {"train", "dev", "test"}
    assert {r["label"] for r in rows} <= {"anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise"}
    e = cache.load_entry(rows[0]["file"])
    assert e["has_video"] and e["has_audio"] and e["face_mask"].any()

    root = cremad_tree(tmp_path / "CREMA-D", media)
    s = preprocess.run("cremad", root, tmp_path / "cache", workers=1, progress=False)
    assert s["skipped"] == 1 and s["failed"] == 0 and s["done"] >= 4  # the malformed name is skipped
    rows = [r for r in cache.read_index(s["cache"]) if r["dataset"] == "cremad"]
    speakers = {sp: {r["split"] for r in rows if r["speaker"] == sp} for sp in {r["speaker"] for r in rows}}
    assert all(len(v) == 1 for v in speakers.values())  # speaker-independent splits survive caching


def test_killed_parent_leaves_quiet_workers(tmp_path):
    """kill -9 of the parent of `preprocess --workers 2`: the orphaned workers exit without a
    BrokenPipeError traceback (they used to finish their item and fail to send it)."""
    src = tmp_path / "src"
    for i in range(8):
        make_clip(src / f"c{i}.mp4", seconds=3.0, width=320, height=240)
    out = tmp_path / "cache"
    proc = _preprocess_until_first_entry(src, out, workers=2, stderr=subprocess.PIPE)
    os.kill(proc.pid, signal.SIGKILL)    # the parent only: its workers are orphaned
    try:
        _, err = proc.communicate(timeout=90)   # EOF once every worker has exited
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    assert list(out.glob("*/entries/*.npz"))
    assert b"Traceback" not in err and b"BrokenPipeError" not in err, err.decode(errors="replace")
