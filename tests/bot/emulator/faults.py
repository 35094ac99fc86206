"""Rate-limit buckets with Discord's headers, and failures a test injects on purpose."""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import logging
import math
import time
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

# discord.py treats a 429 without ``Via`` as a Cloudflare ban and gives up instead of retrying.
VIA = "1.1 google"


@dataclass(eq=False)
class Fault:
    """The next ``times`` requests matching ``pattern`` are answered by the fault, not the route.

    ``pattern`` is ``"METHOD /path/glob"`` or just ``"/path/glob"`` (any method), matched with
    fnmatch against the path below ``/api/v10`` (``/cdn/...`` for attachment downloads).
    """

    pattern: str
    status: int | None  # the status to answer with; None lets the request through afterwards
    times: int | None  # how many requests it still catches; None: all of them
    retry_after: float = 0.05  # for 429s, seconds
    is_global: bool = False  # for 429s: a global rate limit rather than a per-route one
    delay: float = 0.0  # seconds to wait before answering
    hang: bool = False  # wait until release() (or the emulator closes) before answering
    hits: int = 0  # requests it has caught so far
    _released: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def __post_init__(self) -> None:
        method, _, path = self.pattern.strip().rpartition(" ")
        self._method = method.upper() or "*"
        self._path = path

    def matches(self, method: str, path: str) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if self._method not in ("*", method.upper()):
            return False
        return fnmatch.fnmatchcase(path, self._path)

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.hits >= self.times

    def release(self) -> None:
        """Let hanging requests finish (with ``status``, or normally when it is None)."""
        self._released.set()


def bucket_hash(route: str) -> str:
    return hashlib.md5(route.encode(), usedforsecurity=False).hexdigest()


@dataclass
class _Window:
    resets_at: float  # time.time() when the window refills
    used: int = 0


class RateLimiter:
    """Discord's per-route buckets: ``limit`` requests per ``per`` seconds per major parameter.

    The defaults are generous so that ordinary tests never wait; a test that wants to see the
    bot pace itself can lower them.
    """

    def __init__(self, limit: int = 50, per: float = 1.0) -> None:
        self.limit = limit
        self.per = per
        self._windows: dict[str, _Window] = {}

    def take(self, route: str, major: str) -> tuple[dict[str, str], float | None]:
        """Count one request; returns the headers to send and, when over the limit, the
        seconds to wait."""
        now = time.time()
        key = f"{route}:{major}"
        window = self._windows.get(key)
        if window is None or now >= window.resets_at:
            window = self._windows[key] = _Window(resets_at=now + self.per)
        window.used += 1
        reset_after = max(window.resets_at - now, 0.001)
        headers = {
            "X-RateLimit-Bucket": bucket_hash(route),
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(max(self.limit - window.used, 0)),
            "X-RateLimit-Reset": f"{window.resets_at:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
        }
        if window.used > self.limit:
            headers |= limited_headers(reset_after, scope="user")
            return headers, reset_after
        return headers, None


def limited_headers(retry_after: float, *, scope: str, is_global: bool = False) -> dict[str, str]:
    headers = {
        "Retry-After": str(math.ceil(retry_after)),
        "X-RateLimit-Scope": scope,
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset-After": f"{retry_after:.3f}",
    }
    if is_global:
        headers["X-RateLimit-Global"] = "true"
    return headers


def limited_body(retry_after: float, *, is_global: bool = False) -> dict[str, object]:
    return {
        "message": "You are being rate limited.",
        "retry_after": retry_after,
        "global": is_global,
        "code": 0,
    }
