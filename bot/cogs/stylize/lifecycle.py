"""One request lifecycle: the states a request goes through and the one function that moves it.

Every way a request moves, from queued to delivered or to any other ending, goes through
`Lifecycle.move`, which updates memory (the requests being tracked, the worker slots, the fair
queue's counts), the journal and the metrics together, and refuses an illegal move. Nothing here
knows Discord: members are told by the caller. (The engine's own job states are another thing:
`nst_engine.backend.RequestState`, one run on a worker.)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from enum import StrEnum
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

if TYPE_CHECKING:
    from bot.cogs.stylize.fair_queue import FairQueue

log = logging.getLogger(__name__)


class RequestState(StrEnum):
    """Where a member's request stands; the value is what the journal stores."""

    QUEUED = "queued"
    RUNNING = "running"
    # Painted and the picture kept; not yet delivered.
    DONE = "done"
    DELIVERED = "delivered"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    # Painted, but the member can't be reached (channel gone, no permission, DMs closed).
    UNDELIVERABLE = "undeliverable"


Q, R, D = RequestState.QUEUED, RequestState.RUNNING, RequestState.DONE
ENDINGS = frozenset(
    {
        RequestState.DELIVERED,
        RequestState.FAILED,
        RequestState.CANCELLED,
        RequestState.TIMED_OUT,
        RequestState.UNDELIVERABLE,
    }
)
# Every legal move. RUNNING → QUEUED is a request cut off by a shutdown, put back for the next
# start.
TRANSITIONS: dict[RequestState, frozenset[RequestState]] = {
    Q: frozenset({R, RequestState.CANCELLED, RequestState.FAILED}),
    R: frozenset({Q, D, RequestState.FAILED, RequestState.CANCELLED, RequestState.TIMED_OUT}),
    D: frozenset({RequestState.DELIVERED, RequestState.UNDELIVERABLE}),
    **{ending: frozenset() for ending in ENDINGS},
}


class Tracked(Protocol):
    """What the lifecycle reads and writes of a request (`request.Request`)."""

    id: str
    user_id: int
    state: RequestState
    queued_at: float
    started_at: float | None


T = TypeVar("T", bound=Tracked)


class IllegalTransition(RuntimeError):
    """A move the lifecycle does not allow (a bug, never a member's mistake)."""

    def __init__(self, job_id: str, old: RequestState, new: RequestState) -> None:
        super().__init__(f"job {job_id} cannot go from {old} to {new}")


class Journal(Protocol):
    """The part of `bot.store.JobStore` the lifecycle writes to."""

    async def set_state(self, job_id: str, state: str, *, attempt: bool = False) -> None: ...

    async def save_result(self, job_id: str, png: bytes) -> None: ...

    async def requeue(self, job_id: str) -> None: ...


class JobMetrics(Protocol):
    """The part of `bot.metrics.Metrics` the lifecycle counts in."""

    finished: object
    failed: object
    cancelled: object
    queue_wait: object
    run_time: object
    steps_per_second: object


class Lifecycle(Generic[T]):
    """The requests this process tracks, and the only way to move them."""

    def __init__(self, queue: FairQueue[T], journal: Journal, metrics: JobMetrics) -> None:
        self.queue = queue
        self.journal = journal
        self.metrics = metrics
        # Jobs queued, running or done-but-not-delivered, by id.
        self.jobs: dict[str, T] = {}
        self.running: set[T] = set()
        # Set whenever a worker slot frees up or a job is added: the dispatcher waits on it.
        self.changed = asyncio.Event()
        # Set once the shutdown's grace period is over: a job cut off now stays journaled as it
        # was, to run after the restart.
        self.stopping = False

    def track(self, request: T) -> None:
        """Start tracking a job that is already journaled (accepted or recovered)."""
        self.jobs[request.id] = request
        self.changed.set()

    async def move(
        self,
        request: T,
        new: RequestState,
        *,
        png: bytes | None = None,
        seconds: float | None = None,
        steps: int | None = None,
    ) -> None:
        """Move ``request`` to ``new``: memory first (so a slot is never leaked), then the
        metrics, then the journal. A journal that can't be written is logged, not raised: the
        member still gets their answer, and the row is mended by the next move or restart.

        Raises IllegalTransition (and changes nothing) for a move the table does not allow.
        """
        old = request.state
        if new not in TRANSITIONS[old]:
            raise IllegalTransition(request.id, old, new)
        self._remember(request, old, new)
        self._count(request, new, seconds, steps)
        await self._write(request, old, new, png)

    def abandon(self, request: T) -> None:
        """Stop tracking a job whatever its state (after an unexpected error), freeing its slot."""
        if request in self.running:
            self.running.discard(request)
            self.queue.finished(request.user_id)
        self.queue.remove(request)
        self.jobs.pop(request.id, None)
        self.changed.set()

    def _remember(self, request: T, old: RequestState, new: RequestState) -> None:
        request.state = new
        if new is R:
            self.running.add(request)
            self.queue.started(request.user_id)
        elif old is R:
            self.running.discard(request)
            self.queue.finished(request.user_id)
            self.changed.set()
        if new is Q and old is R:
            self.jobs.pop(request.id, None)  # a shutdown: the journal keeps it for the restart
        if new in ENDINGS:
            self.jobs.pop(request.id, None)
            self.changed.set()

    def _count(self, request: T, new: RequestState, seconds, steps) -> None:
        m = self.metrics
        if new is R and request.queued_at is not None:
            m.queue_wait.observe(max(0.0, request.started_at - request.queued_at))
        elif new is D and seconds is not None:
            m.run_time.observe(seconds)
            if seconds > 0 and steps:
                m.steps_per_second.set(steps / seconds)
        elif new is RequestState.DELIVERED:
            m.finished.inc()
        elif new is RequestState.CANCELLED:
            m.cancelled.inc()
        elif new in (RequestState.FAILED, RequestState.TIMED_OUT, RequestState.UNDELIVERABLE):
            m.failed.inc()

    async def _write(self, request: T, old: RequestState, new: RequestState, png) -> None:
        try:
            if new is D and png is not None:
                await self.journal.save_result(request.id, png)
            elif new is Q and old is R:
                await self.journal.requeue(request.id)
            else:
                await self.journal.set_state(request.id, new.value, attempt=new is R)
        except Exception as err:  # noqa: BLE001 - the member's answer matters more than the row
            log.error("could not journal %s → %s: %s", old, new, err)


def legal_moves() -> Iterable[tuple[RequestState, RequestState]]:
    """Every (old, new) pair the lifecycle allows, for tests and docs."""
    for old, targets in TRANSITIONS.items():
        for new in targets:
            yield old, new
