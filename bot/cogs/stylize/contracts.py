"""What the scheduler holds its collaborators to (no Discord types): delivery, which tells
members, and the journal; and how a run ended."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from bot.cogs.stylize import lifecycle
from bot.cogs.stylize.request import Request
from nst_engine.animation import AnimationResult
from nst_engine.options import Progress, StyleResult


class Undeliverable(Exception):
    """No try will deliver the picture (Discord refused it as too large, the channel is gone or
    closed to the bot, DMs are closed). The message is Discord's answer, for the log; ``why``
    ends the member's line "your picture was painted but …"."""

    def __init__(self, answer: str, why: str = "Discord would not take it") -> None:
        super().__init__(answer)
        self.why = why


class Notifier(Protocol):
    """What members see of their jobs; implemented by `delivery.Delivery`."""

    async def queued(self, request: Request, position: int | None, running: int) -> None: ...

    async def started(self, request: Request) -> None: ...

    async def starting_worker(self, request: Request, seconds: float | None) -> None:
        """The job waits for a worker being started, ready in about ``seconds`` (None: not
        measured yet)."""

    async def progress(self, request: Request, progress: Progress) -> None: ...

    async def deliver(self, request: Request, png: bytes, result: StyleResult | None) -> None:
        """Post the picture; raises Undeliverable when no way to the member is left."""

    async def ended(self, request: Request, text: str) -> None: ...


class Journal(lifecycle.Journal, Protocol):
    """The part of `bot.store.JobStore` the scheduler uses: the lifecycle's writes, plus
    reading jobs back for recovery."""

    async def pending(self) -> list: ...

    async def load(self, job_id: str) -> Any: ...

    async def delivery_tried(self, job_id: str) -> int:
        """Count one more try to deliver a painted job; the tries so far, this one included."""


@dataclass(frozen=True)
class Outcome:
    """How a run ended: the state to move to, and the line for the member (or the result)."""

    state: lifecycle.RequestState
    text: str = ""
    result: StyleResult | AnimationResult | None = None
    # The file's parameters (with a result).
    parameters: dict | None = None
