"""Causal face following for live video: the detector on every k-th frame, the last faces moved
by template matching between.

Display only: the box a client sees on each of its frames. The model's input is cut from the
frames on the model's grid with the detections the grid rule asks for (`emolite.grid`), as
for files; this follows those faces (and its own every-k-th detection) between grid samples,
because a live answer is due before the next detection exists. It has the library's
`Detector` signature (frame -> list[Face]). It depends only on `emolite.faces` (and `people.MAX_PEOPLE`, the
number of faces it follows) and could move there unchanged.
"""

from __future__ import annotations

import numpy as np

from ..faces import Detector, Face
from ..people import MAX_PEOPLE

FOLLOW_MIN_SCORE = 0.7   # template match needed to move a face box without the detector
MAX_FOLLOWED = MAX_PEOPLE  # faces moved per frame, the largest (every face the people tracker takes)
MIN_PATCH = 8            # px: smaller boxes are not matched


def follow_faces(prev: np.ndarray, cur: np.ndarray, faces: list[Face],
                 min_score: float = FOLLOW_MIN_SCORE) -> list[Face] | None:
    """Move each face box from `prev` to `cur` by matching its patch in a nearby search area;
    None when any match is poor (the detector must look again)."""
    import cv2

    a, b = cv2.cvtColor(prev, cv2.COLOR_RGB2GRAY), cv2.cvtColor(cur, cv2.COLOR_RGB2GRAY)
    h, w = a.shape
    out = []
    if len(faces) > MAX_FOLLOWED:
        faces = sorted(faces, key=lambda f: -f.area)[:MAX_FOLLOWED]
    for f in faces:
        x1, y1, x2, y2 = (int(round(v)) for v in f.box)
        x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
        if x2 - x1 < MIN_PATCH or y2 - y1 < MIN_PATCH:
            return None
        m = max(x2 - x1, y2 - y1) // 2        # search this far in every direction
        sx1, sy1, sx2, sy2 = max(0, x1 - m), max(0, y1 - m), min(w, x2 + m), min(h, y2 + m)
        score = cv2.matchTemplate(b[sy1:sy2, sx1:sx2], a[y1:y2, x1:x2], cv2.TM_CCOEFF_NORMED)
        _, best, _, (bx, by) = cv2.minMaxLoc(score)
        if not best >= min_score:
            return None
        d = np.array([sx1 + bx - x1, sy1 + by - y1], np.float32)
        out.append(Face(f.box + np.tile(d, 2), f.score, None if f.landmarks is None else f.landmarks + d))
    return out


class FaceFollower:
    """A `Detector` for one live stream: `detector` on every k-th call; between, the previous
    faces moved by template matching (~1 ms instead of ~15). A poor match (a jump, a turn), no
    face or a new frame size falls back to detection."""

    def __init__(self, detector: Detector, every: int, min_score: float = FOLLOW_MIN_SCORE):
        self.detector = detector
        self.every = max(1, every)
        self.min_score = min_score
        self.calls = 0
        self.detector_calls = 0
        self.reset()

    def reset(self) -> None:
        """Forget the last faces (the client changed resolution)."""
        self.last_faces: list[Face] = []
        self.last_frame: np.ndarray | None = None

    def seed(self, frame: np.ndarray, faces: list[Face]) -> None:
        """Faces the detector found in `frame` elsewhere (the model's grid): follow from them."""
        self.last_faces, self.last_frame = faces, frame

    def __call__(self, frame: np.ndarray) -> list[Face]:
        self.calls += 1
        if self.last_faces and self.calls % self.every and self.last_frame is not None \
                and self.last_frame.shape == frame.shape:
            moved = follow_faces(self.last_frame, frame, self.last_faces, self.min_score)
            if moved is not None:
                self.last_faces, self.last_frame = moved, frame
                return moved
        self.detector_calls += 1
        self.last_faces, self.last_frame = self.detector(frame), frame
        return self.last_faces
