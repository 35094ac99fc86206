"""A sliding-window rate limit per key (member or server)."""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Hashable

from bot.cogs.stylize.errors import TooFast


class RateLimit:
    """At most ``limit`` hits per key in any 60-second window (0: unlimited)."""

    WINDOW = 60.0

    def __init__(self, limit: int, who: str, per: str) -> None:
        self.limit = limit
        self.who = who
        self.per = per
        self._hits: defaultdict[Hashable, deque[float]] = defaultdict(deque)

    def hit(self, key: Hashable, now: float) -> None:
        """Count a hit at ``now`` (monotonic seconds), or raise TooFast without counting it."""
        if not self.limit:
            return
        hits = self._hits[key]
        while hits and hits[0] <= now - self.WINDOW:
            hits.popleft()
        if len(hits) >= self.limit:
            raise TooFast(self.who, self.limit, self.per, hits[0] + self.WINDOW - now)
        hits.append(now)
