"""The one job runner behind every backend: the queue, tickets, dispatch, cancel, the time limit,
`close` with its grace, and what a caller hears when a job fails.

A backend is this runner with a `Slot` of its own: `nst_engine.pool.EnginePool` (a worker
process per slot) and `nst_engine.ray.RayBackend` (a Ray actor per slot). A slot runs one job
at a time and says what the runner needs to know about its worker; the runner never learns
how the worker is reached.

- Jobs wait in a FIFO and go to a slot only when it is ready and idle. A job crosses to its
  worker as a `nst_engine.messages.JobOrder` under a ticket, so a late cancel can never stop
  the next job. All bookkeeping happens on the event loop's thread.
- Cancellation: at once while queued; while running, the slot tells its worker, which stops
  before its next step. Time limit: the worker checks `Job.timeout` before every step; if a
  single step overruns it by far (`_KILL_GRACE`), the runner has the slot kill the worker.
- A worker that stops under its job fails only that job (`WorkerDied`); bringing up another
  is the slot's business.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from typing import Any, Protocol, Self, TypeVar

from nst_engine.animation import AnimationResult
from nst_engine.backend import (
    AnyJob,
    JobCancelled,
    JobFailed,
    JobState,
    JobTimeout,
    WorkerDied,
    WorkerStarting,
)
from nst_engine.errors import NSTError
from nst_engine.messages import JobOrder, TimedOut
from nst_engine.options import Progress, StyleResult

log = logging.getLogger(__name__)

# Seconds past a job's time limit before its worker is killed (a step is never this long).
_KILL_GRACE = 30.0
# Seconds `close` lets running jobs take to stop between steps before killing their workers.
_CLOSE_GRACE = 10.0
# Seconds `close` then waits for those jobs to end, before giving up on them: longer than a
# killed worker takes to be seen gone (the pool waits up to 10 s for its exit status).
_KILL_WAIT = 11.0

_T = TypeVar("_T")

_SHUTDOWN = "the job was cancelled because the engine is shutting down"


class WorkerLost(Exception):
    """A slot's worker stopped under its job; the message says how (for `WorkerDied`)."""


class Slot(Protocol):
    """One worker as the runner sees it; each backend has a kind of its own. ``str(slot)``
    names it in the logs, with its process."""

    # The worker's process id while it is up.
    pid: int | None
    # True while its worker has the model loaded and can take a job; changed only through
    # `Runner.set_ready`.
    ready: bool

    async def start(self) -> None:
        """Start the worker; return once it has loaded the model (or been told to load it)."""
        ...

    async def run(self, order: JobOrder, publish: Callable[[Progress], None]) -> Any:
        """Run one job on the worker, publishing its progress reports as they come: its result,
        or its error raised (`WorkerLost` when the worker stopped under it). A cancel for the
        job may come before this has handed the job over: the job must stop all the same."""
        ...

    def cancel(self, ticket: int) -> None:
        """Ask the worker to stop job ``ticket`` before its next step."""
        ...

    def kill(self) -> None:
        """End the worker at once (its job overran, or the runner is closing); at once the slot
        is no longer ready, and its job, if still awaited, fails with `WorkerLost`."""
        ...

    async def stop(self) -> None:
        """Let go of the worker for good (the runner is closing)."""
        ...


class JobHandle:
    """The caller's view of one submitted job: its state, its progress and its result."""

    def __init__(self, job: AnyJob, runner: Runner, ticket: int) -> None:
        self.job = job
        self.job_id = job.job_id
        self.state: JobState = "queued"
        # Wall-clock times (time.time()): submitted, started on a worker, and finished.
        self.submitted_at = time.time()
        self.started_at: float | None = None
        self.finished_at: float | None = None
        # The process running the job, while it runs.
        self.worker_pid: int | None = None
        # The newest progress report, if any.
        self.progress: Progress | None = None
        # While the job is queued and a worker is being started for it: the newest note.
        self.waiting: WorkerStarting | None = None
        self._runner = runner
        self._ticket = ticket
        self._cancel_requested = False
        self._finished = asyncio.Event()
        self._result: StyleResult | AnimationResult | None = None
        self._error: BaseException | None = None
        self._streams: list[asyncio.Queue[Progress | None]] = []
        self._waits: list[asyncio.Queue[WorkerStarting | None]] = []

    @property
    def done(self) -> bool:
        """True once the job has finished, failed or been cancelled."""
        return self._finished.is_set()

    @property
    def queue_seconds(self) -> float | None:
        """Seconds the job waited for a worker (None while it still waits or if it never ran)."""
        return None if self.started_at is None else self.started_at - self.submitted_at

    @property
    def run_seconds(self) -> float | None:
        """Seconds the job ran on a worker (None until it has run and finished)."""
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at

    async def result(self) -> StyleResult | AnimationResult:
        """Wait for the job: its result (``cancelled=True`` if stopped while running), a
        `StyleResult` for a `Job` and an `AnimationResult` for an `AnimationJob`.

        Raises:
            JobCancelled: It was cancelled before it started, or the backend closed under it.
            JobTimeout, WorkerDied, JobFailed, or the engine's own NSTError: it failed.
        """
        await self._finished.wait()
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result

    def cancel(self) -> bool:
        """Cancel the job: at once if queued, between two steps if running.

        Returns False when it had already finished (or was already asked to stop).
        """
        return self._runner._cancel(self)

    def events(self) -> AsyncIterator[Progress]:
        """Progress reports from now until the job ends, starting with the newest one if any.

        Each carries no ``snapshot``; some carry a ``preview`` (uint8 H×W×3).
        """
        stream: asyncio.Queue[Progress | None] = asyncio.Queue()
        if self.progress is not None:
            stream.put_nowait(self.progress)
        if self.done:
            stream.put_nowait(None)
        else:
            self._streams.append(stream)
        return _drain(stream)

    def worker_starts(self) -> AsyncIterator[WorkerStarting]:
        """While the job is queued: a note each time a worker is being started for it, starting
        with the newest one if any; ends when the job starts or ends."""
        stream: asyncio.Queue[WorkerStarting | None] = asyncio.Queue()
        if self.waiting is not None:
            stream.put_nowait(self.waiting)
        if self.state != "queued":
            stream.put_nowait(None)
        else:
            self._waits.append(stream)
        return _drain(stream)

    def __repr__(self) -> str:
        return f"<JobHandle {self.job_id} {self.state}>"

    def _publish(self, progress: Progress) -> None:
        self.progress = progress
        for stream in self._streams:
            stream.put_nowait(progress)

    def worker_starting(self, note: WorkerStarting) -> None:
        """For a backend: a worker is being started for this queued job."""
        self.waiting = note
        for stream in self._waits:
            stream.put_nowait(note)

    def _end_waits(self) -> None:
        self.waiting = None
        for stream in self._waits:
            stream.put_nowait(None)
        self._waits.clear()

    def _finish(
        self,
        state: JobState,
        result: StyleResult | AnimationResult | None = None,
        error: BaseException | None = None,
    ) -> None:
        self.state = state
        self._result = result
        self._error = error
        self.finished_at = time.time()
        self.worker_pid = None
        self._end_waits()
        for stream in self._streams:
            stream.put_nowait(None)
        self._streams.clear()
        self._finished.set()


async def _drain(stream: asyncio.Queue[_T | None]) -> AsyncIterator[_T]:
    while (item := await stream.get()) is not None:
        yield item


class Runner:
    """Jobs behind a queue, run one at a time per slot; a backend subclasses it, fills
    ``_slots``, and writes its own `start`, `warm` and `_shut_down`."""

    def __init__(self) -> None:
        self._slots: Sequence[Slot] = ()
        self._queue: collections.deque[JobHandle] = collections.deque()
        # Running jobs by ticket, and by the slot that runs each.
        self._running: dict[int, JobHandle] = {}
        self._busy: dict[Slot, JobHandle] = {}
        self._tickets = itertools.count(1)
        # One task per running job.
        self._jobs: set[asyncio.Task[None]] = set()
        # Set while the backend is warm or closed: what `wait_warm` waits for.
        self._warm_or_closed = asyncio.Event()
        self._started = False
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Cancel queued jobs, stop running ones between steps (killing the workers of those
        that do not stop in time), and let go of every worker. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._warm_or_closed.set()
        for handle in list(self._queue):
            self._cancel(handle)
        for handle in list(self._running.values()):
            self._cancel(handle)
        if self._jobs:
            _, late = await asyncio.wait(set(self._jobs), timeout=_CLOSE_GRACE)
            if late:
                log.warning("killing %d worker(s) that did not stop in time", len(late))
                for slot in list(self._busy):
                    slot.kill()
                _, late = await asyncio.wait(late, timeout=_KILL_WAIT)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        await asyncio.gather(*(slot.stop() for slot in self._slots))
        await self._shut_down()

    async def _shut_down(self) -> None:
        """What a backend lets go of last, once every slot has stopped."""

    # -- status ----------------------------------------------------------------------------

    @property
    def warm(self) -> bool:
        raise NotImplementedError

    @property
    def closed(self) -> bool:
        """True once `close` has begun: no job is taken, and no worker is started, any more."""
        return self._closed

    async def wait_warm(self) -> None:
        """Return once the backend is warm (at once if it is now).

        Raises:
            RuntimeError: It closed first.
        """
        while not self.warm:
            if self._closed:
                raise RuntimeError(f"this {type(self).__name__} has been closed")
            await self._warm_or_closed.wait()

    @property
    def size(self) -> int:
        """Number of worker slots (jobs that can run at once when all are up)."""
        return len(self._slots)

    @property
    def free_workers(self) -> int:
        """Workers ready and idle right now."""
        return sum(slot.ready and slot not in self._busy for slot in self._slots)

    @property
    def running(self) -> int:
        return len(self._running)

    @property
    def workers_alive(self) -> int:
        """Workers that have the model loaded (busy or idle)."""
        return sum(slot.ready for slot in self._slots)

    @property
    def workers_starting(self) -> int:
        """Workers asked for that cannot take a job yet: loading the model, waiting for room
        on the cluster, or coming back after they were lost."""
        return sum(not slot.ready for slot in self._slots)

    @property
    def workers_wanted(self) -> int:
        """Workers the backend means to have for the jobs it holds now (a fixed backend: all)."""
        return self.size

    @property
    def queued(self) -> int:
        return len(self._queue)

    def worker_pids(self) -> list[int]:
        """Process ids of the workers that are up (for monitoring, and for tests)."""
        return [slot.pid for slot in self._slots if slot.ready and slot.pid is not None]

    def set_ready(self, slot: Slot, ready: bool) -> None:
        """For a slot: its worker has loaded the model (ready), or is gone or going (not).
        Wakes `wait_warm` callers when that makes the backend warm, and gives it a job."""
        slot.ready = ready
        if self.warm or self._closed:
            self._warm_or_closed.set()
        else:
            self._warm_or_closed.clear()
        if ready:
            self._dispatch()

    # -- jobs ------------------------------------------------------------------------------

    def submit(self, job: AnyJob) -> JobHandle:
        """Queue a job (never blocks); it starts as soon as a worker is free."""
        if not self._started or self._closed:
            raise RuntimeError(f"{type(self).__name__}.submit needs a started, open backend")
        handle = JobHandle(job, self, next(self._tickets))
        self._queue.append(handle)
        log.info("job %s queued (%d waiting)", job.job_id, len(self._queue))
        self._dispatch()
        return handle

    def _dispatch(self) -> None:
        while self._queue and not self._closed:
            slot = next((s for s in self._slots if s.ready and s not in self._busy), None)
            if slot is None:
                return
            handle = self._queue.popleft()
            self._busy[slot] = handle
            self._running[handle._ticket] = handle
            handle.state = "running"
            handle.started_at = time.time()
            handle.worker_pid = slot.pid
            handle._end_waits()
            log.info("job %s started on %s", handle.job_id, slot)
            self._spawn(self._run(slot, handle), self._jobs)

    async def _run(self, slot: Slot, handle: JobHandle) -> None:
        job = handle.job
        try:
            limit = None if job.timeout is None else job.timeout + _KILL_GRACE
            try:
                async with asyncio.timeout(limit):
                    result = await slot.run(JobOrder(handle._ticket, job), handle._publish)
            except TimeoutError:
                log.warning("job %s overran its time limit; killing %s", job.job_id, slot)
                slot.kill()
                raise TimedOut("killed") from None
            cancelled = result.cancelled and handle._cancel_requested
            handle._finish("cancelled" if cancelled else "done", result=result)
            log.info(
                "job %s %s: %d steps in %.1fs",
                job.job_id,
                handle.state,
                job.steps_run(result),
                handle.run_seconds or 0.0,
            )
        except BaseException as err:  # noqa: BLE001 - every outcome must reach the caller
            lost = isinstance(err, WorkerLost)
            # Cut off by `close` (killed if it overran the grace): not the worker's fault.
            stopped = isinstance(err, asyncio.CancelledError) or (lost and self._closed)
            if stopped:
                error: BaseException = JobCancelled(_SHUTDOWN)
            elif lost:
                error = WorkerDied(f"the worker running this job stopped unexpectedly ({err})")
            else:
                error = job_error(err, job)
            handle._finish("cancelled" if stopped else "failed", error=error)
            log.info("job %s failed: %s", job.job_id, error)
            if isinstance(err, asyncio.CancelledError):
                raise
        finally:
            self._running.pop(handle._ticket, None)
            self._busy.pop(slot, None)
            self._dispatch()

    def fail_queued(self, error: BaseException) -> None:
        """Fail every queued job with ``error``: no worker can take them (for a backend)."""
        while self._queue:
            handle = self._queue.popleft()
            handle._finish("failed", error=error)
            log.info("job %s failed while queued: %s", handle.job_id, error)

    def _cancel(self, handle: JobHandle) -> bool:
        """A handle's cancel: at once if queued, else by telling its worker (between steps)."""
        if handle.done or handle._cancel_requested:
            return False
        handle._cancel_requested = True
        if handle.state == "queued":
            if handle in self._queue:
                self._queue.remove(handle)
            handle._finish(
                "cancelled", error=JobCancelled("the job was cancelled before it started")
            )
            log.info("job %s cancelled while queued", handle.job_id)
            return True
        for slot, running in self._busy.items():
            if running is handle:
                slot.cancel(handle._ticket)
        log.info("job %s: cancel requested while running", handle.job_id)
        return True

    @staticmethod
    def _spawn(coro: Coroutine[Any, Any, None], tasks: set[asyncio.Task[None]]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)


def job_error(err: BaseException, job: AnyJob) -> BaseException:
    """The exception a caller should see for ``err``, raised by or about the worker."""
    if isinstance(err, TimedOut):
        return JobTimeout(f"the job ran past its time limit of {job.timeout:g} s and was stopped")
    if isinstance(err, NSTError):
        return err
    if type(err) is ValueError:
        return JobFailed(str(err))
    if isinstance(err, asyncio.CancelledError):
        return JobCancelled(_SHUTDOWN)
    log.error("job %s failed unexpectedly", job.job_id, exc_info=err)
    return JobFailed(
        f"the style transfer failed unexpectedly (job {job.job_id}); it has been logged"
    )
