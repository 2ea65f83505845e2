"""Which windows a stream of decoded media becomes: the one place that decides.

Windows come from what has decoded, made lazily as the data arrives, never from the length
a container claims (a 35 KB file can claim 1e8 s). Files up to MAX_CLIP long are one window
("utterance-level"); longer ones, and every file when a window length is given, are windowed
with the last window aligned to the end of the data.
"""

from __future__ import annotations

import math
from collections import deque

MAX_CLIP = 12.0          # s: files up to this long are one window ("utterance-level", MELD has 12-s ones);
                         # longer ones are windowed. The one place this is decided (see Spans).
WINDOW = 2.0             # s: window of long files with window=None (preprocess), and the default
                         # analysis window of InputSpec (so of analyze, predict, serve) for models
                         # whose record has none; models state their own (the packaged one: 3 s)
HOP = 1.0                # s: hop between windows (the same two uses)


def window_count(duration: float, window: float | None, hop: float | None) -> int:
    """How many windows `window_spans` gives for `duration`, without making them (a file may claim 1e8 s)."""
    if window is None:
        if duration <= MAX_CLIP:
            return 1
        window, hop = WINDOW, hop or HOP
    hop = hop or window
    if duration <= window:
        return 1
    n = int(math.floor((duration - window) / hop + 1e-9)) + 1
    return n + ((n - 1) * hop + window < duration - 1e-6)


def window_spans(duration: float, window: float | None, hop: float | None) -> list[tuple[float, float]]:
    """Window [start, end) spans covering [0, duration]; the last one is aligned to the end.

    window=None means 'auto': the whole clip when it is at most MAX_CLIP long, else WINDOW/HOP.
    """
    if window is None:
        if duration <= MAX_CLIP:
            return [(0.0, duration)]
        window, hop = WINDOW, hop or HOP
    hop = hop or window
    if duration <= window:
        return [(0.0, duration)]
    spans = [(k * hop, k * hop + window) for k in range(int(math.floor((duration - window) / hop + 1e-9)) + 1)]
    if spans[-1][1] < duration - 1e-6:
        spans.append((duration - window, duration))
    return spans


class Spans:
    """The pending windows, made as media decodes, never from what the container claims (a
    35 KB file can claim 1e8 s): fixed window/hop ones queued as the data reaches their start;
    with window=None the whole clip while at most MAX_CLIP has decoded (or the header says the
    file is that short), then WINDOW/HOP ones. `t_end` (the header's duration or a segment's end)
    only caps them; `finish` drops those past the decoded data and aligns the last one to its end."""

    def __init__(self, t0: float, t_end: float | None, window: float | None, hop: float | None):
        self.t0, self.t_end, self.auto = t0, t_end, window is None
        self.window, self.hop = (WINDOW, hop or HOP) if window is None else (window, hop or window)
        self.q: deque[tuple[float, float]] = deque()
        self.k = 0                 # next streamed window's index
        self.streaming = not self.auto
        self.done_to = t0          # end of the last window handed out

    def grow(self, latest: float) -> None:
        """Queue the windows that start by `latest` (decoded up to) and end by t_end."""
        if self.auto and not self.streaming and latest - self.t0 > MAX_CLIP \
                and (self.t_end is None or self.t_end - self.t0 > MAX_CLIP):
            self.streaming = True
        cap = math.inf if self.t_end is None else self.t_end + 1e-6
        while self.streaming:
            a = self.t0 + self.k * self.hop
            if a > latest or a + self.window > cap:
                break
            self.q.append((a, a + self.window))
            self.k += 1

    def keep_from(self, latest: float) -> float:
        """Earliest time still needed: everything while the clip may be one window, else the next
        window's start and the last window's worth before the data's end (the end-aligned window)."""
        if not self.streaming:
            return self.t0
        nxt = self.q[0][0] if self.q else math.inf
        return min(nxt, min(latest, self.t_end or math.inf) - self.window)

    def finish(self, last: float) -> None:
        """The data ends at `last`: the final windows, none past it."""
        if not self.streaming:
            self.q = deque((self.t0 + a, self.t0 + b) for a, b in window_spans(max(last - self.t0, 0.0), None, self.hop))
            return
        self.q = deque(s for s in self.q if s[1] <= last + 1e-6)
        final = self.q[-1][1] if self.q else self.done_to
        if final < last - 1e-6 or (not self.q and self.done_to == self.t0):
            self.q.append((max(self.t0, last - self.window), last))
        self.streaming = False
