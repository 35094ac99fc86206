"""A queue that serves members round-robin, with a cap per member and a cap over everyone."""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

from bot.cogs.stylize.errors import MemberQueueFull, QueueFull

T = TypeVar("T")


class FairQueue(Generic[T]):
    """Items waiting per owner; `pop` takes one from each owner in turn.

    Caps count queued *and* running items, so a member can't slip past the cap while one of
    theirs runs: callers report running items with `started` / `finished`.
    """

    def __init__(self, *, total_limit: int, owner_limit: int) -> None:
        self.total_limit = total_limit
        self.owner_limit = owner_limit
        # Owners with waiting items, in the order they will next be served.
        self._waiting: OrderedDict[Hashable, deque[T]] = OrderedDict()
        self._running: dict[Hashable, int] = {}
        # Places promised to requests still being checked (downloads), so caps hold meanwhile.
        self._reserved: dict[Hashable, int] = {}

    def __len__(self) -> int:
        return sum(len(items) for items in self._waiting.values())

    @property
    def running(self) -> int:
        return sum(self._running.values())

    def active(self, owner: Hashable) -> int:
        """Items the owner has queued, running or reserved."""
        return (
            len(self._waiting.get(owner, ()))
            + self._running.get(owner, 0)
            + self._reserved.get(owner, 0)
        )

    def check(self, owner: Hashable) -> None:
        """Raises MemberQueueFull or QueueFull if the owner could not add an item now."""
        if self.active(owner) >= self.owner_limit:
            raise MemberQueueFull(self.owner_limit)
        if len(self) + self.running + sum(self._reserved.values()) >= self.total_limit:
            raise QueueFull(self.total_limit)

    def reserve(self, owner: Hashable) -> None:
        """Hold a place for the owner (raises like `check`); `push(reserved=True)` or `release`."""
        self.check(owner)
        self._reserved[owner] = self._reserved.get(owner, 0) + 1

    def release(self, owner: Hashable) -> None:
        _decrement(self._reserved, owner)

    def push(self, owner: Hashable, item: T, *, reserved: bool = False, force: bool = False) -> int:
        """Queue an item; returns its position (1 = next). Raises when a cap would be passed,
        unless the place was reserved or ``force`` (jobs accepted before a restart)."""
        if reserved:
            self.release(owner)
        elif not force:
            self.check(owner)
        self._waiting.setdefault(owner, deque()).append(item)
        return self.position(item)

    def pop(self) -> tuple[Hashable, T] | None:
        """The next item in round-robin order (its owner moves to the back), or None."""
        if not self._waiting:
            return None
        owner, items = next(iter(self._waiting.items()))
        item = items.popleft()
        del self._waiting[owner]
        if items:
            self._waiting[owner] = items
        return owner, item

    def remove(self, item: T) -> bool:
        """Take a waiting item out (cancelled before it started); False if it isn't waiting."""
        for owner, items in self._waiting.items():
            if item in items:
                items.remove(item)
                if not items:
                    del self._waiting[owner]
                return True
        return False

    def position(self, item: T) -> int | None:
        """1-based place in the order items will be served, or None if not waiting."""
        for index, queued in enumerate(self._order(), start=1):
            if queued is item:
                return index
        return None

    def started(self, owner: Hashable) -> None:
        self._running[owner] = self._running.get(owner, 0) + 1

    def finished(self, owner: Hashable) -> None:
        _decrement(self._running, owner)

    def _order(self) -> Iterator[T]:
        queues = [list(items) for items in self._waiting.values()]
        depth = max((len(q) for q in queues), default=0)
        for level in range(depth):
            for q in queues:
                if level < len(q):
                    yield q[level]


def _decrement(counts: dict[Hashable, int], key: Hashable) -> None:
    left = counts.get(key, 0) - 1
    if left > 0:
        counts[key] = left
    else:
        counts.pop(key, None)
