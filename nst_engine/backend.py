"""The one interface through which a caller runs style transfers, whatever runs them.

A *backend* takes jobs, a `Job` (a still picture) or an `AnimationJob` (a clip's frames), and
hands back a `Handle` per job: its progress (some reports carry a preview), then its result or
error, and a way to cancel it. `nst_engine.pool.EnginePool` (worker processes on this host) is
one, `nst_engine.ray.RayBackend` (actors on a Ray cluster) another; both are the job runner of
`nst_engine.runner` with workers of their own. The caller knows only this module:

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
from typing import Literal, Protocol, Self, runtime_checkable

import numpy as np

from nst_engine.animation import AnimationResult, stylize_frames
from nst_engine.errors import NSTError
from nst_engine.model import VGG19Features
from nst_engine.options import Progress, StyleOptions, StyleResult
from nst_engine.transfer import ProgressCallback, StopCheck, stylize

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


@dataclass(frozen=True)
class WorkerStarting:
    """A queued job waits for a worker that an elastic backend is starting for it."""

    # About how many seconds until that worker is ready, from the starts measured so far; None
    # before the first has been measured.
    seconds: float | None


def _short_id() -> str:
    return uuid.uuid4().hex[:8]


def _check_timeout(timeout: float | None) -> None:
    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout must be above 0 seconds, not {timeout}")


@dataclass(frozen=True)
class Job:
    """One still picture to paint; its result is a `StyleResult`."""

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
    # A continuation's start: the picture it goes on from (uint8 H×W×3, any size; enlarged or
    # reduced to the output's), instead of the start the options describe. See
    # `nst_engine.continuation`.
    start: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        _check_timeout(self.timeout)

    def paint(
        self, model: VGG19Features, on_progress: ProgressCallback, should_stop: StopCheck
    ) -> StyleResult:
        """Run the job on a loaded model (`nst_engine.transfer.stylize`)."""
        return stylize(
            self.content,
            list(self.styles),
            self.options,
            model=model,
            on_progress=on_progress,
            should_stop=should_stop,
            init_image=self.start,
        )

    @staticmethod
    def steps_run(result: StyleResult) -> int:
        """The steps its result ran."""
        return result.steps


@dataclass(frozen=True)
class AnimationJob:
    """A clip's frames to paint without flicker; its result is an `AnimationResult`."""

    # The frames to repaint, in order: uint8 H×W×3 RGB in [0, 255], all of one size.
    frames: tuple[np.ndarray, ...] = field(repr=False)
    # The rest as for `Job`; `options` are the first frame's (see `stylize_frames`).
    styles: tuple[np.ndarray, ...]
    options: StyleOptions = field(default_factory=StyleOptions)
    job_id: str = field(default_factory=_short_id)
    timeout: float | None = None

    def __post_init__(self) -> None:
        _check_timeout(self.timeout)

    def paint(
        self, model: VGG19Features, on_progress: ProgressCallback, should_stop: StopCheck
    ) -> AnimationResult:
        """Run the job on a loaded model (`nst_engine.animation.stylize_frames`)."""
        return stylize_frames(
            self.frames,
            list(self.styles),
            self.options,
            model=model,
            on_progress=on_progress,
            should_stop=should_stop,
        )

    @staticmethod
    def steps_run(result: AnimationResult) -> int:
        """The steps its result ran, every frame's together."""
        return sum(result.steps)


# Either kind of job: what a backend takes.
AnyJob = Job | AnimationJob


@runtime_checkable
class Handle(Protocol):
    """The caller's view of one submitted job."""

    job: AnyJob
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

    def worker_starts(self) -> AsyncIterator[WorkerStarting]:
        """While the job is queued: a note each time a worker is being started for it (the
        newest first, if any); ends when the job starts or ends."""
        ...

    async def result(self) -> StyleResult | AnimationResult:
        """Wait for the job: its result (``cancelled=True`` if stopped while running), a
        `StyleResult` for a `Job` and an `AnimationResult` for an `AnimationJob`.

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

    def submit(self, job: AnyJob) -> Handle:
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
        """How many jobs can run at once when every worker is up (one per worker)."""
        ...

    def worker_pids(self) -> list[int]:
        """Process ids of the workers that are up (for monitoring and tests)."""
        ...

    @property
    def workers_alive(self) -> int:
        """Workers that have the model loaded (busy or idle)."""
        ...

    @property
    def workers_starting(self) -> int:
        """Workers asked for that cannot take a job yet (loading, waiting for room, lost)."""
        ...

    @property
    def workers_wanted(self) -> int:
        """Workers the backend means to have for the jobs it holds now."""
        ...
