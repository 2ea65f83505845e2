"""Every person in the picture: faces linked into person tracks with stable ids, and who speaks.

`PeopleTracker` follows all faces (up to MAX_PEOPLE, at least MIN_FACE px) through a whole
stream, one frame at a time in time order, so overlapping analysis windows share its state and
each frame is tracked once. Detections link to tracks by a cost that mixes box overlap (IoU
with the track's predicted box) and appearance (a colour histogram of face + hair + collar and
a small grey thumbnail), solved as an assignment. A track missed by the detector, or hidden,
moves on its predicted box while matching and stays open for LOST_SECONDS; a track lost longer
can be re-identified by appearance for REID_SECONDS. Boxes are reported only where the detector
saw the face, plus misses of at most FILL_GAP frames between two detections (interpolated):
a guess over a longer miss would crop whatever covers the face. A track gets its public id
(1, 2, ...) only after CONFIRM detections, so one false detection never becomes a "person".

`speaker()` picks who is speaking in a window from mouth motion (the mouth region's change
between frames beyond the upper face's, which cancels head motion and lighting) or, with one
face on screen, that face; when it cannot tell, the voice stays its own stream.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .faces import TEMPLATE_112, Face, iou
from .grid import frame_key

MAX_PEOPLE = 8          # faces tracked per frame (largest first)
MAX_PEOPLE_LIMIT = 32   # the most --max-people accepts
MIN_FACE = 20           # px: smaller faces (longest box side, in analysed-frame pixels) are not tracked
CONFIRM = 2             # detections before a track is a person with an id
FILL_GAP = 2            # sampled frames: a detector miss this short between two detections is interpolated
PREDICT_SECONDS = 0.6   # a missed track moves on its velocity this long, then holds its place
LOST_SECONDS = 2.0      # a track unseen this long stops being carried on its predicted box
REID_SECONDS = 10.0     # ... and can be re-identified by appearance for this long after that
APPEAR_MAX = 0.35       # appearance distance (0..2) under which a lost track is re-identified
IOU_GATE = 0.1          # a seen track links to a detection overlapping its predicted box at least this much
MOUTH_SIZE = 48         # px: grey crop used for mouth motion
MOUTH_MIN = 0.015       # mouth motion (fraction of the grey range) under which nobody is "speaking"
MOUTH_RATIO = 1.2       # the speaker's mouth must move this much more than the next person's
# On benchmarks/bench_people.py's dev scenes (--first 100, 59 windows with one main speaker), windows
# right / attributions right: min 0.015 -> 0.20 / 0.63; 0.003 -> 0.42 / 0.68; 0 (always someone)
# -> 0.56 / 0.56; ratio 1.0 / 1.2 / 1.5 at min 0.015 -> 0.20 / 0.20 / 0.17. The minimum stays at
# 0.015 because two still faces on the live path (JPEG frames, moving heads, no talking) reach
# 0.013 (tests/test_serve.py): a lower one gives the voice to a silent face there.


def appearance(frame: np.ndarray, box: np.ndarray) -> np.ndarray:
    """A unit vector describing how a person looks: hue/saturation histogram of the box widened
    to take hair and collar (what tells people apart at a glance), plus an 8×8 grey thumbnail."""
    import cv2

    h, w = frame.shape[:2]
    x1, y1, x2, y2 = box
    bw, bh = x2 - x1, y2 - y1
    r = np.array([x1 - 0.25 * bw, y1 - 0.25 * bh, x2 + 0.25 * bw, y2 + 0.6 * bh])
    x1, y1 = int(np.clip(r[0], 0, w - 1)), int(np.clip(r[1], 0, h - 1))
    x2, y2 = int(np.clip(r[2], x1 + 1, w)), int(np.clip(r[3], y1 + 1, h))
    patch = np.ascontiguousarray(frame[y1:y2, x1:x2])
    hsv = cv2.cvtColor(patch, cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1], None, [12, 4], [0, 180, 0, 256]).reshape(-1)
    hist = np.sqrt(hist / max(hist.sum(), 1.0))
    thumb = cv2.resize(cv2.cvtColor(patch, cv2.COLOR_RGB2GRAY), (8, 8), interpolation=cv2.INTER_AREA).reshape(-1)
    thumb = (thumb - thumb.mean()) / (thumb.std() + 1e-6) / 8.0
    v = np.concatenate([hist, 0.5 * thumb]).astype(np.float32)
    return v / (np.linalg.norm(v) + 1e-6)


@dataclass
class _Track:
    key: int                       # internal, for every track (confirmed or not)
    face: Face                     # last box (detected or predicted)
    seen: float                    # time of the last detection
    look: np.ndarray               # appearance, running mean over detections
    box: np.ndarray | None = None  # last detected box
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4, np.float32))
    hits: int = 1
    id: int | None = None          # public id once confirmed


class PeopleTracker:
    """Person tracks over a stream. Call `update(t, faces, frame, detected)` for each sampled
    frame in time order (`detected=False`: the detector did not run on it, boxes are predicted);
    `at(t)` then gives {person id: Face} for that frame."""

    def __init__(self, max_people: int = MAX_PEOPLE, min_face: float = MIN_FACE):
        self.max_people, self.min_face = max_people, min_face
        self.active: list[_Track] = []
        self.lost: list[_Track] = []
        self.history: dict[float, dict[int, Face]] = {}   # frame time -> track key -> box
        self.ids: dict[int, int] = {}                      # track key -> public id
        self._keys = 0
        self.last_t: float | None = None
        self.last_detection: float | None = None

    def update(self, t: float, faces: list[Face], frame: np.ndarray, detected: bool = True) -> None:
        t = frame_key(t)
        if self.last_t is not None and t <= self.last_t:
            return   # a frame an earlier (overlapping) window already gave
        dt = 0.0 if self.last_t is None else t - self.last_t
        self.last_t = t
        for tr in self.active:   # constant-velocity prediction over short misses, then hold
            if t - tr.seen <= PREDICT_SECONDS:
                tr.face = Face(tr.face.box + tr.velocity * dt, 0.0, tr.face.landmarks)
        if detected:
            self._associate(t, self.eligible(faces), frame)
        keep = []
        for tr in self.active:
            if t - tr.seen > LOST_SECONDS:
                if tr.id is not None:
                    self.lost.append(tr)
            elif tr.id is not None or t - tr.seen <= LOST_SECONDS / 4:   # an unconfirmed track dies fast
                keep.append(tr)
        self.active = keep
        self.lost = [tr for tr in self.lost if t - tr.seen <= REID_SECONDS + LOST_SECONDS]
        # a face is reported where the detector saw it, and on frames the detector skipped when it
        # saw it at the last detection; never on a guess over a miss (the crop would be of whatever
        # covers the face, or of someone else)
        if detected:
            self.last_detection = t
        self.history[t] = {tr.key: tr.face for tr in self.active if tr.seen == self.last_detection}

    def eligible(self, faces: list[Face]) -> list[Face]:
        """The faces worth tracking: at least min_face px, the max_people largest."""
        big = [f for f in faces if max(f.box[2] - f.box[0], f.box[3] - f.box[1]) >= self.min_face]
        return sorted(big, key=lambda f: -f.area)[:self.max_people]

    def _associate(self, t: float, faces: list[Face], frame: np.ndarray) -> None:
        from scipy.optimize import linear_sum_assignment

        looks = [appearance(frame, f.box) for f in faces]
        matched: set[int] = set()
        if self.active and faces:
            cost = np.full((len(self.active), len(faces)), 9.0)
            for i, tr in enumerate(self.active):
                for j, f in enumerate(faces):
                    o = iou(tr.face.box, f.box)
                    a = 1.0 - float(tr.look @ looks[j])
                    near = _centre_distance(tr.face.box, f.box) < 1.5
                    if o >= IOU_GATE or (t - tr.seen > 0 and near and a < APPEAR_MAX):
                        cost[i, j] = (1.0 - o) + 2.0 * a
            rows, cols = linear_sum_assignment(cost)
            for i, j in zip(rows, cols):
                if cost[i, j] < 9.0:
                    self._hit(self.active[i], t, faces[j], looks[j])
                    matched.add(j)
        for j, f in enumerate(faces):
            if j in matched:
                continue
            back = self._reidentify(looks[j])
            if back is not None:
                self.lost.remove(back)
                back.velocity[:] = 0
                self._hit(back, t, f, looks[j])
                self.active.append(back)
            elif len(self.active) < self.max_people:
                self._keys += 1
                self.active.append(_Track(self._keys, f, t, looks[j], f.box))

    def _reidentify(self, look: np.ndarray) -> _Track | None:
        best = min(self.lost, key=lambda tr: 1.0 - float(tr.look @ look), default=None)
        return best if best is not None and 1.0 - float(best.look @ look) < APPEAR_MAX else None

    def _hit(self, tr: _Track, t: float, f: Face, look: np.ndarray) -> None:
        if tr.box is not None and 0 < t - tr.seen <= PREDICT_SECONDS:
            v = (f.box - tr.box) / (t - tr.seen)
            tr.velocity = (0.5 * tr.velocity + 0.5 * np.clip(v, -2000, 2000)).astype(np.float32)
        if tr.box is not None and self.history and min(self.history) <= tr.seen:
            # a short detector miss (its frames still held): the frames between get interpolated boxes
            gap = [k for k in self.history if tr.seen < k < t and tr.key not in self.history[k]]
            if 0 < len(gap) <= FILL_GAP:
                for k in gap:
                    a = (k - tr.seen) / (t - tr.seen)
                    self.history[k][tr.key] = Face(((1 - a) * tr.box + a * f.box).astype(np.float32), 0.0)
        tr.face, tr.box, tr.seen, tr.hits = f, f.box, t, tr.hits + 1
        tr.look = tr.look * 0.8 + look * 0.2
        tr.look /= np.linalg.norm(tr.look) + 1e-6
        if tr.id is None and tr.hits >= CONFIRM:
            tr.id = len(self.ids) + 1
            self.ids[tr.key] = tr.id

    def at(self, t: float) -> dict[int, Face]:
        """Confirmed people and their boxes in the frame at time t."""
        seen = self.history.get(frame_key(t), {})
        return {self.ids[k]: f for k, f in seen.items() if k in self.ids}

    def forget_before(self, t: float) -> None:
        """Drop history no later window needs (bounded memory on long videos)."""
        for k in [k for k in self.history if k < t]:
            del self.history[k]


def _centre_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Distance between box centres in units of the first box's side."""
    side = max(a[2] - a[0], a[3] - a[1], 1.0)
    return float(np.hypot((a[0] + a[2] - b[0] - b[2]) / 2, (a[1] + a[3] - b[1] - b[3]) / 2) / side)


def mouth_motion(frames: np.ndarray, faces: list[Face | None]) -> float | None:
    """How much the mouth moves over a window: mean change between detected frames of the mouth
    region of a grey face aligned on the eyes and nose (so a talking jaw is not aligned away),
    minus that of the eye region (what alignment, head turns and lighting leave). None: fewer
    than 2 detected frames with landmarks."""
    import cv2

    s = MOUTH_SIZE
    dst = TEMPLATE_112[:3] * (s / 112.0)
    crops = []
    for f, face in zip(frames, faces):
        if face is None or face.score <= 0 or face.landmarks is None or face.landmarks.shape != (5, 2):
            continue   # predicted or interpolated boxes carry stale landmarks
        m, _ = cv2.estimateAffinePartial2D(face.landmarks[:3].astype(np.float32), dst.astype(np.float32))
        if m is not None:
            crops.append(cv2.cvtColor(cv2.warpAffine(f, m, (s, s), flags=cv2.INTER_LINEAR), cv2.COLOR_RGB2GRAY)
                         .astype(np.float32) / 255.0)
    if len(crops) < 2:
        return None
    mouth = [c[int(0.7 * s):int(0.98 * s), int(0.25 * s):int(0.75 * s)] for c in crops]
    eyes = [c[int(0.3 * s):int(0.55 * s), int(0.15 * s):int(0.85 * s)] for c in crops]
    m = np.mean([np.abs(a - b).mean() for a, b in zip(mouth, mouth[1:])])
    e = np.mean([np.abs(a - b).mean() for a, b in zip(eyes, eyes[1:])])
    return float(max(m - e, 0.0))


def speaker(motion: dict[int, float | None], voiced: bool) -> int | None:
    """Who is speaking: the one face on screen, or the face whose mouth moves clearly most;
    None when there is no voice or it cannot be told (the voice is then its own stream)."""
    if not voiced or not motion:
        return None
    if len(motion) == 1:
        return next(iter(motion))
    known = sorted(((m, p) for p, m in motion.items() if m is not None), reverse=True)
    if not known or known[0][0] < MOUTH_MIN:
        return None
    if len(known) > 1 and known[0][0] < MOUTH_RATIO * known[1][0]:
        return None
    return known[0][1]


def give_voice(motion: dict[int, float | None], voiced: bool) -> tuple[int | None, bool]:
    """The rule "the voice goes to the speaker", for analyze and serve alike: who gets the
    window's voice (`speaker`), and whether the voice needs a row of its own (there is a voice
    and nobody can be told to be speaking it)."""
    who = speaker(motion, voiced)
    return who, who is None and voiced
