"""A hostile world (issue 13): bad option values, damaged model files, full and read-only disks,
unreadable folders, duration-less streams, kills and concurrent runs. Each case ends in a clean
exit code and one line naming the option or file, or in the documented behaviour."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from emolite import analyze, cache, fsio, media, preprocess
from emolite.cli import main
from emolite.data import Item
from emolite.demo import make_clip
from emolite.errors import EmoliteError
from emolite.inference import load_model


def live_mkv(path: Path, seconds: float = 3.0, width: int = 64, height: int = 48) -> Path:
    """A Matroska file written as a live stream: no duration in the container."""
    import av

    src = make_clip(path.with_name(path.stem + "-src.mkv"), seconds=seconds, width=width, height=height)
    with av.open(str(src)) as i, av.open(str(path), "w", format="matroska", options={"live": "1"}) as o:
        streams = {s.index: o.add_stream_from_template(s) for s in i.streams}
        for p in i.demux():
            if p.size:   # (the first video packet has no dts in Matroska: keep it, it is the key frame)
                p.stream = streams[p.stream.index]
                o.mux(p)
    src.unlink()
    return path


def one_line_error(capsys, code: int, expected_code: int, *words: str) -> str:
    err = capsys.readouterr().err.strip()
    assert code == expected_code, err
    assert err.startswith("error:") and "\n" not in err and "Traceback" not in err, err
    for w in words:
        assert w in err, err
    return err


# ---------------------------------------------------------------- options


@pytest.mark.parametrize("args, words", [
    (["--window", "-2"], ["--window", ">= 0.25"]),
    (["--window", "nan"], ["--window"]),
    (["--hop", "-1"], ["--hop"]),
    (["--hop", "inf"], ["--hop"]),
    (["--device", "banana"], ["unknown device 'banana'", "cpu or cuda"]),
])
def test_analyze_bad_options(args, words, clip, capsys):
    one_line_error(capsys, main(["analyze", str(clip), "-q", *args]), 2, *words)


@pytest.mark.parametrize("args, words", [
    (["--fps", "0"], ["--fps", "> 0"]), (["--fps", "-5"], ["--fps"]), (["--fps", "nan"], ["--fps"]),
    (["--fps", "1e6"], ["--fps", "<= 60"]), (["--face-size", "0"], ["--face-size"]),
    (["--face-size", "-8"], ["--face-size"]), (["--context-size", "100000"], ["--context-size", "<= 512"]),
    (["--margin", "nan"], ["--margin"]), (["--limit", "-1"], ["--limit", ">= 1"]),
    (["--workers", "0"], ["--workers"]), (["--detector", "bogus"], ["'bogus'", "retinaface"]),
])
def test_preprocess_bad_options(args, words, tmp_path, audio_only, capsys):
    code = main(["preprocess", str(audio_only), "-o", str(tmp_path / "c"), "-q", "--workers", "2", *args]
                if "--workers" not in args else ["preprocess", str(audio_only), "-o", str(tmp_path / "c"), "-q", *args])
    one_line_error(capsys, code, 2, *words)
    assert not list(tmp_path.glob("c/*/entries/*")), "nothing may be decoded for a bad option"


@pytest.mark.parametrize("argv, words", [
    (["info", "X", "--samples", "0"], ["--samples"]),
    (["serve", "--port", "70000"], ["--port"]),
    (["serve", "--max-sessions", "0"], ["--max-sessions"]),
    (["serve", "--device", "banana"], ["unknown device"]),
    (["demo", "--seconds", "nan"], ["--seconds"]),
])
def test_other_commands_bad_options(argv, words, clip, capsys):
    one_line_error(capsys, main([str(clip) if a == "X" else a for a in argv]), 2, *words)


def test_media_api_checks_its_arguments(clip):
    for kw in ({"fps": 0}, {"fps": float("nan")}, {"window": -2.0}, {"hop": 0.0}):
        with pytest.raises(EmoliteError, match=next(iter(kw))):
            media.iter_windows(clip, **kw)   # at the call, not at the first window


def test_detector_that_cannot_start_fails_the_run_once(tmp_path, audio_only):
    """The parent knows the plugin detector, the spawned workers do not: their initializer fails.
    The run stops once with that reason instead of the pool restarting workers forever."""
    from emolite.registry import DETECTORS

    DETECTORS["parent_only"] = lambda **_: (lambda frame: [])
    try:
        src = tmp_path / "src"
        src.mkdir()
        for i in range(3):
            (src / f"v{i}.wav").write_bytes(audio_only.read_bytes())
        t = time.time()
        with pytest.raises(EmoliteError, match="parent_only"):
            preprocess.run("files", src, tmp_path / "c", workers=2, progress=False, detector="parent_only")
        assert time.time() - t < 60
    finally:
        DETECTORS.pop("parent_only")


# ---------------------------------------------------------------- model files


def _ckpt(tmp_path, name, model_name="attention", n=3, classes=("a", "b", "c"), meta_over=None):
    import torch

    from emolite.models import build_model, save_checkpoint

    torch.manual_seed(0)
    p = save_checkpoint(tmp_path / name, build_model(model_name, num_classes=n), {"classes": list(classes)})
    if meta_over is not None:
        ck = torch.load(p, weights_only=True)
        ck["meta"] = meta_over(ck["meta"])
        torch.save(ck, p)
    return p


def _onnx(tmp_path, name, meta: str | None, outputs: int = 3, audio_dims=("b", "s")) -> Path:
    import onnx
    from onnx import TensorProto, helper

    probs = helper.make_node("Constant", [], ["probs"], value=helper.make_tensor(
        "v", TensorProto.FLOAT, [1, outputs], [1.0 / outputs] * outputs))
    graph = helper.make_graph([probs], "g", [helper.make_tensor_value_info("audio", TensorProto.FLOAT, list(audio_dims))],
                              [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, outputs])])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    if meta is not None:
        p = m.metadata_props.add()
        p.key, p.value = "emolite", meta
    onnx.save(m, str(tmp_path / name))
    return tmp_path / name


@pytest.mark.parametrize("case, words", [
    ("class_count", ["weights do not fit", "class count"]),
    ("architecture", ["weights do not fit", "architecture"]),
    ("meta_list", ["metadata", "not a mapping"]),
    ("classes_not_names", ["classes"]),
    ("onnx_bad_json", ["not valid JSON", "emolite export"]),
    ("onnx_no_classes", ["class names", "emolite export"]),
    ("onnx_wrong_classes", ["3 outputs for 7 class names"]),
    ("onnx_wrong_inputs", ["does not take the inputs"]),
    ("onnx_bad_record", ["damaged input record", "frames=-3"]),
])
def test_model_file_faults_are_one_line_at_load(case, words, tmp_path, clip, capsys):
    seven = ["anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise"]
    path = {
        "class_count": lambda: _ckpt(tmp_path, "m.pt", meta_over=lambda m: {**m, "num_classes": 7, "classes": seven}),
        "architecture": lambda: _ckpt(tmp_path, "m.pt", meta_over=lambda m: {
            **m, "model": {**m["model"], "face": {**m["model"]["face"], "width": 12}}}),
        "meta_list": lambda: _ckpt(tmp_path, "m.pt", meta_over=lambda m: [m]),
        "classes_not_names": lambda: _ckpt(tmp_path, "m.pt", meta_over=lambda m: {**m, "classes": {"a": 1}}),
        "onnx_bad_json": lambda: _onnx(tmp_path, "m.onnx", "{not json"),
        "onnx_no_classes": lambda: _onnx(tmp_path, "m.onnx", "{}"),
        "onnx_wrong_classes": lambda: _onnx(tmp_path, "m.onnx", json.dumps({"classes": seven})),
        "onnx_wrong_inputs": lambda: _onnx(tmp_path, "m.onnx", json.dumps({"classes": ["a", "b", "c"]}),
                                           audio_dims=("b", "s", "x")),
        "onnx_bad_record": lambda: _onnx(tmp_path, "m.onnx", json.dumps({"classes": ["a", "b", "c"], "preprocess": {"frames": -3}})),
    }[case]()
    with pytest.raises(EmoliteError) as e:
        load_model(path)
    assert str(path) in str(e.value)
    err = one_line_error(capsys, main(["analyze", str(clip), "-q", "--model", str(path)]), 1, *words)
    assert str(clip) not in err   # the model's fault, never the video's


# ---------------------------------------------------------------- file system


def _read_only(monkeypatch, folder: Path) -> None:
    """Tests run as root, where chmod does not stop writes: say what a read-only folder says."""
    real_access = os.access

    def access(p, mode, *a, **k):
        return False if Path(p).resolve() == folder.resolve() and mode & os.W_OK else real_access(p, mode, *a, **k)

    monkeypatch.setattr(os, "access", access)


def test_read_only_output_folder(tmp_path, clip, audio_only, monkeypatch, capsys):
    out = tmp_path / "ro"
    out.mkdir()
    _read_only(monkeypatch, out)
    one_line_error(capsys, main(["analyze", str(clip), "-q", "-o", str(out)]), 1, str(out), "permission denied")
    cache_root = tmp_path / "cache"
    cdir = cache.cache_dir(cache_root, preprocess.preprocess_config())
    _read_only(monkeypatch, cdir / cache.ENTRIES)
    one_line_error(capsys, main(["preprocess", str(audio_only), "-o", str(cache_root), "-q", "--workers", "1"]),
                   1, "entries", "permission denied")


def test_full_disk_plot_and_csv(tmp_path, clip, audio_only, checkpoint, monkeypatch):
    """ENOSPC while writing each file's plot: one line per file, the batch goes on, no temp file left."""
    import matplotlib.figure

    def full(self, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", full)
    out = tmp_path / "out"
    lines: list[str] = []
    s = analyze.run([str(clip), str(audio_only)], load_model(checkpoint), out=str(out), plot=True,
                    progress=False, quiet=True, print_fn=lines.append)
    assert s["analyzed"] == 2 and len(s["failed"]) == 2
    assert all("disk full" in f["reason"] for f in s["failed"]) and all("\n" not in x for x in lines)
    assert not [p for p in out.iterdir() if fsio.is_temp(p)]
    assert (out / "emotions.json").exists() and len((out / "emotions.jsonl").read_text().splitlines()) == 2

    class FullFile:
        def write(self, _):
            raise OSError(errno.ENOSPC, "No space left on device")

        flush = close = lambda self: None

    sink = analyze.CsvSink(tmp_path / "x.csv")
    sink.f = FullFile()
    sink.write({"file": "a", "start": 0})
    sink.write({"file": "a", "start": 1})   # quiet after the first error
    sink.close()
    assert "disk full" in str(sink.error) and str(tmp_path / "x.csv") in str(sink.error)


def test_full_disk_preprocess(tmp_path, audio_only, monkeypatch, capsys):
    real = Path.write_bytes

    def write_bytes(self, data):
        if fsio.is_temp(self) and self.suffix == ".npz":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", write_bytes)
    s = preprocess.run("files", audio_only, tmp_path / "c", workers=1, progress=False)
    assert s["failed"] == 1 and "disk full" in s["problems"][0]["reason"]
    assert not [p for p in (tmp_path / "c").rglob("*") if fsio.is_temp(p)]


def test_unreadable_subfolder_is_reported_and_gif_is_read(tmp_path, monkeypatch):
    import av

    root = tmp_path / "in"
    (root / "locked").mkdir(parents=True)
    (root / "ok").mkdir()
    with av.open(str(root / "ok" / "anim.gif"), "w") as o:
        s = o.add_stream("gif", rate=10)
        s.width, s.height, s.pix_fmt = 32, 32, "rgb8"
        for i in range(5):
            for p in s.encode(av.VideoFrame.from_ndarray(np.full((32, 32, 3), 20 * i, np.uint8), format="rgb24")):
                o.mux(p)
        for p in s.encode():
            o.mux(p)
    real = os.scandir

    def scandir(p="."):
        if Path(p).name == "locked":
            raise PermissionError(errno.EACCES, "Permission denied", str(p))
        return real(p)

    monkeypatch.setattr(os, "scandir", scandir)
    files, problems = analyze.expand_inputs([str(root)])
    assert [f.name for f in files] == ["anim.gif"]
    assert problems and "locked" in problems[0][0] and "cannot read folder" in problems[0][1]
    (w,) = list(media.iter_windows(files[0]))
    assert w.has_video and not w.has_audio


# ---------------------------------------------------------------- duration-less streams, limits


def test_duration_less_stream_is_windowed_in_bounded_memory(tmp_path, monkeypatch):
    f = live_mkv(tmp_path / "live.mkv", seconds=30.0, width=48, height=32)
    assert media.probe(f)["duration"] == 0
    held = []
    real_cut = media._cut
    monkeypatch.setattr(media, "_cut", lambda a, b, frames, *r: held.append(len(frames)) or real_cut(a, b, frames, *r))
    ws = list(media.iter_windows(f))   # auto: more than MAX_CLIP decoded -> 2-s windows, 1-s hop
    assert len(ws) >= 28 and ws[0].end - ws[0].start == pytest.approx(media.WINDOW)
    assert ws[-1].end == pytest.approx(30.0, abs=0.3) and all(w.has_audio and w.has_video for w in ws)
    assert max(held[1:-1]) <= (media.MAX_CLIP + 2) * media.FPS   # never the whole 30 s
    held.clear()
    list(media.iter_windows(f, window=2.0, hop=1.0))
    # A given window streams from the start. What is held beyond one window is this file's own
    # skew: make_clip encodes all video before the audio, so the muxer writes video ~10 s ahead.
    assert max(held) <= media.MAX_CLIP * media.FPS and held[-1] <= 4 * media.FPS
    with media.decode_limits(seconds=5.0), pytest.raises(EmoliteError, match="longer than the limit of 5 s"):
        list(media.iter_windows(f))


# ---------------------------------------------------------------- kill, resume, concurrency


def test_killed_analyze_keeps_rows_and_resumes(tmp_path, audio_only, checkpoint):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(6):
        (src / f"v{i}.wav").write_bytes(audio_only.read_bytes())
    out = tmp_path / "out"
    out.mkdir()
    (out / "emotions.json").write_text('{"stale": true}')
    cmd = [sys.executable, "-m", "emolite", "analyze", str(src), "-o", str(out), "-q", "--model", str(checkpoint)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    record = out / "emotions.jsonl"
    while time.time() < deadline and not (record.exists() and record.read_text().count("\n") >= 1):
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = [json.loads(x)["path"] for x in record.read_text().splitlines()]
    assert 1 <= len(done) < 6
    assert not (out / "emotions.json").exists()          # no stale JSON left looking current
    rows = (out / "emotions.csv").read_text().splitlines()
    assert len(rows) > 1 and not [p for p in out.iterdir() if fsio.is_temp(p)]   # rows visible as written
    lines: list[str] = []
    s = analyze.run([str(src)], load_model(checkpoint), out=str(out), progress=False, print_fn=lines.append,
                    resume=True)
    assert s["analyzed"] == 6 and not s["failed"]
    assert sum("finished in the earlier run" in x for x in lines) == len(done)
    import csv

    with open(out / "emotions.csv", newline="") as fh:
        per_file = [r["file"] for r in csv.DictReader(fh)]
    assert sorted(set(per_file)) == sorted(str(p) for p in src.iterdir())
    assert len(per_file) == 6 * per_file.count(per_file[0])   # no file twice, none cut short
    assert len(json.loads((out / "emotions.json").read_text())["results"]) == 6


def test_concurrent_preprocess_runs_claim_entries(tmp_path, audio_only):
    cfg = preprocess.preprocess_config()
    cdir = cache.cache_dir(tmp_path / "c", cfg)
    stray = cdir / cache.ENTRIES / ".tmp-other-run.npz"
    with cache.run_lock(cdir) as alone:
        assert alone
        stray.write_bytes(b"in progress")
        with cache.run_lock(cdir) as second:   # another run meanwhile: must not clean the first's writes
            assert not second and stray.exists()
        item = Item(str(audio_only), "", key="voice", dataset="files")
        with cache.claim(cdir, "voice"):
            preprocess._init_worker(cfg, 1)
            assert preprocess.process_item(item, str(cdir), cfg)["status"] == "claimed"
        assert preprocess.process_item(item, str(cdir), cfg)["status"] == "done"
    with cache.run_lock(cdir) as alone:   # alone again: the stray temp file is cleaned
        assert alone and not stray.exists()


# ---------------------------------------------------------------- issue 24: nothing invented, nothing exhausted


def test_truncated_file_answers_only_what_it_holds(tmp_path, checkpoint, capsys):
    """60-s interleaved Matroska cut at 25 %: no row past the decoded data claims a face or a
    label, and the result and the CLI say the file ended early."""
    from test_media import interleaved_mkv

    full = interleaved_mkv(tmp_path / "full.mkv", size=(160, 120))
    data = full.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) // 4])
    r = load_model(checkpoint).analyze(cut)
    assert r.windows[-1].end < 20 and len(r.windows) < 20          # not 59 windows to 60 s
    assert any(w.face_found for w in r.windows) and "ended early" in r.warnings[0]
    assert main(["analyze", str(cut), "--model", str(checkpoint), "-o", str(tmp_path / "o")]) == 0
    assert "[the file ended early" in capsys.readouterr().out
    rec = json.loads((tmp_path / "o" / "emotions.jsonl").read_text())
    assert "ended early" in rec["warnings"][0]


def test_lying_header_is_analysed_in_bounded_memory(tmp_path, checkpoint):
    """A tiny file claiming 1e8 s: the rows of its 3 s (the windows of the claim took 3.5 GB)."""
    from test_media import claim_duration, interleaved_mkv

    p = claim_duration(interleaved_mkv(tmp_path / "liar.mkv", seconds=3.0, size=(64, 48)), 1e8)
    code = ("import resource, sys; from emolite.inference import load_model; "
            f"r = load_model({str(checkpoint)!r}).analyze({str(p)!r}, progress=True); "
            "print(len(r.windows), r.warnings[0][:30], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    n, *_, rss_kb = out.stdout.split()
    assert int(n) <= 3 and "ended early" in out.stdout and int(rss_kb) < 1_500_000


def test_pixel_bomb_is_one_line_and_the_limit_can_be_raised(tmp_path, capsys, checkpoint):
    from test_media import _jpeg_declaring

    bomb = _jpeg_declaring(tmp_path / "bomb.jpg", 16000, 16000)
    one_line_error(capsys, main(["info", str(bomb)]), 1, "16000x16000 pixels is over the limit", "--max-pixels")
    assert main(["info", str(bomb), "--no-faces", "--json"]) == 0          # described from the header
    assert json.loads(capsys.readouterr().out)["width"] == 16000
    assert main(["analyze", str(bomb), "-q", "--model", str(checkpoint)]) == 2
    out = capsys.readouterr().out
    assert "over the limit" in out and "Traceback" not in out
    small = _jpeg_declaring(tmp_path / "small.jpg", 100, 100)
    assert main(["analyze", str(small), "-q", "--model", str(checkpoint), "--max-pixels", "5000"]) == 2
    assert "100x100 pixels is over the limit of 5000" in capsys.readouterr().out
    one_line_error(capsys, main(["analyze", str(small), "--max-pixels", "-3"]), 2, "--max-pixels")
    s = preprocess.run("files", small, tmp_path / "c", workers=1, progress=False, max_pixels=5000, detector="none")
    assert s["failed"] == 1 and "over the limit of 5000" in s["problems"][0]["reason"]


@pytest.mark.parametrize("bad", [b"[1,2]", b'{"x":1}', b"\xff\xfe not utf-8", b'{"path": null}', b"42", b'"str"'])
def test_resume_skips_a_broken_record_line_with_one_warning(bad, tmp_path, audio_only, checkpoint):
    out = tmp_path / "out"
    model = load_model(checkpoint)
    analyze.run([str(audio_only)], model, out=str(out), progress=False, quiet=True, print_fn=lambda *_: None)
    record = out / "emotions.jsonl"
    record.write_bytes(bad + b"\n" + record.read_bytes())
    lines: list[str] = []
    s = analyze.run([str(audio_only)], model, out=str(out), progress=False, print_fn=lines.append, resume=True)
    assert s["analyzed"] == 1 and not s["failed"]
    warnings = [x for x in lines if x.startswith("warning:")]
    assert len(warnings) == 1 and "skipped 1 line" in warnings[0]
    assert any("finished in the earlier run" in x for x in lines)


def test_resume_cuts_a_torn_last_line(tmp_path, audio_only, clip, checkpoint):
    """A kill mid-write leaves a last line without its newline: the next record must not be
    glued onto it (and lost)."""
    out = tmp_path / "out"
    model = load_model(checkpoint)
    analyze.run([str(audio_only)], model, out=str(out), progress=False, quiet=True, print_fn=lambda *_: None)
    record = out / "emotions.jsonl"
    whole = record.read_bytes()
    record.write_bytes(whole + whole[: len(whole) // 2])     # a second record, torn
    lines: list[str] = []
    s = analyze.run([str(audio_only), str(clip)], model, out=str(out), progress=False, quiet=True,
                    print_fn=lines.append, resume=True)
    assert s["analyzed"] == 2 and any("cut short" in x for x in lines)
    recs = [json.loads(x) for x in record.read_text().splitlines()]
    assert [Path(r["path"]).name for r in recs] == [audio_only.name, clip.name]
    s = analyze.run([str(audio_only), str(clip)], model, out=str(out), progress=False, quiet=True,
                    print_fn=lines.append, resume=True)
    assert len(s["results"]) == 2 and len(record.read_text().splitlines()) == 2   # both kept, none redone


def test_non_utf8_name_is_analysed_and_escaped_in_every_output(tmp_path, audio_only, checkpoint, capsys):
    import csv

    d = tmp_path / "in"
    d.mkdir()
    f = d / os.fsdecode(b"voix-\xe9t\xe9.wav")
    f.write_bytes(audio_only.read_bytes())
    out = tmp_path / "out"
    code = main(["analyze", str(d), "--model", str(checkpoint), "-o", str(out), "--plot"])
    printed = capsys.readouterr()
    assert code == 0, printed
    shown = str(d / "voix-\\xe9t\\xe9.wav")
    assert shown in printed.out
    rows = list(csv.DictReader(open(out / "emotions.csv", encoding="utf-8")))
    assert rows and {r["file"] for r in rows} == {shown}
    assert json.loads((out / "emotions.json").read_text(encoding="utf-8"))["results"][0]["path"] == shown
    assert (out / (f.name + ".png")).exists()
    lines: list[str] = []
    s = analyze.run([str(d)], load_model(checkpoint), out=str(out), progress=False, print_fn=lines.append, resume=True)
    assert s["analyzed"] == 1 and any("finished in the earlier run" in x for x in lines)   # resume knows it


def test_a_file_named_three_times_is_analysed_once(tmp_path, audio_only, monkeypatch):
    d = tmp_path / "in"
    d.mkdir()
    (d / "a.wav").write_bytes(audio_only.read_bytes())
    monkeypatch.chdir(d)
    files, problems = analyze.expand_inputs(["a.wav", "a.wav", "./a.wav", str(d), str(d / "a.wav")])
    assert files == [Path("a.wav")] and not problems


def test_outputs_honour_the_umask(tmp_path, clip, audio_only, checkpoint):
    """Under umask 022 every file analyze, preprocess and export write is 0644 (mkstemp made
    the atomically written ones 0600), so a shared results folder or cache stays readable."""
    old = os.umask(0o022)
    try:
        out = tmp_path / "out"
        analyze.run([str(clip)], load_model(checkpoint), out=str(out), plot=True, progress=False, quiet=True,
                    print_fn=lambda *_: None)
        s = preprocess.run("files", audio_only, tmp_path / "c", workers=1, progress=False, detector="none")
        fsio.atomic_write_text(tmp_path / "x" / "m.onnx", "model")   # export's writer
        files = [*out.iterdir(), *Path(s["cache"]).rglob("*"), tmp_path / "x" / "m.onnx"]
        files = [p for p in files if p.is_file() and p.name != cache.LOCK]
        assert {p.suffix for p in files} >= {".csv", ".json", ".jsonl", ".png", ".npz"}
        assert {oct(p.stat().st_mode & 0o777) for p in files} == {"0o644"}, \
            [(p.name, oct(p.stat().st_mode & 0o777)) for p in files]
        os.umask(0o077)
        fsio.atomic_write_text(tmp_path / "private.json", "{}")
        assert (tmp_path / "private.json").stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old)


def test_temp_files_a_killed_plot_left_are_cleaned(tmp_path, audio_only, checkpoint):
    out = tmp_path / "out"
    out.mkdir()
    stale = [out / ".tmp-k1lled0x.png", out / ".tmp-0123456789abcdef.json"]
    for p in stale:
        p.write_bytes(b"half")
    mine = out / ".tmp-notes.txt"   # not a kind analyze writes: left alone
    mine.write_text("x")
    analyze.run([str(audio_only)], load_model(checkpoint), out=str(out), progress=False, quiet=True,
                print_fn=lambda *_: None, resume=True)
    assert not any(p.exists() for p in stale) and mine.exists()
