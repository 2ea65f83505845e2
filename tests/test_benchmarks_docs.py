"""benchmarks/ and its docs stay followable: every result file is cited, every script named in the
docs exists, the scripts import the package only, and no script shadows a package module."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "docs" / "benchmarks.md", ROOT / "docs" / "history.md"]


def _docs_text() -> str:
    return "\n".join(p.read_text() for p in DOCS)


def test_every_result_file_is_cited():
    text = _docs_text()
    missing = [p.name for p in sorted((ROOT / "docs" / "results").iterdir()) if p.name not in text]
    assert not missing, f"docs/results files no doc cites: {missing}"


def test_benchmarks_md_opens_with_the_current_table():
    text = (ROOT / "docs" / "benchmarks.md").read_text()
    first_section = re.search(r"^## (.+)$", text, re.M).group(1)
    assert first_section == "Current figures"
    table = text.split("## Current figures", 1)[1].split("\n## ", 1)[0]
    rows = [r for r in table.splitlines() if r.startswith("| ") and not r.startswith("| area")]
    assert len(rows) >= 10 and all(r.count("|") == 6 for r in rows)


def test_scripts_named_in_docs_exist():
    text = _docs_text() + (ROOT / "README.md").read_text() + (ROOT / "MODEL_CARD.md").read_text()
    named = set(re.findall(r"benchmarks/([a-z0-9_]+\.py)", text))
    assert named and not [n for n in named if not (ROOT / "benchmarks" / n).exists()]


def test_benchmarks_import_the_package_only():
    package = {p.stem for p in (ROOT / "emolite").iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()}
    for script in sorted((ROOT / "benchmarks").glob("*.py")):
        src = script.read_text()
        assert not re.search(r"sys\.path\.(insert|append)|sys\.path\s*\+?=", src), f"{script.name} patches sys.path"
        assert not re.search(r"^\s*(import|from) (train_face|train_default|scripts)\b", src, re.M), script.name
        assert script.stem not in package, f"{script.name} shadows emolite.{script.stem}"
    assert not (ROOT / "scripts").exists()
