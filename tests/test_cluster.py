"""Beyond one machine: --shard + merge, --ray (a local Ray instance), and a 2-process DDP launch.
A sharded run merged and a Ray run must give a single-machine run's rows, in its order."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from emolite import analyze, cache, preprocess
from emolite.demo import make_clip
from emolite.errors import EmoliteError
from emolite.inference import load_model
from emolite.merge import merge
from emolite.options import OptionError
from emolite.shard import input_key, parse_shard, select, shard_of

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """Five clips of different lengths in two folders, and one broken file."""
    d = tmp_path_factory.mktemp("many")
    for i, s in enumerate([3.0, 1.5, 4.0, 2.0, 2.5]):
        make_clip(d / ("a" if i % 2 else "b") / f"clip{i}.mp4", seconds=s, width=160, height=120, face=i != 3)
    (d / "b" / "broken.mp4").write_bytes(b"not a video")
    return d


@pytest.fixture(scope="module")
def model():
    return load_model()


@pytest.fixture(scope="module")
def single(inputs, model, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("single")
    analyze.run([str(inputs)], model, out=str(out), quiet=True)
    return out


def _rows(out: Path) -> list[dict]:
    return json.loads((out / "emotions.json").read_text())["results"]


def assert_same(a: Path, b: Path) -> None:
    """Same files in the same order, same windows, probabilities to 1e-6, the same failures."""
    ra, rb = _rows(a), _rows(b)
    assert [r["path"] for r in ra] == [r["path"] for r in rb]
    for x, y in zip(ra, rb):
        assert [(w["start"], w["end"], w["label"]) for w in x["windows"]] == \
               [(w["start"], w["end"], w["label"]) for w in y["windows"]]
        px = [[v if v is not None else -1.0 for v in w["probs"].values()] for w in x["windows"]]
        py = [[v if v is not None else -1.0 for v in w["probs"].values()] for w in y["windows"]]
        np.testing.assert_allclose(px, py, atol=1e-6)
    fa = json.loads((a / "emotions.json").read_text())["failed"]
    fb = json.loads((b / "emotions.json").read_text())["failed"]
    assert [f["path"] for f in fa] == [f["path"] for f in fb]
    ca, cb = (a / "emotions.csv").read_text().splitlines(), (b / "emotions.csv").read_text().splitlines()
    assert len(ca) == len(cb) and [r.split(",")[:3] for r in ca] == [r.split(",")[:3] for r in cb]


def test_shards_split_by_relative_path_disjoint_and_complete(inputs, tmp_path):
    files, _ = analyze.expand_inputs([str(inputs)])
    parts = [select([str(inputs)], files, f"{k}/3")[0] for k in (1, 2, 3)]
    assert sorted(f for p in parts for f in p) == sorted(files)           # every file once
    assert sum(len(p) for p in parts) == len(files)
    # the same data mounted elsewhere splits the same way: the key is the path inside the argument
    other = tmp_path / "mnt" / "data"
    shutil.copytree(inputs, other)
    files2, _ = analyze.expand_inputs([str(other)])
    assert [input_key(f, [str(other)]) for f in files2] == [input_key(f, [str(inputs)]) for f in files]
    assert input_key(files[0], [str(inputs)]) == files[0].relative_to(inputs).as_posix()
    assert input_key(inputs / "a" / "clip1.mp4", [str(inputs / "a" / "clip1.mp4")]) == "clip1.mp4"
    assert input_key(inputs / "a" / "clip1.mp4", [str(inputs) + "/*/*.mp4"]) == "a/clip1.mp4"
    assert shard_of("a/clip1.mp4", 7) == shard_of("a/clip1.mp4", 7) == 1 + int(
        __import__("hashlib").sha1(b"a/clip1.mp4").hexdigest()[:15], 16) % 7
    for bad in ("0/3", "4/3", "3", "a/b", "1/0"):
        with pytest.raises(OptionError, match="--shard"):
            parse_shard(bad)


def test_sharded_runs_merge_to_the_single_run(inputs, model, single, tmp_path, capsys):
    from emolite.cli import main

    shards = []
    for k in (1, 2, 3):
        shards.append(tmp_path / f"s{k}")
        analyze.run([str(inputs)], model, out=str(shards[-1]), quiet=True, shard=f"{k}/3")
    assert all((s / "emotions.shard.json").exists() for s in shards)
    assert main(["merge", *map(str, shards[::-1]), "-o", str(tmp_path / "m")]) == 2   # the broken file failed
    assert "broken.mp4" in capsys.readouterr().err
    assert_same(single, tmp_path / "m")
    assert (tmp_path / "m" / "emotions.csv").read_text() == (single / "emotions.csv").read_text()
    with pytest.raises(EmoliteError, match="in both"):
        merge([shards[0], shards[1], shards[0]], tmp_path / "dup")
    # a shard that never ran: its files are named as missing
    s = merge(shards[:2], tmp_path / "part")
    expected = json.loads((shards[2] / "emotions.shard.json").read_text())["files"].values()
    assert sorted(s["missing"]) == sorted(expected) and s["missing"]


def test_preprocess_shards_cover_the_items_once(inputs, tmp_path):
    sums = [preprocess.run("files", inputs / "a", tmp_path / "c", workers=1, progress=False, shard=f"{k}/2")
            for k in (1, 2)]
    assert sum(s["items"] for s in sums) == 2 and sum(s["done"] for s in sums) == 2
    assert sums[1]["entries"] >= 2   # one cache, one index, both shards' entries


# ----- Ray: one local instance for the module (start-up costs seconds) -----

@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False,
             configure_logging=False, runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
    yield ray
    ray.shutdown()


def test_ray_run_matches_single_machine(ray_local, inputs, single, tmp_path):
    from emolite.cluster import run_analyze

    lines = []
    s = run_analyze([str(inputs)], out=str(tmp_path / "r"), quiet=True, workers=2, print_fn=lines.append)
    assert s["analyzed"] == 5 and [f["path"] for f in s["failed"]] == [str(inputs / "b" / "broken.mp4")]
    assert sum("broken.mp4" in x for x in lines) == 1             # one line, and the rest went on
    assert_same(single, tmp_path / "r")
    assert (tmp_path / "r" / "emotions.csv").read_text() == (single / "emotions.csv").read_text()


def test_ray_killed_worker_and_killed_driver_resume(ray_local, inputs, single, tmp_path):
    from emolite.cluster import run_analyze

    # the worker dies at its 2nd file: Ray restarts it and the file is given again
    s = run_analyze([str(inputs)], out=str(tmp_path / "k"), quiet=True, workers=1, _kill_after=1)
    assert s["analyzed"] == 5
    assert_same(single, tmp_path / "k")
    # a driver killed after two files: its record has two lines and no JSON; --resume finishes it
    out = tmp_path / "d"
    out.mkdir()
    record = (single / "emotions.jsonl").read_text().splitlines(keepends=True)
    (out / "emotions.jsonl").write_text("".join(record[:2]) + record[2][:40])   # the 3rd line cut mid-write
    lines = []
    s = run_analyze([str(inputs)], out=str(out), quiet=False, workers=2, resume=True, print_fn=lines.append)
    assert sum("--resume" in x for x in lines) == 2 and s["analyzed"] == 5
    assert_same(single, out)


def test_ray_preprocess_writes_the_same_cache(ray_local, inputs, tmp_path):
    local = preprocess.run("files", inputs, tmp_path / "l", workers=1, progress=False)
    s = preprocess.run("files", inputs, tmp_path / "r", ray="local", workers=2, progress=False)
    assert (s["done"], s["failed"], s["entries"]) == (local["done"], local["failed"], local["entries"])
    assert "broken.mp4" in s["problems"][0]["reason"]
    rows_l, rows_r = cache.read_index(local["cache"]), cache.read_index(s["cache"])
    assert [r["key"] for r in rows_l] == [r["key"] for r in rows_r]
    for a, b in zip(rows_l, rows_r):
        ea, eb = cache.load_entry(a["file"]), cache.load_entry(b["file"])
        assert np.array_equal(ea["face_mask"], eb["face_mask"]) and np.array_equal(ea["audio"], eb["audio"])
        assert np.abs(ea["context"].astype(int) - eb["context"].astype(int)).max() <= 1


# ----- training across machines: the torchrun launch, 2 CPU processes (gloo) -----

DDP_SCRIPT = """
import json, os, sys
from emolite import config, loader, train
seen, orig = [], loader.EpochBatchSampler.__iter__
def record(self):   # the samples each rank trains on
    for b in orig(self):
        if self.with_epoch:
            seen.append([int(i) for i, _, _ in b])
        yield b
loader.EpochBatchSampler.__iter__ = record
import torch   # BatchNorm on its running statistics, in both runs: a sample's gradient then does not depend on
bn = torch.nn.modules.batchnorm._BatchNorm   # which others share its batch (each rank normalises over its own 4)
bn_forward = bn.forward
def fixed_forward(self, x):
    training, self.training = self.training, False
    try:
        return bn_forward(self, x)
    finally:
        self.training = training
bn.forward = fixed_forward
res = train.run(config.load_config(sys.argv[1], json.loads(sys.argv[2])))
out = sys.argv[3]
json.dump({"seen": seen, "step": res["global_step"]}, open(os.path.join(out, f"rank{os.environ.get('RANK', 0)}.json"), "w"))
"""


def _train(script, cache_dir, out, procs, batch):
    sets = [f'data.cache_dir="{cache_dir}"', f'trainer.out_dir="{out}"', 'trainer.name="run"', f"data.batch_size={batch}",
            "augment.prob=0.0", "model.dropout=0.0", "model.modality_dropout=0.0", 'optim.keep="last"',
            "optim.epochs=1", 'trainer.accelerator="cpu"', f"trainer.devices={procs}",
            f'trainer.strategy="{"ddp" if procs > 1 else "auto"}"', "trainer.deterministic=true"]
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={procs}"] \
        if procs > 1 else [sys.executable]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    p = subprocess.run([*launch, str(script), str(ROOT / "configs" / "smoke.toml"), json.dumps(sets), str(out)],
                       env=env, cwd=out, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    import torch
    return torch.load(out / "run" / "best.pt", map_location="cpu", weights_only=True)


def test_torchrun_two_ranks_see_disjoint_batches_and_match_one_process(tmp_path):
    from synthetic import make_synthetic_cache

    cdir = make_synthetic_cache(tmp_path / "cache", n_per_class={"train": 8, "dev": 2, "test": 0})
    script = tmp_path / "ddp_train.py"
    script.write_text(DDP_SCRIPT)
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    one = _train(script, cdir, tmp_path / "one", 1, 8)       # one process, batch 8
    two = _train(script, cdir, tmp_path / "two", 2, 4)       # two ranks, batch 4 each: the same 8 per step
    r0, r1 = (json.loads((tmp_path / "two" / f"rank{r}.json").read_text()) for r in (0, 1))
    solo = json.loads((tmp_path / "one" / "rank0.json").read_text())
    assert r0["step"] == r1["step"] == solo["step"] == 3
    for b0, b1, b in zip(r0["seen"], r1["seen"], solo["seen"]):
        assert not set(b0) & set(b1)                      # disjoint on every step
        assert sorted(b0 + b1) == sorted(b)               # and together the one-process batch
    w1, w2 = one["state_dict"], two["state_dict"]
    diffs = [float((w1[k].float() - w2[k].float()).abs().max()) for k in w1 if w1[k].is_floating_point()]
    # same seeded start, same 8 samples a step: the same weights, to float rounding (which AdamW's
    # normalised step can raise on a near-zero gradient: still well under one step, lr = 3e-3)
    assert float(np.median(diffs)) < 1e-6 and max(diffs) < 1e-3, (np.median(diffs), max(diffs))
    m1, m2 = (json.loads((tmp_path / d / "run" / "metrics.json").read_text()) for d in ("one", "two"))
    assert abs(m1["val/loss"] - m2["val/loss"]) < 1e-3
