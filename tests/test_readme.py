"""The README's Python example runs as written, with the shipped default model."""

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs(tmp_path):
    from emolite.demo import make_clip

    code = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    make_clip(tmp_path / "emolite-demo" / "demo.mp4", seconds=3.0, width=320, height=240)
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "face=True" in r.stdout and "Prediction(label=" in r.stdout
