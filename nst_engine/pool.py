"""An asyncio pool of worker processes that run `stylize`; it knows nothing of Discord.

    async with EnginePool("imagenet", workers=2) as pool:
        handle = pool.submit(Job(content, (style,), StyleOptions(steps=300), timeout=600))
        async for progress in handle.events():     # throttled; some carry a preview
            ...
        result = await handle.result()             # StyleResult, or an NSTError subclass

Design, chosen so that a worker that dies fails only its own job:

- Each worker *slot* owns one ``ProcessPoolExecutor(max_workers=1)`` with the ``spawn`` start
  method. Its initializer (`nst_engine.worker.initialize`) loads VGG19 once; `start` waits for a
  ``ping`` on every slot. A process that dies breaks only its own executor: its job fails with
  `WorkerDied`, and the slot gets a fresh executor (loaded again) in the background.
- Jobs wait in a FIFO in the parent and go to a slot only when it is idle, so an executor never
  holds more than the one job it runs. All bookkeeping happens on the event loop's thread;
  executor futures are awaited through `asyncio.wrap_future`.
- Progress: workers put ``(ticket, Progress)`` on one `multiprocessing.Manager` queue (each
  worker talks to the manager over its own connection, so a worker killed mid-message cannot
  jam the others). One daemon thread in the parent reads it and hands each item to the loop
  with ``call_soon_threadsafe``. ``(ticket, None)`` ends a job's events and is sent before its
  result, so `JobHandle.events` always sees the last step before the job counts as finished.
- Cancellation and time limits: each slot has a lock-free shared-memory integer; cancelling a
  running job writes the job's ticket there, and the worker's ``should_stop`` compares it (and
  the clock, for `Job.timeout`) before every step. Tickets are unique, so a late cancel can
  never stop the next job. If a single step overruns the limit by far, the parent kills the
  worker (`_KILL_GRACE`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import multiprocessing
import os
import signal
import threading
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from nst_engine import worker
from nst_engine.errors import NSTError, OutOfMemory, WeightsError
from nst_engine.options import Progress, StyleOptions, StyleResult

log = logging.getLogger(__name__)

JobState = Literal["queued", "running", "done", "failed", "cancelled"]

# Seconds past a job's time limit before its worker is killed (a step is never this long).
_KILL_GRACE = 30.0
# Seconds to wait for a finished job's last events after its result has arrived.
_DRAIN_TIMEOUT = 2.0
# Seconds between attempts to replace a worker whose replacement failed to start.
_RESTART_DELAY = 5.0
# Seconds to wait for a dead worker's exit status, to tell the member how it ended.
_EXIT_STATUS_WAIT = 10.0
# Seconds `close` lets running jobs take to stop between steps before killing their workers.
_CLOSE_GRACE = 10.0


class JobFailed(NSTError):
    """A job ended with an error (its message says what went wrong)."""


class WorkerDied(JobFailed):
    """The worker process running a job stopped unexpectedly (crash, out of memory, killed)."""


class JobTimeout(JobFailed):
    """A job ran past its time limit and was stopped."""


class JobCancelled(NSTError):
    """A job was cancelled before it started."""


def _short_id() -> str:
    return uuid.uuid4().hex[:8]


@dataclass(frozen=True)
class Job:
    """One style transfer to run in the pool."""

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

    def __post_init__(self) -> None:
        if self.timeout is not None and not self.timeout > 0:
            raise ValueError(f"timeout must be above 0 seconds, not {self.timeout}")


class JobHandle:
    """The caller's view of one submitted job: its state, its progress and its result."""

    def __init__(self, job: Job, pool: EnginePool, ticket: int) -> None:
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
        self._pool = pool
        self._ticket = ticket
        self._cancel_requested = False
        self._finished = asyncio.Event()
        # Set when the worker's end-of-events marker has been handled.
        self._drained = asyncio.Event()
        self._result: StyleResult | None = None
        self._error: BaseException | None = None
        self._streams: list[asyncio.Queue[Progress | None]] = []

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

    async def result(self) -> StyleResult:
        """Wait for the job: its result (``cancelled=True`` if stopped while running).

        Raises:
            JobCancelled: It was cancelled before it started.
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
        return self._pool._cancel(self)

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

    def __repr__(self) -> str:
        return f"<JobHandle {self.job_id} {self.state}>"

    def _publish(self, progress: Progress) -> None:
        self.progress = progress
        for stream in self._streams:
            stream.put_nowait(progress)

    def _finish(
        self, state: JobState, result: StyleResult | None = None, error: BaseException | None = None
    ) -> None:
        self.state = state
        self._result = result
        self._error = error
        self.finished_at = time.time()
        self.worker_pid = None
        for stream in self._streams:
            stream.put_nowait(None)
        self._streams.clear()
        self._finished.set()


async def _drain(stream: asyncio.Queue[Progress | None]) -> AsyncIterator[Progress]:
    while (progress := await stream.get()) is not None:
        yield progress


@dataclass(eq=False)
class _Slot:
    """One worker: its own single-process executor, and the job it is running."""

    index: int
    gpu: str | None
    # Shared-memory int the worker reads before each step: the ticket of the job to stop.
    stop: Any
    executor: ProcessPoolExecutor | None = None
    pid: int | None = None
    process: multiprocessing.process.BaseProcess | None = None
    ready: bool = False
    job: JobHandle | None = None

    @property
    def idle(self) -> bool:
        return self.ready and self.job is None


class EnginePool:
    """Worker processes that each hold a loaded VGG19 and run one job at a time."""

    def __init__(
        self,
        weights: str,
        workers: int | None = None,
        *,
        gpus: Sequence[str] | None = None,
        preview_interval: float = 3.0,
        progress_interval: float = 0.5,
        seed: int = 0,
        memory_limit_mb: int | None = None,
    ) -> None:
        """``workers`` defaults to 1 on CPU and to one per GPU when ``gpus`` (e.g. ["0", "1"])
        is given; with more workers than GPUs they share the GPUs in turn. ``memory_limit_mb``
        caps what each CPU worker may map beyond its loaded model (None: no cap)."""
        gpus = list(gpus or [])
        workers = workers if workers is not None else max(1, len(gpus))
        if workers < 1:
            raise ValueError(f"workers must be at least 1, not {workers}")
        if preview_interval < 0 or progress_interval < 0:
            raise ValueError("preview_interval and progress_interval must be ≥ 0 seconds")
        self.weights = weights
        self.seed = seed
        self.preview_interval = preview_interval
        self.progress_interval = progress_interval
        self.memory_limit_mb = memory_limit_mb
        self._context = multiprocessing.get_context("spawn")
        # CPU workers split the cores between them instead of each using them all.
        self._cpu_threads = (
            None if gpus or workers == 1 else max(1, (os.cpu_count() or 1) // workers)
        )
        self._slots = [
            _Slot(i, gpus[i % len(gpus)] if gpus else None, self._context.RawValue("q", 0))
            for i in range(workers)
        ]
        self._queue: collections.deque[JobHandle] = collections.deque()
        self._running: dict[int, JobHandle] = {}
        self._tickets = itertools.count(1)
        # Background tasks: one per running job, and one per worker being replaced.
        self._jobs: set[asyncio.Task[None]] = set()
        self._restarts: set[asyncio.Task[None]] = set()
        self._manager: Any = None
        self._events: Any = None
        self._reader: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = False
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Start every worker and wait until each has loaded the model.

        Raises:
            WeightsError: The weights could not be loaded (the pool is then closed).
        """
        if self._started:
            return
        if self._closed:
            raise RuntimeError("this EnginePool has been closed")
        self._started = True
        self._loop = asyncio.get_running_loop()
        started = time.perf_counter()
        try:
            self._manager = await asyncio.to_thread(self._context.Manager)
            self._events = await asyncio.to_thread(self._manager.Queue)
            self._reader = threading.Thread(
                target=self._read_events, name="nst-pool-events", daemon=True
            )
            self._reader.start()
            starting = [asyncio.ensure_future(self._start_slot(slot)) for slot in self._slots]
            try:
                await asyncio.gather(*starting)
            finally:
                for task in starting:
                    task.cancel()
                await asyncio.gather(*starting, return_exceptions=True)
        except BaseException:
            await self.close()
            raise
        log.info(
            "engine pool ready: %d worker(s) with %s weights in %.1fs",
            self.size,
            self.weights,
            time.perf_counter() - started,
        )

    async def close(self) -> None:
        """Cancel queued jobs, stop running ones between steps, and shut every process down."""
        if self._closed:
            return
        self._closed = True
        for handle in list(self._queue):
            self._cancel(handle)
        for handle in list(self._running.values()):
            self._cancel(handle)
        for task in self._restarts:
            task.cancel()
        await asyncio.gather(*self._restarts, return_exceptions=True)
        if self._jobs:
            _, late = await asyncio.wait(set(self._jobs), timeout=_CLOSE_GRACE)
            if late:
                log.warning("killing %d worker(s) that did not stop in time", len(late))
                for slot in self._slots:
                    if slot.job is not None:
                        _kill(slot)
                await asyncio.wait(late, timeout=_CLOSE_GRACE)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        await asyncio.gather(*(self._shutdown_slot(slot) for slot in self._slots))
        if self._manager is not None:
            if self._reader is not None:
                await asyncio.to_thread(self._stop_reader)
            await asyncio.to_thread(self._manager.shutdown)
        self._manager = self._events = self._reader = None
        log.info("engine pool closed")

    async def __aenter__(self) -> EnginePool:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- status ----------------------------------------------------------------------------

    @property
    def warm(self) -> bool:
        """True once every worker has loaded the model, until the pool closes."""
        return self._started and not self._closed and all(slot.ready for slot in self._slots)

    @property
    def size(self) -> int:
        """Number of worker slots."""
        return len(self._slots)

    @property
    def free_workers(self) -> int:
        """Workers ready and idle right now."""
        return sum(slot.idle for slot in self._slots)

    @property
    def running(self) -> int:
        return len(self._running)

    @property
    def queued(self) -> int:
        return len(self._queue)

    def worker_pids(self) -> list[int]:
        """Process ids of the workers that are up (for monitoring, and for tests)."""
        return [slot.pid for slot in self._slots if slot.ready and slot.pid is not None]

    # -- jobs ------------------------------------------------------------------------------

    def submit(self, job: Job) -> JobHandle:
        """Queue a job (never blocks); it starts as soon as a worker is free."""
        if not self._started or self._closed:
            raise RuntimeError("EnginePool.submit needs a started, open pool")
        handle = JobHandle(job, self, next(self._tickets))
        self._queue.append(handle)
        log.info("job %s queued (%d waiting)", job.job_id, len(self._queue))
        self._dispatch()
        return handle

    def _dispatch(self) -> None:
        while self._queue and not self._closed:
            slot = next((s for s in self._slots if s.idle), None)
            if slot is None:
                return
            handle = self._queue.popleft()
            job = handle.job
            assert slot.executor is not None
            try:
                # Never blocks: the worker process exists, and pickling happens in a thread.
                future = slot.executor.submit(
                    worker.run, handle._ticket, job.content, job.styles, job.options, job.timeout
                )
            except (BrokenProcessPool, RuntimeError):
                log.warning(
                    "worker %d died while idle; job %s waits for another", slot.index, job.job_id
                )
                self._queue.appendleft(handle)
                self._replace(slot)
                continue
            slot.job = handle
            handle.state = "running"
            handle.started_at = time.time()
            handle.worker_pid = slot.pid
            self._running[handle._ticket] = handle
            log.info("job %s started on worker %d (pid %s)", job.job_id, slot.index, slot.pid)
            self._spawn_task(self._run(slot, handle, future), self._jobs)

    async def _run(self, slot: _Slot, handle: JobHandle, future: Future[StyleResult]) -> None:
        job = handle.job
        wrapped = asyncio.wrap_future(future)
        died = False
        try:
            limit = None if job.timeout is None else job.timeout + _KILL_GRACE
            done, _ = await asyncio.wait({wrapped}, timeout=limit)
            if not done:
                log.warning("job %s overran its time limit; killing its worker", job.job_id)
                _kill(slot)
                await asyncio.wait({wrapped})
                wrapped.exception()  # retrieved: the timeout is what the caller hears about
                died = True
                raise worker.TimedOut("killed")
            result = wrapped.result()
            await self._drained(handle)
            cancelled = result.cancelled and handle._cancel_requested
            handle._finish("cancelled" if cancelled else "done", result=result)
            log.info(
                "job %s %s: %d steps in %.1fs",
                job.job_id,
                handle.state,
                result.steps,
                handle.run_seconds or 0.0,
            )
        except BaseException as err:  # noqa: BLE001 - every outcome must reach the caller
            # TensorFlow is not reliable after running out of memory: start that worker afresh.
            died = died or isinstance(err, OutOfMemory)
            if isinstance(err, BrokenProcessPool):
                died = True
                err = WorkerDied(
                    "the worker running this job stopped unexpectedly "
                    f"({await _exit_description(slot)})"
                )
            elif not died and not isinstance(err, asyncio.CancelledError):
                await self._drained(handle)
            stopped = isinstance(err, asyncio.CancelledError)
            handle._finish("cancelled" if stopped else "failed", error=_job_error(err, job))
            log.info("job %s failed: %s", job.job_id, handle._error)
            if isinstance(err, asyncio.CancelledError):
                raise
        finally:
            self._running.pop(handle._ticket, None)
            slot.job = None
            if died:
                self._replace(slot)
            self._dispatch()

    async def _drained(self, handle: JobHandle) -> None:
        try:
            await asyncio.wait_for(handle._drained.wait(), _DRAIN_TIMEOUT)
        except TimeoutError:
            log.warning("job %s: its last progress reports did not arrive", handle.job_id)

    def _cancel(self, handle: JobHandle) -> bool:
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
        for slot in self._slots:
            if slot.job is handle:
                slot.stop.value = handle._ticket
        log.info("job %s: cancel requested while running", handle.job_id)
        return True

    # -- workers ---------------------------------------------------------------------------

    async def _start_slot(self, slot: _Slot) -> None:
        slot.executor = ProcessPoolExecutor(
            max_workers=1,
            mp_context=self._context,
            initializer=worker.initialize,
            initargs=(
                self.weights,
                self.seed,
                slot.gpu,
                self._cpu_threads,
                self._events,
                slot.stop,
                self.preview_interval,
                self.progress_interval,
                None if slot.gpu is not None else self.memory_limit_mb,
            ),
        )
        # The first submit starts the process (a fork and exec), so it runs off the loop.
        ping = await asyncio.to_thread(slot.executor.submit, worker.ping)
        # The executor keeps its process private; the Process object tells how a worker ended.
        slot.process = next(iter((getattr(slot.executor, "_processes", None) or {}).values()), None)
        try:
            slot.pid = await asyncio.wrap_future(ping)
        except BrokenProcessPool as err:
            how = await _exit_description(slot)
            raise WorkerDied(
                f"worker {slot.index} stopped while loading the model ({how})"
            ) from err
        except (WeightsError, NSTError):
            raise
        except Exception as err:
            raise WeightsError(f"worker {slot.index} could not load the model ({err})") from err
        slot.ready = True
        log.info("worker %d ready (pid %d%s)", slot.index, slot.pid, _gpu_note(slot))

    def _replace(self, slot: _Slot) -> None:
        if not self._closed:
            slot.ready = False
            self._spawn_task(self._restart_slot(slot), self._restarts)

    async def _restart_slot(self, slot: _Slot) -> None:
        while not self._closed:
            await self._shutdown_slot(slot)
            try:
                await self._start_slot(slot)
            except Exception:
                log.exception("worker %d could not be restarted; retrying", slot.index)
                await asyncio.sleep(_RESTART_DELAY)
                continue
            self._dispatch()
            return

    async def _shutdown_slot(self, slot: _Slot) -> None:
        slot.ready = False
        executor, slot.executor = slot.executor, None
        slot.pid = slot.process = None
        if executor is not None:
            await asyncio.to_thread(executor.shutdown, wait=True, cancel_futures=True)

    @staticmethod
    def _spawn_task(coro: Any, tasks: set[asyncio.Task[None]]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    # -- progress from the workers ---------------------------------------------------------

    def _read_events(self) -> None:
        """Background thread: move (ticket, Progress | None) items from the workers to the loop."""
        assert self._loop is not None
        events, loop = self._events, self._loop
        while True:
            try:
                item = events.get()
            except (EOFError, OSError):
                log.warning("the progress channel closed; no more progress reports")
                return
            if item is None:
                return
            try:
                loop.call_soon_threadsafe(self._on_event, *item)
            except RuntimeError:  # the loop has closed
                return

    def _stop_reader(self) -> None:
        assert self._reader is not None
        with contextlib.suppress(EOFError, OSError):
            self._events.put(None)
        self._reader.join(timeout=5)

    def _on_event(self, ticket: int, progress: Progress | None) -> None:
        handle = self._running.get(ticket)
        if handle is None:
            return
        if progress is None:
            handle._drained.set()
        else:
            handle._publish(progress)


def _job_error(err: BaseException, job: Job) -> BaseException:
    """The exception a caller should see for ``err``, raised by or about the worker."""
    if isinstance(err, worker.TimedOut):
        return JobTimeout(f"the job ran past its time limit of {job.timeout:g} s and was stopped")
    if isinstance(err, NSTError):
        return err
    if type(err) is ValueError:
        return JobFailed(str(err))
    if isinstance(err, asyncio.CancelledError):
        return JobCancelled("the job was cancelled because the engine is shutting down")
    log.error("job %s failed unexpectedly", job.job_id, exc_info=err)
    return JobFailed(
        f"the style transfer failed unexpectedly (job {job.job_id}); it has been logged"
    )


def _kill(slot: _Slot) -> None:
    if slot.pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(slot.pid, signal.SIGKILL)


async def _exit_description(slot: _Slot) -> str:
    process = slot.process
    if process is None:
        return "exit status unknown"
    # The executor reaps its dead process in another thread; wait for the status. Its pipe
    # closes as soon as the process starts to exit, but a killed TensorFlow worker on a busy
    # host took over 2 s to finish exiting (seen in CI), so allow _EXIT_STATUS_WAIT.
    code = None
    deadline = time.monotonic() + _EXIT_STATUS_WAIT
    while time.monotonic() < deadline:
        await asyncio.to_thread(process.join, 0.25)
        if (code := process.exitcode) is not None:
            break
    if code is None:
        return "exit status unknown"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _gpu_note(slot: _Slot) -> str:
    return f", GPU {slot.gpu}" if slot.gpu is not None else ""
