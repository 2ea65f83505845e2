"""`emolite merge`: the folders of a sharded run (`--shard K/N`) -> one set of outputs, as if one
machine had run the whole job (rows in input order; see emolite.shard for how files are split)."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

from .analyze import WindowResult, window_row
from .errors import EmoliteError
from .fsio import atomic_path, atomic_write_text, check_writable
from .shard import manifest_path


def write_csv(path: Path, results: list[dict], people: bool) -> None:
    """The CSV of finished results (Result dicts), in their order, atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        w = None
        for r in results:
            for win in r["windows"]:
                row = window_row(r["path"], WindowResult(**win), people)
                if w is None:
                    w = csv.DictWriter(f, fieldnames=list(row))
                    w.writeheader()
                w.writerow(row)


def _read_shard(d: Path) -> tuple[dict | None, list[dict], list[dict], bool]:
    """One shard folder: its manifest, finished results (record order), failures, people columns."""
    record = d / "emotions.jsonl"
    if not record.exists():
        raise EmoliteError("not an analyze output folder (no emotions.jsonl); give the folders the shards wrote", d)
    man = manifest_path(record)
    manifest = json.loads(man.read_text(encoding="utf-8")) if man.exists() else None
    results = []
    for line in record.read_text(encoding="utf-8").splitlines():
        try:
            results.append(json.loads(line))
        except ValueError:   # a line a kill cut: that file is missing, and reported so
            continue
    summary = d / "emotions.json"
    failed = json.loads(summary.read_text(encoding="utf-8")).get("failed", []) if summary.exists() else []
    header = (d / "emotions.csv").open(encoding="utf-8").readline() if (d / "emotions.csv").exists() else ""
    people = "person" in header.split(",") or any(r.get("people") for r in results)
    return manifest, results, failed, people


def merge(out_dirs: list[str | os.PathLike], out: str | os.PathLike) -> dict:
    """Combine shard folders into one set of outputs in `out` (emotions.csv/.jsonl/.json, plots),
    rows in input order. Refuses a file found in two shards and shards of different inputs;
    reports the files no shard finished (`missing`) and the ones that failed."""
    dirs = [Path(d) for d in out_dirs]
    out = check_writable(Path(out))
    if any(d.resolve() == out.resolve() for d in dirs):
        raise EmoliteError("merge into a new folder, not one of the shards", out)
    keys: list[str] | None = None
    seen: dict[str, tuple[Path, dict]] = {}
    failed: dict[str, dict] = {}
    people = False
    for d in dirs:
        manifest, results, fails, ppl = _read_shard(d)
        people = people or ppl
        if manifest is not None:
            if keys is not None and manifest["keys"] != keys:
                raise EmoliteError("its shard was made from other inputs than the first folder's; "
                                   "run every shard on the same inputs", d)
            keys = manifest["keys"]
        for r in results:
            key = (manifest or {}).get("files", {}).get(r["path"], r["path"])
            if key in seen:
                raise EmoliteError(f"{key} is in both {seen[key][0]} and {d}: a shard given twice, or shards "
                                   "of different N; merge each file's shard once", d)
            seen[key] = (d, r)
        for f in fails:
            failed.setdefault(f["path"], f)
    order = {k: i for i, k in enumerate(keys or [])}
    ranked = sorted(seen.items(), key=lambda kv: order.get(kv[0], len(order)))
    results = [r for _, (_, r) in ranked]
    done_paths = {r["path"] for r in results}
    failed_list = [f for p, f in failed.items() if p not in done_paths]
    missing = [k for k in (keys or []) if k not in seen]
    write_csv(out / "emotions.csv", results, people)
    with atomic_path(out / "emotions.jsonl") as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in results), encoding="utf-8")
    for _, (d, r) in ranked:
        png = d / f"{Path(r['path']).name}.png"
        if png.exists():
            shutil.copyfile(png, out / png.name)
    summary = {"files": len(keys) if keys is not None else len(results) + len(failed_list),
               "analyzed": len(results), "failed": failed_list, "missing": missing, "results": results}
    atomic_write_text(out / "emotions.json", json.dumps(summary, indent=1))
    return summary
