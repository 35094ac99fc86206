"""Numbers as people read them: file sizes and times left, for the CLI and the bot alike."""

from __future__ import annotations

import math


def format_bytes(count: int, *, up: bool = True) -> str:
    """'31.2 MB', '900 KB', '12 bytes'. Round file sizes up and limits down, so that a file
    just over the limit never reads as the same number."""
    for unit, size in (("MB", 1024 * 1024), ("KB", 1024)):
        if count >= size:
            return f"{_one_decimal(count / size, up=up)} {unit}"
    return f"{count} bytes"


def clock(seconds: float | None) -> str:
    """``m:ss`` for a time left, or ``--:--`` when it is not known yet."""
    if seconds is None:
        return "--:--"
    minutes, secs = divmod(int(seconds + 0.5), 60)
    return f"{minutes}:{secs:02d}"


def _one_decimal(value: float, *, up: bool) -> str:
    tenths = math.ceil(value * 10 - 1e-9) if up else math.floor(value * 10 + 1e-9)
    whole, frac = divmod(tenths, 10)
    return f"{whole}" if frac == 0 else f"{whole}.{frac}"
