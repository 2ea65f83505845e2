"""The default model's late fusion: per-modality experts as a weighted product of experts."""

import numpy as np
import torch

from emolite.arch import LateConfig
from emolite.models import build_model, example_batch, load_checkpoint, save_checkpoint


def _late(weights=(0.6, 0.4)):
    torch.manual_seed(0)
    face = build_model("face", num_classes=7)
    voice = build_model("audio", num_classes=7)
    cfg = LateConfig(experts={"face": face.cfg, "audio": voice.cfg}, per_frame=("face",),
                     weights={"face": weights[0], "audio": weights[1]}, temperatures={"face": 1.5, "audio": 1.0})
    late = build_model(cfg, num_classes=7).eval()
    return late, face.eval(), voice.eval()


def test_missing_modality_falls_back_to_the_other_expert():
    late, _, _ = _late()
    x = example_batch(B=2, T=4, seconds=2.0)
    x["audio_mask"][:] = False
    with torch.no_grad():
        fused = torch.log_softmax(late(x), -1)
        face_only = torch.log_softmax(0.6 * late.expert_log_probs("face", x, 1.5), -1)
    assert torch.allclose(fused, face_only, atol=1e-5)
    x["face_mask"][:] = False
    with torch.no_grad():
        assert torch.allclose(torch.softmax(late(x), -1), torch.full((2, 7), 1 / 7), atol=1e-6)


def test_per_frame_face_expert_averages_frames():
    late, _, _ = _late()
    face = late.experts["face"]
    x = example_batch(B=1, T=3, seconds=1.0)
    x["face_mask"][0, 2] = False   # the third frame has no face: left out of the mean
    with torch.no_grad():
        lp = late.expert_log_probs("face", x)
        single = [torch.log_softmax(face({"face": x["face"][:, i:i + 1], "face_mask": x["face_mask"][:, i:i + 1]}), -1)
                  for i in range(2)]
    assert torch.allclose(lp, (single[0] + single[1]) / 2, atol=1e-5)


def test_save_load_and_onnx(tmp_path):
    from emolite.export import export
    from emolite.inference import load_model

    late, _, _ = _late()
    p = save_checkpoint(tmp_path / "late.pt", late, {"classes": ["anger", "disgust", "fear", "happiness",
                                                                "neutral", "sadness", "surprise"]})
    again, _ = load_checkpoint(p)
    x = example_batch(B=2, T=8, seconds=3.0)
    with torch.no_grad():
        assert torch.allclose(late(x), again(x), atol=1e-6)
    rep = export(p, tmp_path / "late.onnx")
    assert rep["max_abs_prob_diff"] <= 1e-4
    assert np.isfinite(load_model(tmp_path / "late.onnx").predict_inputs({k: v.numpy() for k, v in x.items()})).all()


def test_default_layout_face_cnn_plus_voice_exports_and_matches(tmp_path):
    """The shipped layout (a 48-px grey per-frame face_cnn expert + the voice expert, with its
    InputSpec) saves, loads, exports to ONNX with the same answers, and averages face logits
    over the frames that have a face only."""
    from emolite.export import export, random_inputs
    from emolite.inference import load_model
    from emolite.spec import InputSpec

    torch.manual_seed(0)
    face = build_model("face_cnn", 7).eval()
    voice = build_model("audio", num_classes=7)
    cfg = LateConfig(experts={"face": face.cfg, "audio": voice.cfg}, weights={"face": 0.6, "audio": 0.4},
                     temperatures={"face": 1.2, "audio": 1.0})
    late = build_model(cfg, 7).eval()
    late.experts["face"].load_state_dict(face.state_dict())
    spec = InputSpec(face_size=48, margin=0.0, audio_seconds=3.0, window_seconds=3.0)
    path = save_checkpoint(tmp_path / "d.pt", late, {"classes": [str(i) for i in range(7)], "preprocess": spec.to_dict()})
    m = load_model(path)
    assert m.spec.face_size == 48 and m.spec.margin == 0.0 and m.spec.window_seconds == 3.0
    x = example_batch(B=2, T=4, seconds=3.0, size=48)
    x["face_mask"][0, 2:] = False
    x["face"][0, 2:] = torch.rand_like(x["face"][0, 2:])       # frames without a face must not count
    with torch.no_grad():
        a = late.experts["face"](x)
        x2 = {**x, "face": x["face"][:, :2], "face_mask": x["face_mask"][:, :2]}
        assert torch.allclose(a[0], late.experts["face"](x2)[0], atol=1e-5)
    rep = export(path, tmp_path / "d.onnx")
    assert rep["max_abs_prob_diff"] <= 1e-4
    xo = random_inputs(m, 2, seed=0)
    assert np.abs(load_model(tmp_path / "d.onnx").predict_inputs(xo) - m.predict_inputs(xo)).max() <= 1e-4
