"""`emolite analyze`: media files -> emotions over time (CSV, JSON, terminal table, plot).

Windows stream from media.iter_windows (frames on the model's grid, `emolite.grid`) through
the one shared feature path (features.window_features) and the one inference core
(`emolite.core`: voice check, speaker rule, inputs.window_inputs) into the model in small
batches; rows are written as they come, so a 1-hour video runs in bounded memory. The default
window and hop are the model's (`InputSpec.window_seconds` / `hop_seconds`).
"""

from __future__ import annotations

import glob
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Protocol

import numpy as np

from . import core, media
from .errors import EmoliteError, shown
from .features import people_features, window_features
from .fsio import atomic_write_text, check_writable
from .grid import DETECT_EVERY, detect_every, model_rate  # noqa: F401  (DETECT_EVERY: public)
from .options import optional
from .people import MAX_PEOPLE, PeopleTracker
from .outputs import CsvSink, Outputs, plot_timeline  # noqa: F401  (CsvSink, plot_timeline: public since the first release)
from .media import HOP, WINDOW  # noqa: F401  (public since the first release; analysis uses the model spec's window)
from .shard import select as _select_shard, write_manifest
from .spec import InputSpec
from .vad import bad_audio_note

BATCH = 8        # windows per model call


class Model(Protocol):
    """What analyze needs of a loaded model (`emolite.inference.EmotionModel` is one).
    A protocol rather than an import keeps the layers one-way: inference never needs analyze."""

    classes: list[str]

    @property
    def spec(self) -> InputSpec: ...

    @property
    def modalities(self) -> list[str]: ...

    @property
    def detector(self) -> Any: ...

    def predict_inputs(self, batch: dict[str, np.ndarray]) -> np.ndarray: ...

    def to_prediction(self, probs: np.ndarray) -> Any: ...


@dataclass
class WindowResult:
    """The answer for one window of a file (times in seconds from the file's start). A window
    with neither a face nor voice has no label: label, confidence and probabilities are None."""

    start: float
    end: float
    label: str | None
    confidence: float | None
    probs: dict[str, float | None]
    face_found: bool
    face_box: list[float] | None       # x1, y1, x2, y2 in pixels of the original video
    has_audio: bool
    has_video: bool
    voice: bool = False                # speech in the window's audio was used (silence, noise, music: no)
    person: int | None = None          # --people: the tracked person this row is about (None: the voice alone)
    speaker: bool = False              # --people: this person was the one speaking (the voice is fused in)


@dataclass
class Result:
    """The answer for one file: the overall label (mean of the labelled windows; None when no
    window had a face or voice) and every window."""

    path: str
    label: str | None
    confidence: float | None
    probs: dict[str, float | None]
    windows: list[WindowResult]
    modalities: dict[str, bool]        # which streams the file had
    faces_found: float = 0.0           # fraction of windows with a face
    warnings: list[str] = field(default_factory=list)
    people: dict[int, dict] = field(default_factory=dict)   # --people: id -> label, probs, seen, spoke

    def timeline(self, person: int | None) -> list[WindowResult]:
        """One person's windows (None: the voice's own rows, when no speaker could be told)."""
        return [w for w in self.windows if w.person == person]

    def to_dict(self) -> dict:
        """JSON-able form (emotions.json)."""
        return asdict(self)

    def to_dataframe(self):
        """One row per window (needs pandas)."""
        try:
            import pandas as pd
        except ImportError:
            raise EmoliteError("to_dataframe needs pandas: pip install pandas") from None
        return pd.DataFrame([window_row(self.path, w, bool(self.people)) for w in self.windows])


def window_row(path: str, w: WindowResult, people: bool = False) -> dict:
    """A flat row for CSV/DataFrames: times, (person, speaker,) label, confidence, face, box, one
    column per class. The person columns appear with --people only, so one-face CSVs keep their shape."""
    r = lambda v: "" if v is None else round(v, 4)  # noqa: E731  (no label: empty cells)
    who = {"person": "" if w.person is None else w.person, "speaker": w.speaker} if people else {}
    return {"file": path, "start": round(w.start, 3), "end": round(w.end, 3), **who, "label": w.label or "",
            "confidence": r(w.confidence), "face_found": w.face_found,
            "face_box": "" if w.face_box is None else " ".join(f"{v:.0f}" for v in w.face_box),
            "has_audio": w.has_audio, "voice": w.voice, **{f"p_{c}": r(p) for c, p in w.probs.items()}}


def _video_side(info: dict) -> int:
    """Longest side of the file's video in its own pixels (0 for audio-only files and images)."""
    v = [st for st in info.get("streams", []) if st.get("type") == "video" and st.get("width")]
    return max(v[0]["width"], v[0]["height"]) if v and info["kind"] != "image" else 0


def iter_analyze(model: Model, path: str | os.PathLike, window: float | None = None, hop: float | None = None,
                 batch: int = BATCH, progress: bool = False, people: bool = False, max_people: int = MAX_PEOPLE,
                 notes: list[str] | None = None) -> Iterator[WindowResult]:
    """Stream WindowResults for one file, in time order. `window`/`hop` are seconds (default:
    the model's spec); crops, detector and input length come from the model's spec. Frames are
    sampled on the model's grid (`grid`: exactly T per window) and each window goes through
    `emolite.core`, as a live session's and `predict`'s do. `notes` collects what the result's
    warnings should say once (NaN/inf audio).

    `people=True`: every face (up to `max_people`) is tracked through the file and gets its own
    row per window (`person` = its id); the voice is fused into the person seen speaking
    (`speaker`), and when that cannot be told the voice gets a row of its own (person None)."""
    p = Path(path)
    spec = model.spec
    window, hop = check_window(window, hop, spec, flag="")
    use_video = any(m in model.modalities for m in ("face", "context"))
    use_audio = "audio" in model.modalities
    rate = model_rate(spec.frames, window)
    info = media.probe(p)  # one look at the file: window count for the bar, size for the boxes
    still = info["kind"] == "image"
    tracker = PeopleTracker(max_people) if people and use_video else None
    memo: dict[float, tuple] = {}
    pending: list[tuple[media.Window, core.Row]] = []
    bad, seen = 0, 0.0        # NaN/inf samples in the audio up to `seen` (windows overlap)
    bar = _bar(p, info, window, hop) if progress else None
    try:
        stream = media.iter_windows(p, fps=rate, window=window, hop=hop)
        for w in prefetch(stream):
            w.frames = w.frames if use_video else None
            w.audio = w.audio if use_audio else None
            kw = dict(face_size=spec.face_size, context_size=spec.context_size, margin=spec.margin, align=spec.align,
                      memo=memo, detect_every=detect_every(tracker is not None), fps=rate, still=still)
            if tracker is None:
                feats = window_features(w, model.detector if use_video else None, **kw)
                rows = [core.face_row(spec, model.modalities, feats)]
            else:
                found, motion, nobody = people_features(w, model.detector, tracker, **kw)
                rows = core.people_rows(spec, model.modalities, found, motion, nobody)
                tracker.forget_before(w.start + hop)
            bad += _bad_samples(w, seen)
            seen = max(seen, w.end)
            pending += [(w, r) for r in rows]
            for k in [k for k in memo if k < w.start]:  # frames no later window shares
                del memo[k]
            if len(pending) >= batch:
                yield from _flush(model, pending, info, bar)
        if pending:
            yield from _flush(model, pending, info, bar)
        if notes is not None:
            notes += stream.warnings
    finally:
        if bar is not None:
            bar.close()
    if bad and notes is not None:
        notes.append(bad_audio_note(bad))


def _bad_samples(w: media.Window, seen: float) -> int:
    """NaN/inf samples in the window's audio after `seen` s (each counted once)."""
    if w.audio is None:
        return 0
    skip = int(round(max(0.0, seen - w.start) * media.SAMPLE_RATE))
    return int(np.count_nonzero(~np.isfinite(w.audio[skip:])))


def _bar(p: Path, info: dict, window: float, hop: float):
    from tqdm import tqdm

    total = media.window_count(info["duration"], window, hop) if info["duration"] else 1
    return tqdm(total=total, desc=shown(p.name), unit="win", leave=False, dynamic_ncols=True)


def _flush(model: Model, pending: list[tuple[media.Window, core.Row]], info: dict, bar) -> Iterator[WindowResult]:
    """One model call for the pending rows -> their WindowResults (boxes in the video's pixels)."""
    side = _video_side(info)
    for (w, row), pred in zip(pending, core.answer(model, [r for _, r in pending])):
        f = row.feats
        box = None
        if f.face_mask.any():
            # frames are analysed downscaled; report the box in the video's own pixels
            scale = side / max(f.frame_size) if side and max(f.frame_size) else 1.0
            box = [float(v) * scale for v in np.nanmean(f.boxes[f.face_mask], 0)]
        yield WindowResult(w.start, w.end, pred and pred.label, pred and pred.confidence,
                           pred.probs if pred else dict.fromkeys(model.classes), bool(f.face_mask.any()),
                           box, f.has_audio, f.has_video, bool(row.uses["audio"]), row.person, row.speaker)
    if bar is not None:
        bar.update(len({(w.start, w.end) for w, _ in pending}))
    pending.clear()


def prefetch(it: Iterator, depth: int = 2) -> Iterator:
    """Run an iterator in a background thread (PyAV decodes without the GIL), `depth` items ahead,
    so decoding overlaps detection and the model. Exceptions re-raise in the consumer."""
    import queue
    import threading

    q: queue.Queue = queue.Queue(depth)
    done = object()
    stop = threading.Event()

    def work() -> None:
        try:
            for x in it:
                while not stop.is_set():
                    try:
                        q.put((x, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    break
        except BaseException as e:  # handed to the consumer
            q.put((done, e))
            return
        q.put((done, None))

    t = threading.Thread(target=work, daemon=True)
    t.start()
    try:
        while True:
            x, err = q.get()
            if x is done:
                if err is not None:
                    raise err
                return
            yield x
    finally:
        stop.set()
        t.join(timeout=5)


def summarize(path: str, windows: list[WindowResult], classes: list[str], notes: list[str] = ()) -> Result:
    """The file's overall label: the mean of its labelled rows' probabilities (with --people,
    every person's and the lone voice's rows); each person's own summary in `people`. `notes`
    (what decoding found, e.g. a file that ended early) come first in the warnings."""
    if not windows:
        raise EmoliteError("no windows to analyse (empty file?)", path)
    path = shown(path)
    spans = {}   # window -> any face in it (with --people a window has a row per person)
    for w in windows:
        spans[(w.start, w.end)] = spans.get((w.start, w.end), False) or w.face_found
    faces = float(np.mean(list(spans.values())))
    labelled = [w for w in windows if w.label is not None]
    has_v, has_a = any(w.has_video for w in windows), any(w.has_audio for w in windows)
    people = _people(windows, classes) if any(w.person is not None for w in windows) else {}
    warnings = list(notes)
    if not labelled:
        warnings.append("no face and no voice found (silence, noise or music): no emotion label")
        return Result(str(path), None, None, dict.fromkeys(classes), windows, {"video": has_v, "audio": has_a},
                      faces, warnings, people)
    mean = _mean_probs(labelled, classes)
    i = int(np.argmax(mean))
    unlabelled = len({(w.start, w.end) for w in windows} - {(w.start, w.end) for w in labelled})
    if unlabelled:
        warnings.append(f"{unlabelled} of {len(spans)} windows had neither a face nor voice: no label")
    if not has_v:
        warnings.append("no video: predicted from the voice only")
    elif not any(w.face_found for w in windows):
        warnings.append("no face found: predicted from the scene and voice only")
    if not has_a:
        warnings.append("no audio: predicted from the pictures only")
    elif not any(w.voice for w in windows):
        warnings.append("no voice in the audio (silence, noise or music): the voice was not used")
    return Result(str(path), classes[i], float(mean[i]), {c: float(v) for c, v in zip(classes, mean)}, windows,
                  {"video": has_v, "audio": has_a}, faces, warnings, people)


def _mean_probs(rows: list[WindowResult], classes: list[str]) -> np.ndarray:
    return np.mean([[w.probs[c] for c in classes] for w in rows], 0)


def _people(windows: list[WindowResult], classes: list[str]) -> dict[int, dict]:
    """Per person: overall label (mean of their rows), when they were seen, how often they spoke."""
    out = {}
    for pid in sorted({w.person for w in windows if w.person is not None}):
        rows = [w for w in windows if w.person == pid]
        labelled = [w for w in rows if w.label is not None]
        mean = _mean_probs(labelled, classes) if labelled else None
        i = int(np.argmax(mean)) if mean is not None else None
        out[pid] = {"label": None if i is None else classes[i], "confidence": None if i is None else float(mean[i]),
                    "probs": dict.fromkeys(classes) if mean is None else {c: float(v) for c, v in zip(classes, mean)},
                    "windows": len(rows), "speaking_windows": sum(w.speaker for w in rows),
                    "first_seen": rows[0].start, "last_seen": rows[-1].end}
    return out


def analyze_file(model: Model, path: str | os.PathLike, window: float | None = None, hop: float | None = None,
                 progress: bool = False, on_window=None, people: bool = False,
                 max_people: int = MAX_PEOPLE) -> Result:
    """Analyse one file; `on_window(WindowResult)` is called as each window is ready (streaming).
    `people=True`: one timeline per tracked person (see `iter_analyze`, `Result.people`)."""
    windows, notes = [], []
    for w in iter_analyze(model, path, window, hop, progress=progress, people=people, max_people=max_people,
                          notes=notes):
        windows.append(w)
        if on_window is not None:
            on_window(w)
    return summarize(str(path), windows, model.classes, notes)


def expand_inputs(specs: list[str]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Files, folders (recursively, media files only) and globs -> files, each once however
    often it is named (`a a ./a dir/ dir/a`); problems for the rest, including subfolders that
    cannot be read (reported, never skipped silently)."""
    files, problems = [], []
    for s in specs:
        p = Path(s)
        if p.is_dir():
            found, unreadable = media.scan(p)
            problems += unreadable
            if not found and not unreadable:
                problems.append((shown(s), "folder holds no media files"))
            files += found
        elif p.exists():
            files.append(p)
        elif any(ch in s for ch in "*?["):
            hits = sorted(Path(h) for h in glob.glob(s, recursive=True) if Path(h).is_file())
            if not hits:
                problems.append((shown(s), "pattern matches no files"))
            files += hits
        else:
            problems.append((shown(s), "no such file or folder"))
    seen: set[str] = set()
    once = [f for f in files if not (os.path.abspath(f) in seen or seen.add(os.path.abspath(f)))]
    return once, problems


def format_table(r: Result, max_rows: int = 40) -> str:
    """A readable terminal table: one line per window (per person and window with --people),
    then each person's and the overall label."""
    who = bool(r.people)
    lines = [f"{r.path}", f"  {'start':>7} {'end':>7}  " + ("who       " if who else "") + f"{'label':<10} {'conf':>5}  face"]
    step = max(1, len(r.windows) // max_rows)
    for w in r.windows[::step]:
        conf = "    -" if w.confidence is None else f"{w.confidence:5.2f}"
        name = ("voice" if w.person is None else f"person {w.person}") + ("*" if w.speaker else "")
        lines.append(f"  {w.start:7.2f} {w.end:7.2f}  " + (f"{name:<10}" if who else "")
                     + f"{w.label or '-':<10} {conf}  {'yes' if w.face_found else 'no'}")
    if step > 1:
        lines.append(f"  (every {step}th of {len(r.windows)} rows shown; all are in the CSV/JSON)")
    for pid, s in r.people.items():
        lab = "no label" if s["label"] is None else f"{s['label']} ({s['confidence']:.2f})"
        lines.append(f"  person {pid}: {lab}, seen {s['first_seen']:.1f}-{s['last_seen']:.1f} s, "
                     f"speaking in {s['speaking_windows']} of {s['windows']} windows")
    overall = "no label" if r.label is None else f"{r.label} ({r.confidence:.2f})"
    lines.append(f"  overall: {overall}" + "".join(f"  [{x}]" for x in r.warnings)
                 + ("   (* = speaking: the voice is fused into that person)" if who else ""))
    return "\n".join(lines)


def check_window(window: float | None, hop: float | None, spec: InputSpec | None = None,
                 flag: str = "--") -> tuple[float | None, float | None]:
    """`window` and `hop` finite and in range, before anything is decoded; None takes the
    model's (with `spec`), 0 is an error like any value out of range. `flag` "--" names the
    CLI options, "" the Python API's arguments."""
    window = optional(f"{flag}window", window, media.MIN_WINDOW, media.MAX_WINDOW)
    hop = optional(f"{flag}hop", hop, media.MIN_HOP, media.MAX_WINDOW)
    if spec is not None:
        window = spec.window_seconds if window is None else window
        hop = spec.hop_seconds if hop is None else hop
    return window, hop


def _fail(failed: list, print_fn, path: str, reason: str) -> None:
    failed.append({"path": path, "reason": reason})
    print_fn(f"error: {path}: {reason}" if not reason.startswith(path) else f"error: {reason}")


def shard_inputs(specs: list[str], files: list[Path], shard: str | None) -> tuple[list[Path], dict | None]:
    """--shard K/N: this shard's files and its manifest (None, None-manifest: every file)."""
    return (files, None) if shard is None else _select_shard(specs, files, shard)


def run(specs: list[str], model: Model, out: str | None = None, plot: bool = False, window: float | None = None,
        hop: float | None = None, progress: bool = True, quiet: bool = False, print_fn=print,
        resume: bool = False, people: bool = False, max_people: int = MAX_PEOPLE, shard: str | None = None) -> dict:
    """The CLI's job: every input, one table each; CSV/JSON/PNG under `out`. Never stops on a bad
    file or a failed write; `resume` skips files an earlier run into the same `out` finished.
    `shard="K/N"`: only this machine's 1/N of the inputs (see emolite.shard; `emolite merge`)."""
    check_window(window, hop)
    files, problems = expand_inputs(specs)
    files, manifest = shard_inputs(specs, files, shard)
    o = Outputs(out, resume)
    write_manifest(o.record, manifest)
    if plot and o.dir is None:
        check_writable(".")
    results, failed = [], []
    for w in o.warnings:
        print_fn(f"warning: {w}")
    for p, r in problems:
        _fail(failed, print_fn, p, r)
    try:
        for f in files:
            name = shown(f)   # as every output names it: non-UTF-8 bytes escaped
            if o.is_done(f) is not None:
                results.append(o.is_done(f))
                if not quiet:
                    print_fn(f"{name}: finished in the earlier run (--resume)")
                continue
            try:
                r = analyze_file(model, f, window, hop, progress=progress and not quiet, people=people,
                                 max_people=max_people,
                                 on_window=(lambda w: o.sink.write(window_row(name, w, people))) if o.sink else None)
            except EmoliteError as e:
                _fail(failed, print_fn, name, str(e))
                continue
            except Exception as e:  # an unforeseen decoder problem in one file must not stop the batch
                _fail(failed, print_fn, name, f"unexpected {type(e).__name__}: {e}")
                continue
            results.append(r.to_dict())
            if not quiet:
                print_fn(format_table(r))
            if plot:
                try:
                    png = plot_timeline(r, (o.dir or Path(".")) / f"{Path(f).name}.png")
                    if not quiet:
                        print_fn(f"  plot: {shown(png)}")
                except EmoliteError as e:
                    _fail(failed, print_fn, name, str(e))
            err = o.finished(r)
            if err is not None:
                _fail(failed, print_fn, shown(o.record), str(err))
    finally:
        o.close()
    if o.sink is not None and o.sink.error is not None:
        _fail(failed, print_fn, shown(o.csv), str(o.sink.error))
    summary = {"files": len(files) + len(problems), "analyzed": len(results), "failed": failed,
               "results": results}
    if o.json is not None:
        try:
            atomic_write_text(o.json, json.dumps(summary, indent=1))
        except EmoliteError as e:
            _fail(failed, print_fn, shown(o.json), str(e))
    if o.dir is not None and not quiet:
        print_fn(f"wrote {', '.join(shown(p) for p in (o.csv, o.json, o.record) if p is not None)}")
    return summary
