import numpy as np

from emolite.cli import main
from emolite.export import export, random_inputs
from emolite.inference import load_model


def test_onnx_parity_and_int8(checkpoint, tmp_path):
    rep = export(checkpoint, tmp_path / "m.onnx", quantize=True)
    assert rep["opset"] >= 17
    assert rep["max_abs_prob_diff"] <= 1e-4
    assert 0.0 <= rep["int8_top1_agreement"] <= 1.0 and rep["int8_bytes"] < rep["bytes"]
    onnx_model = load_model(tmp_path / "m.onnx")
    torch_model = load_model(checkpoint)
    assert onnx_model.classes == torch_model.classes and onnx_model.backend == "onnx"
    x = random_inputs(torch_model, 4, seed=1)
    assert np.abs(onnx_model.predict_inputs(x) - torch_model.predict_inputs(x)).max() <= 1e-4


def test_onnx_model_analyzes_like_torch(checkpoint, clip, tmp_path):
    export(checkpoint, tmp_path / "m.onnx")
    a = load_model(checkpoint).analyze(clip)
    b = load_model(tmp_path / "m.onnx").analyze(clip)
    for wa, wb in zip(a.windows, b.windows):
        assert max(abs(wa.probs[c] - wb.probs[c]) for c in wa.probs) <= 1e-4


def test_export_cli(checkpoint, tmp_path, capsys):
    assert main(["export", "--model", str(checkpoint), "-o", str(tmp_path / "x.onnx")]) == 0
    assert '"max_abs_prob_diff"' in capsys.readouterr().out


def test_export_to_a_folder_or_an_uncreatable_one_is_one_line(checkpoint, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    for out, words in [(tmp_path, "is a folder"), (tmp_path / "file" / "sub" / "m.onnx", "cannot create its folder")]:
        assert main(["export", "--model", str(checkpoint), "-o", str(out)]) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"error: {out}") and words in err and "\n" not in err, err
