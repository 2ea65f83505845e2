"""analyze's output files, written so that a kill loses nothing and misleads no one.

The CSV grows row by row in place (flushed: `tail -f` shows progress, a killed run keeps its
rows); `emotions.jsonl` gets one line per finished file (its Result), flushed and synced, which
is what `--resume` trusts; `emotions.json` is written atomically at the end, and a fresh run
removes an earlier run's copy first, so a JSON on disk is always a finished run's. Disk faults
(full, read-only) become one-line EmoliteErrors naming the file. A record damaged by hand or
by a kill (a line that is not a Result, a torn last line) costs a warning, never the resume.
Files are named in every output as `errors.shown` writes them (non-UTF-8 bytes escaped).
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

from .errors import EmoliteError, shown
from .fsio import atomic_path, check_writable, clean_temp, write_error

RECORD_SUFFIX = ".jsonl"   # emotions.jsonl: one line per finished file (its Result), the resume record
OUTPUT_SUFFIXES = (".png", ".json", ".csv")   # what analyze writes atomically (temp files a kill may leave)


def file_key(path: object) -> str:
    """How a file is known in the record and the CSV: its absolute path, as shown (escaped)."""
    s = shown(path)
    return os.path.normpath(os.path.join(shown(os.getcwd()), s))


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
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames
        rows = [r for r in reader if file_key(r.get("file") or "") in keep]
    if not header:
        return None
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=header)
        w.writeheader()
        w.writerows(rows)
    return list(header)


def read_record(path: Path) -> tuple[dict[str, dict], int]:
    """Finished files of an earlier run (file_key -> Result dict), and how many lines were not
    a Result (not UTF-8, not JSON, not an object with a path and windows): those files are redone."""
    done, bad = {}, 0
    if path.exists():
        for line in path.read_bytes().splitlines():
            try:
                r = json.loads(line.decode("utf-8"))
            except ValueError:   # (UnicodeDecodeError is one)
                bad += bool(line.strip())
                continue
            if not (isinstance(r, dict) and isinstance(r.get("path"), str) and isinstance(r.get("windows"), list)):
                bad += 1
                continue
            done[file_key(r["path"])] = r
    return done, bad


def cut_torn_tail(path: Path) -> bool:
    """Cut a last line without its newline (a kill mid-write) so that the next record starts on
    a line of its own instead of being lost glued to it; returns whether anything was cut."""
    try:
        with open(path, "rb+") as f:
            size = f.seek(0, os.SEEK_END)
            if size == 0:
                return False
            f.seek(max(0, size - 1))
            if f.read(1) == b"\n":
                return False
            pos = size
            while pos > 0:   # back to the last newline, in blocks
                step = min(pos, 1 << 16)
                f.seek(pos - step)
                i = f.read(step).rfind(b"\n")
                if i >= 0:
                    pos = pos - step + i + 1
                    break
                pos -= step
            f.truncate(pos)
            return True
    except FileNotFoundError:
        return False


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
        self.warnings: list[str] = []   # for the run to print: what was wrong with an earlier run's files
        self.done: dict[str, dict] = {}
        if resume and self.record is not None:
            try:
                if cut_torn_tail(self.record):
                    self.warnings.append(f"{shown(self.record)}: its last line was cut short (a killed run); "
                                         "removed, that file is analysed again")
                self.done, bad = read_record(self.record)
            except OSError as e:
                raise write_error(e, self.record) from None
            if bad:
                self.warnings.append(f"{shown(self.record)}: skipped {bad} line(s) that are not a finished "
                                     "file's result; those files are analysed again")
        self.sink = CsvSink(self.csv, set(self.done) if resume else None) if self.csv is not None else None
        self._rec = None
        if self.record is not None:
            try:
                if self.json is not None and not resume:
                    self.json.unlink(missing_ok=True)   # an earlier run's: it would look current
                self._rec = open(self.record, "a" if resume else "w", encoding="utf-8")
            except OSError as e:
                raise write_error(e, self.record) from None
            if _alone(self._rec):   # no other run writes here: what a killed one left can go
                clean_temp(self.dir, OUTPUT_SUFFIXES)

    def is_done(self, path: object) -> dict | None:
        """The earlier run's Result for this file, when --resume has one."""
        return self.done.get(file_key(path))

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


def _alone(f) -> bool:
    """Take an exclusive lock on the open record (held until it is closed; released by the OS
    when a run is killed): whether this is the only run writing into the folder."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover  (Windows: runs are not coordinated, nothing is cleaned)
        return False
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


def plot_timeline(r: Any, out: str | os.PathLike) -> Path:
    """PNG of a Result: class probabilities over time and a strip of the label per window; with
    --people, one lane per person (and one for the voice on its own), the speaker's windows outlined."""
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = list(r.probs)
    colors = plt.get_cmap("tab10")(np.arange(len(classes)) % 10)
    lanes = [(f"person {p}", p) for p in r.people] if r.people else [("label", None)]
    if r.people and any(w.person is None for w in r.windows):
        lanes.append(("voice", None))
    top = [w for w in r.windows if w.person is None] if not r.people else []
    fig, axes = plt.subplots(1 + len(lanes), 1, figsize=(10, 3.4 + 0.8 * len(lanes)), sharex=True,
                             gridspec_kw={"height_ratios": [5] + [1] * len(lanes)}, squeeze=False)
    ax = axes[0, 0]
    if top:   # one face: the probability of every class over time
        t = np.array([(w.start + w.end) / 2 for w in top])
        P = np.array([[np.nan if w.probs[c] is None else w.probs[c] for c in classes] for w in top])
        for j, c in enumerate(classes):
            ax.plot(t, P[:, j], color=colors[j], label=c, marker="o" if len(t) < 30 else None, ms=3)
        ax.set_ylabel("probability")
    else:     # people: each person's confidence in their own label
        for k, (name, pid) in enumerate(lanes):   # dashed and greyish: the solid colours are the classes
            rows = [w for w in r.windows if w.person == pid and w.confidence is not None]
            ax.plot([(w.start + w.end) / 2 for w in rows], [w.confidence for w in rows], label=name, lw=1.2,
                    ls=("--", ":", "-.")[k % 3], color=str(0.15 + 0.5 * k / max(len(lanes), 1)))
        for j, c in enumerate(classes):
            ax.plot([], [], color=colors[j], lw=6, label=c)
        ax.set_ylabel("confidence")
    ax.set_ylim(0, 1)
    ax.set_title(f"{Path(r.path).name}: " + ("no label" if r.label is None else f"{r.label} ({r.confidence:.2f})"))
    ax.legend(loc="upper right", ncol=min(len(classes) + len(lanes), 7), fontsize=8, frameon=False)
    end = max(w.end for w in r.windows)
    for (name, pid), (strip,) in zip(lanes, axes[1:]):
        rows = [w for w in r.windows if w.person == pid]
        # each window owns the span between the midpoints to its neighbours: overlapping windows don't stack
        mids = np.array([(w.start + w.end) / 2 for w in rows])
        edges = np.concatenate([[rows[0].start], (mids[1:] + mids[:-1]) / 2, [max(rows[-1].end, mids[-1] + 0.05)]]) \
            if rows else []
        for w, a, b in zip(rows, edges[:-1], edges[1:]):
            if w.label is not None:   # unlabelled windows (no face, no voice) stay blank
                strip.axvspan(a, b, color=colors[classes.index(w.label)], alpha=0.9 if w.face_found else 0.5, lw=0)
            if w.speaker:
                strip.axvspan(a, b, fill=False, hatch="//", edgecolor="black", lw=0)
        strip.set_xlim(0, end)
        strip.set_yticks([])
        strip.set_ylabel(name, rotation=0, ha="right", va="center")
    axes[-1, 0].set_xlabel("time (s)" + ("   (hatched: speaking)" if r.people else ""))
    fig.tight_layout()
    out = Path(out)
    try:
        with atomic_path(out) as tmp:   # a full or read-only disk: one EmoliteError, no temp file left
            fig.savefig(tmp, dpi=110, format="png")
    finally:
        plt.close(fig)
    return out
