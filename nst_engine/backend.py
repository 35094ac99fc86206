"""The one interface through which a caller runs style transfers, whatever runs them.

A *backend* takes `Job`s and hands back a `Handle` per job: its progress (some reports carry a
preview), then its result or error, and a way to cancel it. `nst_engine.pool.EnginePool`
(worker processes on this host) is one, `nst_engine.ray.RayBackend` (actors on a Ray cluster)
another; both are the job runner of `nst_engine.runner` with workers of their own. The caller
knows only this module:

    backend: Backend = EnginePool("imagenet", workers=2)
    async with backend:
        await backend.wait_warm()
        handle = backend.submit(Job(content, (style,), StyleOptions(steps=300), timeout=600))
        async for progress in handle.events():
            ...
        result = await handle.result()

The jobs, their states and their errors live here too, so that every backend speaks the same
words; `nst_engine.pool` re-exports them.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, Self, runtime_checkable

import numpy as np

from nst_engine.errors import NSTError
from nst_engine.options import Progress, StyleOptions, StyleResult

# queued → running → done | failed | cancelled (a queued job may also go straight to cancelled).
JobState = Literal["queued", "running", "done", "failed", "cancelled"]

log = logging.getLogger(__name__)


class JobFailed(NSTError):
    """A job ended with an error (its message says what went wrong)."""


class WorkerDied(JobFailed):
    """The worker running a job stopped unexpectedly (crash, out of memory, killed)."""


class JobTimeout(JobFailed):
    """A job ran past its time limit and was stopped."""


class JobCancelled(NSTError):
    """A job was cancelled before it started, or cut off because the backend is closing."""


def _short_id() -> str:
    return uuid.uuid4().hex[:8]


@dataclass(frozen=True)
class Job:
    """One style transfer to run."""

    # The photo to repaint: uint8 H×W×3 RGB in [0, 255].
    content: np.ndarray
    # One or more style images (same format), blended by `options.style_blend`.
    styles: tuple[np.ndarray, ...]
    # How to run it; validated on construction.
    options: StyleOptions = field(default_factory=StyleOptions)
    # Names the job in logs and to the caller.
    job_id: str = field(default_factory=_short_id)
    # Seconds of run time (not queue time) after which the job is stopped with `JobTimeout`.
    timeout: float | None = None
    # An animation's frames (uint8 H×W×3, one size), painted by `animation.stylize_frames`;
    # `content` is then its first frame and the result an `AnimationResult`. None: a picture.
    frames: tuple[np.ndarray, ...] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.timeout is not None and not self.timeout > 0:
            raise ValueError(f"timeout must be above 0 seconds, not {self.timeout}")


def steps_of(result: Any) -> int:
    """Steps a picture's or an animation's result ran (an animation counts every frame's)."""
    return result.steps if isinstance(result.steps, int) else sum(result.steps)


@runtime_checkable
class Handle(Protocol):
    """The caller's view of one submitted job."""

    job: Job
    job_id: str
    state: JobState
    # The newest progress report, if any.
    progress: Progress | None

    @property
    def done(self) -> bool:
        """True once the job has finished, failed or been cancelled."""
        ...

    def events(self) -> AsyncIterator[Progress]:
        """Progress reports from now until the job ends, starting with the newest one if any.

        None carries a ``snapshot``; some carry a ``preview`` (uint8 H×W×3).
        """
        ...

    async def result(self) -> StyleResult:
        """Wait for the job: its result (``cancelled=True`` if stopped while running).

        Raises:
            JobCancelled: It was cancelled before it started, or the backend closed under it.
            JobTimeout, WorkerDied, JobFailed, or the engine's own NSTError: it failed.
        """
        ...

    def cancel(self) -> bool:
        """Cancel the job: at once if queued, within one step if running.

        Returns False when it had already finished (or was already asked to stop).
        """
        ...


@runtime_checkable
class Backend(Protocol):
    """Workers that each hold a loaded VGG19 and run one job at a time, behind a queue."""

    async def start(self) -> None:
        """Start the workers and wait until each has loaded the model (WeightsError if not)."""
        ...

    async def close(self) -> None:
        """Cancel queued jobs, stop running ones, and let go of every worker. Idempotent."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc_info: object) -> None: ...

    def submit(self, job: Job) -> Handle:
        """Queue a job (never blocks); it starts as soon as a worker is free."""
        ...

    @property
    def warm(self) -> bool:
        """True while every worker has the model loaded and the backend is open."""
        ...

    async def wait_warm(self) -> None:
        """Return once `warm` is true (RuntimeError if the backend closes first)."""
        ...

    @property
    def size(self) -> int:
        """How many jobs can run at once (one per worker)."""
        ...

    def worker_pids(self) -> list[int]:
        """Process ids of the workers that are up (for monitoring and tests)."""
        ...
