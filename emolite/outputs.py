"""analyze's output files, written so that a kill loses nothing and misleads no one.

The CSV grows row by row in place (flushed: `tail -f` shows progress, a killed run keeps its
rows); `emotions.jsonl` gets one line per finished file (its Result), flushed and synced, which
is what `--resume` trusts; `emotions.json` is written atomically at the end, and a fresh run
removes an earlier run's copy first, so a JSON on disk is always a finished run's. Disk faults
(full, read-only) become one-line EmoliteErrors naming the file.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

from .errors import EmoliteError
from .fsio import atomic_path, check_writable, write_error

RECORD_SUFFIX = ".jsonl"   # emotions.jsonl: one line per finished file (its Result), the resume record


class CsvSink:
    """Appends window rows to the CSV itself as they arrive, each flushed: the file shows progress
    and a killed run keeps what it wrote. With `keep` (resume), rows of other files than those
    are dropped first. A disk fault ends the CSV with one error (`self.error`), not the batch."""

    def __init__(self, path: Path, keep: set[str] | None = None):
        self.path, self.error, self.writer = path, None, None
        header = None
        try:
            if keep is not None and path.exists():
                header = _keep_rows(path, keep)
            self.f = open(path, "a" if header else "w", newline="", encoding="utf-8")
        except OSError as e:
            raise write_error(e, path) from None
        if header:
            self.writer = csv.DictWriter(self.f, fieldnames=header)

    def write(self, row: dict) -> None:
        """Append one row (flushed, so a reader sees progress)."""
        if self.error is not None:
            return
        try:
            if self.writer is None:
                self.writer = csv.DictWriter(self.f, fieldnames=list(row))
                self.writer.writeheader()
            elif list(row) != self.writer.fieldnames:
                self.error = EmoliteError("its columns differ from this model's (another model?); "
                                          "run without --resume", self.path)
                return
            self.writer.writerow(row)
            self.f.flush()
        except OSError as e:
            self.error = write_error(e, self.path)

    def close(self) -> None:
        """Finish the file."""
        try:
            self.f.close()
        except OSError as e:
            self.error = self.error or write_error(e, self.path)


def _keep_rows(path: Path, keep: set[str]) -> list[str] | None:
    """Rewrite the CSV (atomically) with only the rows of files in `keep`; returns its header."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames
        rows = [r for r in reader if os.path.abspath(r.get("file") or "") in keep]
    if not header:
        return None
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=header)
        w.writeheader()
        w.writerows(rows)
    return list(header)


def read_record(path: Path) -> dict[str, dict]:
    """Finished files of an earlier run (absolute path -> Result dict); a line a kill cut is ignored."""
    done = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                r = json.loads(line)
            except ValueError:
                continue
            done[os.path.abspath(r["path"])] = r
    return done


class Outputs:
    """Where analyze writes: the CSV (streamed), the record (a line per finished file), the JSON
    (atomically, at the end). A fresh run starts them empty and removes an earlier run's JSON, so
    no stale output is left looking current; `resume` keeps what the record says is finished."""

    def __init__(self, out: str | None, resume: bool = False):
        out_dir = Path(out) if out else None
        single = None
        if out_dir is not None and out_dir.suffix.lower() in (".csv", ".json"):
            single, out_dir = out_dir, out_dir.parent
        self.dir = check_writable(out_dir) if out_dir is not None else None
        base = single if single is not None else (out_dir / "emotions.csv" if out_dir is not None else None)
        self.csv = base.with_suffix(".csv") if base is not None and (single is None or single.suffix.lower() == ".csv") else None
        self.json = base.with_suffix(".json") if base is not None and (single is None or single.suffix.lower() == ".json") else None
        self.record = base.with_suffix(RECORD_SUFFIX) if base is not None else None
        self.done = read_record(self.record) if resume and self.record is not None else {}
        self.sink = CsvSink(self.csv, set(self.done) if resume else None) if self.csv is not None else None
        self._rec = None
        if self.record is not None:
            try:
                if self.json is not None and not resume:
                    self.json.unlink(missing_ok=True)   # an earlier run's: it would look current
                self._rec = open(self.record, "a" if resume else "w", encoding="utf-8")
            except OSError as e:
                raise write_error(e, self.record) from None

    def finished(self, r: Any) -> EmoliteError | None:
        """Record a finished file (flushed to disk); the error when the disk refused."""
        if self._rec is None:
            return None
        try:
            self._rec.write(json.dumps(r.to_dict()) + "\n")
            self._rec.flush()
            os.fsync(self._rec.fileno())
        except OSError as e:
            self._rec = None
            return write_error(e, self.record)
        return None

    def close(self) -> None:
        if self.sink is not None:
            self.sink.close()
        if self._rec is not None:
            try:
                self._rec.close()
            except OSError:
                pass
