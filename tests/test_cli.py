import json
import subprocess
import sys

from emolite.cli import main


def run_cli(*args):
    r = subprocess.run([sys.executable, "-m", "emolite", *map(str, args)], capture_output=True, text=True)
    return r.returncode, r.stdout, r.stderr


def test_info_prints_streams_and_faces(clip, capsys):
    assert main(["info", str(clip), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["has_audio"] and info["faces"]["frames_with_face"] == info["faces"]["sampled_frames"] > 0


def test_info_bad_file_is_one_line_and_nonzero(bad_files):
    code, out, err = run_cli("info", bad_files["empty"])
    assert code == 1 and "Traceback" not in err
    assert err.strip().count("\n") == 0 and str(bad_files["empty"]) in err and "empty" in err


def test_info_audio_only_and_unknown_codec(audio_only, bad_files, capsys):
    assert main(["info", str(audio_only), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kind"] == "audio" and "faces" not in info
    assert main(["info", str(bad_files["codec"]), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kind"] == "unknown" and "not supported" in info["warnings"][0]


def test_preprocess_cli_summary_and_exit_code(tmp_path, clip, bad_files):
    d = tmp_path / "in"
    d.mkdir()
    (d / "a.mp4").write_bytes(clip.read_bytes())
    (d / "b.mp4").write_bytes(b"")
    code, out, err = run_cli("preprocess", d, "-o", tmp_path / "c", "-q", "--workers", "1")
    assert code == 2, err  # something failed: the exit code says so, the run still finished
    assert "done 1" in out and "failed 1" in out and "b.mp4" in out


def test_wrong_flag_and_missing_root(tmp_path):
    code, _, err = run_cli("preprocess", tmp_path / "nothing", "-o", tmp_path / "c")
    assert code == 1 and "no such file or folder" in err and "Traceback" not in err
    code, _, err = run_cli("preprocess", "--bogus")
    assert code == 2 and "usage" in err


def test_demo_writes_and_analyses_the_example(tmp_path, capsys):
    """The README's first command: the example clip, its table, CSV/JSON and plot."""
    assert main(["demo", "-o", str(tmp_path / "d"), "--seconds", "3"]) == 0
    out = capsys.readouterr().out
    assert "overall:" in out
    for name in ("demo.mp4", "emotions.csv", "emotions.json", "demo.mp4.png"):
        assert (tmp_path / "d" / name).stat().st_size > 0


def test_serve_max_people_is_checked_in_one_line():
    code, out, err = run_cli("serve", "--max-people", "0")
    assert code == 2 and "--max-people" in err and "Traceback" not in err
