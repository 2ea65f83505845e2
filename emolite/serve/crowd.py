"""Every face of a live client: person tracks with stable ids, a label per person, the voice
given to whoever is seen speaking.

The frame worker feeds each new grid sample's detections (the ones the session's window
already made, read from the shared memo: no second detector pass) to a `people.PeopleTracker`,
as analyze --people does for a file, and answers with every person's box in the newest frame
(the shown faces matched to the people). For a model run it takes a `Crowd`: a frozen view of
the window (frames, detections, person boxes per grid sample) that the model thread reads
while the frame worker goes on tracking. The model thread cuts each person's inputs with the
library's own `features.people_features` (same crops, margin, alignment and sizes as the main
face, all from the model's spec) and hands them to the inference core (`core.people_rows`:
the voice goes to the speaker by `people.give_voice`, or stands alone), in one batched call.

With one person (or none) the session does exactly what it did before people were tracked:
one model call on the main face and the voice; that person's entry carries that label.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from .. import core, media
from ..faces import IOU_LINK, Face, iou
from ..features import Features, people_features
from ..grid import frame_key as key
from ..grid import model_rate
from ..inference import Prediction
from ..people import MAX_PEOPLE, PeopleTracker
from ..spec import InputSpec
from . import protocol as P

MAIN_IOU = 0.5   # a person whose box overlaps the main face this much in a frame is the main face there


@dataclass
class Crowd:
    """What one model run needs of the people in a window, frozen when the frame was answered.
    It has the tracker's `update`/`at`/`eligible` interface, so `features.people_features`
    reads it as it reads a live tracker (update does nothing: the frames are already tracked)."""

    window: media.Window
    memo: dict                               # frame time -> (detections, context, detector ran)
    boxes: dict[float, dict[int, Face]]      # frame time -> person id -> box
    scale: float = 1.0                       # analysed frame px -> client px

    @property
    def ids(self) -> list[int]:
        return sorted({p for fr in self.boxes.values() for p in fr})

    def update(self, t: float, faces: list[Face], frame: np.ndarray, detected: bool = True) -> None:
        pass

    def at(self, t: float) -> dict[int, Face]:
        return self.boxes.get(key(t), {})

    def eligible(self, faces: list[Face]) -> list[Face]:
        return faces



class LivePeople:
    """One client's person tracks (the frame worker's side)."""

    def __init__(self, max_people: int = MAX_PEOPLE):
        self.max_people = max_people
        self.reset()

    def reset(self) -> None:
        """Forget everyone (the client changed resolution: boxes would not carry over)."""
        self.tracker = PeopleTracker(self.max_people)

    def track(self, window: media.Window, memo: dict, shown: list[Face]) -> dict[int, Face]:
        """Give the tracker the window's grid samples it has not seen (their detections from
        the memo); every person's box in the newest frame: the shown face it overlaps most
        (its last tracked box when none does)."""
        for t, frame in zip(window.times, window.frames):
            faces, _, ran = memo[key(t)]
            self.tracker.update(t, faces, frame, ran)
        self.tracker.forget_before(key(window.times[0]))
        out = {}
        for p, f in self.tracker.at(window.times[-1]).items():
            best = max(shown, key=lambda g: iou(g.box, f.box), default=None)
            out[p] = best if best is not None and iou(best.box, f.box) > IOU_LINK else f
        return out

    def crowd(self, window: media.Window, memo: dict, scale: float) -> Crowd:
        """The window's people, frozen for a model run: at most `max_people`, those seen longest."""
        boxes = {key(t): self.tracker.at(t) for t in window.times}
        seen = Counter(p for fr in boxes.values() for p in fr)
        keep = {p for p, _ in seen.most_common(self.max_people)}
        boxes = {t: {p: f for p, f in fr.items() if p in keep} for t, fr in boxes.items()}
        return Crowd(window, {key(t): memo[key(t)] for t in window.times}, boxes, scale)


def main_person(main: Features, people: dict[int, Features]) -> int | None:
    """The person who is the session's main face: the one whose boxes overlap the main track's
    in the most frames (None: the main face is no tracked person)."""
    votes: Counter = Counter()
    for i in np.flatnonzero(main.face_mask):
        for p, f in people.items():
            if f.face_mask[i] and iou(f.boxes[i], main.boxes[i]) >= MAIN_IOU:
                votes[p] += 1
    return votes.most_common(1)[0][0] if votes else None


def last_box(f: Features) -> np.ndarray | None:
    rows = np.flatnonzero(f.face_mask)
    return f.boxes[rows[-1]] if rows.size else None


@dataclass
class PeopleResult:
    """A model run's answer with people: the main-face label (the session's `label`), each
    person's, and the voice's own when nobody was seen speaking."""

    main: Prediction
    people: list[tuple[int, list[float] | None, Prediction, bool]]   # id, box (client px), prediction, speaker
    voice_alone: Prediction | None = None
    main_id: int | None = None      # the person who is the main face (None: none of them)


def infer_one(model, spec: InputSpec, feats: Features, crowd: Crowd | None) -> PeopleResult:
    """One face (or none): the main face and the voice in one model call (`core.face_row`, as
    analyze without people); the person who is the main face gets that label (and the voice)."""
    row = core.face_row(spec, model.modalities, feats)
    pred = core.answer(model, [row])[0]
    people, p = [], None
    if crowd is not None and crowd.ids and feats.face_mask.any():
        found = {p: _boxes_only(crowd, p) for p in crowd.ids}
        p = main_person(feats, found)
        if p is not None:
            people.append((p, P.client_box(last_box(found[p]), crowd.scale), pred, row.uses["audio"]))
    return PeopleResult(pred, people, None, p)


def _boxes_only(crowd: Crowd, p: int) -> Features:
    """A person's boxes over the window as a crop-less Features (for matching, no crops cut)."""
    n = len(crowd.window.times)
    boxes = np.full((n, 4), np.nan, np.float32)
    mask = np.zeros(n, bool)
    for i, t in enumerate(crowd.window.times):
        f = crowd.at(t).get(p)
        if f is not None:
            boxes[i], mask[i] = f.box, True
    z = np.zeros(0, np.uint8)
    return Features(z, mask, z, boxes, np.zeros(0, np.float32), True, False)


def infer_people(model, spec: InputSpec, feats: Features, crowd: Crowd) -> PeopleResult:
    """Several people: each person's crops (`people_features`), and one batched model call
    (`core.people_rows`: every person, the voice fused into the speaker only or standing alone;
    plus the main face when it is no tracked person)."""
    rate = model_rate(spec.frames, spec.window_seconds)
    found, motion, nobody = people_features(crowd.window, None, crowd, spec.face_size, spec.context_size,
                                            spec.margin, spec.align, memo=crowd.memo, fps=rate)
    rows = core.people_rows(spec, model.modalities, found, motion, nobody)
    main = main_person(feats, found)
    if main is None:
        rows.append(core.face_row(spec, model.modalities, feats))
    preds = core.answer(model, rows)
    by = {r.person: pr for r, pr in zip(rows, preds) if r.person is not None}
    people = [(p, P.client_box(last_box(found[p]), crowd.scale), by[p], r.speaker)
              for r, p in ((r, r.person) for r in rows) if p is not None]
    alone = [pr for r, pr in zip(rows, preds) if r.person is None and r.feats is nobody]
    main_pred = preds[-1] if main is None else by[main]
    none = Prediction(None, None, dict.fromkeys(model.classes))
    return PeopleResult(main_pred or none, [(p, b, pr or none, sp) for p, b, pr, sp in people],
                        alone[0] if alone and alone[0] is not None else None, main)
