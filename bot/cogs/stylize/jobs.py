"""What the scheduler needs and makes: the contracts it holds the engine, the journal and
delivery to (no Discord types), and how a request becomes the engine's job under the
operator's limits, with the parameters its picture will carry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from bot.cogs.stylize import lifecycle
from bot.cogs.stylize.models import Request
from nst_engine import provenance
from nst_engine.options import Progress, StyleOptions, StyleResult, options_for_quality
from nst_engine.pool import Job


class Undeliverable(Exception):
    """The member can't be reached at all (channel gone, no permission, DMs closed)."""


class Notifier(Protocol):
    """What members see of their jobs; implemented by `delivery.Delivery`."""

    async def queued(self, request: Request, position: int | None, running: int) -> None: ...

    async def started(self, request: Request) -> None: ...

    async def progress(self, request: Request, progress: Progress) -> None: ...

    async def deliver(self, request: Request, png: bytes, result: StyleResult | None) -> None:
        """Post the picture; raises Undeliverable when no way to the member is left."""

    async def ended(self, request: Request, text: str) -> None: ...


class Backend(Protocol):
    """The engine, as the scheduler uses it (`nst_engine.pool.EnginePool`)."""

    size: int

    def submit(self, job: Job) -> Any: ...

    async def wait_warm(self) -> None: ...


class Journal(lifecycle.Journal, Protocol):
    """The part of `bot.store.JobStore` the scheduler uses: the lifecycle's writes, plus
    reading jobs back for recovery."""

    async def pending(self) -> list: ...

    async def load(self, job_id: str) -> Any: ...


@dataclass(frozen=True)
class Limits:
    """What the operator's settings allow every job."""

    # Cap on the steps of any preset.
    max_steps: int
    # Seconds a job may run.
    job_timeout: float
    # Arithmetic of the feature network (auto | float32 | bfloat16 | float16).
    precision: str = "auto"


def engine_options(request: Request, limits: Limits) -> StyleOptions:
    """The engine's options for a request (raises ValueError for impossible ones)."""
    p = request.params
    options = options_for_quality(
        p.quality,
        strength=p.strength,
        max_size=p.size,
        preserve_colors=p.preserve_colors,
        seed=p.seed,
        precision=limits.precision,
    )
    if options.steps > limits.max_steps:
        options = options.replace(steps=limits.max_steps)
    if request.style2 is not None:
        options = options.replace(style_blend=(1.0 - p.blend, p.blend))
    return options


def picture_parameters(request: Request, options: StyleOptions, weights: str) -> dict:
    """What the picture's PNG says about how it was made."""
    p = request.params
    return provenance.parameters(
        options,
        quality=p.quality,
        size=p.size,
        styles=list(p.artworks),
        weights=weights,
        blend=p.blend if request.style2 is not None else None,
    )
