"""Every face of a live client: person tracks with stable ids, a label per person, the voice
given to whoever is seen speaking.

The frame worker feeds each new frame's detections (the ones the session's `FaceFollower`
already made for the main face, read from the shared memo: no second detector pass) to a
`people.PeopleTracker`, and answers with every person's box in the newest frame. For a model
run it takes a `Crowd`: a frozen view of the window (frames, detections, person boxes per
frame) that the model thread reads while the frame worker goes on tracking. The model thread
cuts each person's inputs with the library's own `features.people_features` (same crops,
margin, alignment and sizes as the main face, all from the model's spec), picks the speaker
with `people.speaker`, and runs every person, plus the voice on its own when nobody is seen
speaking, in one batched model call.

With one person (or none) the session does exactly what it did before people were tracked:
one model call on the main face and the voice; that person's entry carries that label.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from .. import inputs as I
from .. import media
from ..faces import Face, iou
from ..features import Features, people_features, usable
from ..inference import Prediction
from ..people import MAX_PEOPLE, PeopleTracker, speaker
from ..spec import InputSpec
from . import protocol as P

MAIN_IOU = 0.5   # a person whose box overlaps the main face this much in a frame is the main face there


def key(t: float) -> float:
    """A frame time as the memo and the tracker key it."""
    return round(float(t), 4)


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

    def track(self, window: media.Window, memo: dict) -> dict[int, Face]:
        """Give the tracker the window's frames it has not seen (their detections from the memo);
        every person's box in the newest frame."""
        for t, frame in zip(window.times, window.frames):
            faces, _, ran = memo[key(t)]
            self.tracker.update(t, faces, frame, ran)
        self.tracker.forget_before(key(window.times[0]))
        return self.tracker.at(window.times[-1])

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


def infer_one(model, spec: InputSpec, feats: Features, fps: float | None, crowd: Crowd | None) -> PeopleResult:
    """One face (or none): the main face and the voice in one model call, as without people
    tracking; the person who is the main face gets that label (and the voice)."""
    x = I.clip_inputs(feats.face, feats.face_mask, feats.context, feats.audio, spec.frames, spec.audio_seconds,
                      feats.has_video, bool(feats.has_audio and feats.voiced is not False), fps=fps,
                      face_size=spec.face_size, context_size=spec.context_size)
    pred = model.to_prediction(model.predict_inputs(I.stack([x]))[0])
    people, p = [], None
    if crowd is not None and crowd.ids and feats.face_mask.any():
        found = {p: _boxes_only(crowd, p) for p in crowd.ids}
        p = main_person(feats, found)
        if p is not None:
            box = last_box(found[p])
            people.append((p, P.client_box(box, crowd.scale), pred,
                           usable(feats, model.modalities)["audio"]))
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


def infer_people(model, spec: InputSpec, feats: Features, fps: float | None, crowd: Crowd) -> PeopleResult:
    """Several people: each person's crops (`people_features`), the speaker by mouth motion, and
    one batched model call for every person, the voice alone when nobody is seen speaking, and
    the main face when it is no tracked person. The voice goes into the speaker only."""
    found, motion, nobody = people_features(crowd.window, None, crowd, spec.face_size, spec.context_size,
                                            spec.margin, spec.align, memo=crowd.memo, fps=spec.fps)
    for f in (*found.values(), nobody):
        f.voiced = feats.voiced             # checked once, on the same audio
    voice = usable(nobody, model.modalities)["audio"]
    who = speaker(motion, voice)
    main = main_person(feats, found)

    def inputs(f: Features, video: bool, audio: bool) -> dict:
        return I.clip_inputs(f.face, f.face_mask, f.context, f.audio, spec.frames, spec.audio_seconds, video, audio,
                             fps=fps, face_size=spec.face_size, context_size=spec.context_size)

    order = sorted(found)
    xs = [inputs(found[p], True, voice and p == who) for p in order]
    if who is None and voice:
        xs.append(inputs(nobody, False, True))
    if main is None:
        xs.append(inputs(feats, feats.has_video, bool(feats.has_audio and feats.voiced is not False)))
    probs = model.predict_inputs(I.stack(xs))
    preds = [model.to_prediction(pr) for pr in probs]
    people = []
    for p, pred in zip(order, preds):
        box = last_box(found[p])
        people.append((p, P.client_box(box, crowd.scale), pred, p == who))
    voice_alone = preds[len(order)] if who is None and voice else None
    main_pred = preds[-1] if main is None else preds[order.index(main)]
    return PeopleResult(main_pred, people, voice_alone, main)
