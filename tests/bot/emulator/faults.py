"""Failures a test injects on purpose, and how each is answered; rate-limit buckets with
Discord's headers."""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import logging
import math
import time
from dataclasses import dataclass, field

from aiohttp import web

from .records import RequestRecord
from .routing import json_response, reason

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

    async def hold(self, closing: asyncio.Event) -> None:
        """Wait until the fault is released or ``closing`` is set, whichever comes first."""
        waits = [asyncio.ensure_future(e.wait()) for e in (self._released, closing)]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()


class Faults:
    """The faults a test has injected, first added first matched."""

    def __init__(self) -> None:
        self.active: list[Fault] = []
        # Set when the emulator closes: hanging requests then end, so shutdown does not wait.
        self.closing = asyncio.Event()

    def fail_next(
        self,
        route: str,
        *,
        status: int = 429,
        times: int | None = 1,
        retry_after: float = 0.05,
        is_global: bool = False,
    ) -> Fault:
        """Answer the next ``times`` requests matching ``route`` with ``status``.

        ``route``: ``"POST /channels/*/messages"``, ``"/webhooks/*"``, ``"GET /cdn/*"``... (see
        ``Fault``). A 429 carries ``retry_after`` and Discord's rate-limit headers; discord.py
        retries 429s and 500/502/504 (after 1 s, 3 s, ...), and gives up on other statuses.
        """
        return self._add(Fault(route, status, times, retry_after=retry_after, is_global=is_global))

    def hang_next(self, route: str, *, times: int | None = 1, status: int | None = None) -> Fault:
        """Hold the next matching requests until ``fault.release()`` or the emulator closes;
        then answer with ``status``, or normally when it is None."""
        return self._add(Fault(route, status, times, hang=True))

    def delay_next(self, route: str, seconds: float, *, times: int | None = 1) -> Fault:
        """Answer the next matching requests normally, but ``seconds`` late."""
        return self._add(Fault(route, None, times, delay=seconds))

    def clear_faults(self) -> None:
        for fault in self.active:
            fault.release()
        self.active.clear()

    def _add(self, fault: Fault) -> Fault:
        self.active.append(fault)
        return fault

    def take(self, method: str, path: str) -> Fault | None:
        """The first fault that catches this request, counting the hit."""
        for fault in self.active:
            if fault.matches(method, path):
                fault.hits += 1
                return fault
        return None

    async def answer(
        self, fault: Fault, record: RequestRecord, *, is_api: bool
    ) -> web.StreamResponse | None:
        """The injected answer, or None to let the request through (after any wait)."""
        record.fault = fault.pattern
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.hang:
            await fault.hold(self.closing)
            if self.closing.is_set():
                return web.Response(status=503, text="emulator closed")
        status = fault.status
        if status is None:
            return None
        if status == 429:
            headers = limited_headers(
                fault.retry_after,
                scope="global" if fault.is_global else "user",
                is_global=fault.is_global,
            )
            body = limited_body(fault.retry_after, is_global=fault.is_global)
            return json_response(body, status=429, headers=headers)
        phrase = reason(status)
        if status in (502, 503, 504) or not is_api:
            # Cloudflare and the CDN answer errors with HTML and text, not Discord's JSON.
            return web.Response(status=status, text=f"{status} {phrase}", content_type="text/html")
        return json_response({"message": f"{status}: {phrase}", "code": 0}, status=status)


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
