"""An asyncio pool of worker processes that run `stylize`; it knows nothing of Discord.

    async with EnginePool("imagenet", workers=2, pid_dir=data_dir / "workers") as pool:
        handle = pool.submit(Job(content, (style,), StyleOptions(steps=300), timeout=600))
        async for progress in handle.events():     # throttled; some carry a preview
            ...
        result = await handle.result()             # StyleResult, or an NSTError subclass

It implements `nst_engine.backend.Backend`. Design, chosen so that a worker that dies fails only
its own job and never outlives the pool:

- Each worker *slot* owns one ``spawn`` process (`nst_engine.worker.main`, which loads VGG19
  once) and one duplex pipe to it, read on the event loop without threads. The messages are
  listed in `nst_engine.worker`. A process that dies fails only the job it was running
  (`WorkerDied`), and the slot starts a fresh process in the background.
- Jobs wait in a FIFO in the parent and go to a slot only when it is idle. All bookkeeping
  happens on the event loop's thread, and so do process starts: Linux's parent-death signal,
  which kills a worker whose parent has died, fires when the *thread* that started it ends.
- Cancellation and time limits: cancelling a running job sends its ticket down the pipe; the
  worker reads its pipe (and the clock, for `Job.timeout`) before every step. If a single step
  overruns the limit by far, the parent kills the worker (`_KILL_GRACE`).
- With ``pid_dir``, each worker has a pid file there, so that a pool started after a crash can
  end workers an earlier one left behind (those that neither the parent-death signal nor the
  pipe's EOF stopped: another OS, or a bot version without them).
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import contextlib
import itertools
import json
import logging
import multiprocessing
import os
import pickle
import signal
import socket
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing import resource_tracker
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from nst_engine import worker
from nst_engine.backend import (
    Job,
    JobCancelled,
    JobFailed,
    JobState,
    JobTimeout,
    SlotStatus,
    WorkerDied,
    steps_of,
)
from nst_engine.errors import NSTError, OutOfMemory, WeightsError
from nst_engine.options import Progress, StyleResult
from nst_engine.processes import start_time

__all__ = [
    "EnginePool",
    "Job",
    "JobCancelled",
    "JobFailed",
    "JobHandle",
    "JobState",
    "JobTimeout",
    "WorkerDied",
]

log = logging.getLogger(__name__)

# Seconds past a job's time limit before its worker is killed (a step is never this long).
_KILL_GRACE = 30.0
# Seconds between attempts to replace a worker whose replacement failed to start.
_RESTART_DELAY = 5.0
# Seconds to wait for a dead worker's exit status, to tell the member how it ended. A killed
# TensorFlow worker on a busy host took over 2 s to finish exiting (seen in CI).
_EXIT_STATUS_WAIT = 10.0
# Seconds `close` lets running jobs take to stop between steps before killing their workers.
_CLOSE_GRACE = 10.0
# Seconds an idle worker gets to exit once its pipe is closed, before it is killed.
_STOP_WAIT = 5.0
# How often to look at a process that is expected to exit.
_POLL = 0.05

_SHUTDOWN = "the job was cancelled because the engine is shutting down"


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
            JobCancelled: It was cancelled before it started, or the pool closed under it.
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


class _Gone(Exception):
    """The pipe to a worker closed: its process has exited or been killed."""


class _RemoteTraceback(Exception):
    """Carries a worker's traceback text, as the cause of the error it sent."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return f"\n\nin the worker process:\n{self.text}"


@dataclass(eq=False)
class _Slot:
    """One worker: its process, its pipe, and the job it is running."""

    index: int
    gpu: str | None
    process: BaseProcess | None = None
    pid: int | None = None
    writer: asyncio.StreamWriter | None = None
    # Reads the pipe for as long as the process lives.
    listener: asyncio.Task[None] | None = None
    # Resolved with the worker's answer to what it was last asked: loading, then each job.
    answer: asyncio.Future[Any] | None = None
    ready: bool = False
    job: JobHandle | None = None

    @property
    def idle(self) -> bool:
        return self.ready and self.job is None


class EnginePool(SlotStatus):
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
        pid_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        """``workers`` defaults to 1 on CPU and to one per GPU when ``gpus`` (e.g. ["0", "1"])
        is given; with more workers than GPUs they share the GPUs in turn. ``memory_limit_mb``
        caps what each CPU worker may map beyond its loaded model (None: no cap). ``pid_dir``
        (created if missing) holds a pid file per worker; at start, workers that an earlier
        pool on the same directory left running are ended."""
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
        self.pid_dir = None if pid_dir is None else Path(pid_dir)
        self._context = multiprocessing.get_context("spawn")
        # CPU workers split the cores between them instead of each using them all.
        self._cpu_threads = (
            None if gpus or workers == 1 else max(1, (os.cpu_count() or 1) // workers)
        )
        self._slots = [_Slot(i, gpus[i % len(gpus)] if gpus else None) for i in range(workers)]
        self._queue: collections.deque[JobHandle] = collections.deque()
        self._running: dict[int, JobHandle] = {}
        self._tickets = itertools.count(1)
        # Background tasks: one per running job, and one per worker being replaced.
        self._jobs: set[asyncio.Task[None]] = set()
        self._restarts: set[asyncio.Task[None]] = set()
        # Set while the pool is warm or closed: what `wait_warm` waits for.
        self._warm_or_closed = asyncio.Event()
        self._started = False
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """End workers left over by an earlier pool on ``pid_dir``, start every worker and wait
        until each has loaded the model.

        Raises:
            WeightsError: The weights could not be loaded (the pool is then closed).
        """
        if self._started:
            return
        if self._closed:
            raise RuntimeError("this EnginePool has been closed")
        self._started = True
        started = time.perf_counter()
        # Should the interpreter exit with the pool still open, kill the workers first: the
        # multiprocessing module would otherwise wait for them forever.
        atexit.register(self._kill_workers)
        try:
            if self.pid_dir is not None:
                await asyncio.to_thread(_end_leftover_workers, self.pid_dir)
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
        self._warm_or_closed.set()
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
                        _kill(slot.process)
                _, late = await asyncio.wait(late, timeout=_EXIT_STATUS_WAIT + 1)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        await asyncio.gather(*(self._stop_worker(slot) for slot in self._slots))
        atexit.unregister(self._kill_workers)
        log.info("engine pool closed")

    # -- status ----------------------------------------------------------------------------

    @property
    def warm(self) -> bool:
        """True once every worker has loaded the model, until the pool closes."""
        return self._started and not self._closed and all(slot.ready for slot in self._slots)

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
            slot.job = handle
            slot.answer = asyncio.get_running_loop().create_future()
            handle.state = "running"
            handle.started_at = time.time()
            handle.worker_pid = slot.pid
            self._running[handle._ticket] = handle
            # Pickling copies the pictures once (milliseconds even for a large photo); the
            # transport then writes them as the worker reads, without blocking the loop.
            _send(
                slot,
                (
                    "job",
                    handle._ticket,
                    job.content,
                    job.styles,
                    job.options,
                    job.timeout,
                    job.frames,
                ),
            )
            log.info("job %s started on worker %d (pid %s)", job.job_id, slot.index, slot.pid)
            self._spawn_task(self._run(slot, handle, slot.answer), self._jobs)

    async def _run(self, slot: _Slot, handle: JobHandle, answer: asyncio.Future[Any]) -> None:
        job = handle.job
        process = slot.process
        died = False
        try:
            limit = None if job.timeout is None else job.timeout + _KILL_GRACE
            try:
                result = await asyncio.wait_for(asyncio.shield(answer), limit)
            except TimeoutError:
                log.warning("job %s overran its time limit; killing its worker", job.job_id)
                _kill(process)
                with contextlib.suppress(Exception):
                    await answer  # the timeout is what the caller hears about
                died = True
                raise worker.TimedOut("killed") from None
            cancelled = result.cancelled and handle._cancel_requested
            handle._finish("cancelled" if cancelled else "done", result=result)
            log.info(
                "job %s %s: %d steps in %.1fs",
                job.job_id,
                handle.state,
                steps_of(result),
                handle.run_seconds or 0.0,
            )
        except BaseException as err:  # noqa: BLE001 - every outcome must reach the caller
            # TensorFlow is not reliable after running out of memory: start that worker afresh.
            died = died or isinstance(err, _Gone | OutOfMemory)
            stopped = isinstance(err, asyncio.CancelledError) or (
                isinstance(err, _Gone) and self._closed
            )
            if stopped:
                # Cut off by `close` (killed if it overran the grace): not the worker's fault.
                error: BaseException = JobCancelled(_SHUTDOWN)
            elif isinstance(err, _Gone):
                error = WorkerDied(
                    "the worker running this job stopped unexpectedly "
                    f"({await _exit_description(process)})"
                )
            else:
                error = _job_error(err, job)
            handle._finish("cancelled" if stopped else "failed", error=error)
            log.info("job %s failed: %s", job.job_id, error)
            if isinstance(err, asyncio.CancelledError):
                raise
        finally:
            self._running.pop(handle._ticket, None)
            slot.job = None
            slot.answer = None
            if died:
                self._replace(slot)
            self._dispatch()

    def _signal_cancel(self, slot, ticket: int) -> None:
        _send(slot, ("cancel", ticket))

    # -- workers ---------------------------------------------------------------------------

    async def _start_slot(self, slot: _Slot) -> None:
        config = worker.WorkerConfig(
            self.weights,
            self.seed,
            slot.gpu,
            self._cpu_threads,
            self.preview_interval,
            self.progress_interval,
            self.memory_limit_mb,
        )
        ours, theirs = socket.socketpair()
        try:
            process = self._context.Process(
                target=worker.main,
                args=(theirs, os.getpid(), config),
                name=f"nst-worker-{slot.index}",
                daemon=True,
            )
            # Here, on the event loop's thread, never in a thread pool: the worker's
            # parent-death signal would fire when that pool thread ends.
            with _stop_signals_blocked():
                process.start()
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()  # the worker has its copy; ours must not keep its pipe open
        answer = asyncio.get_running_loop().create_future()
        slot.process, slot.pid, slot.answer = process, process.pid, answer
        reader, slot.writer = await asyncio.open_connection(sock=ours)
        slot.listener = asyncio.create_task(
            self._listen(slot, process, reader), name=f"nst-worker-{slot.index}-pipe"
        )
        if self.pid_dir is not None:
            await asyncio.to_thread(_write_pid_file, self.pid_dir, process.pid)
        try:
            await answer
        except _Gone:
            how = await _exit_description(process)
            message = f"worker {slot.index} stopped while loading the model ({how})"
            raise WorkerDied(message) from None
        except NSTError:
            raise
        except Exception as err:
            raise WeightsError(f"worker {slot.index} could not load the model ({err})") from err
        finally:
            slot.answer = None
        self._set_ready(slot, True)
        log.info("worker %d ready (pid %d%s)", slot.index, process.pid, _gpu_note(slot))

    async def _listen(
        self, slot: _Slot, process: BaseProcess, reader: asyncio.StreamReader
    ) -> None:
        """Hand each message from one worker process to its slot until the pipe closes."""
        try:
            while True:
                (size,) = worker.HEADER.unpack(await reader.readexactly(worker.HEADER.size))
                data = await reader.readexactly(size)
                try:
                    self._on_message(slot, pickle.loads(data))
                except Exception:
                    # Its job cannot be trusted to end well any more: end the process, and the
                    # pipe's EOF below fails that job as a dead worker's.
                    log.exception("worker %d sent a message that cannot be read", slot.index)
                    _kill(process)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        if slot.process is not process:
            return
        if slot.answer is not None and not slot.answer.done():
            slot.answer.set_exception(_Gone())
        elif slot.ready and slot.job is None and not self._closed:
            log.warning(
                "worker %d (pid %d) stopped while idle (%s); starting another",
                slot.index,
                process.pid,
                await _exit_description(process),
            )
            self._replace(slot)

    def _on_message(self, slot: _Slot, message: tuple[Any, ...]) -> None:
        kind, *rest = message
        job, answer = slot.job, slot.answer
        if kind == "progress":
            ticket, progress = rest
            if job is not None and job._ticket == ticket:
                job._publish(progress)
        elif answer is None or answer.done():
            log.warning("worker %d sent %r out of turn; ignored", slot.index, kind)
        elif kind == "ready":
            answer.set_result(None)
        elif kind == "broken":
            answer.set_exception(rest[0])
        elif kind == "done":
            answer.set_result(rest[1])
        elif kind == "error":
            _, error, text = rest
            if text:
                error.__cause__ = _RemoteTraceback(text)
            answer.set_exception(error)

    def _replace(self, slot: _Slot) -> None:
        if not self._closed:
            self._set_ready(slot, False)
            self._spawn_task(self._restart_slot(slot), self._restarts)

    async def _restart_slot(self, slot: _Slot) -> None:
        while not self._closed:
            await self._stop_worker(slot)
            try:
                await self._start_slot(slot)
            except Exception:
                log.exception("worker %d could not be restarted; retrying", slot.index)
                await asyncio.sleep(_RESTART_DELAY)
                continue
            self._dispatch()
            return

    async def _stop_worker(self, slot: _Slot) -> None:
        """Close a slot's pipe (an idle worker exits at once on its EOF), wait for its process
        to exit, killing it if it does not, and forget it."""
        loading = not slot.ready
        self._set_ready(slot, False)
        process, writer, listener = slot.process, slot.writer, slot.listener
        slot.process = slot.pid = slot.writer = slot.listener = None
        if writer is not None:
            writer.close()
        if process is not None:
            if loading:
                _kill(process)  # it reads its pipe only once the model is loaded
            try:
                if await _exit_status(process, _STOP_WAIT) is None:
                    log.warning(
                        "worker %d (pid %d) did not exit; killing it", slot.index, process.pid
                    )
                    _kill(process)
                    await _exit_status(process, _EXIT_STATUS_WAIT)
            except asyncio.CancelledError:
                _kill(process)  # nobody else knows of it any more
                raise
            if self.pid_dir is not None:
                await asyncio.to_thread(_remove_pid_file, self.pid_dir, process.pid)
            if process.exitcode is not None:
                process.close()  # its sentinel's file descriptor
        if listener is not None:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)

    def _kill_workers(self) -> None:
        for slot in self._slots:
            _kill(slot.process)

    @staticmethod
    def _spawn_task(coro: Any, tasks: set[asyncio.Task[None]]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)


def _send(slot: _Slot, message: tuple[Any, ...]) -> None:
    # A worker that has died is reported by its slot's listener, not here.
    if slot.writer is not None and not slot.writer.is_closing():
        slot.writer.writelines(worker.frame(message))


@contextlib.contextmanager
def _stop_signals_blocked() -> Iterator[None]:
    """Start a worker with SIGTERM and SIGINT blocked (it inherits the mask), so that one sent
    to the process group while it starts stays pending until the worker ignores it."""
    # The resource tracker unblocks both when it starts, which would undo this.
    resource_tracker.ensure_running()
    old = signal.pthread_sigmask(signal.SIG_BLOCK, worker.STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _job_error(err: BaseException, job: Job) -> BaseException:
    """The exception a caller should see for ``err``, raised by or about the worker."""
    if isinstance(err, worker.TimedOut):
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


def _kill(process: BaseProcess | None) -> None:
    # ValueError: the Process object has been closed, so the process was reaped already.
    with contextlib.suppress(ProcessLookupError, ValueError):
        if process is not None and process.exitcode is None:
            os.kill(process.pid, signal.SIGKILL)


async def _exit_status(process: BaseProcess, timeout: float) -> int | None:
    """The process's exit code once it has exited (negative: the signal), or None after
    ``timeout`` seconds. Its pipe closes as soon as it starts to exit, but the status comes
    only once the kernel has torn down its memory."""
    deadline = time.monotonic() + timeout
    while (code := process.exitcode) is None and time.monotonic() < deadline:
        await asyncio.sleep(_POLL)
    return code


async def _exit_description(process: BaseProcess | None) -> str:
    code = None if process is None else await _exit_status(process, _EXIT_STATUS_WAIT)
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


# -- pid files -----------------------------------------------------------------------------
# One file per worker, ``worker-PID.pid``, holding JSON: the worker's pid and start time, and
# its parent's. A pid alone may have been reused by an unrelated process since; a pid with its
# start time (clock ticks after boot, from /proc/PID/stat) names one process for good.


def _write_pid_file(pid_dir: Path, pid: int) -> None:
    """Record a worker this process started, so that a later pool can end it if we die."""
    record = {
        "pid": pid,
        "started": start_time(pid),
        "parent": os.getpid(),
        "parent_started": start_time(os.getpid()),
    }
    pid_dir.mkdir(parents=True, exist_ok=True)
    (pid_dir / f"worker-{pid}.pid").write_text(json.dumps(record) + "\n")


def _remove_pid_file(pid_dir: Path, pid: int) -> None:
    (pid_dir / f"worker-{pid}.pid").unlink(missing_ok=True)


def _end_leftover_workers(pid_dir: Path) -> None:
    """SIGKILL each worker recorded in ``pid_dir`` that is still running while the pool that
    started it is gone, wait until it has exited (so a GPU's memory is free again), and remove
    every pid file but those of a live pool."""
    for path in sorted(pid_dir.glob("worker-*.pid")):
        try:
            record = json.loads(path.read_text())
            pid, started = int(record["pid"]), record["started"]
            parent, parent_started = int(record["parent"]), record["parent_started"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            log.warning("removing unreadable pid file %s (%s)", path, err)
            path.unlink(missing_ok=True)
            continue
        if started is not None and start_time(pid) == started and _is_worker(pid):
            if parent_started is not None and start_time(parent) == parent_started:
                log.warning(
                    "worker pid %d belongs to a pool that is still running (pid %d); "
                    "not touching it",
                    pid,
                    parent,
                )
                continue
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            log.warning("ended worker pid %d left over by an earlier bot", pid)
            deadline = time.monotonic() + _EXIT_STATUS_WAIT
            while start_time(pid) == started and time.monotonic() < deadline:
                time.sleep(_POLL)
        path.unlink(missing_ok=True)


def _is_worker(pid: int) -> bool:
    """Whether ``pid`` runs a process started by multiprocessing's spawn (our workers' kind)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"--multiprocessing-fork" in argv and any(b"spawn_main" in arg for arg in argv)
