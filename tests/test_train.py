"""Training on a synthetic cache: smoke run, exact resume after SIGKILL, transfer, config."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from emolite import config, loader, train
from synthetic import make_synthetic_cache
from emolite.errors import EmoliteError

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs" / "smoke.toml"


@pytest.fixture(scope="module")
def syn_cache(tmp_path_factory):
    # 7 train items/class x 3 classes, batch 4, drop_last -> 5 steps per epoch
    return make_synthetic_cache(tmp_path_factory.mktemp("cache"), n_per_class={"train": 7, "dev": 2, "test": 2})


def _cfg(cache_dir, out_dir, name, *extra):
    return config.load_config(SMOKE, [f'data.cache_dir="{cache_dir}"', f'trainer.out_dir="{out_dir}"',
                                      f'trainer.name="{name}"', "trainer.ckpt_every_n_steps=2",
                                      "augment.prob=0.8", *extra])


@pytest.fixture(scope="module")
def full_run(syn_cache, tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("runs")
    cfg = _cfg(syn_cache, out, "full")
    return cfg, train.run(cfg)


def _state(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def test_smoke_run_outputs(full_run):
    cfg, res = full_run
    run_dir = Path(res["run_dir"])
    for f in ["best.pt", "metrics.json", "config.toml", "checkpoints/last.ckpt", "csv/metrics.csv",
              "eval_test/metrics.json", "eval_test/confusion_matrix.png"]:
        assert (run_dir / f).exists(), f
    assert res["global_step"] == 10 and res["classes"] == ["anger", "happiness", "neutral"]
    for k in ["val/acc", "val/f1_weighted", "val/f1_macro", "val/uar", "test/accuracy"]:
        assert 0.0 <= res[k] <= 1.0
    ck = _state(run_dir / "best.pt")
    meta = ck["meta"]
    assert meta["classes"] == res["classes"]
    assert meta["preprocess"]["frames"] == 4 and meta["preprocess"]["audio_seconds"] == 1.0
    assert meta["model"]["face"]["dim"] == 32 and "val/f1_weighted" in meta["metrics"]
    # the run's config.toml reloads to the same config
    assert config.load_config(run_dir / "config.toml") == cfg
    with pytest.raises(EmoliteError, match="resume"):
        train.run(cfg)   # refuses to overwrite a run that has checkpoints


def test_resume_after_kill_matches(full_run, syn_cache, tmp_path):
    cfg_a, res_a = full_run
    cfg_b = _cfg(syn_cache, tmp_path, "killed", "debug.kill_after_steps=9")
    code = ("import json, sys, torch; torch.set_num_threads(1); from emolite import train; "
            "train.run(json.loads(sys.argv[1]))")
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    p = subprocess.run([sys.executable, "-c", code, json.dumps(cfg_b)], env=env, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == -9, p.stderr[-3000:]
    run_dir = tmp_path / "killed"
    assert (run_dir / "checkpoints" / "last.ckpt").exists() and not (run_dir / "best.pt").exists()
    assert _state(run_dir / "checkpoints" / "last.ckpt")["global_step"] == 8   # mid-epoch 2 (5 steps/epoch)

    cfg_b["debug"]["kill_after_steps"] = 0
    res_b = train.run(cfg_b, resume=True)
    assert res_b["global_step"] == res_a["global_step"] == 10
    for k in ["val/loss", "val/acc", "val/f1_weighted"]:
        assert res_b[k] == pytest.approx(res_a[k], abs=1e-5), k
    sa = _state(Path(res_a["run_dir"]) / "checkpoints" / "last.ckpt")["state_dict"]
    sb = _state(run_dir / "checkpoints" / "last.ckpt")["state_dict"]
    assert sa.keys() == sb.keys()
    for k in sa:
        torch.testing.assert_close(sb[k], sa[k], rtol=1e-5, atol=1e-6, msg=k)


def test_transfer_init_new_head(full_run, tmp_path):
    _, res = full_run
    best = Path(res["best_checkpoint"])
    src = _state(best)["state_dict"]
    model_cfg = config.load_config(None)["model"]          # default architecture: init's wins
    model = train.init_from(model_cfg, 2, best)
    sd = model.state_dict()
    assert sd["head.1.weight"].shape[0] == 2
    for k in src:
        if not k.startswith("head."):
            torch.testing.assert_close(sd[k], src[k])
    # end to end on another label set, one step
    cache2 = make_synthetic_cache(tmp_path / "c2", classes=("anger", "sadness"),
                                        n_per_class={"train": 4, "dev": 2})
    cfg = _cfg(cache2, tmp_path, "ft", f'model.init="{best}"', "optim.max_steps=2", 'data.test_split=""')
    out = train.run(cfg)
    assert out["classes"] == ["anger", "sadness"]
    assert _state(tmp_path / "ft" / "best.pt")["meta"]["num_classes"] == 2


def test_dataset_windows_and_masks(syn_cache):
    from emolite import cache
    rows = {r["key"]: r for r in cache.read_index(syn_cache)}
    ds = loader.ClipDataset(list(rows.values()), [0] * len(rows), frames=4, seconds=1.0)
    kinds = {}
    for i, r in enumerate(ds.rows):
        s = ds[i]
        assert s["face"].shape == (4, 112, 112, 3) and s["audio"].shape == (16000,)
        kinds[(r["has_video"], r["has_audio"])] = s
    assert not kinds[(False, True)]["context_mask"].any() and kinds[(False, True)]["audio_mask"]
    assert kinds[(True, False)]["context_mask"].all() and not kinds[(True, False)]["audio_mask"]
    # training samples: deterministic in (seed, epoch, position, index), different across epochs
    tr = loader.ClipDataset(ds.rows, ds.targets, 4, 1.0, train=True, augment={"prob": 1.0}, seed=3)
    i = next(i for i, r in enumerate(ds.rows) if r["has_audio"] and r["has_video"] and r["n_frames"] > 1)
    a, b, c = tr[(i, 0, 0)], tr[(i, 0, 0)], tr[(i, 1, 0)]
    assert np.array_equal(a["audio"], b["audio"]) and np.array_equal(a["context"], b["context"])
    assert not np.array_equal(a["audio"], c["audio"])


def test_sampler_resume_skip_and_weighted():
    s = loader.EpochBatchSampler(10, 3, "shuffle", seed=1)
    s.set_epoch(2)
    full = list(s)
    s.skip_epoch, s.skip = 2, 2
    assert list(s) == full[2:] and list(s) == full        # skip applies once
    w = torch.tensor([1.0] * 9 + [100.0])
    ws = loader.EpochBatchSampler(10, 10, "weighted", weights=w, seed=0)
    assert sum(i == 9 for i in next(iter(ws))) > 5


def test_config_overrides_and_errors(tmp_path):
    cfg = config.load_config(SMOKE, ["model.fusion=concat", "optim.lr=3e-4", "data.classes=['anger', 'joy']",
                                     "trainer.devices=2", "augment.flip=false"])
    assert cfg["model"]["fusion"] == "concat" and cfg["optim"]["lr"] == 3e-4
    assert cfg["data"]["classes"] == ["anger", "joy"] and cfg["trainer"]["devices"] == 2
    assert cfg["augment"]["flip"] is False and cfg["data"]["frames"] == 4   # file value kept
    with pytest.raises(EmoliteError, match="valid keys in \\[model\\]:.*fusion"):
        config.load_config(SMOKE, ["model.fuson=concat"])
    with pytest.raises(EmoliteError, match="unknown config key 'bogus'"):
        config.load_config(None, ["bogus.x=1"])
    with pytest.raises(EmoliteError, match="expects float"):
        config.load_config(None, ["optim.lr=fast"])
    bad = tmp_path / "bad.toml"
    bad.write_text("[optim]\nlearning_rate = 1.0\n")
    with pytest.raises(EmoliteError, match="optim.learning_rate"):
        config.load_config(bad)
    assert train.class_list(config.load_config(None, ["data.classes=['Happy', 'angry']"]), []) == ["happiness", "anger"]


@pytest.mark.parametrize("name", ["meld", "cremad", "ravdess", "meld_to_cremad", "smoke"])
def test_shipped_configs_load(name):
    cfg = config.load_config(ROOT / "configs" / f"{name}.toml")
    assert cfg["trainer"]["name"] == name
    if name == "meld_to_cremad":
        assert cfg["model"]["init"].endswith("meld/best.pt") and cfg["data"]["dataset"] == "cremad"


def test_plugin_registers_loss(tmp_path, monkeypatch):
    from emolite.losses import build_loss
    (tmp_path / "my_emolite_plugin.py").write_text(
        "import torch\nfrom emolite.registry import register_loss\n"
        "@register_loss('my_l1')\ndef make(class_weights=None, scale=1.0, **_):\n"
        "    return lambda out, y: scale * (out.float().softmax(-1)[range(len(y)), y] - 1).abs().mean()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    config.load_plugins(["my_emolite_plugin"])
    loss = build_loss({"name": "my_l1", "extra": {"scale": 2.0}})
    assert float(loss(torch.zeros(2, 3), torch.tensor([0, 1]))) == pytest.approx(2 * 2 / 3)
    with pytest.raises(EmoliteError, match="cannot import plugin"):
        config.load_plugins(["no_such_module_xyz"])
    with pytest.raises(EmoliteError, match="unknown loss 'nope'"):
        build_loss({"name": "nope"})


def test_losses():
    from emolite.losses import build_loss, ccc, class_weights
    logits, y = torch.randn(6, 3), torch.tensor([0, 1, 2, 0, 0, 1])
    w = class_weights([3, 2, 1])
    assert w[2] > w[1] > w[0]
    for name in ["ce", "weighted_ce", "focal"]:
        assert torch.isfinite(build_loss({"name": name, "gamma": 2.0}, w)(logits, y))
    # focal with gamma=0 is cross-entropy
    ce = torch.nn.functional.cross_entropy(logits, y)
    assert float(build_loss({"name": "focal", "gamma": 0.0})(logits, y)) == pytest.approx(float(ce), rel=1e-5)
    t = torch.randn(8, 2)
    assert torch.allclose(ccc(t, t), torch.ones(2), atol=1e-5)
    assert float(build_loss({"name": "ccc"})(t, t)) == pytest.approx(0.0, abs=1e-5)


def test_keep_last_saves_final_weights(syn_cache, tmp_path):
    torch.set_num_threads(1)
    cfg = _cfg(syn_cache, tmp_path, "last", 'optim.keep="last"', 'data.test_split=""')
    train.run(cfg)
    final = _state(tmp_path / "last" / "checkpoints" / "last.ckpt")["state_dict"]
    saved = _state(tmp_path / "last" / "best.pt")["state_dict"]
    for k, v in saved.items():
        torch.testing.assert_close(v, final[f"model.{k}"])
    with pytest.raises(EmoliteError, match="optim.keep"):
        config.load_config(SMOKE, ['optim.keep="first"'])


def test_keep_last_runs_the_whole_schedule(syn_cache, tmp_path):
    """keep="last" is a fixed schedule: early stopping must not cut it short (it did: a
    30-epoch voice run stopped after 11 while validation wobbled)."""
    torch.set_num_threads(1)
    cfg = _cfg(syn_cache, tmp_path, "sched", 'optim.keep="last"', 'data.test_split=""', "optim.patience=0",
               'optim.mode="min"', "optim.epochs=3")   # a rising monitor counts as "worse": stopping would fire
    train.run(cfg)
    assert _state(tmp_path / "sched" / "checkpoints" / "last.ckpt")["epoch"] == 2   # 0-based: all 3 ran


def test_mixup_mixes_inputs_and_ors_masks():
    torch.manual_seed(0)
    x = {"audio": torch.stack([torch.zeros(8), torch.ones(8)]), "audio_mask": torch.tensor([True, False])}
    from emolite.lit import mixup
    out, lam, perm = mixup(x, 0.4)
    assert 0.0 <= lam <= 1.0 and sorted(perm.tolist()) == [0, 1]
    assert torch.allclose(out["audio"], lam * x["audio"] + (1 - lam) * x["audio"][perm])
    assert out["audio_mask"].tolist() == (x["audio_mask"] | x["audio_mask"][perm]).tolist()


def test_training_with_mixup_runs(syn_cache, tmp_path):
    torch.set_num_threads(1)
    res = train.run(_cfg(syn_cache, tmp_path, "mix", "augment.mixup=0.4", "optim.epochs=1"))
    assert res["global_step"] == 5 and 0.0 <= res["val/uar"] <= 1.0


@pytest.mark.parametrize("override, key", [
    ("optim.lr=nan", "optim.lr"), ("optim.lr=-1", "optim.lr"), ("optim.epochs=-1", "optim.epochs"),
    ("optim.max_steps=0", "optim.max_steps"), ("data.batch_size=0", "data.batch_size"),
    ("data.frames=1000000000", "data.frames"), ("data.audio_seconds=inf", "data.audio_seconds"),
    ("optim.weight_decay=-0.1", "optim.weight_decay"), ("model.modality_dropout=1.5", "model.modality_dropout"),
    ("loss.label_smoothing=1.0", "loss.label_smoothing"), ("augment.prob=2", "augment.prob"),
    ("trainer.ckpt_every_n_steps=0", "trainer.ckpt_every_n_steps"),
])
def test_absurd_training_values_are_one_line_naming_the_key(override, key, tmp_path, capsys):
    from emolite.cli import main
    with pytest.raises(EmoliteError, match=key.replace(".", r"\.")):
        config.load_config(SMOKE, [override])
    code = main(["train", "--config", str(SMOKE), "--set", override, "--set", f'trainer.out_dir="{tmp_path}"'])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error:") and key in err and "\n" not in err, err
    cfg = config.load_config(SMOKE)
    section, name = key.split(".")
    cfg[section][name] = config.parse_value(override.split("=", 1)[1])
    with pytest.raises(EmoliteError, match=key.replace(".", r"\.")):
        train.run(cfg)   # a config built in code is checked too


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {_Evil.marker}",))


@pytest.mark.parametrize("kind", ["random", "malicious", "not_ours"])
def test_resume_from_an_unreadable_checkpoint_is_one_line(kind, syn_cache, tmp_path):
    import pickle
    cfg = _cfg(syn_cache, tmp_path, "bad")
    last = tmp_path / "bad" / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True)
    _Evil.marker = tmp_path / "pwned"
    if kind == "random":
        last.write_bytes(np.random.default_rng(0).bytes(4096))
    elif kind == "malicious":
        torch.save({"state_dict": {}, "emolite": _Evil()}, last)
    else:
        torch.save({"weights": torch.zeros(3)}, last)
    with pytest.raises(EmoliteError, match="cannot resume: the checkpoint is unreadable") as e:
        train.run(cfg, resume=True)
    assert str(last) in str(e.value) and "\n" not in str(e.value)
    assert not _Evil.marker.exists()   # weights_only: nothing in the file ever ran
