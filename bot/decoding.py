"""One budget for the member images this process decodes (saved styles, attachment checks):
at most so many pixels decoded at once, the rest waiting their turn, and every decode in one
thread of its own. Without it, eight simultaneous `/styles add` of a 36-megapixel PNG (112 kB
each) held several full decodes at once, and each thread's allocator arena kept what its decode
had needed after it was freed: 1.3 GB for a bot that idles at 88 MB."""

from __future__ import annotations

import asyncio
import functools
import io
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import ParamSpec, TypeVar

from PIL import Image

from nst_engine.images import DEFAULT_MAX_PIXELS

log = logging.getLogger(__name__)

_P = ParamSpec("_P")
_T = TypeVar("_T")

# Pixels decoded at once: one image as large as any accepted (DEFAULT_MAX_PIXELS, 40 MP, about
# 120 MB as RGB), or several smaller ones together.
DECODE_BUDGET_PIXELS = DEFAULT_MAX_PIXELS


class PixelBudget:
    """At most ``capacity`` pixels held at once; the rest wait in order of arrival. A request
    larger than the whole budget waits for all of it (it then runs alone). `run` does the work
    in the budget's one thread: the engine decodes one image at a time anyway, and one thread
    means one allocator arena keeping freed memory, not one per thread of the default pool."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1 pixel, not {capacity}")
        self.capacity = capacity
        # Pixels held now, and the most ever held at once.
        self.held = 0
        self.peak = 0
        self._waiting: deque[tuple[int, asyncio.Future[None]]] = deque()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode")

    async def run(self, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """``fn(*args, **kwargs)`` in the budget's thread (call it inside `hold`)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, functools.partial(fn, *args, **kwargs))

    def close(self) -> None:
        self._thread.shutdown(wait=False, cancel_futures=True)

    @asynccontextmanager
    async def hold(self, pixels: int) -> AsyncIterator[None]:
        """Hold ``pixels`` of the budget for the body, waiting until they are free."""
        weight = max(1, min(pixels, self.capacity))
        if self._waiting or self.held + weight > self.capacity:
            granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            entry = (weight, granted)
            self._waiting.append(entry)
            try:
                await granted
            except BaseException:
                if granted.done() and not granted.cancelled():
                    self._give_back(weight)  # granted, then cancelled before it ran
                else:
                    self._waiting.remove(entry)
                    self._grant()
                raise
        else:
            self.held += weight
        self.peak = max(self.peak, self.held)
        try:
            yield
        finally:
            self._give_back(weight)

    @asynccontextmanager
    async def decoding(self, data: bytes, *, frames: int = 1) -> AsyncIterator[None]:
        """`hold` as many pixels as ``data``'s header says it has (times ``frames``)."""
        async with self.hold(header_pixels(data, self.capacity) * max(1, frames)):
            yield

    def _give_back(self, weight: int) -> None:
        self.held -= weight
        self._grant()

    def _grant(self) -> None:
        while self._waiting:
            weight, granted = self._waiting[0]
            if granted.done():
                self._waiting.popleft()
                continue
            if self.held + weight > self.capacity:
                return
            self._waiting.popleft()
            self.held += weight
            granted.set_result(None)


def header_pixels(data: bytes, unknown: int) -> int:
    """Width × height from the image's header, before a pixel is decoded; ``unknown`` when the
    header can't be read (the decode itself then refuses the file, in one line)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except Exception:  # noqa: BLE001 - any unreadable header, bombs included
        return unknown
    return width * height
