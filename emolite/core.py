"""One window -> model inputs -> answer: the core that `analyze`, the live serve `Session` and
`EmotionModel.predict` all call, so the same frames and audio give the same probabilities
whichever way they came in (tests/test_parity.py).

A window's `features.Features` (frames with their times, crops, context, audio) become model
inputs by `inputs.window_inputs`, with every setting from the model's `InputSpec`. Whether the
window holds a voice is decided here, once per window, by the one voice-activity rule
(`vad.is_voiced` on the window's audio); the voice goes to the speaker by `people.give_voice`.
A row with neither a face, the scene (for a model that uses it) nor voice gets no label.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from .features import Features, usable
from .inputs import clip_inputs, stack, window_inputs
from .people import give_voice
from .spec import InputSpec
from .vad import is_voiced


class Model(Protocol):
    """What the core needs of a loaded model (`inference.EmotionModel` is one)."""

    classes: list[str]

    @property
    def modalities(self) -> list[str]: ...

    def predict_inputs(self, batch: dict[str, np.ndarray]) -> np.ndarray: ...

    def to_prediction(self, probs: np.ndarray) -> Any: ...


@dataclass
class Row:
    """One model input of a window and what it is about."""

    feats: Features
    inputs: dict[str, np.ndarray]
    uses: dict[str, bool]          # the streams this row really offers (none: no label)
    person: int | None = None      # with people: whose row (None: the main face, or the voice alone)
    speaker: bool = False          # with people: this person speaks the window's voice


def voice(feats: Features, modalities: list[str]) -> bool | None:
    """The window's voice check, once (None: the model takes no audio or there is none);
    stored on `feats.voiced`."""
    feats.voiced = is_voiced(feats.audio) if "audio" in modalities and feats.has_audio else None
    return feats.voiced


def face_row(spec: InputSpec, modalities: list[str], feats: Features) -> Row:
    """The main face (or the scene) with the window's voice, when it is one."""
    if feats.voiced is None:
        voice(feats, modalities)
    uses = usable(feats, modalities)
    return Row(feats, window_inputs(spec, feats, True, uses["audio"]), uses)


def people_rows(spec: InputSpec, modalities: list[str], found: dict[int, Features],
                motion: dict[int, float | None], nobody: Features) -> list[Row]:
    """Every person's row, the voice fused into the speaker's only; the voice gets a row of its
    own (without the scene) when nobody can be told to be speaking it, and a window with nobody
    in it gets the scene-and-voice row."""
    voiced = voice(nobody, modalities)
    for f in found.values():
        f.voiced = voiced                  # one check, on the same audio
    who, alone = give_voice(motion, usable(nobody, modalities)["audio"])
    rows = []
    for p in sorted(found):
        uses = usable(found[p], modalities)
        uses["audio"] = uses["audio"] and p == who
        rows.append(Row(found[p], window_inputs(spec, found[p], True, uses["audio"]), uses, p, p == who))
    if alone or not found:
        uses = usable(nobody, modalities)
        uses["context"] = uses["context"] and not found
        rows.append(Row(nobody, window_inputs(spec, nobody, not found, uses["audio"]), uses))
    return rows


def answer(model: Model, rows: list[Row]) -> list[Any]:
    """One batched model call for the rows: a Prediction each (None for a row with nothing to read)."""
    if not rows:
        return []
    probs = model.predict_inputs(stack([r.inputs for r in rows]))
    return [model.to_prediction(p) if any(r.uses.values()) else None for r, p in zip(rows, probs)]


def audio_windows(audio: np.ndarray, spec: InputSpec) -> list[np.ndarray]:
    """Audio longer than the model's input -> windows of that length at the spec's hop (the last
    one ending with the audio), as analyze cuts a file; shorter audio is one window."""
    n = int(round(spec.audio_seconds * spec.sample_rate))
    hop = max(1, int(round(spec.hop_seconds * spec.sample_rate)))
    if audio.size <= n:
        return [audio]
    starts = list(range(0, audio.size - n + 1, hop))
    if starts[-1] + n < audio.size:
        starts.append(audio.size - n)
    return [audio[s:s + n] for s in starts]


def array_rows(spec: InputSpec, modalities: list[str], face: np.ndarray | None, face_mask: np.ndarray | None,
               context: np.ndarray | None, audio: np.ndarray | None, still: bool = False) -> list[Row]:
    """`predict`'s rows: N face crops and/or context frames (spread evenly over the audio) with
    each of the audio's model windows, as analyze would see them (an unvoiced window adds no
    voice); no audio: one row. `still`: one still image."""
    fs, cs = spec.face_size, spec.context_size
    n = len(face) if face is not None else len(context) if context is not None else 0
    f = np.zeros((n, fs, fs, 3), np.uint8) if face is None else face
    c = np.zeros((n, cs, cs, 3), np.uint8) if context is None else context
    mask = np.zeros(n, bool) if face is None else np.ones(n, bool) if face_mask is None else np.asarray(face_mask, bool)
    rows = []
    for a in [None] if audio is None else audio_windows(audio, spec):
        feats = Features(f, mask, c, np.full((n, 4), np.nan, np.float32), np.zeros(0, np.float32) if a is None else a,
                         n > 0, a is not None and a.size > 0, still=still)
        voice(feats, modalities)
        uses = usable(feats, modalities)
        uses["context"] = uses["context"] and context is not None
        x = clip_inputs(spec, f, mask, c, feats.audio, video=n > 0, voice=uses["audio"], still=still)
        x["context_mask"] &= context is not None
        rows.append(Row(feats, x, uses))
    return rows


def mean_answer(model: Model, rows: list[Row]) -> tuple[Any, bool]:
    """The mean probabilities of the rows that have something to read, as a Prediction (None
    when none has), and whether any row's audio was a voice."""
    preds = [p for p in answer(model, rows) if p is not None]
    voiced = any(r.uses["audio"] for r in rows)
    if not preds:
        return None, voiced
    probs = np.mean([[p.probs[c] for c in model.classes] for p in preds], 0)
    return model.to_prediction(probs), voiced
