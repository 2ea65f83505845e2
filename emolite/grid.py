"""The model's frame grid: which frames a model sees, when the face detector runs on them, and
how a frame time is keyed. One rule for files (analyze) and live streams (serve).

A model sees `frames` (T) frames per `window_seconds`, so frames are sampled on a grid of T /
window frames per second (`model_rate`): sample k is at time k / rate and takes the first frame
at or after k / rate - half a step (`media.iter_windows` for files, `GridSampler` for a live
stream; a slow source repeats its frame). The detector runs on every `detect_every()`-th sample
of the grid (`detect_due`): every 2nd when only the main face is followed (`faces.track`
interpolates the boxes between, inside each window), every sample when every person is tracked
through the stream (`people.PeopleTracker` links identities by box overlap from one detection to
the next: a gap of two grid steps, 0.75 s for the default model, loses people who move). A frame
time is keyed by `frame_key` wherever frames are memoised or tracked, so a frame shared by
overlapping windows is looked at once.
"""

from __future__ import annotations

import math

KEY_DIGITS = 4      # frame times are keyed to 0.1 ms
DETECT_EVERY = 2    # the detector runs on every 2nd sample of the grid for the main face (kept
                    # from analyze: the default model's answers were measured so)
PEOPLE_DETECT_EVERY = 1   # ... and on every sample when every person is tracked
EPS = 1e-6          # s: grid arithmetic tolerance (media's accumulated sample times)


def frame_key(t: float) -> float:
    """A frame time as memos and trackers key it."""
    return round(float(t), KEY_DIGITS)


def model_rate(frames: int, window: float) -> float:
    """Samples per second of the model's grid: exactly T frames in each window."""
    return frames / window


def detect_every(people: bool) -> int:
    """The detection cadence (in grid samples): every person tracked, or the main face only."""
    return PEOPLE_DETECT_EVERY if people else DETECT_EVERY


def detect_due(t: float, rate: float, every: int = DETECT_EVERY) -> bool:
    """Whether the detector runs on the grid sample at time t (every `every`-th sample)."""
    return every <= 1 or round(float(t) * rate) % every == 0


class GridSampler:
    """A live stream's frames onto the model's grid, by media's rule: grid time g takes the
    first frame whose time is at least g - half a step (a frame fills every g it reaches)."""

    def __init__(self, rate: float, horizon: float = math.inf):
        self.rate = rate
        self.horizon = horizon          # s: grid times older than this before a frame are skipped
        self.k: int | None = None       # next grid index to fill

    def reset(self) -> None:
        self.k = None

    def push(self, t: float) -> list[float]:
        """The grid times the frame at time t fills (often none at a high client frame rate)."""
        half = 0.5 / self.rate
        first = max(0, math.ceil((t - half) * self.rate - EPS))
        if self.k is None:
            self.k = first
        elif math.isfinite(self.horizon):   # after a pause, only the grid times a window can hold
            self.k = max(self.k, first - math.ceil(self.horizon * self.rate))
        out = []
        while self.k / self.rate <= t + half + EPS:
            out.append(self.k / self.rate)
            self.k += 1
        return out
