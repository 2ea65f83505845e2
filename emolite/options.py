"""Option checks at the boundary: every number finite and in range, every name a known one.

A bad value (`--fps nan`, `--window -2`, `--device banana`) must fail at once with one line that
names the option and what it accepts, before it can decode an hour of video into a runaway
buffer or surface later as a ZeroDivisionError. The CLI and the API functions it calls (media,
preprocess, analyze, inference, serve) share these helpers; the CLI exits 2 on `OptionError`,
as argparse does for its own usage errors.
"""

from __future__ import annotations

import math
from typing import Iterable

from .errors import EmoliteError

DEVICES = ("cpu", "cuda")   # plus "cuda:N"


class OptionError(EmoliteError):
    """An option value out of range or unknown (a usage error: the CLI exits 2)."""


def _fmt(v: float) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def number(name: str, value: object, lo: float | None = None, hi: float | None = None,
           integer: bool = False, lo_open: bool = False) -> float | int:
    """`value` as a finite number within [lo, hi] (or (lo, hi] with lo_open); raises OptionError
    naming the option and the range otherwise. Returns it as int when `integer`."""
    kind = "a whole number" if integer else "a number"
    low = "" if lo is None else f"{'>' if lo_open else '>='} {_fmt(lo)}"
    high = "" if hi is None else f"<= {_fmt(hi)}"
    want = f"{kind} {' and '.join(x for x in (low, high) if x)}".strip()
    try:
        if isinstance(value, bool):
            raise TypeError
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise OptionError(f"{name} must be {want}; got {value!r}") from None
    if not math.isfinite(x) or (integer and x != int(x)):
        raise OptionError(f"{name} must be {want}; got {value!r}")
    if (lo is not None and (x <= lo if lo_open else x < lo)) or (hi is not None and x > hi):
        raise OptionError(f"{name} must be {want}; got {_fmt(value) if isinstance(value, (int, float)) else value!r}")
    return int(x) if integer else x


def optional(name: str, value: object, *args, **kwargs) -> float | int | None:
    """`number` for an option that may be left out (None stays None)."""
    return None if value is None else number(name, value, *args, **kwargs)


def choice(name: str, value: str, allowed: Iterable[str], what: str | None = None) -> str:
    """`value` if it is one of `allowed`; else OptionError listing them."""
    allowed = sorted(allowed)
    if value not in allowed:
        raise OptionError(f"unknown {what or name} {value!r}; use {' | '.join(allowed)}")
    return value


def device(value: str | None) -> str:
    """cpu, cuda or cuda:N (before any model file is opened, so a typo is not blamed on the model)."""
    v = "cpu" if value is None else str(value)
    base, _, index = v.partition(":")
    if base not in DEVICES or (index and (base != "cuda" or not index.isdigit())):
        raise OptionError(f"unknown device {v!r}; use cpu or cuda (or cuda:N)")
    return v
