"""Model shapes, masking, budgets, ONNX parity, checkpoints."""

import numpy as np
import pytest
import torch

from emolite import models
from emolite.errors import EmoliteError
from emolite.models import build_model, count_macs, count_params, example_batch
from emolite.models.net import drop_modalities, masked_gru

torch.set_num_threads(1)
TINY = dict(face_width=8, face_dim=32, context_width=8, context_dim=32, audio_dim=32, audio_channels=[8, 8, 16, 16],
            audio_hidden=32, n_mels=32, hidden=32, fusion_dim=32)


@pytest.fixture(scope="module")
def default_model():
    torch.manual_seed(0)
    return build_model(None, 7).eval()


def test_default_budget(default_model):
    """Default full model: <= 1.0 M parameters, <= 0.45 G MACs per 4-s clip at T=8."""
    assert count_params(default_model) <= 1_000_000
    macs = count_macs(default_model, example_batch(1, models.FRAMES, models.SECONDS))
    assert 0.1e9 < macs <= 0.45e9
    # MACs scale with the batch
    assert count_macs(default_model, example_batch(2, 8, 4.0)) == pytest.approx(2 * macs, rel=1e-6)


@pytest.mark.parametrize("name", ["attention", "concat", "gated"])
def test_fusions_shapes_and_missing_modalities(name):
    torch.manual_seed(0)
    m = build_model(name, 5, **TINY).eval()
    x = example_batch(4, 3, 0.5, seed=1)
    x["audio_mask"][1] = False                 # no voice
    x["face_mask"][2] = False                  # no face found
    x["face_mask"][3, 1:] = False              # face in one frame only
    x["context_mask"][0] = False
    x["face_mask"][0] = False                  # voice only
    with torch.no_grad():
        out = m(x)
    assert out.shape == (4, 5) and torch.isfinite(out).all()
    # everything missing still gives finite logits
    for k in ("face_mask", "context_mask", "audio_mask"):
        x[k] = torch.zeros_like(x[k])
    with torch.no_grad():
        assert torch.isfinite(m(x)).all()


def test_missing_modality_content_is_ignored():
    """Whatever sits in a masked-out input must not change the output."""
    torch.manual_seed(0)
    m = build_model("attention", 4, **TINY).eval()
    x = example_batch(2, 4, 0.5, seed=2)
    x["audio_mask"][:] = False
    x["face_mask"][:, 2:] = False
    y = {k: v.clone() for k, v in x.items()}
    y["audio"] = torch.randn_like(y["audio"])
    y["face"][:, 2:] = torch.rand_like(y["face"][:, 2:])
    with torch.no_grad():
        torch.testing.assert_close(m(x), m(y))


def test_masked_gru_equals_gru_on_valid_frames():
    torch.manual_seed(0)
    gru = torch.nn.GRU(6, 5, batch_first=True)
    x = torch.randn(2, 5, 6)
    mask = torch.tensor([[True, False, True, False, True], [False, False, False, False, False]])
    out = masked_gru(gru, x, mask)
    ref, h = gru(x[0:1, mask[0]])
    torch.testing.assert_close(out[0, :5], h[0, 0])
    torch.testing.assert_close(out[0, 5:], ref[0].mean(0))
    assert torch.isfinite(out[1]).all()


def test_modality_dropout_keeps_one():
    torch.manual_seed(0)
    present = torch.tensor([[True, True, True], [True, False, False], [False, True, True]]).repeat(50, 1)
    kept = drop_modalities(present, 0.9)
    assert (kept.any(1) == present.any(1)).all() and not (kept & ~present).any()
    assert kept.sum() < present.sum()


@pytest.mark.parametrize("name", ["audio", "face", "context"])
def test_single_modality_models(name):
    m = build_model(name, 3, **TINY).eval()
    assert list(m.encoders) == [name] and m.cfg.modalities == (name,) and m.cfg.modality_dropout == 0.0
    x = example_batch(2, 2, 0.5)
    with torch.no_grad():
        assert m(x).shape == (2, 3)
    if name == "audio":   # a voice model needs only the audio keys
        with torch.no_grad():
            assert m({"audio": x["audio"], "audio_mask": x["audio_mask"]}).shape == (2, 3)


def test_audio_1d_variant_and_bad_kind():
    m = build_model("audio", 3, audio_kind="1d").eval()
    with torch.no_grad():
        assert m(example_batch(2, 1, 1.0)).shape == (2, 3)
    with pytest.raises(EmoliteError, match="audio encoder"):
        build_model("audio", 3, audio_kind="3d")
    with pytest.raises(EmoliteError, match="unknown model"):
        build_model("nope", 3)


def test_logmel_matches_stft():
    from emolite.models.audio import LogMel
    lm = LogMel()
    wav = torch.randn(1, 8000)
    spec = torch.stft(wav, 400, 160, window=torch.hann_window(400), center=True, pad_mode="constant",
                      return_complex=True).abs() ** 2
    ref = torch.log(lm.mel[:, :, 0] @ spec[0] + 1e-6)
    torch.testing.assert_close(lm(wav)[0], ref, rtol=1e-3, atol=1e-3)


def test_train_mode_backward():
    torch.manual_seed(0)
    m = build_model("attention", 3, **TINY).train()
    x = example_batch(3, 2, 0.5)
    loss = torch.nn.functional.cross_entropy(m(x), torch.tensor([0, 1, 2]))
    loss.backward()
    assert all(p.grad is not None for n, p in m.named_parameters() if "encoders" in n and "weight" in n)


def test_onnx_parity(default_model, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    path = models.export_onnx(default_model, tmp_path / "m.onnx")
    assert not default_model.training
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for B, T, sec in [(1, 8, 4.0), (3, 5, 2.5)]:          # dynamic batch, frames and audio length
        x = example_batch(B, T, sec, seed=B)
        if B == 3:
            x["face_mask"][0, 2:] = False
            x["audio_mask"][1] = False
            x["face_mask"][2] = False
        with torch.no_grad():
            ref = torch.softmax(default_model(x), -1).numpy()
        logits, probs = sess.run(None, {k: x[k].numpy() for k in models.INPUT_NAMES})
        assert np.abs(probs - ref).max() <= 1e-4


def test_checkpoint_roundtrip(tmp_path):
    torch.manual_seed(0)
    m = build_model("concat", 4, **TINY).eval()
    p = models.save_checkpoint(tmp_path / "sub" / "m.pt", m, {"classes": ["a", "b", "c", "d"], "x": np.float32(1.5)})
    assert not list((tmp_path / "sub").glob(".tmp-*"))
    m2, meta = models.load_checkpoint(p)
    assert meta["classes"] == ["a", "b", "c", "d"] and meta["x"] == 1.5 and meta["model"]["fusion"] == "concat"
    assert m2.cfg == m.cfg and meta["model"]["face"] == {"dim": 32, "width": 8, "hidden": TINY["hidden"]}
    x = example_batch(2, 2, 0.5)
    with torch.no_grad():
        torch.testing.assert_close(m(x), m2(x))
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(EmoliteError):
        models.load_checkpoint(tmp_path / "bad.pt")
    with pytest.raises(EmoliteError, match="not found"):
        models.load_checkpoint(tmp_path / "missing.pt")


def test_fast_maxpool_matches_torch():
    from emolite.models.audio import MaxPool2x
    x = torch.randn(2, 3, 9, 11)
    torch.testing.assert_close(MaxPool2x(2)(x), torch.nn.functional.max_pool2d(x, 2))
    torch.testing.assert_close(MaxPool2x(1)(x[:, :, 0]), torch.nn.functional.max_pool1d(x[:, :, 0], 2))


def test_band_norm_removes_level_and_old_configs_keep_batchnorm(tmp_path):
    from emolite.models.audio import BandNorm
    torch.manual_seed(0)
    m = build_model("audio", 3).eval()
    assert isinstance(m.encoders["audio"].norm, BandNorm)
    wav = 0.3 * torch.randn(1, 16000)
    with torch.no_grad():   # per-band standardisation: a louder recording gives the same output
        torch.testing.assert_close(m({"audio": wav, "audio_mask": torch.ones(1, dtype=torch.bool)}),
                                   m({"audio": 3 * wav, "audio_mask": torch.ones(1, dtype=torch.bool)}),
                                   rtol=1e-3, atol=1e-3)
    with pytest.raises(EmoliteError, match="audio_norm"):
        build_model("audio", 3, audio_norm="nope")


def test_spec_augment_only_while_training():
    torch.manual_seed(0)
    m = build_model("audio", 3, audio_specaug=True)
    x = example_batch(2, 1, 1.0)
    m.eval()
    with torch.no_grad():
        torch.testing.assert_close(m(x), m(x))
    from emolite.models.audio import spec_augment
    s = spec_augment(torch.ones(8, 1, 64, 100))
    assert 0.0 < (s == 0).float().mean() < 0.5 and set(s.unique().tolist()) <= {0.0, 1.0}


def test_band_norm_ignores_zero_padding():
    """A short utterance padded with zeros to the model's length is normalised as without the
    padding (its statistics come from frames with sound); the padded frames come out 0."""
    import torch

    from emolite.demo import voice
    from emolite.models.audio import BandNorm, LogMel

    mel, norm = LogMel(), BandNorm()
    a = torch.from_numpy(voice(2.0))[None]
    alone = norm(mel(a)[:, None])
    padded = norm(mel(torch.cat([a, torch.zeros(1, 32000)], 1))[:, None])
    n = alone.shape[-1]
    assert (alone[..., : n - 3] - padded[..., : n - 3]).abs().mean() < 0.1
    assert padded[..., n + 3:].abs().max() == 0
    naive = mel(torch.cat([a, torch.zeros(1, 32000)], 1))[:, None]   # what unmasked stats would see
    naive = (naive - naive.mean(-1, keepdim=True)) / naive.std(-1, keepdim=True)
    assert (alone[..., : n - 3] - naive[..., : n - 3]).abs().mean() > 0.3


def test_typed_configs_round_trip_and_refuse_what_they_do_not_hold():
    from dataclasses import replace

    from emolite import arch
    for cfg in (build_model("attention", 3, **TINY).cfg, build_model("audio", 3, audio_kind="1d").cfg,
                build_model("face_cnn", 3).cfg,
                arch.LateConfig(experts={"face": arch.FaceCNNConfig(), "audio": build_model("audio", 3).cfg},
                                weights={"face": 0.3, "audio": 0.7}, temperatures={"face": 1.0, "audio": 2.0})):
        d = arch.to_dict(cfg)
        assert arch.from_dict(d) == cfg and arch.to_dict(arch.from_dict(d)) == d
    audio = arch.to_dict(build_model("audio", 3).cfg)
    assert set(audio) == {"name", "fusion", "audio", "fusion_dim", "dropout", "modality_dropout"}   # no face keys
    assert set(arch.to_dict(arch.FaceCNNConfig())) == {"name", "width", "size", "dropout", "sharp_frac"}
    for bad, words in [({**audio, "face_dim": 128}, "upgrade"), ({**audio, "colour": 1}, "does not use: colour"),
                       ({k: v for k, v in audio.items() if k != "dropout"}, "lacks 'dropout'"),
                       ({**audio, "fusion_dim": 10 ** 9}, "fusion_dim"), ({**audio, "dropout": "x"}, "dropout"),
                       ({**audio, "name": "face"}, "does not describe"), ({"name": "nope"}, "unknown model kind"),
                       ({"name": ["x"]}, "no kind name")]:
        with pytest.raises(ValueError, match=words):
            arch.from_dict(bad)
        with pytest.raises(EmoliteError):
            build_model(bad, 3)
    assert replace(arch.NetConfig(), context=None).modalities == ("face", "audio")


def test_the_shipped_checkpoint_holds_only_the_keys_its_experts_use():
    from emolite.inference import DEFAULT_MODEL
    meta = torch.load(DEFAULT_MODEL, weights_only=True)["meta"]["model"]
    assert set(meta) == {"name", "experts", "weights", "temperatures", "per_frame"} and meta["name"] == "late"
    face, voice = meta["experts"]["face"], meta["experts"]["audio"]
    assert face == {"name": "face_cnn", "width": 24, "size": 48, "dropout": 0.3, "sharp_frac": 0.1}
    assert "face" not in voice and "context" not in voice and voice["audio"]["norm"] == "band"


def test_old_untyped_checkpoints_are_refused_and_converted_on_request(tmp_path):
    from emolite.models.upgrade import upgrade_checkpoint
    torch.manual_seed(0)
    m = build_model("audio", 3, audio_norm="batch").eval()
    p = models.save_checkpoint(tmp_path / "old.pt", m, {"classes": ["a", "b", "c"]})
    ck = torch.load(p, weights_only=True)
    # what a release before typed configs and before audio_norm wrote: the flat 18-key dict minus audio_norm
    ck["meta"]["model"] = {k: v for k, v in {**arch_table(), "name": "audio", "modalities": ["audio"],
                                               "modality_dropout": 0.0}.items() if k not in ("audio_norm", "audio_specaug")}
    torch.save(ck, p)
    with pytest.raises(EmoliteError, match="old.pt.*emolite.models.upgrade"):
        models.load_checkpoint(p)
    new, _ = models.load_checkpoint(upgrade_checkpoint(p, tmp_path / "new.pt"))
    assert new.cfg.audio.norm == "batch" and isinstance(new.encoders["audio"].norm, torch.nn.BatchNorm2d)
    x = example_batch(2, 2, 1.0)
    with torch.no_grad():
        torch.testing.assert_close(new(x), m(x))


def arch_table() -> dict:
    from emolite.arch import TABLE_DEFAULTS
    return dict(TABLE_DEFAULTS)


def test_inputs_are_shape_checked_at_the_model_entry(tmp_path):
    m = build_model("attention", 3, **TINY).eval()
    x = example_batch(2, 3, 0.5)
    for key, value, words in [("face", x["face"][:, 0], "face must be B×T×3×H×W"),
                              ("audio", x["audio"][:, None], "audio must be B×S"),
                              ("audio_mask", x["audio_mask"][:1], "audio_mask must be B=2"),
                              ("context_mask", x["context_mask"][:, :2], "context_mask must be B×T")]:
        with pytest.raises(AssertionError, match=words):
            m({**x, key: value})
    p = models.save_checkpoint(tmp_path / "m.pt", m, {"classes": ["a", "b", "c"]})
    loaded, _ = models.load_checkpoint(p)   # knows its InputSpec's crop sides (112 / 112 by default)
    loaded(example_batch(1, 2, 0.5))
    with pytest.raises(AssertionError, match="face crops must be 112×112"):
        loaded(example_batch(1, 2, 0.5, size=64))
    late = build_model(models.arch.LateConfig(experts={"face": models.arch.FaceCNNConfig()}), 3).eval()
    with pytest.raises(AssertionError, match="face must be"):
        late({"face": torch.zeros(1, 3, 48, 48), "face_mask": torch.ones(1, 3, dtype=torch.bool)})
