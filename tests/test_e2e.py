"""The research loop as a user runs it from the README: a CREMA-D-layout tree ->
`emolite preprocess` -> `emolite train` -> `emolite evaluate` -> `emolite analyze` with the result."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cli(*args, cwd=None):
    r = subprocess.run([sys.executable, "-m", "emolite", *map(str, args)], capture_output=True, text=True, cwd=cwd)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


def test_cremad_preprocess_train_evaluate_analyze(tmp_path, clips):
    from test_data import cremad_tree

    tree = cremad_tree(tmp_path / "CREMA-D", {".flv": clips[".flv"]})
    out = cli("preprocess", tree, "--dataset", "cremad", "-o", tmp_path / "cache", "-q", "--workers", "2")
    assert "failed 0" in out and "skipped 1" in out  # the malformed file name is skipped, not fatal
    out = cli("train", "--config", ROOT / "configs" / "smoke.toml",
              "--set", f"data.cache_dir=\"{tmp_path / 'cache'}\"", "--set", "data.dataset=\"cremad\"",
              "--set", f"trainer.out_dir=\"{tmp_path / 'runs'}\"", "--set", "trainer.name=\"cremad\"",
              "--set", "optim.epochs=1", "--set", "data.val_split=\"\"")
    best = tmp_path / "runs" / "cremad" / "best.pt"
    assert best.exists() and "val/f1_weighted" in out
    out = cli("evaluate", "--model", best, "--cache", tmp_path / "cache", "--split", "all", "-o", tmp_path / "eval")
    assert "accuracy" in out
    res = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert res["n"] >= 4 and 0 <= res["accuracy"] <= 1 and "surprise" not in res["classes"]
    assert (tmp_path / "eval" / "confusion_matrix.png").exists()
    out = cli("analyze", clips[".mp4"], "--model", best, "-q", "-o", tmp_path / "a.json")
    rows = json.loads((tmp_path / "a.json").read_text())["results"][0]["windows"]
    assert rows and set(rows[0]["probs"]) == {"anger", "disgust", "fear", "happiness", "neutral", "sadness"}
